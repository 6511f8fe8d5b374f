package compose

import (
	"fmt"
	"slices"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// Config parameterises a Router.
type Config struct {
	// Self is this node's process (the same as its lwg.Core's).
	Self hwg.Process
	// Topology is the declared graph of groups; every node of a system
	// must use the same one.
	Topology *Topology
	// Window bounds the copies a router has forwarded on one link that
	// the next group has not delivered yet. Default 256.
	Window int
	// AckEvery: a router acknowledges a link's delivered copies in the
	// source group once this many are unacknowledged, and at every Tick
	// when any are. Default 32.
	AckEvery int

	// freshWhenAlone is a mutation for tests only (export_test.go): a
	// member left alone without the state starts the group afresh, as
	// the Router did before claim rounds.
	freshWhenAlone bool
}

// Send asks the caller to multicast Payload in the local LWG Group
// (lwg.Core.Multicast or lwg.Service.Multicast), in order.
type Send struct {
	Group   lwg.ID
	Payload []byte
}

// Delivery is a message for the application, in the total order of Group.
//
// Routed deliveries are messages addressed to Group (by SendTo or SendAll
// from anywhere in the topology); Origin, Src and Seq name the message
// end to end: Src is the group the origin sent it through, and Seq counts
// the origin's routed sends through Src. A delivery that is not Routed is an ordinary
// multicast in Group that did not pass the filter (lwg's From and Payload,
// Origin = From).
type Delivery struct {
	Group   lwg.ID
	View    uint64
	Routed  bool
	Origin  hwg.Process
	Seq     uint64
	Src     lwg.ID
	Dests   []lwg.ID // nil: every group
	Payload []byte
	// Replayed: the delivery was held while this member waited for the
	// group's routing state (it joined), and is handed over now.
	Replayed bool
}

// Ready is what the Router asks of its caller.
type Ready struct {
	Sends      []Send
	Deliveries []Delivery
}

// Empty reports whether there is nothing to do.
func (r Ready) Empty() bool { return len(r.Sends) == 0 && len(r.Deliveries) == 0 }

// Stats counts what a Router did.
type Stats struct {
	Sent       uint64 // routed messages this node originated
	Forwarded  uint64 // copies this node multicast as a router
	Delivered  uint64 // routed deliveries to the application
	Duplicates uint64 // copies dropped at a destination as already delivered
	Stale      uint64 // copies of an older epoch of the previous group
	// Gaps counts copies that arrived past a hole in a link's sequence.
	// INVARIANT: Gaps == 0 (a router forwards each link in order from
	// what it saw delivered); the simulator checks it.
	Gaps      uint64
	Acks      uint64 // acknowledgements this node multicast
	States    uint64 // routing-state snapshots this node sent
	Malformed uint64
	// Claims counts claims this node multicast (it was in a view of a
	// group without the routing state); Seeded the claim rounds this node
	// won, continuing the group's routing from a kept state; Blocked the
	// complete rounds that could not decide (nobody offered a state, or a
	// holder of the best one was away), after which the group's routing
	// waits for the next view.
	Claims, Seeded, Blocked uint64
	// Restarts counts groups whose routing state this node began afresh
	// in the first view of a new life of their LWG (lwg.View: every
	// member of the group's carrier had gone) after it had been a member
	// of an earlier one: what the group owed is lost, as every member's
	// state is when a whole carrier fails.
	Restarts uint64
}

// Position is a point of a group's delivery sequence: after the install
// of View and the first K filter payloads delivered in it. Every member
// computes the same positions (virtual synchrony).
type Position struct {
	View uint64 `msgpack:"v"`
	K    uint64 `msgpack:"k"`
}

// Less orders positions along the group's history (view ids increase
// across the lives of an LWG).
func (p Position) Less(q Position) bool { return p.View < q.View || p.View == q.View && p.K < q.K }

// Router is the routing filter and inter-group router of one node: a pure,
// deterministic state machine over the node's LWG events, in the style of
// lwg.Core. It starts no goroutines, reads no clock and does no I/O.
//
// One goroutine owns it (the runtime's loop, or the simulator): it feeds
// LWGEvent with every event of every local LWG in order, calls Tick
// periodically and the application's SendTo/SendAll, and after each call
// carries out Ready: Sends as LWG multicasts, in order, and Deliveries to
// the application, in order. Multicasts of the application in a local
// group that do not go through SendTo pass through as plain Deliveries.
//
// How it works. Every member of a group G keeps G's routing state,
// replicated by G's total order: for each neighbour N that messages
// ordered in G must reach next, the queue of copies owed to N, numbered on
// the link G→N; and for each neighbour P, the highest link number
// delivered from P. The router of G→N is the first member of G's view that
// is also in N's view (each candidate decides from its own views). It
// multicasts in N the copies beyond what N delivered, in order, and later
// acknowledges in G what N delivered, which lets G's members drop them. A
// router that fails between delivery in G and forwarding leaves the copies
// in G's state; the next view names its successor, which forwards from
// what N's order shows arrived. N's members drop copies they delivered
// before (link numbers), so the take-over neither loses nor duplicates.
// A member that joins G gets the routing state in a snapshot cut at its
// join, and holds G's routed messages until then.
//
// Loss of every holder. A member that is excluded from G or leaves it
// keeps G's state as a retired state, with its position and the holders
// of its last view. A member without the state never starts afresh in a
// view of G's life: at every install it waits in, it multicasts a claim
// (its retired state, if any, and where its buffer begins). Holders never
// claim, so once every member of the view has claimed in it, no member
// holds the state, and all decide alike: the best retired state S (latest
// position) if every holder of its last view is back (claimed in this
// view, or restarted as a new incarnation: then what only it delivered is
// gone), and so is every seed of an earlier round that a claimant never
// got the state of (claims name them: that seed went on and may hold a
// later state), else no decision until the next view. The seed is the first
// member whose buffer covers S (it joined at or before S's view), else
// the one whose buffer begins first; it takes S, replays its buffer past
// S's position, and sends the state to the others cut at the decision.
// Only the first view of a life of the LWG starts empty.
type Router struct {
	cfg    Config
	self   hwg.Process
	topo   *Topology
	groups map[lwg.ID]*member
	order  []lwg.ID // the keys of groups, sorted
	// retired keeps the state of groups this node left or was excluded
	// from; known lists the groups it was ever a member of.
	retired map[lwg.ID]*retiredState
	known   map[lwg.ID]bool
	// after lists, per group, the seeds of claim rounds this node took
	// part in without getting the seed's state (it was excluded first, or
	// the seed was): the group went on from them, so they may hold a
	// later state than any this node kept, and later rounds wait for
	// them too (they learn of them from the claims). Kept across
	// exclusions; cleared once this node holds the state.
	after map[lwg.ID][]hwg.Process
	// seq counts routed sends per source group: an origin is this process
	// sending through one group.
	seq map[lwg.ID]uint64
	// home is the group sends go through while this node is a member and
	// it reaches the destinations, so one process's sends follow one tree.
	home    lwg.ID
	emitted uint64
	tick    bool
	out     Ready
	stats   Stats
}

// member is this node's endpoint state in one LWG of the topology.
type member struct {
	id       lwg.ID
	view     lwg.View
	ready    bool // holds the routing state
	joinView uint64
	buf      []held // events held until the state arrives
	st       groupState
	// at is the position of the last event of this membership: the
	// state's position when ready.
	at    Position
	round map[hwg.Process]*claimMsg // claims delivered in the current view
	// Router-side, volatile: per outgoing link, the last link number this
	// node multicast in its current tenure and the last ack it sent.
	fwd     map[lwg.ID]uint64
	ackSent map[lwg.ID]uint64
}

// held is a buffered event with its position.
type held struct {
	e  lwg.Event
	at Position
}

// retiredState is a group's routing state kept after this node left the
// group's view.
type retiredState struct {
	st      groupState
	at      Position
	holders []hwg.Process
}

// NewRouter returns the Router of cfg.Self.
func NewRouter(cfg Config) (*Router, error) {
	if cfg.Topology == nil {
		return nil, fmt.Errorf("%w: no topology", ErrInvalidTopology)
	}
	if cfg.Self.Node == 0 {
		return nil, fmt.Errorf("compose: Config.Self must be set")
	}
	if cfg.Window <= 0 {
		cfg.Window = 256
	}
	if cfg.AckEvery <= 0 {
		cfg.AckEvery = 32
	}
	return &Router{cfg: cfg, self: cfg.Self, topo: cfg.Topology, groups: map[lwg.ID]*member{}, retired: map[lwg.ID]*retiredState{}, known: map[lwg.ID]bool{}, after: map[lwg.ID][]hwg.Process{}, seq: map[lwg.ID]uint64{}}, nil
}

// Ready returns what the caller must do and resets it.
func (r *Router) Ready() Ready {
	rd := r.out
	r.out = Ready{}
	return rd
}

// Stats returns the counters.
func (r *Router) Stats() Stats { return r.stats }

// SendTo sends payload to every member of group dst, which need not be a
// local group: it is multicast in a local group (see Through) and routed
// on from there. It returns the message's sequence number among this
// node's routed sends through that group: (Config.Self, the group, the
// number) is its end-to-end id, and the origin of FIFO order.
func (r *Router) SendTo(dst lwg.ID, payload []byte) (uint64, error) {
	return r.send([]lwg.ID{dst}, payload)
}

// SendAll sends payload to every group reachable from a local group.
func (r *Router) SendAll(payload []byte) (uint64, error) { return r.send(nil, payload) }

func (r *Router) send(dests []lwg.ID, payload []byte) (uint64, error) {
	for _, d := range dests {
		if !r.topo.Has(d) {
			return 0, fmt.Errorf("%w: %s", ErrUnknownGroup, d)
		}
	}
	src, err := r.through(dests)
	if err != nil {
		return 0, err
	}
	r.home = src
	r.seq[src]++
	r.stats.Sent++
	m := &routeMsg{Origin: r.self, Seq: r.seq[src], Src: src, Dests: slices.Clone(dests), Payload: payload}
	r.emit(src, &envelope{Route: m})
	return r.seq[src], nil
}

// Through returns the local group a send to dests (nil: every group)
// would go through now: the group the last send went through if this node
// is still a member and it reaches dests (so a process's messages follow
// one tree and stay FIFO), else the member group nearest to the
// destinations (for several, to the first), ties by id.
func (r *Router) Through(dests []lwg.ID) (lwg.ID, error) { return r.through(dests) }

func (r *Router) through(dests []lwg.ID) (lwg.ID, error) {
	if m := r.groups[r.home]; m != nil && m.view.Contains(r.self) {
		ok := true
		for _, d := range dests {
			if _, err := r.topo.Distance(r.home, d); err != nil {
				ok = false
			}
		}
		if ok {
			return r.home, nil
		}
	}
	var best lwg.ID
	bestD := -1
	var lastErr error = ErrNoLocalGroup
	for _, g := range r.order {
		m := r.groups[g]
		if !m.view.Contains(r.self) {
			continue
		}
		d := 0
		if len(dests) > 0 {
			var err error
			// From the destination: one BFS tree for the whole scan.
			if d, err = r.topo.Distance(dests[0], g); err != nil {
				lastErr = err
				continue
			}
		}
		ok := true
		for _, x := range dests[min(1, len(dests)):] {
			if _, err := r.topo.Distance(x, g); err != nil {
				lastErr, ok = err, false
				break
			}
		}
		if ok && (bestD < 0 || d < bestD) {
			best, bestD = g, d
		}
	}
	if bestD < 0 {
		return "", lastErr
	}
	return best, nil
}

// Tick lets routers acknowledge what they forwarded.
func (r *Router) Tick() {
	r.tick = true
	r.pump()
	r.tick = false
}

// RouterFor returns this node's opinion of who routes from group a to
// its neighbour b: the first member of a's view that is in b's view. It
// needs this node in both groups.
func (r *Router) RouterFor(a, b lwg.ID) (hwg.Process, bool) {
	ma, mb := r.groups[a], r.groups[b]
	if ma == nil || mb == nil {
		return hwg.Process{}, false
	}
	return routerOf(ma.view, mb.view)
}

func routerOf(a, b lwg.View) (hwg.Process, bool) {
	for _, p := range a.Members {
		if b.Contains(p) {
			return p, true
		}
	}
	return hwg.Process{}, false
}

// Pending returns how many copies the local routing state of group g
// still owes its neighbours (0 if this node has no state for g).
func (r *Router) Pending(g lwg.ID) int {
	m := r.groups[g]
	if m == nil || !m.ready {
		return 0
	}
	n := 0
	for _, ol := range m.st.Out {
		n += len(ol.Pending)
	}
	return n
}

// HasState reports whether this node holds g's routing state.
func (r *Router) HasState(g lwg.ID) bool { m := r.groups[g]; return m != nil && m.ready }

// Holding reports the routing state of g this node has: current (it is a
// member holding it) or retired (kept from before it left or was
// excluded), and its position.
func (r *Router) Holding(g lwg.ID) (at Position, current, ok bool) {
	if m := r.groups[g]; m != nil && m.ready {
		return m.at, true, true
	}
	if rt := r.retired[g]; rt != nil {
		return rt.at, false, true
	}
	return Position{}, false, false
}

// LWGEvent hands the Router one event of one local LWG, in the order the
// lwg.Core raised them. Events of LWGs outside the topology pass through
// as plain deliveries.
func (r *Router) LWGEvent(e lwg.Event) {
	if !r.topo.Has(e.LWG) {
		if e.Type == lwg.EventDeliver {
			r.out.Deliveries = append(r.out.Deliveries, Delivery{Group: e.LWG, View: e.View.ID, Origin: e.From, Payload: e.Payload})
		}
		return
	}
	switch e.Type {
	case lwg.EventInstall:
		m := r.groups[e.LWG]
		if m == nil {
			m = &member{id: e.LWG, fwd: map[lwg.ID]uint64{}, ackSent: map[lwg.ID]uint64{}}
			r.groups[e.LWG] = m
			r.order = sortedIDs(r.groups)
			if uint32(e.View.ID) == 1 && len(e.View.Members) == 1 && e.View.Members[0] == r.self {
				// Alone in the first view of a life of the LWG: the
				// group begins with an empty state.
				m.ready, m.st = true, newState(e.View.ID)
				if r.known[e.LWG] {
					r.stats.Restarts++
				}
				delete(r.retired, e.LWG)
				delete(r.after, e.LWG)
			} else {
				m.joinView = e.View.ID
			}
			r.known[e.LWG] = true
		}
		m.view = e.View.Clone()
		m.at = Position{View: e.View.ID}
		if !m.ready && r.cfg.freshWhenAlone && len(e.View.Members) == 1 && e.View.Members[0] == r.self {
			m.ready, m.st, m.buf = true, newState(e.View.ID), nil
			delete(r.retired, e.LWG)
		}
		if !m.ready {
			m.buf = append(m.buf, held{e, m.at})
			r.claim(m)
			break
		}
		r.installed(m, e, false)
	case lwg.EventDeliver:
		m := r.groups[e.LWG]
		env, ours, err := decode(e.Payload)
		if ours && m != nil {
			m.at.K++
		}
		switch {
		case !ours:
			r.out.Deliveries = append(r.out.Deliveries, Delivery{Group: e.LWG, View: e.View.ID, Origin: e.From, Payload: e.Payload})
		case err != nil:
			r.stats.Malformed++
		case m == nil:
		case !m.ready && env.State != nil && env.State.View >= m.joinView:
			r.adopt(m, env.State)
		case !m.ready:
			m.buf = append(m.buf, held{e, m.at})
			if env.Claim != nil {
				r.claimed(m, e.From, env.Claim)
			}
		default:
			r.apply(m, e.View.ID, env, false)
		}
	case lwg.EventExcluded, lwg.EventLeft:
		if m := r.groups[e.LWG]; m != nil && m.ready {
			// Keep the state: if every holder leaves the view at once,
			// the group continues from the best one kept.
			var hs []hwg.Process
			for _, p := range m.view.Members {
				if !slices.ContainsFunc(m.st.Waiting, func(w waiter) bool { return w.P == p }) {
					hs = append(hs, p)
				}
			}
			r.retired[e.LWG] = &retiredState{st: m.st, at: m.at, holders: hs}
		}
		if _, ok := r.groups[e.LWG]; ok {
			delete(r.groups, e.LWG)
			r.order = sortedIDs(r.groups)
		}
	}
	r.pump()
}

// installed applies an install to a member holding the state: joiners
// wait for the state, members gone stop waiting, and the first member not
// waiting sends the state if anyone waits.
func (r *Router) installed(m *member, e lwg.Event, replay bool) {
	st := &m.st
	for _, p := range e.Joined {
		if p != r.self || replay {
			if !slices.ContainsFunc(st.Waiting, func(w waiter) bool { return w.P == p }) {
				st.Waiting = append(st.Waiting, waiter{P: p, Join: e.View.ID})
			}
		}
	}
	st.Waiting = slices.DeleteFunc(st.Waiting, func(w waiter) bool { return !e.View.Contains(w.P) })
	if len(st.Waiting) == 0 || replay {
		return
	}
	for _, p := range e.View.Members {
		if slices.ContainsFunc(st.Waiting, func(w waiter) bool { return w.P == p }) {
			continue
		}
		if p == r.self {
			r.stats.States++
			r.emit(m.id, &envelope{State: &stateMsg{View: e.View.ID, State: *st}})
		}
		return
	}
}

// adopt installs the routing state a member waited for, and replays what
// it held from the state's cut on.
func (r *Router) adopt(m *member, s *stateMsg) {
	m.st = s.State
	r.replay(m, Position{View: s.View, K: s.K})
	r.apply(m, m.view.ID, &envelope{State: s}, true)
}

// replay makes m ready with the state in m.st, at position cut, and
// applies what m held past the cut.
func (r *Router) replay(m *member, cut Position) {
	m.ready, m.round = true, nil
	delete(r.retired, m.id)
	delete(r.after, m.id)
	buf := m.buf
	m.buf = nil
	for _, h := range buf {
		if !cut.Less(h.at) {
			continue // inside the state
		}
		if h.e.Type == lwg.EventInstall {
			r.installed(m, h.e, true)
			continue
		}
		if env, _, err := decode(h.e.Payload); err == nil {
			r.apply(m, h.e.View.ID, env, true)
		}
	}
}

// claim multicasts this member's claim for the view m waits in.
func (r *Router) claim(m *member) {
	m.round = map[hwg.Process]*claimMsg{}
	c := &claimMsg{View: m.view.ID, Join: m.joinView, Pending: r.after[m.id]}
	if rt := r.retired[m.id]; rt != nil {
		st := rt.st
		c.Has, c.At, c.Holders, c.State = true, rt.at, rt.holders, &st
	}
	r.stats.Claims++
	r.emit(m.id, &envelope{Claim: c})
}

// claimed takes a claim delivered to m, which waits for the state, and
// decides the round once every member of the view has claimed in it.
func (r *Router) claimed(m *member, from hwg.Process, c *claimMsg) {
	if m.round == nil || c.View != m.view.ID || !m.view.Contains(from) {
		return
	}
	m.round[from] = c
	for _, p := range m.view.Members {
		if m.round[p] == nil {
			return
		}
	}
	round := m.round
	m.round = nil
	var best *claimMsg
	for _, p := range m.view.Members {
		if c := round[p]; c.Has && (best == nil || best.At.Less(c.At)) {
			best = c
		}
	}
	if best == nil {
		r.stats.Blocked++
		return // nobody here has the state: wait for one who does
	}
	must := slices.Clone(best.Holders)
	for _, p := range m.view.Members {
		must = append(must, round[p].Pending...)
	}
	for _, h := range must {
		back := slices.ContainsFunc(m.view.Members, func(q hwg.Process) bool {
			return q == h || q.Node == h.Node && q.Inc > h.Inc
		})
		if !back {
			r.stats.Blocked++
			return // a holder of that state (or an earlier seed) may come back with a later one
		}
	}
	var seed hwg.Process
	for _, p := range m.view.Members {
		if round[p].Join <= best.At.View {
			seed = p // its buffer covers the state's position
			break
		}
	}
	if seed.Node == 0 {
		seed = m.view.Members[0]
		for _, p := range m.view.Members[1:] {
			if round[p].Join < round[seed].Join {
				seed = p
			}
		}
	}
	if seed != r.self {
		if !slices.Contains(r.after[m.id], seed) {
			r.after[m.id] = append(r.after[m.id], seed)
		}
		return // the seed sends the state
	}
	r.stats.Seeded++
	m.st = *best.State
	r.replay(m, best.At)
	m.st.Waiting = nil
	for _, p := range m.view.Members {
		if p != r.self {
			m.st.Waiting = append(m.st.Waiting, waiter{P: p, Join: m.view.ID})
		}
	}
	if len(m.st.Waiting) > 0 {
		r.stats.States++
		r.emit(m.id, &envelope{State: &stateMsg{View: m.view.ID, K: m.at.K, State: m.st}})
	}
}

// apply is the replicated transition of group m's routing state for one
// delivered message.
func (r *Router) apply(m *member, view uint64, env *envelope, replay bool) {
	st := &m.st
	switch {
	case env.State != nil:
		st.Waiting = slices.DeleteFunc(st.Waiting, func(w waiter) bool { return w.Join <= env.State.View })
	case env.Ack != nil:
		a := env.Ack
		ol := st.Out[a.To]
		if ol == nil || a.Upto <= ol.Acked || a.Upto > ol.Next {
			return
		}
		n := a.Upto - ol.Acked
		clear(ol.Pending[:n])
		ol.Pending = ol.Pending[n:]
		ol.Acked = a.Upto
		if len(ol.Pending) == 0 {
			ol.Pending = nil
		}
	case env.Route != nil:
		rm := env.Route
		if rm.Via != "" {
			a := st.Arrived[rm.Via]
			switch {
			case a == nil || rm.Epoch > a.Epoch:
				a = &arrival{Epoch: rm.Epoch}
				st.Arrived[rm.Via] = a
			case rm.Epoch < a.Epoch:
				r.stats.Stale++
				return
			}
			if rm.LSeq <= a.Seq {
				r.stats.Duplicates++
				return
			}
			if rm.LSeq > a.Seq+1 {
				r.stats.Gaps++
			}
			a.Seq = rm.LSeq
		}
		if rm.Dests == nil || slices.Contains(rm.Dests, m.id) {
			r.stats.Delivered++
			r.out.Deliveries = append(r.out.Deliveries, Delivery{
				Group: m.id, View: view, Routed: true, Origin: rm.Origin, Seq: rm.Seq,
				Src: rm.Src, Dests: rm.Dests, Payload: rm.Payload, Replayed: replay,
			})
		}
		for _, n := range r.topo.next(rm.Src, m.id, rm.Dests) {
			ol := st.out(n)
			ol.Next++
			c := *rm
			c.Via, c.Epoch, c.LSeq = m.id, st.Epoch, ol.Next
			ol.Pending = append(ol.Pending, &c)
		}
	}
}

// pump does the router's work on every link where this node is the
// router: forward what the next group has not delivered, within the
// window, and acknowledge what it has.
func (r *Router) pump() {
	for _, g := range r.order {
		m := r.groups[g]
		if !m.ready {
			continue
		}
		for _, to := range sortedIDs(m.st.Out) {
			ol := m.st.Out[to]
			n := r.groups[to]
			if n == nil || !n.ready || !m.view.Contains(r.self) || !n.view.Contains(r.self) {
				delete(m.fwd, to)
				continue
			}
			if p, _ := routerOf(m.view, n.view); p != r.self {
				delete(m.fwd, to) // tenure over: a later one starts from what arrived
				continue
			}
			var arrived uint64
			if a := n.st.Arrived[g]; a != nil && a.Epoch == m.st.Epoch {
				arrived = a.Seq
			}
			from := max(arrived, m.fwd[to], ol.Acked)
			limit := min(ol.Next, arrived+uint64(r.cfg.Window))
			for s := from + 1; s <= limit; s++ {
				c := ol.Pending[s-ol.Acked-1]
				r.stats.Forwarded++
				r.emit(to, &envelope{Route: c})
				m.fwd[to] = s
			}
			if arrived > ol.Acked && arrived > m.ackSent[to] && (r.tick || arrived-ol.Acked >= uint64(r.cfg.AckEvery)) {
				m.ackSent[to] = arrived
				r.stats.Acks++
				r.emit(g, &envelope{Ack: &ackMsg{To: to, Upto: arrived}})
			}
		}
	}
}

func (r *Router) emit(g lwg.ID, e *envelope) {
	r.emitted++
	e.N = r.emitted
	r.out.Sends = append(r.out.Sends, Send{Group: g, Payload: encode(e)})
}
