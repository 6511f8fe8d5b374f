package proptest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// LWGOptions configures a simulation of the LWG layer: every node runs the
// real lwg.Core over real hwg cores (a directory HWG and carriers) on the
// simulated network. Zero fields take the defaults shown.
type LWGOptions struct {
	Seed  uint64
	Nodes int // default 5
	LWGs  int // default 20
	// Size is the number of nodes each LWG is assigned to. Default 3.
	Size  int
	Steps int // scheduler steps with workload and faults; default 3000
	// Carriers is the number of shared carrier bases the LWGs are spread
	// over; 0 places each LWG on its own HWG (the baseline).
	Carriers int
	// Switches is the number of switch requests made during the run, at
	// random times, to random carrier bases.
	Switches       int
	Faults         Faults
	QuiescentSteps int // default 300,000
	// SettleSteps are run once the LWGs have converged, for control
	// messages in flight to arrive before the checkers run. Default 5,000.
	SettleSteps int
	SendRate    float64 // chance per step of an LWG multicast; default 0.2
	// Burst, if above 1, makes each of those up to Burst multicasts by one
	// node in one step (in LWGs it is a member of), sent in batches.
	Burst     int
	FaultRate float64 // chance per step of a fault; default 0.005
	// ManualHoldOK makes the application answer Hold.up after a random
	// delay, multicasting meanwhile.
	ManualHoldOK bool
	// Core tunes every node's lwg.Config (Self, Directory, Place and
	// ManualHoldOK are set by the simulator; zero timings get short ones).
	Core     lwg.Config
	Group    hwg.Config
	Detector hwg.DetectorConfig
	// Async wires each node's lwg core to its hwg cores, and the
	// application to the core, as lwg.Service, hwg.Node and rsm.Node are
	// wired: through queues, each hop a scheduled step of its own. The
	// core takes up to asyncEvents hwg events, then its actions of them
	// all are carried out (one Ready, as the Service's loop takes it),
	// while the hwg cores go on stepping messages; the multicasts and
	// BlockOKs it asks for (hwg.Node's multicast channel) and its joins
	// and leaves (its request channel) travel apart, so one kind may
	// overtake the other (looser than the runtime, where a join, leave or
	// bootstrap the node takes at once is never overtaken by a later
	// multicast); the application (the layer, Hold.up answers, rejoins)
	// takes the core's events at its own hop, after the core went on.
	// Without it the core sees each event at once, its actions run
	// before anything else happens, and the application answers at once.
	// Group.LazyAcks and LazyRetransmit, which hwg.Node also sets, are
	// apart (runtimeWiring in the tests sets all three).
	Async bool

	// manualDirectory has the core answer the directory's Blocks, as
	// lwg.Service did before it set the directory to answer them itself
	// (tests only: the hazard that change removed).
	manualDirectory bool
}

func (o *LWGOptions) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Nodes, 5)
	def(&o.LWGs, 20)
	def(&o.Size, 3)
	o.Size = min(o.Size, o.Nodes)
	def(&o.Steps, 3000)
	def(&o.QuiescentSteps, 300_000)
	def(&o.SettleSteps, 5000)
	if o.SendRate == 0 {
		o.SendRate = 0.2
	}
	if o.FaultRate == 0 {
		o.FaultRate = 0.005
	}
	if o.Detector.SuspectTicks == 0 {
		o.Detector.SuspectTicks = 8
	}
}

// LWGStats counts what an LWG simulation did.
type LWGStats struct {
	Steps, Crashes, Restarts, Partitions, Dropped, Duplicated int
	Joins, Leaves, Switches                                   int
	// Moves counts LWG installs on another carrier than the member's
	// previous install of that LWG: switches carried out, per member.
	Moves                          int
	LWGInstalls, Sent, Delivered   int
	HWGInstalls                    int
	Interference, Stale, Malformed uint64
	// Batched counts multicasts sent in an HWG message with others.
	Batched     uint64
	Converged   bool
	PrimaryLost bool
	// Waited counts joins and leaves of an HWG that waited for a Leave
	// of it under way (LWGOptions.Async, as lwg.Service holds them).
	Waited int
	// LateRestores sums the live nodes' lwg.Stats.LateRestores.
	LateRestores uint64
}

type lwgSimNode struct {
	id     hwg.NodeID
	inc    uint64
	alive  bool
	groups map[hwg.GroupID]*hwg.Group
	// contacts: each group's other members in the last view installed
	// here, through which an excluded member joins again (as hwg.Node).
	contacts map[hwg.GroupID][]hwg.NodeID
	// leftGroups holds the groups this node left, as hwg.Node keeps
	// them (it drops the oldest beyond 4,096 or 64 MiB, which no
	// simulation reaches): they answer laggards' messages, take no ticks, and a later
	// join takes them up again.
	leftGroups map[hwg.GroupID]*leftGroup
	ticks      uint64
	// backlog holds multicasts a busy group refused (hwg.ErrBusy), in order;
	// a BlockOK waits behind them, as in the node runtime.
	backlog map[hwg.GroupID][]lwg.Action
	det     *hwg.Detector
	core    *lwg.Core
	// assigned LWGs the workload keeps this node in; left ones it left on
	// purpose (FaultLeave) until it rejoins.
	left   map[lwg.ID]bool
	epoch  uint64
	probes probes
	// With LWGOptions.Async: hwg events on their way to the core, and
	// its actions on their way to the hwg cores (multicasts and BlockOKs
	// in mq, the rest in rq); queued[k] says an item of local kind k is
	// scheduled.
	evq    []hwg.Event
	mq, rq []lwg.Action
	// aq holds lwg events on their way to the application (Async).
	aq     []lwg.Event
	queued [localKinds]bool
	// leaving and resumed model lwg.Service's hwgMembership: the groups
	// with a Leave under way, each with the joins and leaves asked after
	// it, which wait until it is done; and the groups whose Leave is done
	// and whose waiting requests go next.
	leaving map[hwg.GroupID][]lwg.Action
	resumed []hwg.GroupID
}

func (n *lwgSimNode) self() hwg.Process { return hwg.Process{Node: n.id, Inc: n.inc} }

// LWGSim is a deterministic cluster running the LWG layer.
type LWGSim struct {
	opts   LWGOptions
	rng    *rand.Rand
	net    network
	now    uint64
	nodes  []*lwgSimNode
	assign map[lwg.ID][]hwg.NodeID
	ids    []lwg.ID
	trace  Trace
	stats  LWGStats
	healed bool
	links  links
	extra  []Violation
	pay    uint64
	// switches still to request, at these steps.
	switchAt []int
	// final round per LWG
	final map[lwg.ID]*lwgFinal
	// top is the highest view of each HWG anyone installed.
	top map[hwg.GroupID]hwg.View
	// lastCarrier is each member's carrier of its latest install of an LWG.
	lastCarrier map[lwgAt]hwg.GroupID
	// layer runs above the LWG cores (the RSM simulation); nil for none.
	layer layer
}

// layer is an application layer run above every node's lwg.Core (see
// rsmsim.go). The simulator calls it on its goroutine and drains the node
// after each call.
type layer interface {
	// attach: the simulator is made, before its nodes start.
	attach(s *LWGSim)
	// started: n's new incarnation has its cores, before it joins its LWGs.
	started(n *lwgSimNode)
	crashed(n *lwgSimNode)
	ticked(n *lwgSimNode)
	// lwgEvent: n's lwg.Core raised e (after it entered the trace).
	lwgEvent(n *lwgSimNode, e lwg.Event)
	// direct: a point-to-point payload from another process reached n.
	direct(n *lwgSimNode, from hwg.Process, payload []byte)
	// mayStop reports whether n may crash (l empty) or leave l.
	mayStop(n *lwgSimNode, l lwg.ID) bool
	// msgID names a send or delivery in the trace (payloads may repeat).
	msgID(n *lwgSimNode, e lwg.Event) string
}

type lwgAt struct {
	p hwg.Process
	l lwg.ID
}

type lwgFinal struct {
	view uint64
	sent map[hwg.NodeID]string
	got  map[hwg.NodeID]map[string]bool
}

const lwgDir hwg.GroupID = "h/dir"

// NewLWGSim builds the cluster: every node bootstraps the directory and
// joins the LWGs assigned to it.
func NewLWGSim(opts LWGOptions) *LWGSim { return newLWGSim(opts, nil) }

func newLWGSim(opts LWGOptions, l layer) *LWGSim {
	opts.defaults()
	s := &LWGSim{
		layer:  l,
		opts:   opts,
		rng:    rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x5bd1e995)),
		net:    network{cut: map[[2]hwg.NodeID]bool{}},
		assign: map[lwg.ID][]hwg.NodeID{},
		top:    map[hwg.GroupID]hwg.View{},

		lastCarrier: map[lwgAt]hwg.GroupID{},
	}
	if l != nil {
		l.attach(s)
	}
	if opts.Faults.Has(FaultDrop) {
		s.links.drop = 0.03
	}
	if opts.Faults.Has(FaultDup) {
		s.links.dup = 0.02
	}
	s.links.reorder = opts.Faults.Has(FaultReorder)
	for i := range opts.LWGs {
		l := lwg.ID(fmt.Sprintf("l/%d", i))
		s.ids = append(s.ids, l)
		perm := s.rng.Perm(opts.Nodes)[:opts.Size]
		for _, k := range perm {
			s.assign[l] = append(s.assign[l], hwg.NodeID(k+1))
		}
		slices.Sort(s.assign[l])
	}
	for range opts.Switches {
		s.switchAt = append(s.switchAt, s.rng.IntN(max(1, opts.Steps)))
	}
	slices.Sort(s.switchAt)
	var members []hwg.Process
	for i := 1; i <= opts.Nodes; i++ {
		n := &lwgSimNode{id: hwg.NodeID(i), inc: 1}
		s.nodes = append(s.nodes, n)
		members = append(members, n.self())
	}
	for _, n := range s.nodes {
		s.start(n)
		s.must(n.core.BootstrapDirectory(members))
		s.joinAssigned(n)
		s.drain(n)
	}
	return s
}

func (s *LWGSim) place(l lwg.ID) hwg.GroupID {
	if s.opts.Carriers == 0 {
		return lwg.PerLWG(l)
	}
	h := 0
	for _, b := range []byte(l) {
		h = h*31 + int(b)
	}
	return hwg.GroupID(fmt.Sprintf("h/c%d", h%s.opts.Carriers))
}

func (s *LWGSim) must(err error) {
	if err != nil {
		panic(fmt.Sprintf("proptest: LWG simulator misuse: %v", err))
	}
}

func (s *LWGSim) start(n *lwgSimNode) {
	cfg := s.opts.Core
	cfg.Self, cfg.Directory, cfg.Place, cfg.ManualHoldOK = n.self(), lwgDir, s.place, s.opts.ManualHoldOK
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.TableTimeoutTicks, 100)
	def(&cfg.IdleTicks, 30)
	def(&cfg.SwitchTimeoutTicks, 200)
	core, err := lwg.NewCore(cfg)
	s.must(err)
	n.core, n.alive = core, true
	n.groups, n.backlog = map[hwg.GroupID]*hwg.Group{}, map[hwg.GroupID][]lwg.Action{}
	n.contacts, n.leftGroups = map[hwg.GroupID][]hwg.NodeID{}, map[hwg.GroupID]*leftGroup{}
	n.left = map[lwg.ID]bool{}
	n.evq, n.mq, n.rq, n.aq, n.queued = nil, nil, nil, nil, [localKinds]bool{}
	n.leaving, n.resumed = map[hwg.GroupID][]lwg.Action{}, nil
	n.det = hwg.NewDetector(n.self(), s.opts.Detector)
	n.probes = newProbes()
	for _, o := range s.nodes {
		n.det.Watch(o.id)
	}
	if s.layer != nil {
		s.layer.started(n)
	}
	s.net.schedule(&item{at: s.now + 1 + s.rng.Uint64N(tickUnits), to: n.id, inc: n.inc, tick: true})
}

func (s *LWGSim) joinAssigned(n *lwgSimNode) {
	for _, l := range s.ids {
		if slices.Contains(s.assign[l], n.id) && !n.left[l] {
			if _, _, ok := n.core.View(l); !ok {
				err := n.core.Join(l)
				if err != nil && !errors.Is(err, lwg.ErrAlreadyMember) {
					s.must(err)
				}
			}
		}
	}
}

func (s *LWGSim) node(id hwg.NodeID) *lwgSimNode {
	if id == 0 || int(id) > len(s.nodes) {
		return nil
	}
	return s.nodes[id-1]
}

// group returns n's hwg core for g, creating it.
func (s *LWGSim) group(n *lwgSimNode, g hwg.GroupID) *hwg.Group {
	if grp := n.groups[g]; grp != nil {
		return grp
	}
	if l := n.leftGroups[g]; l != nil {
		// Joined again: it remembers its views (as hwg.Node).
		delete(n.leftGroups, g)
		n.groups[g] = l.g
		return l.g
	}
	cfg := s.opts.Group
	// As lwg.Service sets them: the directory's Block is answered by the
	// group itself (hwg.Node.SetManualBlockOK), the carriers' by the core.
	cfg.Group, cfg.Self, cfg.ManualBlockOK = g, n.self(), g != lwgDir || s.opts.manualDirectory
	grp, err := hwg.New(cfg)
	s.must(err)
	n.groups[g] = grp
	return grp
}

// Step runs the next scheduled item. It reports false when nothing is
// scheduled.
func (s *LWGSim) Step() bool {
	it := s.net.next()
	if it == nil {
		return false
	}
	s.stats.Steps++
	s.now = max(s.now, it.at)
	n := s.node(it.to)
	switch {
	case it.tick:
		if n.alive && n.inc == it.inc {
			s.tick(n)
			s.net.schedule(&item{at: s.now + tickUnits, to: n.id, inc: n.inc, tick: true})
		}
	case !n.alive:
	case it.hb:
		n.det.Heard(it.from)
		if n.probes.heard(it.from.Node, it.epoch) {
			for _, g := range sortedKeys(n.groups) {
				n.groups[g].Probe(it.from.Node)
			}
			s.drain(n)
		}
	case it.local != 0:
		if n.inc == it.inc {
			s.runLocal(n, it.local)
		}
	case it.direct != nil:
		if n.inc == it.inc && s.layer != nil {
			s.layer.direct(n, it.from, it.direct)
			s.drain(n)
		}
	case it.msg.Type == 0:
		// a delayed HoldOK from the application
		if n.inc == it.inc {
			_ = n.core.HoldOK(lwg.ID(it.msg.Group)) // it may have been answered by an install
			s.drain(n)
		}
	default:
		n.det.Heard(it.msg.From)
		if g := n.groups[it.msg.Group]; g != nil {
			if err := g.Step(it.msg); err != nil && !errors.Is(err, hwg.ErrStaleIncarnation) {
				s.violation("protocol-error", fmt.Sprintf("node %v rejected %v from %v in %s: %v", n.self(), it.msg.Type, it.msg.From, it.msg.Group, err))
			}
			s.drain(n)
		} else if l := n.leftGroups[it.msg.Group]; l != nil {
			// As hwg.Node's stepLeft: its clock catches up, what it
			// answers goes out, its events are nobody's.
			for range min(n.ticks-l.at, leftCatchUp) {
				l.g.Tick()
			}
			l.at = n.ticks
			_ = l.g.Step(it.msg)
			s.sendLeft(n, l.g)
		}
	}
	return true
}

func (s *LWGSim) tick(n *lwgSimNode) {
	n.ticks++
	for _, to := range n.det.Tick() {
		s.send(n.id, to, &item{hb: true, from: n.self(), epoch: n.epoch})
	}
	sus := n.det.Suspected()
	for _, g := range sortedKeys(n.groups) {
		grp := n.groups[g]
		for _, p := range sus {
			grp.Suspect(p)
		}
		grp.Tick()
	}
	n.core.Tick()
	if s.layer != nil {
		s.layer.ticked(n)
	}
	s.drain(n)
}

// drain carries out what n's cores ask until they are quiet: hwg messages
// go to the network, hwg events to the trace and the lwg core, lwg actions
// to the hwg cores, lwg events to the trace.
func (s *LWGSim) drain(n *lwgSimNode) {
	for {
		busy := false
		for _, g := range sortedKeys(n.groups) {
			rd := n.groups[g].Ready()
			if rd.Empty() {
				continue
			}
			busy = true
			for _, m := range rd.Messages {
				s.send(n.id, m.To.Node, &item{msg: m})
			}
			for _, e := range rd.Events {
				// One event at a time, as a runtime does: the LWG events it
				// causes, and those of what the layer does on them (a
				// multicast's EventSend), enter the trace before the
				// group's next event.
				s.recordHWG(n, e)
				s.rejoinExcluded(n, g, e)
				if _, ok := n.leaving[g]; ok && e.Type == hwg.EventLeft {
					// The Leave is done: its waiter tells the
					// Service's loop, which then runs what waited.
					n.resumed = append(n.resumed, g)
					s.schedLocal(n, localRequests)
				}
				if e.Type == hwg.EventLeft && n.groups[g] != nil && n.groups[g].Info().Status == hwg.StatusIdle {
					// (Not if a join, asked before this event was read,
					// started a new membership already: hwg.Node puts
					// a group away at once, so the join made a new one.)
					s.retain(n, g)
				}
				if s.opts.Async {
					n.evq = append(n.evq, e)
					s.schedLocal(n, localEvents)
					continue
				}
				n.core.HWGEvent(e)
				for s.coreReady(n) {
				}
			}
		}
		if s.retryBacklog(n) {
			busy = true
		}
		if s.coreReady(n) {
			busy = true
		}
		if !busy {
			return
		}
	}
}

// coreReady carries out what n's lwg core asks; it reports whether there
// was anything.
func (s *LWGSim) coreReady(n *lwgSimNode) bool {
	rd := n.core.Ready()
	for _, a := range rd.Actions {
		switch {
		case !s.opts.Async:
			s.do(n, a)
		case a.Type == lwg.ActMulticast || a.Type == lwg.ActBlockOK:
			n.mq = append(n.mq, a)
			s.schedLocal(n, localMulticasts)
		default:
			n.rq = append(n.rq, a)
			s.schedLocal(n, localRequests)
		}
	}
	s.lwgEvents(n, rd.Events)
	return !rd.Empty()
}

// Local hops of LWGOptions.Async, each an item kind.
const (
	localEvents     = iota + 1 // hwg events to the lwg core
	localMulticasts            // multicasts and BlockOKs to the hwg cores
	localRequests              // joins, leaves and bootstraps to the hwg cores
	localApp                   // lwg events to the application
	localKinds
)

// asyncEvents is how many hwg events the lwg core takes before its
// actions are carried out (lwg.Service's maxDrainEvents is of this order).
const asyncEvents = 128

// schedLocal schedules the local hop of kind k at n, unless one is
// scheduled already: a hop a little later than now, as a channel between
// two goroutines takes a moment.
func (s *LWGSim) schedLocal(n *lwgSimNode, k uint8) {
	if n.queued[k] {
		return
	}
	n.queued[k] = true
	d := 1 + s.rng.Uint64N(3)
	if s.rng.IntN(20) == 0 {
		// Now and then a goroutine waits longer for a CPU (or the
		// collector): up to a few ticks.
		d += s.rng.Uint64N(3 * tickUnits)
	}
	s.net.schedule(&item{at: s.now + d, to: n.id, inc: n.inc, local: k})
}

// runLocal carries out n's local hop of kind k.
func (s *LWGSim) runLocal(n *lwgSimNode, k uint8) {
	n.queued[k] = false
	switch k {
	case localEvents:
		// Up to asyncEvents, or, half the time, what had reached the
		// loop's channel by then: fewer, so the core may fall behind.
		take := min(len(n.evq), asyncEvents)
		if take > 1 && s.rng.IntN(2) == 0 {
			take = 1 + s.rng.IntN(take)
		}
		for _, e := range n.evq[:take] {
			// Traced when the core sees it: the LWG checkers hold each
			// LWG event against the carrier events before it.
			s.recordSeen(n, e)
			n.core.HWGEvent(e)
			// Its events are traced before the next input's; what it
			// asks waits for the batch's Ready (drain, below), as
			// lwg.Service's loop takes one Ready after draining, so
			// the core gathers what several events send into one
			// message per carrier.
			s.lwgEvents(n, n.core.TakeEvents())
		}
		n.evq = slices.Delete(n.evq, 0, take)
		if len(n.evq) > 0 {
			s.schedLocal(n, localEvents)
		}
	case localApp:
		q := n.aq
		n.aq = nil
		for _, e := range q {
			s.recordAppSeen(n, e)
			s.reactLWG(n, e)
		}
	case localMulticasts:
		q := n.mq
		n.mq = nil
		for _, a := range q {
			s.do(n, a)
		}
	case localRequests:
		for _, g := range n.resumed {
			s.resume(n, g)
		}
		n.resumed = nil
		q := n.rq
		n.rq = nil
		for _, a := range q {
			s.request(n, a)
		}
	}
	s.drain(n)
}

// request carries out a join, leave or bootstrap as lwg.Service's
// hwgMembership does: a join or leave of a group with a Leave under way
// waits for it (the latest of a kind standing for those before it).
func (s *LWGSim) request(n *lwgSimNode, a lwg.Action) {
	if q, ok := n.leaving[a.Group]; ok && (a.Type == lwg.ActJoin || a.Type == lwg.ActLeave) {
		s.stats.Waited++
		if k := len(q); k > 0 && q[k-1].Type == a.Type {
			q[k-1] = a
		} else {
			n.leaving[a.Group] = append(q, a)
		}
		return
	}
	s.startRequest(n, a)
}

// startRequest hands a to the hwg core and reports whether it is a Leave
// now under way.
func (s *LWGSim) startRequest(n *lwgSimNode, a lwg.Action) bool {
	if a.Type != lwg.ActLeave {
		s.do(n, a)
		return false
	}
	g := n.groups[a.Group]
	if g == nil {
		return false // hwg.Node: ErrUnknownGroup
	}
	if err := g.Leave(); err != nil {
		return false
	}
	n.leaving[a.Group] = nil
	return true
}

// resume runs the requests that waited for g's Leave, up to the next one.
func (s *LWGSim) resume(n *lwgSimNode, g hwg.GroupID) {
	q, ok := n.leaving[g]
	if !ok {
		return
	}
	delete(n.leaving, g)
	for i, a := range q {
		if s.startRequest(n, a) {
			n.leaving[g] = append(n.leaving[g], q[i+1:]...)
			return
		}
	}
}

func (s *LWGSim) do(n *lwgSimNode, a lwg.Action) {
	if len(n.backlog[a.Group]) > 0 && (a.Type == lwg.ActMulticast || a.Type == lwg.ActBlockOK) {
		n.backlog[a.Group] = append(n.backlog[a.Group], a)
		return
	}
	if a.Type != lwg.ActJoin && a.Type != lwg.ActBootstrap && n.groups[a.Group] == nil {
		// A group this node left (or never joined): hwg.Node drops a
		// multicast to it and refuses a Leave or BlockOK of it, and only
		// a join makes it a group of the node again.
		return
	}
	g := s.group(n, a.Group)
	switch a.Type {
	case lwg.ActBootstrap:
		if err := g.Bootstrap(a.Members); err != nil {
			s.violation("lwg-action", fmt.Sprintf("node %v: bootstrap %s: %v", n.self(), a.Group, err))
		}
	case lwg.ActJoin:
		if err := g.Join(a.Contacts); err != nil && !errors.Is(err, hwg.ErrAlreadyMember) {
			s.violation("lwg-action", fmt.Sprintf("node %v: join %s: %v", n.self(), a.Group, err))
		}
	case lwg.ActLeave:
		_ = g.Leave() // not a member any more is fine: the event says so
	case lwg.ActMulticast:
		var err error
		if a.View != 0 {
			err = g.MulticastIn(a.View, a.Payload)
		} else {
			err = g.Multicast(a.Payload)
		}
		switch {
		case errors.Is(err, hwg.ErrBusy):
			n.backlog[a.Group] = append(n.backlog[a.Group], a)
		case errors.Is(err, hwg.ErrNotMember):
			// The group ended under the request; the lwg core learns it
			// from the group's event.
		case err != nil:
			s.violation("lwg-action", fmt.Sprintf("node %v: multicast in %s: %v", n.self(), a.Group, err))
		}
	case lwg.ActBlockOK:
		g.BlockOK(a.View)
	}
}

func (s *LWGSim) retryBacklog(n *lwgSimNode) bool {
	progress := false
	for _, g := range sortedKeys(n.backlog) {
		q := n.backlog[g]
		delete(n.backlog, g)
		for i, a := range q {
			s.do(n, a)
			if len(n.backlog[g]) > 0 {
				n.backlog[g] = append(n.backlog[g], q[i+1:]...)
				break
			}
			progress = true
		}
	}
	return progress
}

func (s *LWGSim) send(from, to hwg.NodeID, it *item) {
	if s.node(to) == nil {
		return
	}
	s.links.healed = s.healed
	s.net.send(s.rng, &s.links, s.now, from, to, it)
	s.stats.Dropped, s.stats.Duplicated = s.links.dropped, s.links.duplicated
}

// retain does what hwg.Node does with a group this node left: it keeps it
// apart, to answer laggards' messages, and out of the node's groups.
func (s *LWGSim) retain(n *lwgSimNode, g hwg.GroupID) {
	grp := n.groups[g]
	delete(n.groups, g)
	s.sendLeft(n, grp) // what it still had to say goes out
	n.leftGroups[g] = &leftGroup{g: grp, at: n.ticks}
}

// leftCatchUp is hwg.Node's bound on the ticks a kept left group's clock
// catches up before a message (hwg's leftCatchUp, unexported).
const leftCatchUp = 64

// leftGroup is a group a node left, with the node's tick its clock was
// last brought to (it takes no ticks).
type leftGroup struct {
	g  *hwg.Group
	at uint64
}

// sendLeft sends a left group's messages and drops its events.
func (s *LWGSim) sendLeft(n *lwgSimNode, grp *hwg.Group) {
	rd := grp.Ready()
	for _, m := range rd.Messages {
		s.send(n.id, m.To.Node, &item{msg: m})
	}
}

// rejoinExcluded does what hwg.Node does with a group's events before its
// reader sees them: it notes the contacts of each install, and an
// excluded member joins again through them, by itself (the lwg core
// leaves a carrier it no longer wants, such as a dead one).
func (s *LWGSim) rejoinExcluded(n *lwgSimNode, g hwg.GroupID, e hwg.Event) {
	switch e.Type {
	case hwg.EventInstall:
		var others []hwg.NodeID
		for _, m := range e.View.Members {
			if m.Node != n.id {
				others = append(others, m.Node)
			}
		}
		n.contacts[g] = others
	case hwg.EventExcluded:
		grp := n.groups[g]
		if grp.Info().Status != hwg.StatusIdle {
			return
		}
		if err := grp.Join(n.contacts[g]); err != nil {
			s.violation("lwg-action", fmt.Sprintf("node %v: rejoining %s: %v", n.self(), g, err))
		}
	case hwg.EventLeft:
		delete(n.contacts, g)
	}
}

func (s *LWGSim) recordHWG(n *lwgSimNode, e hwg.Event) {
	if ev, ok := FromHWG(n.self(), e, uint64(s.stats.Steps)); ok {
		if ev.Msg != "" {
			ev.Msg = string(e.Group) + ":" + ev.Msg // hwg message ids are per group
		}
		s.trace.Append(ev)
	}
	switch e.Type {
	case hwg.EventInstall:
		n.epoch++
		s.stats.HWGInstalls++
		if e.View.ID > s.top[e.Group].ID {
			s.top[e.Group] = e.View.Clone()
		}
	case hwg.EventExcluded, hwg.EventLeft:
		// An excluded member's group stays, and joins again by itself
		// (rejoinExcluded); a left one is kept apart (retain). What the lwg core asked to multicast there before it
		// learns of this is lost, as the runtime loses it.
		n.epoch++
		delete(n.backlog, e.Group)
	}
}

// recordSeen traces again, as seen (Event.Seen), a carrier's install, leave
// or exclusion when n's lwg core takes it (LWGOptions.Async): the LWG
// checkers hold each LWG event against what the core had seen of its
// carrier, the other checkers against what the hwg core did.
func (s *LWGSim) recordSeen(n *lwgSimNode, e hwg.Event) {
	switch e.Type {
	case hwg.EventInstall, hwg.EventLeft, hwg.EventExcluded:
		if ev, ok := FromHWG(n.self(), e, uint64(s.stats.Steps)); ok {
			ev.Seen = true
			s.trace.Append(ev)
		}
	}
}

// lwgEvents traces events of n's lwg core; the application takes them
// at once, or, with LWGOptions.Async, at a hop of its own (as rsm's router
// reads lwg.Service's batches), so the core may run ahead of it.
func (s *LWGSim) lwgEvents(n *lwgSimNode, evs []lwg.Event) {
	for _, e := range evs {
		s.recordLWG(n, e)
		if !s.opts.Async {
			s.reactLWG(n, e)
			continue
		}
		n.aq = append(n.aq, e)
		s.schedLocal(n, localApp)
	}
}

// recordLWG traces e and counts it.
// recordAppSeen traces again, as seen (Event.Seen), an LWG's install,
// leave or exclusion when n's application takes it (LWGOptions.Async): the
// checkers of replicated objects hold what a replica applies against what
// it had seen of its LWG.
func (s *LWGSim) recordAppSeen(n *lwgSimNode, e lwg.Event) {
	switch e.Type {
	case lwg.EventInstall, lwg.EventLeft, lwg.EventExcluded:
		if ev, ok := FromLWG(n.self(), e, uint64(s.stats.Steps)); ok {
			ev.Seen = true
			s.trace.Append(ev)
		}
	}
}

func (s *LWGSim) recordLWG(n *lwgSimNode, e lwg.Event) {
	if ev, ok := FromLWG(n.self(), e, uint64(s.stats.Steps)); ok {
		if s.layer != nil && ev.Msg != "" {
			ev.Msg = s.layer.msgID(n, e)
		}
		s.trace.Append(ev)
	}
	switch e.Type {
	case lwg.EventInstall:
		s.stats.LWGInstalls++
		k := lwgAt{n.self(), e.LWG}
		if h, ok := s.lastCarrier[k]; ok && h != e.HWG {
			s.stats.Moves++
		}
		s.lastCarrier[k] = e.HWG
		if f := s.final[e.LWG]; f != nil && f.view != e.View.ID {
			delete(s.final, e.LWG) // the final round starts over in the new view
		}
	case lwg.EventSend:
		s.stats.Sent++
	case lwg.EventDeliver:
		s.stats.Delivered++
		if f := s.final[e.LWG]; f != nil && f.view == e.View.ID {
			if f.got[n.id] == nil {
				f.got[n.id] = map[string]bool{}
			}
			f.got[n.id][string(e.Payload)] = true
		}
	}
}

// reactLWG is the application's part: the layer's, a delayed answer to a
// Hold.up, joining again an LWG it was excluded from.
func (s *LWGSim) reactLWG(n *lwgSimNode, e lwg.Event) {
	if s.layer != nil {
		s.layer.lwgEvent(n, e)
	}
	switch e.Type {
	case lwg.EventBlock:
		if s.opts.ManualHoldOK {
			s.net.schedule(&item{at: s.now + 1 + s.rng.Uint64N(2*tickUnits), to: n.id, inc: n.inc, msg: hwg.Message{Group: hwg.GroupID(e.LWG)}})
		}
	case lwg.EventExcluded, lwg.EventLeft:
		if s.healed || e.Type == lwg.EventExcluded && !n.left[e.LWG] {
			// Excluded endpoints ask to join again (after the heal, all do).
			delete(n.left, e.LWG)
			s.joinAssigned(n)
		}
	}
}

func (s *LWGSim) violation(checker, detail string) {
	if len(s.extra) < 20 {
		s.extra = append(s.extra, Violation{Checker: checker, T: uint64(s.stats.Steps), Detail: detail})
	}
}

// Multicast makes a random member of a random LWG multicast.
func (s *LWGSim) Multicast() {
	n := s.nodes[s.rng.IntN(len(s.nodes))]
	if !n.alive {
		return
	}
	l := s.ids[s.rng.IntN(len(s.ids))]
	if _, _, ok := n.core.View(l); !ok {
		return
	}
	s.pay++
	s.must(n.core.Multicast(l, fmt.Appendf(nil, "%s:m%d", l, s.pay)))
	if s.opts.Burst > 1 {
		// More multicasts in the same step, in LWGs of this node: the
		// Core sends those of one carrier in one HWG message.
		for range s.rng.IntN(s.opts.Burst) {
			l := s.ids[s.rng.IntN(len(s.ids))]
			if _, _, ok := n.core.View(l); ok {
				s.pay++
				s.must(n.core.Multicast(l, fmt.Appendf(nil, "%s:m%d", l, s.pay)))
			}
		}
	}
	s.drain(n)
}

// Switch asks a random member of a random LWG to move it to a random base.
func (s *LWGSim) Switch() {
	l := s.ids[s.rng.IntN(len(s.ids))]
	ms := s.assign[l]
	n := s.node(ms[s.rng.IntN(len(ms))])
	var base hwg.GroupID
	if s.opts.Carriers == 0 {
		base = hwg.GroupID(fmt.Sprintf("h/%s/alt%d", l, s.rng.IntN(2)))
	} else {
		base = hwg.GroupID(fmt.Sprintf("h/c%d", s.rng.IntN(s.opts.Carriers+1)))
	}
	if !n.alive || n.core.Switch(l, base) != nil {
		return
	}
	s.stats.Switches++
	s.drain(n)
}

// Crash kills node id if every view of every group stays with a live
// majority.
func (s *LWGSim) Crash(id hwg.NodeID) bool {
	n := s.node(id)
	if n == nil || !n.alive || !s.crashSafe(n) || s.layer != nil && !s.layer.mayStop(n, "") {
		return false
	}
	n.alive = false
	// Its core's counts go with it: add them now (a malformed message it
	// took still fails the run).
	s.addCoreStats(n.core.Stats())
	if s.layer != nil {
		s.layer.crashed(n)
	}
	s.stats.Crashes++
	s.trace.Append(Event{T: uint64(s.stats.Steps), Node: uint64(n.id), Inc: n.inc, Ev: EvCrash})
	return true
}

// addCoreStats adds a node's lwg.Core counts to the run's: at the end of
// the run for live nodes, at its crash for the others.
func (s *LWGSim) addCoreStats(st lwg.Stats) {
	s.stats.Interference += st.Interference
	s.stats.Batched += st.Batched
	s.stats.Stale += st.Stale
	s.stats.Malformed += st.Malformed
	s.stats.LateRestores += st.LateRestores
}

func (s *LWGSim) crashSafe(victim *lwgSimNode) bool {
	var views []hwg.View
	for _, n := range s.nodes {
		if !n.alive {
			continue
		}
		for _, g := range sortedKeys(n.groups) {
			views = append(views, viewsAtStake(n.groups[g].Info())...)
		}
	}
	return keepsQuorum(views, func(m hwg.Process) bool {
		o := s.node(m.Node)
		return o != victim && o.alive && o.inc == m.Inc
	})
}

// Restart brings a crashed node back as a new incarnation: it joins the
// directory and its assigned LWGs again.
func (s *LWGSim) Restart(id hwg.NodeID) bool {
	n := s.node(id)
	if n == nil || n.alive {
		return false
	}
	n.inc++
	s.stats.Restarts++
	s.start(n)
	var contacts []hwg.NodeID
	for _, o := range s.nodes {
		if o != n {
			contacts = append(contacts, o.id)
		}
	}
	s.must(n.core.JoinDirectory(contacts))
	s.joinAssigned(n)
	s.drain(n)
	return true
}

func (s *LWGSim) injectFault() {
	pick := func() *lwgSimNode { return s.nodes[s.rng.IntN(len(s.nodes))] }
	var kinds []Faults
	for _, f := range []Faults{FaultCrash, FaultPartition, FaultJoin, FaultLeave} {
		if s.opts.Faults.Has(f) {
			kinds = append(kinds, f)
		}
	}
	if len(kinds) == 0 {
		return
	}
	switch kinds[s.rng.IntN(len(kinds))] {
	case FaultCrash:
		for _, n := range s.nodes {
			if !n.alive && s.rng.IntN(2) == 0 {
				s.Restart(n.id)
				return
			}
		}
		s.Crash(pick().id)
	case FaultPartition:
		if len(s.net.cut) > 0 && s.rng.IntN(2) == 0 {
			clear(s.net.cut)
			return
		}
		in := map[hwg.NodeID]bool{}
		for _, n := range s.nodes {
			if s.rng.IntN(3) == 0 {
				in[n.id] = true
			}
		}
		if len(in) == 0 || len(in) == len(s.nodes) {
			return
		}
		var ids []hwg.NodeID
		for _, n := range s.nodes {
			ids = append(ids, n.id)
		}
		s.net.partition(ids, in, s.rng.IntN(3) == 0)
		s.stats.Partitions++
	case FaultJoin:
		s.Rejoin(pick().id)
	case FaultLeave:
		n := pick()
		s.Leave(n.id, s.ids[s.rng.IntN(len(s.ids))])
	}
}

// Rejoin makes node id join again the first LWG it was asked to leave.
// It reports whether the join was asked.
func (s *LWGSim) Rejoin(id hwg.NodeID) bool {
	n := s.node(id)
	if n == nil || !n.alive || len(n.left) == 0 {
		return false
	}
	l := sortedKeys(n.left)[0]
	ok := n.core.Join(l) == nil
	if ok {
		s.stats.Joins++
		delete(n.left, l)
	}
	// Refused while its leave is under way (the endpoint is still there),
	// so it stays marked as leaving: unmarked, the layer's mayStop took it
	// for a member that stays, and let the other holder of an RSM state
	// leave too (RSM seeds 5168 and 5789).
	s.drain(n)
	return ok
}

// Leave makes node id leave l, unless the layer refuses (mayStop). It
// reports whether the leave was asked.
func (s *LWGSim) Leave(id hwg.NodeID, l lwg.ID) bool {
	n := s.node(id)
	if n == nil || !n.alive || s.layer != nil && !s.layer.mayStop(n, l) || n.core.Leave(l) != nil {
		return false
	}
	n.left[l] = true
	s.stats.Leaves++
	s.drain(n)
	return true
}

// Heal ends the fault phase: links reconnect, loss stops, crashed nodes
// restart and every node rejoins the LWGs assigned to it.
func (s *LWGSim) Heal() {
	s.healed = true
	clear(s.net.cut)
	s.trace.Append(Event{T: uint64(s.stats.Steps), Ev: EvHeal})
	for _, n := range s.nodes {
		if !n.alive {
			s.Restart(n.id)
			continue
		}
		clear(n.left)
		s.joinAssigned(n)
		s.drain(n)
	}
}

// lwgConverged reports whether every node assigned to l is in one view of l
// that holds exactly them.
func (s *LWGSim) lwgConverged(l lwg.ID) (uint64, bool) {
	var id uint64
	for i, nid := range s.assign[l] {
		n := s.node(nid)
		v, _, ok := n.core.View(l)
		if !ok || len(v.Members) != len(s.assign[l]) || !v.Contains(n.self()) {
			return 0, false
		}
		if i == 0 {
			id = v.ID
		} else if v.ID != id {
			return 0, false
		}
	}
	return id, true
}

// Quiesce runs after Heal until every LWG has converged and delivered a
// final round of multicasts in its final view at every member.
func (s *LWGSim) Quiesce(maxSteps int) bool {
	s.final = map[lwg.ID]*lwgFinal{}
	for range maxSteps {
		if s.stats.Steps%50 == 0 && s.quiet() {
			s.stats.Converged = true
			// Settle: let control messages in flight arrive.
			for range s.opts.SettleSteps {
				s.Step()
			}
			// Traffic that began late may still be on its way: with an
			// HWG per LWG, the lazy leave of a carrier a switch emptied
			// unregisters it in the directory IdleTicks after the
			// switch, as the creator of a carrier it never started does. Go
			// on while a message sent in a final view is not delivered
			// everywhere yet or the directory does not match the nodes,
			// for up to maxSteps more steps; what never settles stays a
			// violation.
			for extra := 0; extra < maxSteps && (len(checkLiveness(s.liveTrace())) > 0 || len(s.stateViolations()) > 0); extra += settleCheckSteps {
				for range settleCheckSteps {
					s.Step()
				}
			}
			return true
		}
		if !s.Step() {
			return false
		}
	}
	return false
}

// settleCheckSteps is how often Quiesce checks, after settling, whether
// messages are still on their way.
const settleCheckSteps = 500

// liveTrace is the part of the trace the liveness checker applies to:
// the directory and the LWGs (see Violations).
func (s *LWGSim) liveTrace() Trace {
	var live Trace
	for _, e := range s.trace {
		if e.Seen {
			continue // a copy (LWGOptions.Async)
		}
		if e.Group == "" || e.Group == string(lwgDir) || strings.HasPrefix(e.Group, "l/") {
			live = append(live, e)
		}
	}
	return live
}

func (s *LWGSim) quiet() bool {
	done := true
	for _, l := range s.ids {
		v, ok := s.lwgConverged(l)
		if !ok {
			done = false
			continue
		}
		f := s.final[l]
		if f == nil || f.view != v {
			f = &lwgFinal{view: v, sent: map[hwg.NodeID]string{}, got: map[hwg.NodeID]map[string]bool{}}
			s.final[l] = f
		}
		for _, nid := range s.assign[l] {
			if _, ok := f.sent[nid]; ok {
				continue
			}
			s.pay++
			p := fmt.Sprintf("%s:final%d", l, s.pay)
			n := s.node(nid)
			s.must(n.core.Multicast(l, []byte(p)))
			f.sent[nid] = p
			s.drain(n)
		}
		for _, nid := range s.assign[l] {
			for _, p := range f.sent {
				if !f.got[nid][p] {
					done = false
				}
			}
		}
	}
	return done
}

// Violations runs the checkers: all of them on the directory and the LWGs,
// and the safety ones on carriers (a node leaves a carrier it no longer
// needs, or is excluded from one and has no reason to come back, so the
// liveness checker's "every node that installed it" does not apply).
func (s *LWGSim) Violations() []Violation {
	out := slices.Clone(s.extra)
	live := s.liveTrace()
	for _, c := range Checkers() {
		if c.Name == nameLiveness {
			out = append(out, c.Check(live)...)
		} else {
			out = append(out, c.Check(s.trace)...)
		}
	}
	for _, n := range s.nodes {
		if n.alive {
			s.addCoreStats(n.core.Stats())
		}
	}
	if s.stats.Converged {
		out = append(out, s.stateViolations()...)
	}
	if s.stats.Stale > 0 || s.stats.Malformed > 0 {
		out = append(out, Violation{Checker: "lwg-stale-data", Detail: fmt.Sprintf("%d data messages of another view or sender, %d malformed", s.stats.Stale, s.stats.Malformed)})
	}
	return out
}

// stateViolations checks the live nodes' directories and carrier tables
// against what the nodes hold (checkDirRegs, checkDirBindings,
// checkTables). It applies once the LWGs have converged.
func (s *LWGSim) stateViolations() []Violation {
	var obs []lwg.Observation
	for _, n := range s.nodes {
		if n.alive {
			obs = append(obs, n.core.Observe())
		}
	}
	return slices.Concat(checkDirRegs(obs), checkDirBindings(obs), checkTables(obs))
}

// LWGResult is the outcome of RunLWG.
type LWGResult struct {
	Trace      Trace
	Violations []Violation
	Stats      LWGStats
}

// RunLWG performs one seeded LWG simulation: Steps steps of multicasts,
// switches and faults, then Heal, the quiescent phase and every checker.
func RunLWG(opts LWGOptions) LWGResult { return runLWG(NewLWGSim(opts)) }

// scheduledStep makes the switches due at step and, with the fault rate's
// chance, a fault, then takes one scheduler step. It reports whether the
// simulator can go on. Every layer's run loop uses it, so a seed draws
// the same random numbers whatever layer adds its own workload first.
func (s *LWGSim) scheduledStep(step int) bool {
	for len(s.switchAt) > 0 && s.switchAt[0] <= step {
		s.switchAt = s.switchAt[1:]
		s.Switch()
	}
	if s.opts.Faults != FaultNone && s.rng.Float64() < s.opts.FaultRate {
		s.injectFault()
	}
	return s.Step()
}

// runLWG is RunLWG on a simulator already made (perhaps with a layer).
func runLWG(s *LWGSim) LWGResult {
	opts := s.opts
	for step := range opts.Steps {
		if s.rng.Float64() < opts.SendRate {
			s.Multicast()
		}
		if !s.scheduledStep(step) {
			break
		}
	}
	s.Heal()
	if !s.Quiesce(opts.QuiescentSteps) {
		if s.primaryLost() {
			// A vote counted after its voter crashed cost an HWG its
			// primary component (see Stats.PrimaryLost): liveness is not
			// owed, safety is.
			s.stats.PrimaryLost = true
			return LWGResult{Trace: s.trace, Violations: safetyOnly(s.Violations()), Stats: s.stats}
		}
		s.violation(nameLiveness, "the LWGs did not converge after the heal:\n"+s.Dump())
	}
	return LWGResult{Trace: s.trace, Violations: s.Violations(), Stats: s.stats}
}

// primaryLost reports whether some HWG's highest installed view has fewer
// live members (same incarnation) than a majority.
func (s *LWGSim) primaryLost() bool {
	for _, g := range sortedKeys(s.top) {
		v := s.top[g]
		live := 0
		for _, m := range v.Members {
			if n := s.node(m.Node); n.alive && n.inc == m.Inc {
				live++
			}
		}
		if live < v.Quorum() {
			// Unless everyone left it on purpose since: a carrier may end.
			for _, n := range s.nodes {
				if grp := n.groups[g]; n.alive && grp != nil && grp.Info().Status != hwg.StatusIdle {
					return true
				}
			}
		}
	}
	return false
}

// Dump describes every node's LWG views, for debugging a failed run.
func (s *LWGSim) Dump() string {
	var b strings.Builder
	fmt.Fprintf(&b, "virtual time %d, step %d\n", s.now, s.stats.Steps)
	for _, n := range s.nodes {
		fmt.Fprintf(&b, "  node %v alive=%v %s groups:", n.self(), n.alive, n.core.Debug())
		for _, g := range sortedKeys(n.groups) {
			in := n.groups[g].Info()
			fmt.Fprintf(&b, " %s=%v/%v", g, in.Status, in.View)
		}
		b.WriteString("\n")
		for _, l := range s.ids {
			if !slices.Contains(s.assign[l], n.id) {
				continue
			}
			v, h, ok := n.core.View(l)
			bound, _ := n.core.Lookup(l)
			fmt.Fprintf(&b, "    %s: ok=%v %v on %s (dir %s)\n", l, ok, v, h, bound)
		}
	}
	return b.String()
}
