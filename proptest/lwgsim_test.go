package proptest

import (
	"strings"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
)

func TestLWGSimNoFaults(t *testing.T) {
	for _, carriers := range []int{0, 1, 2} {
		res := RunLWG(LWGOptions{Seed: 1, Nodes: 4, LWGs: 6, Carriers: carriers, Steps: 2000})
		for _, v := range res.Violations {
			t.Errorf("carriers=%d: %v", carriers, v)
		}
		if !res.Stats.Converged || res.Stats.Delivered == 0 {
			t.Errorf("carriers=%d: converged=%v delivered=%d", carriers, res.Stats.Converged, res.Stats.Delivered)
		}
		t.Logf("carriers=%d: %+v", carriers, res.Stats)
	}
}

func TestLWGSimSwitches(t *testing.T) {
	for _, carriers := range []int{0, 2} {
		for seed := uint64(1); seed <= 5; seed++ {
			res := RunLWG(LWGOptions{Seed: seed, Nodes: 4, LWGs: 8, Carriers: carriers, Steps: 3000, Switches: 10})
			for _, v := range res.Violations {
				t.Errorf("seed %d carriers=%d: %v", seed, carriers, v)
			}
			t.Logf("seed %d carriers=%d: switches %d installs %d delivered %d converged %v", seed, carriers, res.Stats.Switches, res.Stats.LWGInstalls, res.Stats.Delivered, res.Stats.Converged)
		}
	}
}

func TestLWGSimFaults(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		res := RunLWG(LWGOptions{Seed: seed, Nodes: 5, LWGs: 10, Carriers: int(seed % 3), Steps: 4000, Switches: 5, Faults: FaultAll, FaultRate: 0.01})
		for _, v := range res.Violations {
			t.Errorf("seed %d: %v", seed, v)
		}
		t.Logf("seed %d: %+v", seed, res.Stats)
	}
}

// TestLWGOneFlushForThousand: 1,000 LWGs share one carrier of 4 nodes; one
// node crashes. Exactly one carrier view change follows, and it installs in
// every LWG the view without the crashed node, at every survivor.
func TestLWGOneFlushForThousand(t *testing.T) {
	const n = 1000
	s := NewLWGSim(LWGOptions{Seed: 7, Nodes: 4, LWGs: n, Size: 4, Carriers: 1})
	settle := func(what string, done func() bool) {
		t.Helper()
		for range 200_000 {
			if done() {
				return
			}
			s.Step()
		}
		t.Fatalf("%s: not reached\n%s", what, s.Dump())
	}
	settle("all LWGs with all 4 nodes", func() bool {
		for _, l := range s.ids {
			if _, ok := s.lwgConverged(l); !ok {
				return false
			}
		}
		return true
	})
	carrierInstalls := func() int {
		k := 0
		for _, e := range s.trace {
			if e.Ev == EvInstall && e.Group == "h/c0#1" && e.Node == 1 {
				k++
			}
		}
		return k
	}
	before, mark := carrierInstalls(), len(s.trace)
	if !s.Crash(4) {
		t.Fatal("crash refused")
	}
	settle("every LWG without node 4", func() bool {
		for _, l := range s.ids {
			for _, id := range []hwg.NodeID{1, 2, 3} {
				v, _, ok := s.node(id).core.View(l)
				if !ok || len(v.Members) != 3 {
					return false
				}
			}
		}
		return true
	})
	for range 2000 { // and nothing more happens
		s.Step()
	}
	if got := carrierInstalls() - before; got != 1 {
		t.Errorf("carrier view changes after the crash: %d, want 1", got)
	}
	installs := map[string]int{}
	for _, e := range s.trace[mark:] {
		if e.Ev == EvInstall && strings.HasPrefix(e.Group, "l/") {
			installs[e.Group]++
			if e.HWGView != uint64(before+1) {
				t.Fatalf("LWG %s installed on carrier view %d, want %d", e.Group, e.HWGView, before+1)
			}
		}
	}
	if len(installs) != n {
		t.Fatalf("%d LWGs installed a new view, want %d", len(installs), n)
	}
	for l, k := range installs {
		if k != 3 {
			t.Fatalf("LWG %s: %d installs, want one per survivor", l, k)
		}
	}
	if vs := CheckAll(s.trace); len(vs) > 0 {
		t.Fatalf("violations: %v", vs[0])
	}
}
