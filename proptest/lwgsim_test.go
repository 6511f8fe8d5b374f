package proptest

import (
	"testing"
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
