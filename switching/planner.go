package switching

import (
	"slices"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// PlannerConfig configures a Planner.
type PlannerConfig struct {
	// Policy decides. Default: NewDefault(Config{}).
	Policy Policy
	// RateSmoothing is the weight of the latest round in an LWG's
	// estimated rate (an exponentially weighted moving average): 0.5 lets
	// a rate that doubles show most of its rise within two rounds while
	// one noisy round moves the estimate by half its noise. Default 0.5.
	RateSmoothing float64
}

// Planner is the deterministic part of one node's rebalancing: each call
// to Plan turns an lwg.Observation into a Snapshot (estimating rates from
// the traffic counters, and tracking how long each LWG and HWG has been
// where it is) and asks the policy. The node decides for the LWGs it
// coordinates (the first member of the LWG's view), so two nodes never
// switch one LWG in different directions.
//
// A Planner does no I/O and reads no clock: a round is one call. The
// Rebalancer drives one from a Service; package proptest drives one per
// simulated node from a Core. One goroutine owns it.
type Planner struct {
	policy    Policy
	smoothing float64
	round     int
	lwgs      map[lwg.ID]*lwgTrack
	hwgs      map[hwg.GroupID]*hwgTrack
}

type lwgTrack struct {
	traffic  uint64
	rate     float64
	observed bool
	hwg      hwg.GroupID
	moved    int // round its carrier last changed
	seen     int // round last seen
}

type hwgTrack struct {
	key   string
	since int
	seen  int
}

// NewPlanner returns a Planner.
func NewPlanner(cfg PlannerConfig) *Planner {
	if cfg.Policy == nil {
		cfg.Policy = NewDefault(Config{})
	}
	if cfg.RateSmoothing <= 0 || cfg.RateSmoothing > 1 {
		cfg.RateSmoothing = 0.5
	}
	return &Planner{policy: cfg.Policy, smoothing: cfg.RateSmoothing, lwgs: map[lwg.ID]*lwgTrack{}, hwgs: map[hwg.GroupID]*hwgTrack{}}
}

// Round returns the number of rounds planned so far.
func (p *Planner) Round() int { return p.round }

// Plan records one round of observation o and returns the snapshot it
// built and the policy's actions for it. Only the LWGs this node
// coordinates are marked for decision, so every ActSwitch returned is one
// this node should carry out. busy reports LWGs whose switch this node has
// in progress (nil: none); they are left alone.
func (p *Planner) Plan(o lwg.Observation, busy func(lwg.ID) bool) (Snapshot, []Action) {
	p.round++
	r := p.round
	var s Snapshot
	for _, lo := range o.LWGs {
		t := p.lwgs[lo.ID]
		if t == nil {
			// First sight: nothing to measure a rate against yet.
			t = &lwgTrack{traffic: lo.Traffic, hwg: lo.HWG, moved: never}
			p.lwgs[lo.ID] = t
		} else {
			d := float64(lo.Traffic - min(lo.Traffic, t.traffic))
			if t.observed {
				t.rate = p.smoothing*d + (1-p.smoothing)*t.rate
			} else {
				t.rate, t.observed = d, true
			}
			t.traffic = lo.Traffic
			if lo.HWG != t.hwg {
				t.hwg, t.moved = lo.HWG, r
			}
		}
		t.seen = r
		members := make([]hwg.NodeID, 0, len(lo.View.Members))
		for _, m := range lo.View.Members {
			members = append(members, m.Node)
		}
		slices.Sort(members)
		s.LWGs = append(s.LWGs, LWG{
			ID: lo.ID, Members: members, HWG: lo.HWG, Rate: t.rate, Observed: t.observed,
			Busy:        lo.Busy || (busy != nil && busy(lo.ID)),
			SinceSwitch: r - t.moved,
			Decide:      lo.Local && lo.View.Coordinator() == o.Self,
		})
	}
	for _, co := range o.Carriers {
		procs := co.Regs
		if co.Member {
			procs = co.View.Members
		}
		members := make([]hwg.NodeID, 0, len(procs))
		for _, m := range procs {
			members = append(members, m.Node)
		}
		members = sortedSet(members)
		key := nodeSet(members).key()
		t := p.hwgs[co.ID]
		if t == nil {
			t = &hwgTrack{key: key, since: r}
			p.hwgs[co.ID] = t
		} else if t.key != key {
			t.key, t.since = key, r
		}
		t.seen = r
		base := co.Base
		if !co.Current {
			base = ""
		}
		s.HWGs = append(s.HWGs, HWG{ID: co.ID, Base: base, Members: members, Stable: r - t.since, Partial: !co.Member})
	}
	for l, t := range p.lwgs {
		if t.seen != r {
			delete(p.lwgs, l)
		}
	}
	for h, t := range p.hwgs {
		if t.seen != r {
			delete(p.hwgs, h)
		}
	}
	return s, p.policy.Decide(&s)
}

// Settled reports whether, in s, every LWG is on an HWG whose members equal
// its own, no LWG is busy, and no two HWGs carrying LWGs that the caller
// holds have the same members. (An HWG that carries nothing is being left:
// the LWG layer does that lazily.)
func Settled(s *Snapshot) bool {
	hs := map[hwg.GroupID]nodeSet{}
	sets := map[string]bool{}
	carrying := map[hwg.GroupID]bool{}
	for _, l := range s.LWGs {
		carrying[l.HWG] = true
	}
	for _, h := range s.HWGs {
		m := asSet(h.Members)
		hs[h.ID] = m
		if h.Partial || len(m) == 0 || !carrying[h.ID] {
			continue
		}
		if k := m.key(); sets[k] {
			return false
		} else {
			sets[k] = true
		}
	}
	for _, l := range s.LWGs {
		h, ok := hs[l.HWG]
		if l.Busy || !ok || !h.equal(asSet(l.Members)) {
			return false
		}
	}
	return true
}
