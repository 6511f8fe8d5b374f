package switching

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// Workload is a scenario for the offline evaluator: nodes, LWGs with their
// members and traffic, and what happens to them round by round.
type Workload struct {
	Name string
	// Note says in a line what the workload is.
	Note string
	// Mixed marks a workload where neither baseline should be right: hot
	// and cold LWGs, overlapping members, or churn.
	Mixed  bool
	Nodes  int
	Rounds int
	LWGs   []LWGSpec
	// Events, in round order; within a round, in the order given.
	Events []Event
	// Jitter is the relative noise on each LWG's traffic in each round:
	// a round carries Rate·(1+Jitter·u) messages, u uniform in [-1, 1].
	Jitter float64
	// Seed drives the traffic noise (the same for every policy).
	Seed uint64
	// Start, if set, is the base every LWG created in round 0 is put on,
	// whatever the policy: a cluster that begins with all LWGs on one HWG.
	Start hwg.GroupID
}

// LWGSpec is one LWG of a Workload.
type LWGSpec struct {
	ID lwg.ID
	// Members, coordinator first: the coordinator decides for the LWG.
	Members []hwg.NodeID
	// Rate is its traffic in messages per round, until an EvRate.
	Rate float64
	// Create is the round it is created in.
	Create int
}

// EventKind is the kind of a workload Event.
type EventKind uint8

// What can happen in a workload.
const (
	// EvNodeDown: Node crashes; it leaves every HWG and LWG.
	EvNodeDown EventKind = iota + 1
	// EvNodeUp: Node restarts and joins its LWGs again.
	EvNodeUp
	// EvJoin: Node joins LWG.
	EvJoin
	// EvLeave: Node leaves LWG.
	EvLeave
	// EvRate: LWG's traffic becomes Rate.
	EvRate
)

// Event is one thing that happens in a workload.
type Event struct {
	Round int
	Kind  EventKind
	Node  hwg.NodeID
	LWG   lwg.ID
	Rate  float64
}

// Cost is a total cost, by what it was spent on, in cost units.
type Cost struct {
	// Interference: data messages delivered at nodes outside their LWG.
	Interference float64
	// ViewChanges: HWG view changes for crashes and leaves.
	ViewChanges float64
	// Joins: nodes joining HWGs, creations included (with their view
	// changes).
	Joins float64
	// LWGFlushes: LWG flushes of joins, leaves and switches.
	LWGFlushes float64
	// Installs: LWG views installed by carrier view changes.
	Installs float64
}

// Total is the sum.
func (c Cost) Total() float64 {
	return c.Interference + c.ViewChanges + c.Joins + c.LWGFlushes + c.Installs
}

func (c *Cost) add(o Cost) {
	c.Interference += o.Interference
	c.ViewChanges += o.ViewChanges
	c.Joins += o.Joins
	c.LWGFlushes += o.LWGFlushes
	c.Installs += o.Installs
}

// Result is what one policy did on one workload.
type Result struct {
	Policy, Workload string
	Cost             Cost
	// Filtered is the number of data copies delivered at non-members.
	Filtered float64
	// HWGFlushes counts HWG view changes (joins, leaves, crashes);
	// LWGFlushes, LWG flushes; Switches, LWG switches; Creates, HWGs made.
	HWGFlushes, LWGFlushes, Switches, Creates int
	// HWGs is the number of live HWGs at the end; MaxPerNode and
	// MeanPerNode count HWGs per live node at the end; PeakPerNode is the
	// most any node was in at any time.
	HWGs                    int
	MaxPerNode, PeakPerNode int
	MeanPerNode             float64
	// LastSwitch is the last round with a switch (-1 if none);
	// MostSwitched is the most switches any one LWG made.
	LastSwitch, MostSwitched int
	// Exact counts the LWGs that end on an HWG whose members equal theirs;
	// Live is the number of LWGs with members at the end.
	Exact, Live int
	// Series has one entry per round.
	Series []RoundStat
}

// RoundStat is one round of a Result.
type RoundStat struct {
	// Total is the cumulative cost at the end of the round.
	Total float64
	// Switches made in the round; HWGs live at its end; Exact, the LWGs
	// then on an HWG whose members equal theirs.
	Switches, HWGs, Exact int
}

// Evaluate runs policy p on workload w and prices what it does with m.
// Every LWG's coordinator (its first live member) decides for it: each
// round, each node with LWGs to decide for calls Decide on the same
// snapshot with its own LWGs marked.
func Evaluate(p Policy, name string, w *Workload, m CostModel) Result {
	e := newEval(p, w, m.withDefaults())
	e.res.Policy, e.res.Workload = name, w.Name
	e.run()
	return e.res
}

type evalHWG struct {
	id, base hwg.GroupID
	refs     map[hwg.NodeID]int
	lwgs     map[lwg.ID]*evalLWG
	since    int     // round its membership last changed
	cached   nodeSet // members, nil when refs changed since
}

// members returns h's members, sorted; callers must not modify them.
func (h *evalHWG) members() nodeSet {
	if h.cached != nil && len(h.cached) == len(h.refs) {
		return h.cached
	}
	out := make(nodeSet, 0, len(h.refs))
	for n := range h.refs {
		out = append(out, n)
	}
	slices.Sort(out)
	h.cached = out
	return out
}

type evalLWG struct {
	spec     *LWGSpec
	assigned []hwg.NodeID // in coordinator order
	members  nodeSet      // assigned ∩ live
	h        *evalHWG
	rate     float64
	obs      float64
	observed bool
	moved    int // round of the last switch
	switches int
	born     bool
}

type eval struct {
	p      Policy
	w      *Workload
	m      CostModel
	rng    *rand.Rand
	round  int
	live   map[hwg.NodeID]bool
	lwgs   map[lwg.ID]*evalLWG
	ids    []lwg.ID
	hwgs   map[hwg.GroupID]*evalHWG
	bases  map[hwg.GroupID]*evalHWG
	gen    int
	events int // node events so far, for the churn estimate
	res    Result
}

const never = -1 << 30

func newEval(p Policy, w *Workload, m CostModel) *eval {
	e := &eval{p: p, w: w, m: m, rng: rand.New(rand.NewPCG(w.Seed, w.Seed^0x9e3779b97f4a7c15)),
		live: map[hwg.NodeID]bool{}, lwgs: map[lwg.ID]*evalLWG{}, hwgs: map[hwg.GroupID]*evalHWG{}, bases: map[hwg.GroupID]*evalHWG{}}
	for i := 1; i <= w.Nodes; i++ {
		e.live[hwg.NodeID(i)] = true
	}
	for i := range w.LWGs {
		s := &w.LWGs[i]
		e.lwgs[s.ID] = &evalLWG{spec: s, assigned: slices.Clone(s.Members), rate: s.Rate, moved: never}
		e.ids = append(e.ids, s.ID)
	}
	slices.Sort(e.ids)
	e.res.LastSwitch = -1
	return e
}

func (e *eval) run() {
	ev := 0
	for e.round = 0; e.round < e.w.Rounds; e.round++ {
		var born []*evalLWG
		for _, id := range e.ids {
			if l := e.lwgs[id]; !l.born && l.spec.Create <= e.round {
				l.born = true
				born = append(born, l)
			}
		}
		e.placeAll(born)
		for ev < len(e.w.Events) && e.w.Events[ev].Round <= e.round {
			e.apply(e.w.Events[ev])
			ev++
		}
		e.traffic()
		sw := e.decide()
		e.res.Series = append(e.res.Series, RoundStat{Total: e.res.Cost.Total(), Switches: sw, HWGs: len(e.hwgs), Exact: e.exact()})
		if sw > 0 {
			e.res.LastSwitch = e.round
		}
		for _, n := range e.perNode() {
			e.res.PeakPerNode = max(e.res.PeakPerNode, n)
		}
	}
	e.finish()
}

func (e *eval) finish() {
	e.res.HWGs = len(e.hwgs)
	per := e.perNode()
	sum := 0
	for _, k := range per {
		e.res.MaxPerNode = max(e.res.MaxPerNode, k)
		sum += k
	}
	if len(per) > 0 {
		e.res.MeanPerNode = float64(sum) / float64(len(per))
	}
	for _, id := range e.ids {
		if e.lwgs[id].h != nil {
			e.res.Live++
		}
	}
	e.res.Exact = e.exact()
}

// exact counts the LWGs on an HWG whose members equal theirs.
func (e *eval) exact() int {
	n := 0
	for _, id := range e.ids {
		if l := e.lwgs[id]; l.h != nil && l.h.members().equal(l.members) {
			n++
		}
	}
	return n
}

// perNode returns the number of HWGs of each live node.
func (e *eval) perNode() map[hwg.NodeID]int {
	out := map[hwg.NodeID]int{}
	for n, up := range e.live {
		if up {
			out[n] = 0
		}
	}
	for _, h := range e.hwgs {
		for n := range h.refs {
			out[n]++
		}
	}
	return out
}

// addMember makes n hold one more LWG on h, joining h if it is new there.
func (e *eval) addMember(h *evalHWG, n hwg.NodeID) {
	if h.refs[n] == 0 {
		e.res.Cost.Joins += e.m.join(len(h.refs) + 1)
		e.res.HWGFlushes++
		h.since, h.cached = e.round, nil
	}
	h.refs[n]++
}

// dropMember makes n hold one LWG less on h; it leaves h when none is left.
func (e *eval) dropMember(h *evalHWG, n hwg.NodeID, crashed bool) {
	if h.refs[n] == 0 {
		return
	}
	h.refs[n]--
	if h.refs[n] > 0 {
		return
	}
	k := len(h.refs)
	delete(h.refs, n)
	h.since, h.cached = e.round, nil
	if !crashed {
		e.res.Cost.ViewChanges += e.m.viewChange(k)
		e.res.HWGFlushes++
	}
}

// hwgFor returns the live HWG of base, creating it.
func (e *eval) hwgFor(base hwg.GroupID) *evalHWG {
	if h := e.bases[base]; h != nil {
		return h
	}
	e.gen++
	h := &evalHWG{id: hwg.GroupID(fmt.Sprintf("%s#%d", base, e.gen)), base: base, refs: map[hwg.NodeID]int{}, lwgs: map[lwg.ID]*evalLWG{}, since: e.round}
	e.hwgs[h.id], e.bases[base] = h, h
	e.res.Creates++
	return h
}

// gc removes h if it carries nothing.
func (e *eval) gc(h *evalHWG) {
	if h == nil || len(h.lwgs) > 0 {
		return
	}
	for n := range h.refs {
		e.dropMember(h, n, false)
	}
	delete(e.hwgs, h.id)
	if e.bases[h.base] == h {
		delete(e.bases, h.base)
	}
}

func (e *eval) liveMembers(l *evalLWG) nodeSet {
	var out []hwg.NodeID
	for _, n := range l.assigned {
		if e.live[n] {
			out = append(out, n)
		}
	}
	return sortedSet(out)
}

// placeAll creates the LWGs of ls, one after the other, where the policy
// says. The snapshot each placement sees is the one before it, updated
// with the placements made since (rather than rebuilt for each).
func (e *eval) placeAll(ls []*evalLWG) {
	if len(ls) == 0 {
		return
	}
	s := e.snapshot(0)
	for _, l := range ls {
		e.place(l, &s)
		if l.h == nil {
			continue
		}
		i, _ := slices.BinarySearchFunc(s.LWGs, l.spec.ID, func(x LWG, id lwg.ID) int { return cmp.Compare(x.ID, id) })
		s.LWGs = slices.Insert(s.LWGs, i, LWG{ID: l.spec.ID, Members: l.members, HWG: l.h.id, SinceSwitch: e.round - l.moved})
		h := HWG{ID: l.h.id, Base: l.h.base, Members: l.h.members(), Stable: e.round - l.h.since}
		if j, ok := slices.BinarySearchFunc(s.HWGs, h.ID, func(x HWG, id hwg.GroupID) int { return cmp.Compare(x.ID, id) }); ok {
			s.HWGs[j] = h
		} else {
			s.HWGs = slices.Insert(s.HWGs, j, h)
		}
	}
}

// place creates l where the policy says (s describes the state), if it
// has a live member.
func (e *eval) place(l *evalLWG, s *Snapshot) {
	l.members = e.liveMembers(l)
	if len(l.members) == 0 {
		return
	}
	base := e.w.Start
	if base == "" || e.round > 0 {
		if s == nil {
			snap := e.snapshot(0)
			s = &snap
		}
		base = e.p.Place(s, LWG{ID: l.spec.ID, Members: l.members})
	}
	h := e.hwgFor(base)
	l.h = h
	h.lwgs[l.spec.ID] = l
	for _, n := range l.members {
		e.addMember(h, n)
	}
	e.flush()
}

func (e *eval) flush() {
	e.res.Cost.LWGFlushes += e.m.LWGFlush
	e.res.LWGFlushes++
}

func (e *eval) apply(ev Event) {
	switch ev.Kind {
	case EvNodeDown:
		if !e.live[ev.Node] {
			return
		}
		e.live[ev.Node] = false
		e.events++
		for _, id := range sortedKeys(e.hwgs) {
			h := e.hwgs[id]
			if h.refs[ev.Node] == 0 {
				continue
			}
			k := len(h.refs)
			e.res.Cost.ViewChanges += e.m.viewChange(k)
			e.res.HWGFlushes++
			h.refs[ev.Node] = 1
			e.dropMember(h, ev.Node, true)
			// Every LWG of h installs, at each of its surviving members.
			for _, l := range h.lwgs {
				survivors := len(l.members)
				if slices.Contains(l.members, ev.Node) {
					survivors--
				}
				e.res.Cost.Installs += e.m.LWGInstall * float64(survivors)
			}
		}
		for _, id := range e.ids {
			l := e.lwgs[id]
			if l.h == nil || !slices.Contains(l.members, ev.Node) {
				continue
			}
			l.members = e.liveMembers(l)
			if len(l.members) == 0 {
				e.end(l)
			}
		}
	case EvNodeUp:
		if e.live[ev.Node] {
			return
		}
		e.live[ev.Node] = true
		e.events++
		for _, id := range e.ids {
			if l := e.lwgs[id]; l.born && slices.Contains(l.assigned, ev.Node) {
				e.join(l, ev.Node)
			}
		}
	case EvJoin:
		l := e.lwgs[ev.LWG]
		if l == nil || slices.Contains(l.assigned, ev.Node) {
			return
		}
		l.assigned = append(l.assigned, ev.Node)
		if l.born && e.live[ev.Node] {
			e.join(l, ev.Node)
		}
	case EvLeave:
		l := e.lwgs[ev.LWG]
		if l == nil || !slices.Contains(l.assigned, ev.Node) {
			return
		}
		l.assigned = slices.DeleteFunc(l.assigned, func(n hwg.NodeID) bool { return n == ev.Node })
		if l.h == nil || !slices.Contains(l.members, ev.Node) {
			return
		}
		l.members = e.liveMembers(l)
		e.flush()
		h := l.h
		e.dropMember(h, ev.Node, false)
		if len(l.members) == 0 {
			e.end(l)
		}
	case EvRate:
		if l := e.lwgs[ev.LWG]; l != nil {
			l.rate = ev.Rate
		}
	}
}

// join adds live node n to l (placing l afresh if it had no member left).
func (e *eval) join(l *evalLWG, n hwg.NodeID) {
	if l.h == nil {
		e.place(l, nil)
		return
	}
	if slices.Contains(l.members, n) {
		return
	}
	l.members = e.liveMembers(l)
	e.addMember(l.h, n)
	e.flush()
}

// end removes l, which has no member left, from its HWG.
func (e *eval) end(l *evalLWG) {
	h := l.h
	delete(h.lwgs, l.spec.ID)
	l.h, l.observed, l.obs = nil, false, 0
	e.gc(h)
}

// rateSmoothing is the weight of the latest round in the observed rate
// (the live Rebalancer's default, RebalancerConfig.RateSmoothing).
const rateSmoothing = 0.5

func (e *eval) traffic() {
	for _, id := range e.ids {
		l := e.lwgs[id]
		msgs := l.rate * (1 + e.w.Jitter*(2*e.rng.Float64()-1))
		if l.h == nil {
			continue
		}
		out := float64(len(l.h.refs) - len(l.members))
		e.res.Filtered += msgs * out
		e.res.Cost.Interference += msgs * out
		if l.observed {
			l.obs = rateSmoothing*msgs + (1-rateSmoothing)*l.obs
		} else {
			l.obs, l.observed = msgs, true
		}
	}
}

// snapshot describes the current state, with the LWGs coordinated by node
// `by` marked for decision (none if by is 0).
func (e *eval) snapshot(by hwg.NodeID) Snapshot {
	var s Snapshot
	if e.round > 0 && e.w.Nodes > 0 {
		s.Churn = float64(e.events) / float64(e.round*e.w.Nodes)
	}
	for _, id := range e.ids {
		l := e.lwgs[id]
		if l.h == nil {
			continue
		}
		s.LWGs = append(s.LWGs, LWG{ID: id, Members: l.members, HWG: l.h.id, Rate: l.obs, Observed: l.observed,
			SinceSwitch: e.round - l.moved, Decide: by != 0 && e.coordinator(l) == by})
	}
	for _, id := range sortedKeys(e.hwgs) {
		h := e.hwgs[id]
		s.HWGs = append(s.HWGs, HWG{ID: id, Base: h.base, Members: h.members(), Stable: e.round - h.since})
	}
	return s
}

func (e *eval) coordinator(l *evalLWG) hwg.NodeID {
	for _, n := range l.assigned {
		if e.live[n] {
			return n
		}
	}
	return 0
}

// decide asks every coordinator for its decision on one snapshot and
// carries the switches out; it returns how many.
func (e *eval) decide() int {
	var deciders []hwg.NodeID
	seen := map[hwg.NodeID]bool{}
	for _, id := range e.ids {
		if l := e.lwgs[id]; l.h != nil {
			if c := e.coordinator(l); c != 0 && !seen[c] {
				seen[c] = true
				deciders = append(deciders, c)
			}
		}
	}
	slices.Sort(deciders)
	var acts []Action
	base := e.snapshot(0)
	coord := make([]hwg.NodeID, len(base.LWGs))
	for i, l := range base.LWGs {
		coord[i] = e.coordinator(e.lwgs[l.ID])
	}
	mine := make([]LWG, len(base.LWGs))
	for _, n := range deciders {
		s := base
		copy(mine, base.LWGs)
		for i := range mine {
			mine[i].Decide = coord[i] == n
		}
		s.LWGs = mine
		acts = append(acts, e.p.Decide(&s)...)
	}
	done := 0
	for _, a := range acts {
		if a.Kind != ActSwitch {
			continue
		}
		l := e.lwgs[a.LWG]
		if l == nil || l.h == nil || l.h.id != a.HWG || l.moved == e.round {
			continue // stale: it moved or ended meanwhile
		}
		if e.switchLWG(l, a.Base) {
			done++
		}
	}
	e.res.Switches += done
	return done
}

// switchLWG moves l to the HWG of base: LWG flush on the old HWG, members
// join the new one, announcement there, nodes no longer needed leave the
// old one.
func (e *eval) switchLWG(l *evalLWG, base hwg.GroupID) bool {
	to := e.hwgFor(base)
	from := l.h
	if to == from {
		return false
	}
	e.flush()
	for _, n := range l.members {
		e.addMember(to, n)
	}
	e.flush()
	delete(from.lwgs, l.spec.ID)
	to.lwgs[l.spec.ID] = l
	l.h, l.moved = to, e.round
	l.switches++
	e.res.MostSwitched = max(e.res.MostSwitched, l.switches)
	for _, n := range l.members {
		e.dropMember(from, n, false)
	}
	e.gc(from)
	return true
}

// LowerBound is a cost no placement can beat on w: no interference and no
// switch; every node hosting LWGs joins one HWG, as small as its largest
// LWG allows, at the start and after each restart; every LWG join, leave
// and creation is one LWG flush; every crash flushes one HWG as small as
// the node's largest LWG allows and installs every LWG of the node at its
// other members. It ignores which LWGs could share, so it is not reachable
// in general.
func LowerBound(w *Workload, m CostModel) Cost {
	m = m.withDefaults()
	var c Cost
	live := map[hwg.NodeID]bool{}
	for i := 1; i <= w.Nodes; i++ {
		live[hwg.NodeID(i)] = true
	}
	type lw struct {
		assigned []hwg.NodeID
		born     bool
	}
	ls := map[lwg.ID]*lw{}
	created := map[lwg.ID]int{}
	var ids []lwg.ID
	for _, s := range w.LWGs {
		ls[s.ID] = &lw{assigned: slices.Clone(s.Members)}
		created[s.ID] = s.Create
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	size := func(l *lw) int {
		k := 0
		for _, n := range l.assigned {
			if live[n] {
				k++
			}
		}
		return k
	}
	hosting := map[hwg.NodeID]bool{} // in an HWG since its last start
	host := func(n hwg.NodeID, k int) {
		if !hosting[n] {
			hosting[n] = true
			c.Joins += m.join(k)
		}
	}
	ev := 0
	for r := 0; r < w.Rounds; r++ {
		for _, id := range ids {
			l := ls[id]
			if l.born || created[id] > r {
				continue
			}
			l.born = true
			if k := size(l); k > 0 {
				c.LWGFlushes += m.LWGFlush
				for _, n := range l.assigned {
					if live[n] {
						host(n, 1)
					}
				}
			}
		}
		for ; ev < len(w.Events) && w.Events[ev].Round <= r; ev++ {
			e := w.Events[ev]
			switch e.Kind {
			case EvNodeDown:
				if !live[e.Node] {
					continue
				}
				biggest := 0
				for _, id := range ids {
					if l := ls[id]; l.born && slices.Contains(l.assigned, e.Node) && size(l) > 0 {
						biggest = max(biggest, size(l))
						c.Installs += m.LWGInstall * float64(size(l)-1)
					}
				}
				if biggest > 0 {
					c.ViewChanges += m.viewChange(biggest)
				}
				live[e.Node] = false
				hosting[e.Node] = false
			case EvNodeUp:
				if live[e.Node] {
					continue
				}
				live[e.Node] = true
				for _, id := range ids {
					if l := ls[id]; l.born && slices.Contains(l.assigned, e.Node) {
						c.LWGFlushes += m.LWGFlush
						host(e.Node, 1)
					}
				}
			case EvJoin:
				l := ls[e.LWG]
				if l == nil || slices.Contains(l.assigned, e.Node) {
					continue
				}
				l.assigned = append(l.assigned, e.Node)
				if l.born && live[e.Node] {
					c.LWGFlushes += m.LWGFlush
					host(e.Node, 1)
				}
			case EvLeave:
				l := ls[e.LWG]
				if l == nil || !slices.Contains(l.assigned, e.Node) {
					continue
				}
				l.assigned = slices.DeleteFunc(l.assigned, func(n hwg.NodeID) bool { return n == e.Node })
				if l.born && live[e.Node] {
					c.LWGFlushes += m.LWGFlush
				}
			}
		}
	}
	return c
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
