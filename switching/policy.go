package switching

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/lwgkit/lwgkit/hwg"
)

// Config tunes the default policy. Every field is a threshold of one rule;
// zero fields take the defaults, each justified in docs/SWITCHING.md.
type Config struct {
	// Cost prices switches, flushes and interference. Zero fields take
	// DefaultCost's.
	Cost CostModel
	// Window is the horizon, in rounds, over which a switch must pay for
	// itself: its saving is a rate times Window. Default 300 (five minutes
	// of the Rebalancer's one-second rounds).
	Window float64
	// Margin is how many times its cost the saving of a switch (or of a
	// new HWG, or of a consolidation) over Window must be. Above 1, the
	// rules that move LWGs onto their own HWG and those that move them off
	// it can never both hold, so an LWG whose traffic is steady does not
	// go back and forth. Default 2.
	Margin float64
	// MaxHWGsPerNode caps the HWGs a node is in: no HWG is created that
	// would take a node past it. Default 64.
	MaxHWGsPerNode int
	// CapSlack: a node in more than MaxHWGsPerNode+CapSlack HWGs (several
	// deciders created HWGs for it in one round, or LWGs were placed
	// outside the policy) has its cheapest HWGs to empty consolidated
	// until it is back to MaxHWGsPerNode. The gap keeps the two rules from
	// undoing each other. Default 8.
	CapSlack int
	// MaxSwitches bounds the switches one Decide returns (a rate limit per
	// decider and round). Default 128.
	MaxSwitches int
	// MinDwell is how many rounds an LWG stays after a switch before it
	// may move again. Default 10.
	MinDwell int
	// MergeStable is how many rounds two HWGs must have had identical,
	// unchanged members before they are merged: longer than a node
	// usually stays down, so that HWGs that look alike only while a node
	// is down (and will differ again when it is back) are left alone.
	// Default 60.
	MergeStable int
	// Churn is the prior for node membership events per node per round,
	// used when the Snapshot has no estimate. Default 1e-4 (a node event
	// every few hours per node at one-second rounds).
	Churn float64
	// InitialRate is the traffic assumed for a new LWG when no LWG's rate
	// has been measured yet. Default 0: with nothing measured, a new LWG
	// goes where it adds no HWG (it shares one) and moves once its traffic
	// shows it should.
	InitialRate float64
	// Pool is the base of the shared HWG that cold LWGs are placed and
	// consolidated on. Default "h/pool".
	Pool hwg.GroupID
}

// Default policy defaults; docs/SWITCHING.md justifies each.
const (
	DefaultWindow         = 300
	DefaultMargin         = 2
	DefaultMaxHWGsPerNode = 64
	DefaultCapSlack       = 8
	DefaultMaxSwitches    = 128
	DefaultMinDwell       = 10
	DefaultMergeStable    = 60
	DefaultChurn          = 1e-4
	DefaultPool           = hwg.GroupID("h/pool")
)

func (c Config) withDefaults() Config {
	c.Cost = c.Cost.withDefaults()
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.Margin <= 0 {
		c.Margin = DefaultMargin
	}
	if c.MaxHWGsPerNode <= 0 {
		c.MaxHWGsPerNode = DefaultMaxHWGsPerNode
	}
	if c.CapSlack <= 0 {
		c.CapSlack = DefaultCapSlack
	}
	if c.MaxSwitches <= 0 {
		c.MaxSwitches = DefaultMaxSwitches
	}
	if c.MinDwell < 0 {
		c.MinDwell = 0
	} else if c.MinDwell == 0 {
		c.MinDwell = DefaultMinDwell
	}
	if c.MergeStable <= 0 {
		c.MergeStable = DefaultMergeStable
	}
	if c.Churn <= 0 {
		c.Churn = DefaultChurn
	}
	if c.InitialRate < 0 {
		c.InitialRate = 0
	}
	if c.Pool == "" {
		c.Pool = DefaultPool
	}
	return c
}

// Default is the default policy: the rules share, interference,
// minimality (merge, consolidate, retire, a cap on HWGs per node) and
// hysteresis of DESIGN.md, described with their thresholds in
// docs/SWITCHING.md. It is a pure function of its Config and the Snapshot.
type Default struct {
	cfg Config
}

// NewDefault returns the default policy with cfg (zero fields take their
// defaults).
func NewDefault(cfg Config) *Default { return &Default{cfg: cfg.withDefaults()} }

// Config returns the policy's configuration, defaults filled in.
func (p *Default) Config() Config { return p.cfg }

// hstate and lstate index a Snapshot for one decision.
type hstate struct {
	h       *HWG
	members nodeSet
	key     string
	lwgs    []*lstate
	refs    map[hwg.NodeID]int // LWGs on it that hold each node
	rate    float64            // observed traffic on it
	created bool               // made by this decision
}

type lstate struct {
	l       *LWG
	members nodeSet
	key     string
	h       *hstate
	rate    float64 // observed, 0 if not
	moved   bool    // has a candidate in this decision
}

type index struct {
	cfg    *Config
	churn  float64
	hwgs   map[hwg.GroupID]*hstate
	byBase map[hwg.GroupID]*hstate
	byKey  map[string][]*hstate // addressable HWGs by member set
	hs     []*hstate            // sorted by ID
	ls     []*lstate            // sorted by ID
	count  map[hwg.NodeID]int   // HWGs per node

	poolH      *hstate // see pool
	poolCreate *Action
}

func (p *Default) index(s *Snapshot) *index {
	x := &index{cfg: &p.cfg, churn: s.Churn, hwgs: map[hwg.GroupID]*hstate{}, byBase: map[hwg.GroupID]*hstate{},
		byKey: map[string][]*hstate{}, count: map[hwg.NodeID]int{}}
	if x.churn <= 0 {
		x.churn = p.cfg.Churn
	}
	hbuf := make([]hstate, len(s.HWGs))
	lbuf := make([]lstate, len(s.LWGs))
	for i := range s.HWGs {
		h := &s.HWGs[i]
		hs := &hbuf[i]
		*hs = hstate{h: h, members: asSet(h.Members)}
		hs.key = hs.members.key()
		x.hwgs[h.ID] = hs
		x.hs = append(x.hs, hs)
		if h.Base != "" {
			x.byBase[h.Base] = hs
			if len(hs.members) > 0 {
				x.byKey[hs.key] = append(x.byKey[hs.key], hs)
			}
		}
		for _, n := range hs.members {
			x.count[n]++
		}
	}
	slices.SortFunc(x.hs, func(a, b *hstate) int { return cmp.Compare(a.h.ID, b.h.ID) })
	for i := range s.LWGs {
		l := &s.LWGs[i]
		ls := &lbuf[i]
		*ls = lstate{l: l, members: asSet(l.Members)}
		if l.Observed {
			ls.rate = max(l.Rate, 0)
		}
		if hs := x.hwgs[l.HWG]; hs != nil {
			ls.h = hs
			hs.lwgs = append(hs.lwgs, ls)
			hs.rate += ls.rate
		}
		x.ls = append(x.ls, ls)
	}
	slices.SortFunc(x.ls, func(a, b *lstate) int { return cmp.Compare(a.l.ID, b.l.ID) })
	return x
}

// nodeRefs returns, per node, how many LWGs on h hold it.
func (h *hstate) nodeRefs() map[hwg.NodeID]int {
	if h.refs == nil {
		h.refs = map[hwg.NodeID]int{}
		for _, l := range h.lwgs {
			for _, n := range l.members {
				h.refs[n]++
			}
		}
	}
	return h.refs
}

// poolTraffic is how many messages of the LWGs on pool a node that joins
// it can expect to receive: over Window for those that stay, and over
// MinDwell for those hot enough to move to an HWG of their own (their gain
// as the only LWG of their set is positive), which leave soon.
func (x *index) poolTraffic(pool *hstate) float64 {
	cfg := x.cfg
	t := 0.0
	for _, l := range pool.lwgs {
		alone := cfg.Window*x.interference(l, pool.members) - cfg.Margin*(cfg.Cost.switchFlushes()+cfg.Cost.create(len(l.members)))
		if alone > 0 {
			t += l.rate * float64(cfg.MinDwell)
		} else {
			t += l.rate * cfg.Window
		}
	}
	return t
}

// lwgMembers is the number of LWG members on h, summed over its LWGs.
func (h *hstate) lwgMembers() int {
	n := 0
	for _, l := range h.lwgs {
		n += len(l.members)
	}
	return n
}

// asSet returns ns as a nodeSet, sorting a copy only if it is not sorted
// already (Snapshot members are).
func asSet(ns []hwg.NodeID) nodeSet {
	if slices.IsSorted(ns) {
		return nodeSet(ns)
	}
	return sortedSet(ns)
}

// interference is l's interference rate on an HWG with members h.
func (x *index) interference(l *lstate, h nodeSet) float64 {
	return l.rate * float64(h.minus(l.members))
}

// leaveCost prices the nodes that leave h when l does (no other LWG on h
// holds them).
func (x *index) leaveCost(l *lstate) float64 {
	if l.h == nil {
		return 0
	}
	c := 0.0
	k := len(l.h.members)
	refs := l.h.nodeRefs()
	for _, n := range l.members {
		if refs[n] == 1 {
			c += x.cfg.Cost.viewChange(k)
			k--
		}
	}
	return c
}

// switchCost prices moving l onto an HWG with members t (nil: a new one,
// whose joins are priced with its creation).
func (x *index) switchCost(l *lstate, t nodeSet) float64 {
	c := x.cfg.Cost.switchFlushes() + x.leaveCost(l)
	if t != nil {
		k := len(t)
		for _, n := range l.members {
			if !slices.Contains(t, n) {
				k++
				c += x.cfg.Cost.join(k)
			}
		}
	}
	return c
}

// exact returns the HWG for the member set: an addressable HWG whose
// members are exactly the set (the one named for it, then the one carrying
// most, then the lowest ID), or else the HWG named for the set while it is
// still being formed (its members, a subset of the set, join as its LWGs
// arrive), or nil.
func (x *index) exact(key string, members nodeSet) *hstate {
	var best *hstate
	for _, h := range x.byKey[key] {
		if best == nil || better(h, best, members) {
			best = h
		}
	}
	if best == nil {
		if h := x.byBase[MemberBase(members)]; h != nil && members.covers(h.members) {
			best = h
		}
	}
	return best
}

func better(a, b *hstate, members nodeSet) bool {
	name := MemberBase(members)
	if (a.h.Base == name) != (b.h.Base == name) {
		return a.h.Base == name
	}
	if len(a.lwgs) != len(b.lwgs) {
		return len(a.lwgs) > len(b.lwgs)
	}
	return a.h.ID < b.h.ID
}

// isMemberBase reports whether base names an HWG meant for a member set
// (MemberBase, with or without a suffix).
func isMemberBase(base hwg.GroupID) bool { return strings.HasPrefix(string(base), memberPrefix) }

// freeBase returns a base for a new HWG of members that no HWG has:
// MemberBase(members), or that with a suffix.
func (x *index) freeBase(members nodeSet) hwg.GroupID {
	b := MemberBase(members)
	for i := 2; x.byBase[b] != nil; i++ {
		b = hwg.GroupID(fmt.Sprintf("%s/%d", MemberBase(members), i))
	}
	return b
}

// capOK reports whether every node of members may be in one more HWG.
func (x *index) capOK(members nodeSet) bool {
	for _, n := range members {
		if x.count[n]+1 > x.cfg.MaxHWGsPerNode {
			return false
		}
	}
	return true
}

// eligible reports whether the decision may move l.
func (x *index) eligible(l *lstate) bool {
	return l.l.Decide && !l.l.Busy && l.h != nil && l.h.h.Base != "" && l.l.SinceSwitch >= x.cfg.MinDwell && len(l.members) > 0
}

// candidate is one switch a decision may make.
type candidate struct {
	l      *lstate
	to     *hstate // existing or created by this decision
	why    Reason
	gain   float64
	class  int // 0 cost-based, 1 consolidation, 2 merge
	create *Action
	merge  *Action
}

// Decide implements Policy.
func (p *Default) Decide(s *Snapshot) []Action {
	x := p.index(s)
	var cands []*candidate
	cands = append(cands, x.shareMoves()...)
	cands = append(cands, x.consolidations()...)
	cands = append(cands, x.merges()...)
	slices.SortStableFunc(cands, func(a, b *candidate) int {
		if a.class != b.class {
			return cmp.Compare(a.class, b.class)
		}
		if a.gain != b.gain {
			return -cmp.Compare(a.gain, b.gain)
		}
		return cmp.Compare(a.l.l.ID, b.l.l.ID)
	})
	var out []Action
	emitted := map[*Action]bool{}
	n := 0
	for _, c := range cands {
		if n == p.cfg.MaxSwitches {
			break
		}
		for _, pre := range []*Action{c.create, c.merge} {
			if pre != nil && !emitted[pre] {
				emitted[pre] = true
				out = append(out, *pre)
			}
		}
		out = append(out, Action{Kind: ActSwitch, LWG: c.l.l.ID, HWG: c.l.h.h.ID, Base: c.to.h.Base, Why: c.why, Gain: c.gain})
		n++
	}
	for _, h := range x.hs {
		if len(h.lwgs) == 0 && !h.h.Partial && !h.created {
			out = append(out, Action{Kind: ActRetire, HWG: h.h.ID, Why: ReasonRetire})
		}
	}
	return out
}

// shareMoves applies share and interference: every LWG not on an HWG of
// exactly its members may move to one (existing, or created for its
// member set when the group of LWGs with that set makes it pay), or to an
// existing HWG with fewer nodes outside it.
func (x *index) shareMoves() []*candidate {
	cfg := x.cfg
	W, M := cfg.Window, cfg.Margin
	groups := map[string][]*lstate{}
	mine := map[string]bool{} // groups with an LWG this decision may move
	var keys []string
	for _, l := range x.ls {
		if l.h == nil || len(l.members) == 0 || l.h.members.equal(l.members) {
			continue
		}
		l.key = l.members.key()
		if _, ok := groups[l.key]; !ok {
			keys = append(keys, l.key)
		}
		groups[l.key] = append(groups[l.key], l)
		if x.eligible(l) {
			mine[l.key] = true
		}
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { return !mine[k] })
	slices.Sort(keys)
	var out []*candidate
	for _, key := range keys {
		g := groups[key]
		members := g[0].members
		if ex := x.exact(key, members); ex != nil {
			for _, l := range g {
				if !x.eligible(l) || l.h == ex {
					continue
				}
				gain := W*x.interference(l, l.h.members) - M*x.switchCost(l, ex.members)
				best := &candidate{l: l, to: ex, why: ReasonShare, gain: gain}
				if c := x.covering(l); c != nil && c.gain > best.gain {
					best = c
				}
				if best.gain > 0 {
					l.moved = true
					out = append(out, best)
				}
			}
			continue
		}
		// No HWG of exactly these members: create one if the group pays
		// for it. Amortize over every LWG of the set (other deciders move
		// theirs), most interfered first.
		sorted := slices.Clone(g)
		slices.SortStableFunc(sorted, func(a, b *lstate) int {
			return -cmp.Compare(x.interference(a, a.h.members), x.interference(b, b.h.members))
		})
		creation := cfg.Cost.create(len(members))
		bestK, bestNet, sum := 0, 0.0, 0.0
		for i, l := range sorted {
			sum += W*x.interference(l, l.h.members) - M*x.switchCost(l, nil)
			net := sum - M*(creation+W*cfg.Cost.standing(len(members), (i+1)*len(members), x.churn))
			if net > bestNet {
				bestK, bestNet = i+1, net
			}
		}
		var create *Action
		var nh *hstate
		room := x.capOK(members)
		if bestK > 0 && !room {
			var victims []*candidate
			if victims, room = x.makeRoom(members, bestNet); room {
				out = append(out, victims...)
			}
		}
		if bestK > 0 && room {
			base := x.freeBase(members)
			nh = &hstate{h: &HWG{ID: base, Base: base, Members: members}, members: members, key: key, created: true}
			x.byBase[base] = nh
			for _, n := range members {
				x.count[n]++
			}
			create = &Action{Kind: ActCreate, Base: base, Members: slices.Clone(members), Why: ReasonShare}
		}
		for i, l := range sorted {
			if !x.eligible(l) {
				continue
			}
			var best *candidate
			if nh != nil && i < bestK {
				gain := W*x.interference(l, l.h.members) - M*x.switchCost(l, nil) - M*creation/float64(bestK)
				best = &candidate{l: l, to: nh, why: ReasonShare, gain: gain, create: create}
			}
			if c := x.covering(l); c != nil && (best == nil || c.gain > best.gain) {
				best = c
			}
			if best != nil && (best.gain > 0 || best.create != nil) {
				l.moved = true
				out = append(out, best)
			}
		}
	}
	return out
}

// covering returns l's best move to an existing HWG that holds all its
// members and fewer other nodes than its own, if one pays.
func (x *index) covering(l *lstate) *candidate {
	if !x.eligible(l) || l.rate == 0 {
		return nil
	}
	W, M := x.cfg.Window, x.cfg.Margin
	cur := l.h.members.minus(l.members)
	var best *candidate
	for _, h := range x.hs {
		if h == l.h || h.h.Base == "" || !h.members.covers(l.members) {
			continue
		}
		ex := h.members.minus(l.members)
		if ex >= cur {
			continue
		}
		gain := W*l.rate*float64(cur-ex) - M*x.switchCost(l, h.members)
		if gain > 0 && (best == nil || gain > best.gain) {
			best = &candidate{l: l, to: h, why: ReasonInterference, gain: gain}
		}
	}
	return best
}

// consolidations applies minimality to HWGs: one whose standing cost over
// Window (the flushes its churn causes) is Margin times what moving its
// LWGs onto the pool (or HWGs covering them) costs is emptied, and so are
// the cheapest to empty of a node over MaxHWGsPerNode+CapSlack, until it
// is back to MaxHWGsPerNode.
func (x *index) consolidations() []*candidate {
	cfg := x.cfg
	over := map[hwg.NodeID]int{}
	for n, k := range x.count {
		if k > cfg.MaxHWGsPerNode+cfg.CapSlack {
			over[n] = k - cfg.MaxHWGsPerNode
		}
	}
	var plans []*plan
	for _, h := range x.hs {
		// Emptying h costs at least its LWGs' switches: skip the plan when
		// even that is more than h's standing cost saves, unless a node of
		// h is over its cap.
		forced := false
		for _, n := range h.members {
			forced = forced || over[n] > 0
		}
		saving := cfg.Window * cfg.Cost.standing(len(h.members), h.lwgMembers(), x.churn)
		if !forced && saving < cfg.Margin*cfg.Cost.switchFlushes()*float64(len(h.lwgs)) {
			continue
		}
		if pl := x.emptyPlan(h); pl != nil {
			plans = append(plans, pl)
		}
	}
	// Coldest first: the cheapest to move.
	slices.SortStableFunc(plans, func(a, b *plan) int { return cmp.Compare(a.cost, b.cost) })
	var out []*candidate
	for _, pl := range plans {
		saving := cfg.Window * cfg.Cost.standing(len(pl.h.members), pl.h.lwgMembers(), x.churn)
		forced := false
		for _, n := range pl.h.members {
			if over[n] > 0 {
				forced = true
			}
		}
		if !forced && saving < cfg.Margin*pl.cost {
			continue
		}
		if forced {
			for _, n := range pl.h.members {
				over[n]--
			}
		}
		per := (saving - cfg.Margin*pl.cost) / float64(len(pl.cs))
		for _, c := range pl.cs {
			c.gain = per
			c.l.moved = true
			out = append(out, c)
		}
		for _, n := range pl.h.members {
			x.count[n]--
		}
	}
	return out
}

// plan is how to empty one HWG: where each of its LWGs would go, and what
// that costs over Window.
type plan struct {
	h    *hstate
	cost float64
	cs   []*candidate
}

// pool returns the pool, or a stand-in for the one a consolidation would
// create, with the ActCreate for it.
func (x *index) pool() (*hstate, *Action) {
	if x.poolH == nil {
		x.poolH = x.byBase[x.cfg.Pool]
		if x.poolH == nil {
			x.poolH = &hstate{h: &HWG{ID: x.cfg.Pool, Base: x.cfg.Pool}, created: true}
			x.poolCreate = &Action{Kind: ActCreate, Base: x.cfg.Pool, Why: ReasonConsolidate}
		}
	}
	return x.poolH, x.poolCreate
}

// emptyPlan plans moving every LWG of h to its cheapest other home, or
// returns nil if h cannot be emptied now (it is the pool, new, known only
// in part, or some LWG of it may not move).
func (x *index) emptyPlan(h *hstate) *plan {
	pool, poolCreate := x.pool()
	if h == pool || h.h.Partial || len(h.lwgs) == 0 || h.created {
		return nil
	}
	for _, l := range h.lwgs {
		if l.moved || !x.eligible(l) {
			return nil
		}
	}
	pl := &plan{h: h}
	for _, l := range h.lwgs {
		to, c := x.cheapestHome(l, pool)
		if to == nil {
			return nil
		}
		pl.cost += c
		cd := &candidate{l: l, to: to, why: ReasonConsolidate, class: 1}
		if to == pool {
			cd.create = poolCreate
		}
		pl.cs = append(pl.cs, cd)
	}
	return pl
}

// makeRoom finds, for each node of members at MaxHWGsPerNode, the HWG of
// it that is cheapest to empty, if emptying them all costs (times Margin)
// less than gain: the LWGs of a group that gains more from an HWG of its
// own displace colder ones. It returns their moves and true, with the
// node counts updated, or nothing and false.
func (x *index) makeRoom(members nodeSet, gain float64) ([]*candidate, bool) {
	var out []*candidate
	var emptied []*hstate
	undo := func() {
		for _, h := range emptied {
			for _, n := range h.members {
				x.count[n]++
			}
			for _, l := range h.lwgs {
				l.moved = false
			}
		}
	}
	cost := 0.0
	for _, n := range members {
		if x.count[n]+1 <= x.cfg.MaxHWGsPerNode {
			continue
		}
		var best *plan
		for _, h := range x.hs {
			if !slices.Contains(h.members, n) || slices.Contains(emptied, h) {
				continue
			}
			if pl := x.emptyPlan(h); pl != nil && (best == nil || pl.cost < best.cost) {
				best = pl
			}
		}
		if best == nil {
			undo()
			return nil, false
		}
		cost += best.cost
		if x.cfg.Margin*cost >= gain {
			undo()
			return nil, false
		}
		emptied = append(emptied, best.h)
		for _, m := range best.h.members {
			x.count[m]--
		}
		for _, c := range best.cs {
			c.l.moved = true
			out = append(out, c)
		}
	}
	for _, c := range out {
		c.gain = (gain - x.cfg.Margin*cost) / float64(len(out))
	}
	return out, true
}

// cheapestHome returns where l would cost least outside its HWG, among
// existing HWGs that hold all its members and the pool (which grows to
// hold them), with the cost over Window of moving there.
func (x *index) cheapestHome(l *lstate, pool *hstate) (*hstate, float64) {
	W := x.cfg.Window
	var best *hstate
	bestCost := math.Inf(1)
	for _, h := range x.hs {
		if h == l.h || h.h.Base == "" || !h.members.covers(l.members) {
			continue
		}
		c := x.switchCost(l, h.members) + W*x.interference(l, h.members)
		if c < bestCost {
			best, bestCost = h, c
		}
	}
	if pool != l.h && !pool.members.covers(l.members) {
		grow := pool.members.union(l.members)
		added := float64(l.members.minus(pool.members))
		c := x.switchCost(l, pool.members) + W*x.interference(l, grow) + x.poolTraffic(pool)*added
		if c < bestCost {
			best, bestCost = pool, c
		}
	}
	return best, bestCost
}

// merges applies minimality to HWGs with identical members: the LWGs of
// all but one (the one named for the set, else the one carrying most) move
// to it. An HWG named for another member set that looks like this one now
// most likely lost a node for a while and will differ again when it is
// back: it is merged only once both have been unchanged for MergeStable
// rounds. Any other (the pool, a shared carrier that switches emptied down
// to one set) is merged at once.
func (x *index) merges() []*candidate {
	var keys []string
	for k := range x.byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []*candidate
	for _, key := range keys {
		var hs []*hstate
		for _, h := range x.byKey[key] {
			if !h.h.Partial {
				hs = append(hs, h)
			}
		}
		if len(hs) < 2 {
			continue
		}
		into := hs[0]
		for _, h := range hs[1:] {
			if better(h, into, into.members) {
				into = h
			}
		}
		for _, h := range hs {
			if h == into || len(h.lwgs) == 0 {
				continue
			}
			if isMemberBase(h.h.Base) && min(h.h.Stable, into.h.Stable) < x.cfg.MergeStable {
				continue
			}
			m := &Action{Kind: ActMerge, HWG: h.h.ID, Into: into.h.ID, Why: ReasonMerge}
			saving := x.cfg.Window * x.cfg.Cost.standing(len(h.members), h.lwgMembers(), x.churn)
			for _, l := range h.lwgs {
				if l.moved || !x.eligible(l) {
					continue
				}
				l.moved = true
				gain := saving/float64(len(h.lwgs)) - x.cfg.Margin*x.switchCost(l, into.members)
				out = append(out, &candidate{l: l, to: into, why: ReasonMerge, gain: gain, class: 2, merge: m})
			}
		}
	}
	return out
}

// Place implements Policy: a new LWG goes to an HWG of exactly its members
// if there is one, otherwise wherever its expected cost over Window is
// least: an existing HWG holding all its members (interference), the pool
// (which may grow: joins, and the pool's traffic reaching the new nodes),
// or a new HWG of its own (creation and standing cost). Its expected rate
// is its own if measured, else the median of the measured LWGs, else
// Config.InitialRate.
func (p *Default) Place(s *Snapshot, l LWG) hwg.GroupID {
	x := p.index(s)
	cfg := x.cfg
	W := cfg.Window
	ls := &lstate{l: &l, members: sortedSet(l.Members)}
	ls.key = ls.members.key()
	ls.rate = p.expectedRate(s, l)
	if len(ls.members) == 0 {
		return cfg.Pool
	}
	if ex := x.exact(ls.key, ls.members); ex != nil {
		return ex.h.Base
	}
	var best hwg.GroupID
	bestCost := math.Inf(1)
	consider := func(base hwg.GroupID, c float64) {
		if c < bestCost {
			best, bestCost = base, c
		}
	}
	for _, h := range x.hs {
		if h.h.Base != "" && h.members.covers(ls.members) {
			consider(h.h.Base, W*x.interference(ls, h.members))
		}
	}
	if pool := x.byBase[cfg.Pool]; pool != nil {
		grow := pool.members.union(ls.members)
		c := 0.0
		k := len(pool.members)
		for range ls.members.minus(pool.members) {
			k++
			c += cfg.Cost.join(k)
		}
		c += W*x.interference(ls, grow) + x.poolTraffic(pool)*float64(ls.members.minus(pool.members))
		if x.capOK(ls.members.sub(pool.members)) {
			consider(cfg.Pool, c)
		}
	} else if x.capOK(ls.members) {
		consider(cfg.Pool, cfg.Cost.create(len(ls.members))+W*cfg.Cost.standing(len(ls.members), len(ls.members), x.churn))
	}
	if x.capOK(ls.members) {
		consider(x.freeBase(ls.members), cfg.Cost.create(len(ls.members))+W*cfg.Cost.standing(len(ls.members), len(ls.members), x.churn))
	}
	if best == "" {
		return cfg.Pool // every option breaks the cap: share the pool anyway
	}
	return best
}

// expectedRate is the traffic Place assumes for l.
func (p *Default) expectedRate(s *Snapshot, l LWG) float64 {
	if l.Observed {
		return l.Rate
	}
	var rs []float64
	for _, o := range s.LWGs {
		if o.Observed {
			rs = append(rs, o.Rate)
		}
	}
	if len(rs) == 0 {
		return p.cfg.InitialRate
	}
	slices.Sort(rs)
	return rs[len(rs)/2]
}

// sub returns s \ o.
func (s nodeSet) sub(o nodeSet) nodeSet {
	var out nodeSet
	for _, n := range s {
		if !slices.Contains(o, n) {
			out = append(out, n)
		}
	}
	return out
}
