package switching_test

import (
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/switching"
)

func procs(ns ...hwg.NodeID) []hwg.Process {
	out := make([]hwg.Process, len(ns))
	for i, n := range ns {
		out[i] = hwg.Process{Node: n, Inc: 1}
	}
	return out
}

// observation is node self's view of LWGs l/a (coordinated by 1) and l/b
// (coordinated by 2), both of nodes {1,2,3} on the shared carrier of all
// five, with the given traffic counters.
func observation(self hwg.NodeID, trafficA, trafficB uint64, hA hwg.GroupID) lwg.Observation {
	shared := lwg.CarrierObservation{ID: "h/shared#1", Base: "h/shared", Current: true, Regs: procs(1, 2, 3, 4, 5), Member: true,
		View: hwg.View{ID: 3, Members: procs(1, 2, 3, 4, 5)}, LWGs: 2}
	return lwg.Observation{
		Self: hwg.Process{Node: self, Inc: 1}, Synced: true,
		LWGs: []lwg.LWGObservation{
			{ID: "l/a", View: lwg.View{ID: 5, Members: procs(1, 2, 3)}, HWG: hA, Bound: hA, Local: true, Traffic: trafficA},
			{ID: "l/b", View: lwg.View{ID: 5, Members: procs(2, 1, 3)}, HWG: "h/shared#1", Bound: "h/shared#1", Local: true, Traffic: trafficB},
		},
		Carriers: []lwg.CarrierObservation{shared},
	}
}

// TestPlannerRatesAndDeciders: rates are the smoothed traffic per round
// (none until a round has been watched), only the coordinator decides for
// an LWG, and a change of carrier restarts the dwell count.
func TestPlannerRatesAndDeciders(t *testing.T) {
	p := switching.NewPlanner(switching.PlannerConfig{RateSmoothing: 0.5})
	s, _ := p.Plan(observation(1, 100, 0, "h/shared#1"), nil)
	if s.LWGs[0].Observed || s.LWGs[0].Rate != 0 {
		t.Fatalf("first round: %+v, want no rate yet", s.LWGs[0])
	}
	if !s.LWGs[0].Decide || s.LWGs[1].Decide {
		t.Fatalf("node 1 decides for l/a only: %+v", s.LWGs)
	}
	s, _ = p.Plan(observation(1, 140, 0, "h/shared#1"), nil)
	if a := s.LWGs[0]; !a.Observed || a.Rate != 40 {
		t.Fatalf("second round: %+v, want rate 40", a)
	}
	s, _ = p.Plan(observation(1, 160, 0, "h/shared#1"), func(l lwg.ID) bool { return l == "l/b" })
	if a := s.LWGs[0]; a.Rate != 30 { // 0.5·20 + 0.5·40
		t.Fatalf("third round: rate %v, want 30", a.Rate)
	}
	if !s.LWGs[1].Busy {
		t.Fatal("an LWG the caller is switching is not busy")
	}
	if got := s.LWGs[0].Members; len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Fatalf("members %v", got)
	}
	if s.HWGs[0].Stable != 2 || s.HWGs[0].Base != "h/shared" || s.HWGs[0].Partial {
		t.Fatalf("carrier %+v, want stable for 2 rounds", s.HWGs[0])
	}
	s, _ = p.Plan(observation(1, 170, 0, "h/m/1.2.3#4"), nil)
	if a := s.LWGs[0]; a.SinceSwitch != 0 {
		t.Fatalf("after its carrier changed: SinceSwitch %d, want 0", a.SinceSwitch)
	}
	s, _ = p.Plan(observation(2, 0, 0, "h/shared#1"), nil)
	if s.LWGs[0].Decide || !s.LWGs[1].Decide {
		t.Fatalf("node 2 decides for l/b only: %+v", s.LWGs)
	}
}

// TestPlannerAsksForSwitch: a coordinator whose hot LWG sits on a carrier
// of all five nodes is told to switch it to its member set's carrier.
func TestPlannerAsksForSwitch(t *testing.T) {
	p := switching.NewPlanner(switching.PlannerConfig{})
	var acts []switching.Action
	var traffic uint64
	for range 3 {
		traffic += 50
		_, acts = p.Plan(observation(1, traffic, traffic, "h/shared#1"), nil)
	}
	var sw []switching.Action
	for _, a := range acts {
		if a.Kind == switching.ActSwitch {
			sw = append(sw, a)
		}
	}
	if len(sw) != 1 || sw[0].LWG != "l/a" || sw[0].Base != switching.MemberBase(nodes(1, 2, 3)) {
		t.Fatalf("actions %v, want node 1 to switch l/a (only) to its set's carrier", acts)
	}
}
