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
