package proptest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/switching"
)

// rebalancer is the rebalancing mode of the LWG simulator: a layer that
// runs a switching.Planner on every node's Core, as switching.Rebalancer
// does on a Service. Every roundTicks ticks a node observes its Core,
// plans, and asks its Core to switch the LWGs it coordinates; everything
// else (faults, traffic, the checkers) is the simulator's.
type rebalancer struct {
	s          *LWGSim
	policy     switching.Policy
	roundTicks int
	planners   map[hwg.Process]*switching.Planner
	ticks      map[hwg.Process]int
	// requested counts the switches the Cores accepted, per LWG;
	// lastStep is the simulator step of the last one.
	requested int
	perLWG    map[lwg.ID]int
	lastStep  int
}

// simPolicy is the default policy tuned to the simulator's traffic (a few
// messages per LWG per round): a long window so that any measured
// interference pays for a switch, and short dwell and merge times so that
// a run of a few thousand steps sees them.
func simPolicy() switching.Policy {
	return switching.NewDefault(switching.Config{Window: 1e4, MinDwell: 3, MergeStable: 20, MaxSwitches: 4})
}

func newRebalancer(p switching.Policy, roundTicks int) *rebalancer {
	return &rebalancer{policy: p, roundTicks: roundTicks, planners: map[hwg.Process]*switching.Planner{},
		ticks: map[hwg.Process]int{}, perLWG: map[lwg.ID]int{}}
}

func (r *rebalancer) attach(s *LWGSim) { r.s = s }

func (r *rebalancer) started(n *lwgSimNode) {
	r.planners[n.self()] = switching.NewPlanner(switching.PlannerConfig{Policy: r.policy})
}

func (r *rebalancer) crashed(n *lwgSimNode) { delete(r.planners, n.self()) }

func (r *rebalancer) ticked(n *lwgSimNode) {
	self := n.self()
	r.ticks[self]++
	p := r.planners[self]
	if p == nil || r.ticks[self]%r.roundTicks != 0 {
		return
	}
	_, acts := p.Plan(n.core.Observe(), nil)
	for _, a := range acts {
		if a.Kind == switching.ActSwitch && n.core.Switch(a.LWG, a.Base) == nil {
			r.requested++
			r.perLWG[a.LWG]++
			r.lastStep = r.s.stats.Steps
		}
	}
}

func (r *rebalancer) lwgEvent(*lwgSimNode, lwg.Event)         {}
func (r *rebalancer) direct(*lwgSimNode, hwg.Process, []byte) {}
func (r *rebalancer) mayStop(*lwgSimNode, lwg.ID) bool        { return true }
func (r *rebalancer) msgID(n *lwgSimNode, e lwg.Event) string {
	ev, _ := FromLWG(n.self(), e, 0)
	return ev.Msg
}

// rebalanceRuns: 40 seeded runs, 10 under the race detector, LWGKIT_SOAK
// for more.
func rebalanceRuns(t *testing.T) int {
	if n, ok := soakRuns(t); ok {
		return n
	}
	if raceEnabled {
		return 10
	}
	return 40
}

// TestLWGRebalanceUnderFaults: LWGs start on one shared carrier and every
// node rebalances them while the simulator injects every fault (crashes,
// partitions, loss, duplication, reordering, leaves and joins). No LWG
// invariant may break, and after the heal every LWG converges on its
// assigned members and delivers a final round, as without rebalancing.
func TestLWGRebalanceUnderFaults(t *testing.T) {
	runs := rebalanceRuns(t)
	var requested, moves, lost int
	for seed := uint64(1); seed <= uint64(runs); seed++ {
		opts := LWGOptions{Seed: seed, Nodes: 5, LWGs: 10 + int(seed%8), Size: 3, Carriers: 1, Steps: 4000,
			Faults: FaultAll, FaultRate: 0.004 + float64(seed%3)*0.002, SendRate: 0.4, ManualHoldOK: seed%3 == 0,
			// Rebalancers go on after the heal: switches, merges and the
			// lazy leaves that follow them end later than without.
			SettleSteps: 30000}
		r := newRebalancer(simPolicy(), 10)
		res := runLWG(newLWGSim(opts, r))
		requested += r.requested
		moves += res.Stats.Moves
		if res.Stats.PrimaryLost {
			lost++
		}
		if len(res.Violations) > 0 {
			t.Fatalf("seed %d (%+v): %d violations, first: %.3000s", seed, opts, len(res.Violations), res.Violations[0])
		}
	}
	t.Logf("%d runs: %d switches requested by the rebalancers, %d LWG moves, %d runs lost a primary", runs, requested, moves, lost)
	if requested == 0 || moves == 0 {
		t.Fatalf("the rebalancers switched nothing (%d requested, %d moves): the test proves nothing", requested, moves)
	}
	if lost*10 > runs {
		t.Errorf("%d of %d runs lost a primary component", lost, runs)
	}
}

// TestLWGRebalanceConverges: without faults and under steady traffic, the
// rebalancers move every LWG from the shared carrier to one of exactly its
// members, then stop: no switch in the second half of the run, no LWG
// switched back and forth, at most one carrier per member set holding
// LWGs, and every checker passes.
func TestLWGRebalanceConverges(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			// Light traffic lets virtual time (and so rounds) pass: a
			// step is one message or tick.
			opts := LWGOptions{Seed: seed, Nodes: 5, LWGs: 24, Size: 3, Carriers: 1, SendRate: 0.05}
			r := newRebalancer(simPolicy(), 4)
			s := newLWGSim(opts, r)
			const steps = 40000
			for range steps {
				if s.rng.Float64() < opts.SendRate {
					s.Multicast()
				}
				s.Step()
			}
			t.Logf("%d switches requested, the last at step %d of %d", r.requested, r.lastStep, s.stats.Steps)
			if r.requested < len(s.ids) {
				t.Errorf("%d switches for %d LWGs that all start on a shared carrier of 5", r.requested, len(s.ids))
			}
			if r.lastStep > s.stats.Steps/2 {
				t.Errorf("a switch at step %d of %d: not converged", r.lastStep, s.stats.Steps)
			}
			for l, k := range r.perLWG {
				if k > 2 {
					t.Errorf("%s switched %d times", l, k)
				}
			}
			carriers := map[string]map[hwg.GroupID]bool{}
			for _, l := range s.ids {
				for _, id := range s.assign[l] {
					n := s.node(id)
					v, h, ok := n.core.View(l)
					if !ok || len(v.Members) != opts.Size {
						t.Fatalf("%s at node %d: %v on %s (member: %v)", l, id, v, h, ok)
					}
					o := n.core.Observe()
					i := slices.IndexFunc(o.Carriers, func(c lwg.CarrierObservation) bool { return c.ID == h })
					if i < 0 || !o.Carriers[i].Member || nodeKey(o.Carriers[i].View.Members) != nodeKey(v.Members) {
						t.Fatalf("%s at node %d: view %v on %s, not a carrier of exactly its members (%+v)", l, id, v, h, o.Carriers)
					}
					k := nodeKey(v.Members)
					if carriers[k] == nil {
						carriers[k] = map[hwg.GroupID]bool{}
					}
					carriers[k][h] = true
				}
			}
			for k, hs := range carriers {
				if len(hs) > 1 {
					t.Errorf("member set %s on %d carriers: %v", k, len(hs), hs)
				}
			}
			for _, v := range s.Violations() {
				t.Errorf("%.2000s", v)
			}
		})
	}
}

func nodeKey(ps []hwg.Process) string {
	ns := make([]hwg.NodeID, len(ps))
	for i, p := range ps {
		ns[i] = p.Node
	}
	return string(switching.MemberBase(ns))
}
