package proptest

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/lwgkit/lwgkit/compose"
	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// ComposeOptions configures a simulation of group composition (package
// compose) on the LWG simulation: every node runs a compose.Router over
// its lwg.Core, the LWGs form a declared topology joined by routers
// (members of two groups), and random nodes send routed messages to one
// group or to every group, under the LWG simulation's faults (crashes of
// routers between delivery and forwarding included: a crash happens
// between any two steps). Zero fields take the defaults shown.
type ComposeOptions struct {
	// LWG is the cluster's faults, seed and length. Nodes, LWGs and Size
	// come from Topology; SendRate is not used.
	LWG LWGOptions
	// Topology names the groups, their members and links:
	//   - "chain" (default): a={1,2,3} – b={2,3,4,5,6} – c={5,6,7};
	//   - "star": hub h={1..6} with leaves x={1,2,7}, y={3,4,8}, z={5,6,9};
	//   - "cycle": a={1,2,3,6}, b={2,3,4,5}, c={4,5,6,1}, linked a–b–c–a;
	//   - "flat16", "star4x4": the composition experiment (see
	//     ComposeTopology).
	Topology string
	// Sends is the chance per step of a routed send; default 0.2.
	Sends float64
	// AllShare is the share of sends addressed to every group; the rest go
	// to one group chosen at random. Default 0.3.
	AllShare float64
	// SingleSenders lets only nodes that belong to one group send: the
	// condition of the causal row (routers forward, never originate).
	SingleSenders bool
	// SettleSteps bounds the final round after the LWGs converged: every
	// node sends to every group, and every member of every group must
	// deliver each of those, with every link queue empty. Default 300,000.
	SettleSteps int
	// RouterCrashes is the chance, each time a router is about to
	// forward copies during the fault phase, that it crashes instead: the
	// copies are never multicast (a crash between delivery in the source
	// group and forwarding), if the fault planner allows the crash.
	RouterCrashes float64
	// Router tunes every node's Router (Self and Topology are set).
	Router compose.Config
}

func (o *ComposeOptions) defaults() {
	if o.Topology == "" {
		o.Topology = "chain"
	}
	if o.Sends == 0 {
		o.Sends = 0.2
	}
	if o.AllShare == 0 {
		o.AllShare = 0.3
	}
	if o.SettleSteps <= 0 {
		o.SettleSteps = 300_000
	}
}

// ComposeTopology returns one of the simulator's named topologies: its
// links and the members (node ids) of each group.
func ComposeTopology(name string) ([]compose.Link, map[lwg.ID][]hwg.NodeID, error) {
	ids := func(ns ...int) []hwg.NodeID {
		var out []hwg.NodeID
		for _, n := range ns {
			out = append(out, hwg.NodeID(n))
		}
		return out
	}
	seq := func(from, to int) []int {
		var out []int
		for i := from; i <= to; i++ {
			out = append(out, i)
		}
		return out
	}
	switch name {
	case "chain":
		return []compose.Link{{A: "l/a", B: "l/b"}, {A: "l/b", B: "l/c"}},
			map[lwg.ID][]hwg.NodeID{"l/a": ids(1, 2, 3), "l/b": ids(2, 3, 4, 5, 6), "l/c": ids(5, 6, 7)}, nil
	case "star":
		return []compose.Link{{A: "l/h", B: "l/x"}, {A: "l/h", B: "l/y"}, {A: "l/h", B: "l/z"}},
			map[lwg.ID][]hwg.NodeID{"l/h": ids(1, 2, 3, 4, 5, 6), "l/x": ids(1, 2, 7), "l/y": ids(3, 4, 8), "l/z": ids(5, 6, 9)}, nil
	case "cycle":
		return []compose.Link{{A: "l/a", B: "l/b"}, {A: "l/b", B: "l/c"}, {A: "l/c", B: "l/a"}},
			map[lwg.ID][]hwg.NodeID{"l/a": ids(1, 2, 3, 6), "l/b": ids(2, 3, 4, 5), "l/c": ids(4, 5, 6, 1)}, nil
	case "flat16":
		return nil, map[lwg.ID][]hwg.NodeID{"l/all": ids(seq(1, 16)...)}, nil
	case "star4x4":
		// Four groups of four application nodes; the hub group g0 holds
		// nodes 1-4 and the routers 17, 18, 19, each also in one leaf.
		return []compose.Link{{A: "l/g0", B: "l/g1"}, {A: "l/g0", B: "l/g2"}, {A: "l/g0", B: "l/g3"}},
			map[lwg.ID][]hwg.NodeID{
				"l/g0": ids(1, 2, 3, 4, 17, 18, 19), "l/g1": ids(5, 6, 7, 8, 17),
				"l/g2": ids(9, 10, 11, 12, 18), "l/g3": ids(13, 14, 15, 16, 19),
			}, nil
	}
	return nil, nil, fmt.Errorf("proptest: unknown topology %q", name)
}

// ComposeStats counts what a composition simulation did.
type ComposeStats struct {
	LWG LWGStats
	// Sends made, routed deliveries, and the Routers' counters summed over
	// the incarnations that were alive at the end.
	Sent, Delivered                                  int
	Forwarded, Duplicates, Gaps, Acks, States, Stale uint64
	// RouterChanges counts changes of a link's router seen by its members.
	RouterChanges int
	// RouterCrashes counts routers crashed between delivery and
	// forwarding (ComposeOptions.RouterCrashes).
	RouterCrashes int
	// Latency sums, over routed deliveries, the virtual time from send to
	// delivery (in simulator time units; a tick is 10).
	Latency uint64
	// FirstSend and LastDelivery bound the workload in virtual time.
	FirstSend, LastDelivery uint64
	Settled                 bool
	// StateLost: some group's routing state began afresh in a new life
	// of its LWG (compose.Stats.Restarts: every member of its carrier
	// had gone). What it owed is lost, so only integrity and per-group
	// total order are checked, as only safety is after a lost primary
	// component.
	StateLost bool
	Restarts  uint64
	// Claims, Seeded and Blocked sum the Routers' claim rounds: groups
	// left without any holder in their view that continued from a kept
	// state.
	Claims, Seeded, Blocked uint64
}

// RouteEvent is one routed send or delivery of a composition simulation.
type RouteEvent struct {
	T     uint64 // step
	Node  uint64
	Inc   uint64
	Ev    string // EvSend or EvDeliver
	Group string // deliver: the destination group delivering; send: ""
	View  uint64 // deliver: the group's view
	Msg   string // origin/seq: the end-to-end id
	// Origin ("node.inc@src": a process sending through one group) and
	// Seq name the message end to end.
	Origin string
	Seq    uint64
	Dests  []string // nil: every group
	// Src is the group the origin sent through (on deliveries too).
	Src string
}

// ComposeResult is the outcome of RunCompose.
type ComposeResult struct {
	Trace      Trace        // the LWG-level trace (every LWG checker runs on it)
	Routes     []RouteEvent // routed sends and deliveries
	Violations []Violation
	Stats      ComposeStats
	// Ordered lists the messages ordered in their source group (delivered
	// there by at least one member), which must reach every destination.
	Ordered map[string]bool
	// Members is each group's member set (node ids), for the checkers.
	Members map[string][]uint64
}

type composeSim struct {
	opts    ComposeOptions
	s       *LWGSim
	topo    *compose.Topology
	members map[lwg.ID][]hwg.NodeID
	routers map[hwg.NodeID]*compose.Router
	routes  []RouteEvent
	ordered map[string]bool
	sentAt  map[string]uint64
	occ     map[composeOcc]int
	// routerOf is each member's last opinion of each link's router.
	routerOf map[composeLink]hwg.Process
	got      map[composeGot]bool
	replaced bool
	faulting bool
	// crashNext is a router to crash after the current step, and held the
	// forwards it never made.
	crashNext *lwgSimNode
	held      []compose.Send
	pay       int
	stats     ComposeStats
	extra     []Violation
	// bench, if set, follows a closed-loop workload (RunComposeBench).
	bench *composeBench
}

type composeOcc struct {
	self, sender hwg.Process
	send         bool
	group        lwg.ID
	sum          uint64
}

type composeGot struct {
	p   hwg.Process
	g   lwg.ID
	msg string
}

type composeLink struct {
	at   hwg.Process
	a, b lwg.ID
}

func newComposeSim(opts ComposeOptions) (*composeSim, error) {
	opts.defaults()
	links, members, err := ComposeTopology(opts.Topology)
	if err != nil {
		return nil, err
	}
	var groups []lwg.ID
	maxNode := 0
	for g, ms := range members {
		groups = append(groups, g)
		for _, m := range ms {
			maxNode = max(maxNode, int(m))
		}
	}
	topo, err := compose.NewTopology(groups, links)
	if err != nil {
		return nil, err
	}
	c := &composeSim{opts: opts, topo: topo, members: members, routers: map[hwg.NodeID]*compose.Router{},
		ordered: map[string]bool{}, sentAt: map[string]uint64{}, occ: map[composeOcc]int{}, routerOf: map[composeLink]hwg.Process{}, got: map[composeGot]bool{}}
	lo := opts.LWG
	lo.Nodes, lo.LWGs, lo.Size = maxNode, 1, 1
	newLWGSim(lo, c) // calls attach
	return c, nil
}

func (c *composeSim) attach(s *LWGSim) { c.s = s }

func (c *composeSim) started(n *lwgSimNode) {
	if !c.replaced {
		// The LWG simulation drew a random assignment; the topology
		// replaces it before any node joins.
		c.replaced = true
		s := c.s
		s.ids = c.topo.Groups()
		s.assign = map[lwg.ID][]hwg.NodeID{}
		for _, g := range s.ids {
			s.assign[g] = slices.Clone(c.members[g])
			slices.Sort(s.assign[g])
		}
	}
	cfg := c.opts.Router
	cfg.Self, cfg.Topology = n.self(), c.topo
	r, err := compose.NewRouter(cfg)
	c.s.must(err)
	c.routers[n.id] = r
}

func (c *composeSim) crashed(n *lwgSimNode) {
	c.addStats(c.routers[n.id])
	delete(c.routers, n.id)
}

func (c *composeSim) addStats(r *compose.Router) {
	if r == nil {
		return
	}
	st := r.Stats()
	c.stats.Forwarded += st.Forwarded
	c.stats.Duplicates += st.Duplicates
	c.stats.Gaps += st.Gaps
	c.stats.Acks += st.Acks
	c.stats.States += st.States
	c.stats.Stale += st.Stale
	c.stats.Restarts += st.Restarts
	c.stats.Claims += st.Claims
	c.stats.Seeded += st.Seeded
	c.stats.Blocked += st.Blocked
}

func (c *composeSim) ticked(n *lwgSimNode) {
	if r := c.routers[n.id]; r != nil {
		r.Tick()
		c.flush(n)
	}
}

func (c *composeSim) lwgEvent(n *lwgSimNode, e lwg.Event) {
	r := c.routers[n.id]
	if r == nil {
		return
	}
	if e.Type == lwg.EventDeliver && c.bench != nil {
		c.bench.load[n.id]++
	}
	if e.Type == lwg.EventDeliver && r.HasState(e.LWG) {
		// Ordered in the source group: applied to its routing state.
		if in, ok := compose.Describe(e.Payload); ok && in.Kind == "route" && in.Via == "" && in.Src == e.LWG {
			c.ordered[composeMsgID(in.Origin, in.Src, in.Seq)] = true
		}
	}
	r.LWGEvent(e)
	c.flush(n)
	if e.Type == lwg.EventInstall {
		for _, a := range c.topo.Groups() {
			for _, b := range c.topo.Neighbors(a) {
				if p, ok := r.RouterFor(a, b); ok {
					k := composeLink{n.self(), a, b}
					if old, had := c.routerOf[k]; had && old != p {
						c.stats.RouterChanges++
					}
					c.routerOf[k] = p
				}
			}
		}
	}
}

func (c *composeSim) direct(*lwgSimNode, hwg.Process, []byte) {}

// mayStop keeps the routing state of every group alive (a group whose
// every holder crashes loses its queued forwards, as a group whose every
// member crashes loses its messages; see docs/COMPOSITION.md): a node
// does not crash or leave a group if it is the last live node holding
// the group's current state, and, while no live node holds a current
// state, does not crash if no other live node kept a state as recent as
// its own (a node that left or was excluded keeps its state: leaving
// does not lose it).
func (c *composeSim) mayStop(n *lwgSimNode, l lwg.ID) bool {
	r := c.routers[n.id]
	if r == nil {
		return true
	}
	for _, g := range c.topo.Groups() {
		if l != "" && g != l {
			continue
		}
		at, cur, ok := r.Holding(g)
		if !ok || !cur && l != "" {
			continue
		}
		current, asRecent := 0, 0
		for _, o := range c.s.nodes {
			ro := c.routers[o.id]
			if o == n || !o.alive || ro == nil {
				continue
			}
			oat, ocur, ook := ro.Holding(g)
			switch {
			case ocur:
				current++
			case ook && !oat.Less(at):
				asRecent++
			}
		}
		if current == 0 && (cur || asRecent == 0) {
			return false
		}
	}
	return true
}

func (c *composeSim) msgID(n *lwgSimNode, e lwg.Event) string {
	h := fnv.New64a()
	h.Write(e.Payload)
	k := composeOcc{self: n.self(), sender: e.From, send: e.Type == lwg.EventSend, group: e.LWG, sum: h.Sum64()}
	if k.send {
		k.sender = n.self()
	}
	k.self = hwg.Process{} // the k-th send of a payload is every receiver's k-th delivery
	if !k.send {
		k.self = n.self()
	}
	c.occ[k]++
	return fmt.Sprintf("%s/%d.%d/%016x#%d", k.group, k.sender.Node, k.sender.Inc, k.sum, c.occ[k])
}

func composeMsgID(o hwg.Process, src lwg.ID, seq uint64) string {
	return fmt.Sprintf("%d.%d@%s/%d", o.Node, o.Inc, src, seq)
}

// flush carries out what n's Router asks: multicasts in its LWGs (lost,
// as in the runtime, if the endpoint is gone), deliveries to the trace.
func (c *composeSim) flush(n *lwgSimNode) {
	r := c.routers[n.id]
	rd := r.Ready()
	if c.faulting && c.crashNext == nil && c.opts.RouterCrashes > 0 && c.forwards(rd.Sends) &&
		c.s.rng.Float64() < c.opts.RouterCrashes && c.s.crashSafe(n) && c.mayStop(n, "") {
		c.crashNext, c.held = n, rd.Sends
		rd.Sends = nil
	}
	if c.crashNext == n {
		c.held = append(c.held, rd.Sends...)
		rd.Sends = nil
	}
	for _, snd := range rd.Sends {
		if err := n.core.Multicast(snd.Group, snd.Payload); err != nil && !errors.Is(err, lwg.ErrNotMember) {
			c.s.violation("compose-action", fmt.Sprintf("%v: multicast in %s: %v", n.self(), snd.Group, err))
		}
	}
	for _, d := range rd.Deliveries {
		if !d.Routed {
			continue
		}
		id := composeMsgID(d.Origin, d.Src, d.Seq)
		c.stats.Delivered++
		c.got[composeGot{n.self(), d.Group, id}] = true
		if c.bench != nil {
			c.bench.delivered(id)
		}
		if at, ok := c.sentAt[id]; ok && !d.Replayed {
			c.stats.Latency += c.s.now - at
			c.stats.LastDelivery = max(c.stats.LastDelivery, c.s.now)
		}
		c.routes = append(c.routes, RouteEvent{T: uint64(c.s.stats.Steps), Node: uint64(n.id), Inc: n.inc, Ev: EvDeliver,
			Group: string(d.Group), View: d.View, Msg: id, Origin: fmt.Sprintf("%d.%d@%s", d.Origin.Node, d.Origin.Inc, d.Src), Seq: d.Seq, Dests: composeDests(d.Dests), Src: string(d.Src)})
	}
}

func composeDests(ds []lwg.ID) []string {
	if ds == nil {
		return nil
	}
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d)
	}
	return out
}

func (c *composeSim) forwards(sends []compose.Send) bool {
	for _, snd := range sends {
		if in, ok := compose.Describe(snd.Payload); ok && in.Kind == "route" && in.Via != "" {
			return true
		}
	}
	return false
}

// afterStep crashes the router chosen during the step; if the planner
// refuses now, the router makes its forwards late instead.
func (c *composeSim) afterStep() {
	n := c.crashNext
	if n == nil {
		return
	}
	c.crashNext = nil
	held := c.held
	c.held = nil
	if c.s.Crash(n.id) {
		c.stats.RouterCrashes++
		return
	}
	for _, snd := range held {
		_ = n.core.Multicast(snd.Group, snd.Payload)
	}
	c.s.drain(n)
}

// send makes node n send one routed message: to every group, or to dst.
func (c *composeSim) send(n *lwgSimNode, dst lwg.ID, tag string) bool {
	r := c.routers[n.id]
	if r == nil || !n.alive {
		return false
	}
	c.pay++
	payload := fmt.Appendf(nil, "%s%d", tag, c.pay)
	var dests []lwg.ID
	if dst != "" {
		dests = []lwg.ID{dst}
	}
	src, _ := r.Through(dests)
	var seq uint64
	var err error
	if dst == "" {
		seq, err = r.SendAll(payload)
	} else {
		seq, err = r.SendTo(dst, payload)
	}
	if err != nil {
		if !errors.Is(err, compose.ErrNoLocalGroup) {
			c.s.violation("compose-action", fmt.Sprintf("%v: send to %q: %v", n.self(), dst, err))
		}
		return false
	}
	id := composeMsgID(n.self(), src, seq)
	ev := RouteEvent{T: uint64(c.s.stats.Steps), Node: uint64(n.id), Inc: n.inc, Ev: EvSend, Msg: id, Src: string(src),
		Origin: fmt.Sprintf("%d.%d@%s", n.id, n.inc, src), Seq: seq}
	if dst != "" {
		ev.Dests = []string{string(dst)}
	}
	c.routes = append(c.routes, ev)
	c.sentAt[id] = c.s.now
	if c.stats.Sent == 0 {
		c.stats.FirstSend = c.s.now
	}
	c.stats.Sent++
	c.flush(n)
	c.s.drain(n)
	return true
}

// RunCompose performs one seeded composition simulation: Steps steps of
// routed sends under the LWG simulation's faults, then the heal, the
// LWGs' quiescent phase, a final round (every node sends to every group;
// every member of every group must deliver all of it and every link queue
// must drain), and the checkers: every LWG checker on the LWG trace, and
// ComposeCheckers on the routed trace (the causal one only when the
// topology is a tree and only single-group nodes send).
func RunCompose(opts ComposeOptions) ComposeResult {
	c, err := newComposeSim(opts)
	if err != nil {
		return ComposeResult{Violations: []Violation{{Checker: "compose-config", Detail: err.Error()}}}
	}
	s := c.s
	lo := s.opts
	var senders []*lwgSimNode
	for _, n := range s.nodes {
		in := 0
		for _, ms := range c.members {
			if slices.Contains(ms, n.id) {
				in++
			}
		}
		if in > 0 && (!c.opts.SingleSenders || in == 1) {
			senders = append(senders, n)
		}
	}
	groups := c.topo.Groups()
	c.warmUp()
	c.faulting = lo.Faults != FaultNone
	for step := range lo.Steps {
		if s.rng.Float64() < c.opts.Sends && len(senders) > 0 {
			n := senders[s.rng.IntN(len(senders))]
			var dst lwg.ID
			if s.rng.Float64() >= c.opts.AllShare {
				dst = groups[s.rng.IntN(len(groups))]
			}
			c.send(n, dst, "m")
		}
		if !s.scheduledStep(step) {
			break
		}
		c.afterStep()
	}
	c.faulting = false
	c.afterStep()
	return c.finish()
}

// warmUp runs without workload or faults until every group has formed
// with all its members holding the routing state, so the fault phase
// hits a composition that routes (forming groups takes the LWG layer a
// while: every join is a flush).
func (c *composeSim) warmUp() {
	s := c.s
	for i := 0; i < 200_000; i++ {
		if i%50 == 0 {
			done := true
			for _, g := range c.topo.Groups() {
				if _, ok := s.lwgConverged(g); !ok {
					done = false
					break
				}
				for _, id := range c.members[g] {
					if r := c.routers[id]; r == nil || !r.HasState(g) {
						done = false
					}
				}
			}
			if done {
				return
			}
		}
		if !s.Step() {
			return
		}
	}
}

func (c *composeSim) finish() ComposeResult {
	s := c.s
	s.Heal()
	live := true
	if !s.Quiesce(s.opts.QuiescentSteps) {
		live = false
		if s.primaryLost() {
			s.stats.PrimaryLost = true
		} else {
			s.violation(nameLiveness, "the LWGs did not converge after the heal:\n"+s.Dump())
		}
	} else if !c.settle() {
		c.extra = append(c.extra, Violation{Checker: "compose-liveness", Detail: "after the heal the final round was not delivered everywhere, or link queues did not drain:\n" + c.dump()})
	} else {
		c.stats.Settled = true
	}
	for _, r := range c.routers {
		c.addStats(r)
	}
	c.stats.StateLost = c.stats.Restarts > 0
	res := c.result()
	var out []Violation
	out = append(out, s.Violations()...)
	out = append(out, c.extra...)
	causal := c.opts.SingleSenders && c.topo.IsTree()
	for _, ck := range ComposeCheckers() {
		switch {
		case ck.Name == nameComposeCausal && !causal, ck.Name == nameComposeReliable && !live:
			continue
		case c.stats.StateLost && ck.Name != nameComposeIntegrity && ck.Name != nameComposeTotal:
			// A group's routing began a new epoch: copies it owed are
			// lost, and a destination that restarted may take again
			// copies its old epoch delivered. Only integrity and the
			// per-group total order still hold.
			continue
		}
		out = append(out, ck.Check(res)...)
	}
	if c.stats.Gaps > 0 && !c.stats.StateLost {
		out = append(out, Violation{Checker: "compose-gap", Detail: fmt.Sprintf("%d copies arrived past a hole in their link's sequence", c.stats.Gaps)})
	}
	if !live {
		out = safetyOnly(out)
	}
	res.Violations = out
	return res
}

func (c *composeSim) result() ComposeResult {
	c.stats.LWG = c.s.stats
	members := map[string][]uint64{}
	for g, ms := range c.members {
		for _, m := range ms {
			members[string(g)] = append(members[string(g)], uint64(m))
		}
	}
	return ComposeResult{Trace: c.s.trace, Routes: c.routes, Stats: c.stats, Ordered: c.ordered, Members: members}
}

// settle runs the final round.
func (c *composeSim) settle() bool {
	s := c.s
	var finals []string
	for _, n := range s.nodes {
		before := c.stats.Sent
		if c.send(n, "", "final") && c.stats.Sent > before {
			finals = append(finals, c.routes[len(c.routes)-1].Msg)
		}
	}
	for range c.opts.SettleSteps {
		if s.stats.Steps%50 == 0 && c.settled(finals) {
			return true
		}
		if !s.Step() {
			return false
		}
	}
	return false
}

func (c *composeSim) settled(finals []string) bool {
	for _, g := range c.topo.Groups() {
		for _, id := range c.members[g] {
			n := c.s.node(id)
			r := c.routers[id]
			if !n.alive || r == nil || r.Pending(g) > 0 || !r.HasState(g) {
				return false
			}
			for _, f := range finals {
				if !c.got[composeGot{n.self(), g, f}] {
					return false
				}
			}
		}
	}
	return true
}

func (c *composeSim) dump() string {
	var b []byte
	for _, g := range c.topo.Groups() {
		for _, id := range c.members[g] {
			r := c.routers[id]
			if r == nil {
				b = fmt.Appendf(b, "  %s node %d: down\n", g, id)
				continue
			}
			b = fmt.Appendf(b, "  %s node %d: state=%v pending=%d\n", g, id, r.HasState(g), r.Pending(g))
		}
	}
	return string(b) + c.s.Dump()
}
