package proptest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/lwgkit/lwgkit/hwg"
)

// SimGroup is the id of the heavy-weight group the simulator runs.
const SimGroup hwg.GroupID = "h/1"

// tickUnits is the virtual time between two ticks of a node. Message delays
// are drawn in the same units, so a tick is a few network hops.
const tickUnits = 10

// Options configures a simulation. Zero fields take the defaults shown.
type Options struct {
	Seed   uint64 // all randomness derives from it
	Nodes  int    // default 5
	Steps  int    // scheduler steps with faults; default 2000
	Faults Faults // which faults to inject
	// QuiescentSteps bounds the phase after the heal in which the cluster
	// must converge and deliver. Default 200,000.
	QuiescentSteps int
	SendRate       float64 // chance per step that a member multicasts; default 0.1
	FaultRate      float64 // chance per step of a fault; default 0.01
	// ManualBlockOK makes every member answer Block after a random delay,
	// multicasting meanwhile, instead of at once.
	ManualBlockOK bool
	// Group tunes every member's hwg.Config (Group and Self are set by the
	// simulator). Detector tunes the failure detectors.
	Group    hwg.Config
	Detector hwg.DetectorConfig
}

func (o *Options) defaults() {
	if o.Nodes <= 0 {
		o.Nodes = 5
	}
	if o.Steps <= 0 {
		o.Steps = 2000
	}
	if o.QuiescentSteps <= 0 {
		o.QuiescentSteps = 200_000
	}
	if o.SendRate == 0 {
		o.SendRate = 0.1
	}
	if o.FaultRate == 0 {
		o.FaultRate = 0.01
	}
	if o.Detector.SuspectTicks == 0 {
		o.Detector.SuspectTicks = 8
	}
}

// Stats counts what a simulation did.
type Stats struct {
	Steps      int
	Installs   int
	Sent       int
	Delivered  int
	Crashes    int
	Restarts   int
	Partitions int
	Dropped    int
	Duplicated int
	Joins      int
	Leaves     int
	// Converged reports that the quiescent phase reached one view with
	// every node and delivered a final round in it.
	Converged bool
	// PrimaryLost reports that the highest view ever installed had lost a
	// majority of its members (same incarnation) by the end: no
	// primary-component protocol may continue then. It happens when a
	// member's vote is counted after it crashed (its reply was in flight),
	// which the fault planner cannot foresee. Liveness is not owed then.
	PrimaryLost bool
}

// Faults returns the number of faults injected.
func (s Stats) Faults() int {
	return s.Crashes + s.Partitions + s.Dropped + s.Duplicated + s.Joins + s.Leaves
}

// Result is the outcome of Run.
type Result struct {
	Trace      Trace
	Violations []Violation
	Stats      Stats
}

type simNode struct {
	id    hwg.NodeID
	inc   uint64
	alive bool
	g     *hwg.Group
	det   *hwg.Detector
	// member is false after a voluntary leave, until the node joins again.
	member bool
	// epoch counts membership changes (installs, exclusions) and rides on
	// heartbeats; probes tracks what this node saw of others', as the
	// runtime does.
	epoch  uint64
	probes probes
}

func (n *simNode) self() hwg.Process { return hwg.Process{Node: n.id, Inc: n.inc} }

// Sim is a deterministic cluster of N nodes running the real hwg cores in one
// goroutine over a simulated network with virtual time. Use Run for a whole
// seeded run, or drive a Sim step by step (as the rapid tests do).
type Sim struct {
	opts   Options
	rng    *rand.Rand
	net    network
	now    uint64
	nodes  []*simNode // index id-1
	trace  Trace
	stats  Stats
	healed bool

	links links

	payloads map[string]string // msg id → payload sent
	nextPay  uint64
	extra    []Violation // found by the simulator itself, not the trace

	top hwg.View // highest view installed by anyone

	// final round of the quiescent phase
	finalView hwg.ViewID
	finalIDs  []string
	finalSent map[hwg.NodeID]bool
	finalGot  map[hwg.NodeID]map[string]bool
}

// NewSim builds a cluster: all nodes bootstrap view 1, or with FaultJoin
// only the first three do and the others join.
func NewSim(opts Options) *Sim {
	opts.defaults()
	s := &Sim{
		opts:     opts,
		rng:      rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		net:      network{cut: map[[2]hwg.NodeID]bool{}},
		payloads: map[string]string{},
	}
	if opts.Faults.Has(FaultDrop) {
		s.links.drop = 0.05
	}
	if opts.Faults.Has(FaultDup) {
		s.links.dup = 0.03
	}
	s.links.reorder = opts.Faults.Has(FaultReorder)
	boot := opts.Nodes
	if opts.Faults.Has(FaultJoin) {
		boot = min(3, opts.Nodes)
	}
	var members []hwg.Process
	for i := 1; i <= opts.Nodes; i++ {
		n := &simNode{id: hwg.NodeID(i), inc: 1}
		s.nodes = append(s.nodes, n)
		if i <= boot {
			members = append(members, n.self())
		}
	}
	for i, n := range s.nodes {
		s.start(n)
		if i < boot {
			s.must(n.g.Bootstrap(members))
		} else {
			s.must(n.g.Join(s.contacts(n)))
		}
		s.drain(n)
	}
	return s
}

func (s *Sim) must(err error) {
	if err != nil {
		panic(fmt.Sprintf("proptest: simulator misuse: %v", err))
	}
}

// start brings up node n at its current incarnation with fresh state.
func (s *Sim) start(n *simNode) {
	cfg := s.opts.Group
	cfg.Group, cfg.Self = SimGroup, n.self()
	cfg.ManualBlockOK = s.opts.ManualBlockOK
	g, err := hwg.New(cfg)
	s.must(err)
	n.g, n.alive, n.member = g, true, true
	n.det = hwg.NewDetector(n.self(), s.opts.Detector)
	n.probes = newProbes()
	for _, o := range s.nodes {
		n.det.Watch(o.id)
	}
	// Phases differ so nodes do not tick in lockstep.
	s.net.schedule(&item{at: s.now + 1 + s.rng.Uint64N(tickUnits), to: n.id, inc: n.inc, tick: true})
}

func (s *Sim) contacts(n *simNode) []hwg.NodeID {
	var out []hwg.NodeID
	for _, o := range s.nodes {
		if o != n {
			out = append(out, o.id)
		}
	}
	return out
}

func (s *Sim) node(id hwg.NodeID) *simNode {
	if id == 0 || int(id) > len(s.nodes) {
		return nil
	}
	return s.nodes[id-1]
}

// Step runs the next scheduled item (a message arrival or a tick). It
// reports false when nothing is scheduled.
func (s *Sim) Step() bool {
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
		s.heartbeat(n, it.from, it.epoch)
	case it.msg.Type == 0:
		// a delayed BlockOK from the application
		if n.inc == it.inc {
			n.g.BlockOK(it.msg.View)
			s.drain(n)
		}
	default:
		n.det.Heard(it.msg.From)
		if err := n.g.Step(it.msg); err != nil && !errors.Is(err, hwg.ErrStaleIncarnation) {
			s.violation("protocol-error", fmt.Sprintf("node %v rejected %v from %v: %v", n.self(), it.msg.Type, it.msg.From, err))
		}
		s.drain(n)
	}
	return true
}

// heartbeat probes peer in every group when its membership epoch changed
// recently: a member stuck in an old view learns that the group moved on.
func (s *Sim) heartbeat(n *simNode, from hwg.Process, epoch uint64) {
	if n.probes.heard(from.Node, epoch) {
		n.g.Probe(from.Node)
		s.drain(n)
	}
}

func (s *Sim) tick(n *simNode) {
	for _, to := range n.det.Tick() {
		s.sendRaw(n.id, to, &item{hb: true, from: n.self(), epoch: n.epoch})
	}
	for _, p := range n.det.Suspected() {
		n.g.Suspect(p)
	}
	n.g.Tick()
	s.drain(n)
}

// drain carries out what n's group asks for and records it in the trace.
func (s *Sim) drain(n *simNode) {
	rd := n.g.Ready()
	for _, m := range rd.Messages {
		s.sendRaw(n.id, m.To.Node, &item{msg: m})
	}
	for _, e := range rd.Events {
		s.record(n, e)
	}
}

func (s *Sim) sendRaw(from, to hwg.NodeID, it *item) {
	if s.node(to) == nil {
		return
	}
	s.links.healed = s.healed
	s.net.send(s.rng, &s.links, s.now, from, to, it)
	s.stats.Dropped, s.stats.Duplicated = s.links.dropped, s.links.duplicated
}

func (s *Sim) record(n *simNode, e hwg.Event) {
	ev, traced := FromHWG(n.self(), e, uint64(s.stats.Steps))
	if traced {
		s.trace.Append(ev)
	}
	switch e.Type {
	case hwg.EventInstall:
		n.epoch++
		if e.View.ID > s.top.ID {
			s.top = e.View.Clone()
		}
		s.stats.Installs++
	case hwg.EventSend:
		s.stats.Sent++
		s.payloads[ev.Msg] = string(e.Payload)
		if e.View.ID == s.finalView && len(e.Payload) > 5 && string(e.Payload[:5]) == "final" {
			s.finalIDs = append(s.finalIDs, ev.Msg)
		}
	case hwg.EventDeliver:
		s.stats.Delivered++
		if sent, ok := s.payloads[ev.Msg]; ok && sent != string(e.Payload) {
			s.violation("payload-integrity", fmt.Sprintf("node %v delivered %s with payload %q, sent %q", n.self(), ev.Msg, e.Payload, sent))
		}
		if s.finalGot != nil && e.View.ID == s.finalView {
			if s.finalGot[n.id] == nil {
				s.finalGot[n.id] = map[string]bool{}
			}
			s.finalGot[n.id][ev.Msg] = true
		}
	case hwg.EventBlock:
		if s.opts.ManualBlockOK {
			// The application answers Hold.up a little later, and may
			// multicast meanwhile.
			s.net.schedule(&item{at: s.now + 1 + s.rng.Uint64N(2*tickUnits), to: n.id, inc: n.inc, msg: hwg.Message{View: e.View.ID}})
		}
	case hwg.EventLeft:
		s.stats.Leaves++
		n.member = false
		if s.healed {
			// After the heal every node belongs in the group.
			s.Join(n.id)
		}
	case hwg.EventExcluded:
		n.epoch++
		// Excluded members rejoin as new members, with no state from before
		// (unless the group already added them again).
		if n.g.Info().Status == hwg.StatusIdle {
			s.must(n.g.Join(s.contacts(n)))
			s.drain(n)
		}
	}
}

func (s *Sim) violation(checker, detail string) {
	if len(s.extra) < 20 {
		s.extra = append(s.extra, Violation{Checker: checker, Group: string(SimGroup), T: uint64(s.stats.Steps), Detail: detail})
	}
}

// Multicast makes node id multicast a fresh payload, if it is a member.
func (s *Sim) Multicast(id hwg.NodeID) bool {
	n := s.node(id)
	if n == nil || !n.alive {
		return false
	}
	s.nextPay++
	if n.g.Multicast(fmt.Appendf(nil, "m%d", s.nextPay)) != nil {
		return false
	}
	s.drain(n)
	return true
}

// Crash kills node id (its state is lost) if that cannot cost the group its
// primary component: every view it has or may install keeps a live
// majority. It reports whether it crashed the node.
func (s *Sim) Crash(id hwg.NodeID) bool {
	n := s.node(id)
	if n == nil || !n.alive || !s.crashSafe(n) {
		return false
	}
	if !n.member && n.g.Info().Status != hwg.StatusIdle {
		// A leaving member's leave event is what lets the new view keep
		// fewer than a majority of the old; a crash would hide it.
		return false
	}
	n.alive = false
	s.stats.Crashes++
	s.trace.Append(Event{T: uint64(s.stats.Steps), Node: uint64(n.id), Inc: n.inc, Ev: EvCrash})
	return true
}

func (s *Sim) crashSafe(victim *simNode) bool {
	// Every view a live node is in, or may install next, keeps a live
	// majority.
	var views []hwg.View
	for _, n := range s.nodes {
		if n.alive {
			views = append(views, viewsAtStake(n.g.Info())...)
		}
	}
	return keepsQuorum(views, func(m hwg.Process) bool {
		n := s.node(m.Node)
		return n != victim && n.alive && n.inc == m.Inc
	})
}

// Restart brings a crashed node back as a new incarnation that joins.
func (s *Sim) Restart(id hwg.NodeID) bool {
	n := s.node(id)
	if n == nil || n.alive {
		return false
	}
	n.inc++
	s.stats.Restarts++
	s.start(n)
	s.must(n.g.Join(s.contacts(n)))
	s.drain(n)
	return true
}

// Leave makes member id leave voluntarily, while at least two other
// members stay.
func (s *Sim) Leave(id hwg.NodeID) bool {
	n := s.node(id)
	if n == nil || !n.alive || !n.member {
		return false
	}
	in := n.g.Info()
	if in.Status != hwg.StatusNormal {
		return false
	}
	// Keep at least two members that are not leaving: a group that every
	// member leaves is dissolved, and nobody could join it after the heal.
	staying := 0
	for _, m := range in.View.Members {
		if o := s.node(m.Node); o.member && o.inc == m.Inc && o != n {
			staying++
		}
	}
	if staying < 2 {
		return false
	}
	if n.g.Leave() != nil {
		return false
	}
	n.member = false // until it is asked to join again
	s.drain(n)
	return true
}

// Join makes a node that left ask to join again.
func (s *Sim) Join(id hwg.NodeID) bool {
	n := s.node(id)
	if n == nil || !n.alive || n.g.Info().Status != hwg.StatusIdle {
		return false
	}
	s.must(n.g.Join(s.contacts(n)))
	n.member = true
	s.stats.Joins++
	s.drain(n)
	return true
}

// Partition cuts every link from side to the rest, and back unless oneWay.
// It replaces any earlier partition.
func (s *Sim) Partition(side []hwg.NodeID, oneWay bool) {
	in := map[hwg.NodeID]bool{}
	for _, id := range side {
		in[id] = true
	}
	s.net.partition(s.ids(), in, oneWay)
	s.stats.Partitions++
}

func (s *Sim) ids() []hwg.NodeID {
	var out []hwg.NodeID
	for _, n := range s.nodes {
		out = append(out, n.id)
	}
	return out
}

// HealPartition reconnects every link.
func (s *Sim) HealPartition() { clear(s.net.cut) }

// Heal ends the fault phase: links reconnect, loss, duplication and
// reordering stop, crashed nodes restart and nodes that left rejoin. The
// trace records a heal event; no fault follows it.
func (s *Sim) Heal() {
	s.healed = true
	clear(s.net.cut)
	s.trace.Append(Event{T: uint64(s.stats.Steps), Ev: EvHeal})
	for _, n := range s.nodes {
		if !n.alive {
			s.Restart(n.id)
		} else if n.g.Info().Status == hwg.StatusIdle {
			s.Join(n.id)
		}
	}
}

// converged reports whether every node is a member of one common view that
// holds them all.
func (s *Sim) converged() (hwg.ViewID, bool) {
	var v hwg.View
	for i, n := range s.nodes {
		in := n.g.Info()
		if !n.alive || in.Status != hwg.StatusNormal {
			return 0, false
		}
		if i == 0 {
			v = in.View
		}
		if in.View.ID != v.ID || !in.View.Contains(n.self()) || len(in.View.Members) != len(s.nodes) {
			return 0, false
		}
	}
	return v.ID, true
}

// Quiesce runs after Heal until the cluster has converged on one view and
// every node delivered a final round of multicasts sent in it, or until
// maxSteps. It reports whether it got there; the liveness checker reads the
// same from the trace.
func (s *Sim) Quiesce(maxSteps int) bool {
	for range maxSteps {
		if v, ok := s.converged(); ok {
			switch {
			case v != s.finalView || s.finalGot == nil:
				// A first (or, after another view change, a new) final
				// round in this view.
				s.finalView, s.finalIDs, s.finalGot = v, nil, map[hwg.NodeID]map[string]bool{}
				s.finalSent = map[hwg.NodeID]bool{}
				s.sendFinal()
			case len(s.finalSent) < len(s.nodes):
				s.sendFinal() // a member was busy (flow control): try again
			case s.finalDone():
				s.stats.Converged = true
				return true
			}
		}
		if !s.Step() {
			return false
		}
	}
	return false
}

// sendFinal makes every node that has not yet done so multicast its
// final-round message; a busy group (ErrBusy) is tried again later.
func (s *Sim) sendFinal() {
	for _, n := range s.nodes {
		if s.finalSent[n.id] {
			continue
		}
		err := n.g.Multicast(fmt.Appendf(nil, "final%d", s.nextPay+1))
		if errors.Is(err, hwg.ErrBusy) {
			continue
		}
		s.must(err)
		s.nextPay++
		s.finalSent[n.id] = true
		s.drain(n)
	}
}

func (s *Sim) finalDone() bool {
	if len(s.finalIDs) < len(s.nodes) {
		return false
	}
	for _, n := range s.nodes {
		for _, id := range s.finalIDs {
			if !s.finalGot[n.id][id] {
				return false
			}
		}
	}
	return true
}

// Trace returns the trace so far (shared, not copied).
func (s *Sim) Trace() Trace { return s.trace }

// Stats returns the counters so far.
func (s *Sim) Stats() Stats { return s.stats }

// Violations runs every checker on the trace so far, plus the simulator's
// own checks (payload integrity, protocol errors).
func (s *Sim) Violations() []Violation {
	return append(slices.Clone(s.extra), CheckAll(s.trace)...)
}

// Run performs one seeded simulation: Steps scheduler steps with random
// workload and faults, then Heal and the quiescent phase, then every
// checker. The same Options give the same Result, trace byte for byte.
func Run(opts Options) Result {
	s := NewSim(opts)
	opts = s.opts
	for range opts.Steps {
		if s.rng.Float64() < opts.SendRate {
			s.Multicast(hwg.NodeID(1 + s.rng.IntN(opts.Nodes)))
		}
		if opts.Faults != FaultNone && s.rng.Float64() < opts.FaultRate {
			s.injectFault()
		}
		if !s.Step() {
			break
		}
	}
	return Result{Trace: s.trace, Violations: s.finish(), Stats: s.stats}
}

// injectFault picks one enabled fault at random and applies it when it is
// allowed now.
func (s *Sim) injectFault() {
	var kinds []Faults
	for _, f := range []Faults{FaultCrash, FaultPartition, FaultJoin, FaultLeave} {
		if s.opts.Faults.Has(f) {
			kinds = append(kinds, f)
		}
	}
	if len(kinds) == 0 {
		return
	}
	pick := func() hwg.NodeID { return hwg.NodeID(1 + s.rng.IntN(len(s.nodes))) }
	switch kinds[s.rng.IntN(len(kinds))] {
	case FaultCrash:
		// Restart someone already down, or crash someone.
		for _, n := range s.nodes {
			if !n.alive && s.rng.IntN(2) == 0 {
				s.Restart(n.id)
				return
			}
		}
		s.Crash(pick())
	case FaultPartition:
		if len(s.net.cut) > 0 && s.rng.IntN(2) == 0 {
			s.HealPartition()
			return
		}
		var side []hwg.NodeID
		for _, n := range s.nodes {
			if s.rng.IntN(3) == 0 {
				side = append(side, n.id)
			}
		}
		if len(side) > 0 && len(side) < len(s.nodes) {
			s.Partition(side, s.rng.IntN(3) == 0)
		}
	case FaultJoin:
		for _, n := range s.nodes {
			if n.alive && !n.member && s.Join(n.id) {
				return
			}
		}
	case FaultLeave:
		s.Leave(pick())
	}
}

// finish heals, quiesces and checks. Liveness violations are dropped only
// when the group provably lost its primary component (Stats.PrimaryLost).
func (s *Sim) finish() []Violation {
	s.Heal()
	if !s.Quiesce(s.opts.QuiescentSteps) && s.primaryLost() {
		s.stats.PrimaryLost = true
		return safetyOnly(s.Violations())
	}
	return s.Violations()
}

// primaryLost reports whether the highest installed or chosen view has
// fewer live members (same incarnation) than a majority. Chosen views are
// known only from live processes, so a loss can go unrecognised (and then
// fail liveness), never the other way round.
func (s *Sim) primaryLost() bool {
	top := s.top
	acceptors := map[string]int{} // accepted next view → live acceptors
	for _, n := range s.nodes {
		if !n.alive {
			continue
		}
		in := n.g.Info()
		// A view that was chosen but that nobody installed counts too:
		// one a process applied, or one a majority of its view accepted.
		if in.Decided.ID > top.ID {
			top = in.Decided
		}
		if a := in.Accepted; a.ID > top.ID {
			key := a.String()
			if acceptors[key]++; acceptors[key] >= in.View.Quorum() {
				top = a
			}
		}
	}
	live := 0
	for _, m := range top.Members {
		if n := s.node(m.Node); n.alive && n.inc == m.Inc {
			live++
		}
	}
	return live < top.Quorum()
}

// Dump describes every node's state, for debugging a failed run.
func (s *Sim) Dump() string {
	var b []byte
	b = fmt.Appendf(b, "virtual time %d, step %d, healed %v\n", s.now, s.stats.Steps, s.healed)
	for _, n := range s.nodes {
		in := n.g.Info()
		b = fmt.Appendf(b, "  node %v alive=%v member=%v %v %v held=%d commit=%d delivered=%d candidates=%v suspected=%v\n",
			n.self(), n.alive, n.member, in.Status, in.View, in.Held, in.Commit, in.Delivered, in.Candidates, n.det.Suspected())
	}
	return string(b)
}
