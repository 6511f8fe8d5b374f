package proptest

import (
	"fmt"
	"testing"
)

func TestComposeBenchSmall(t *testing.T) {
	for _, topo := range []string{"flat16", "star4x4"} {
		for _, share := range []float64{0.1, 1} {
			r, err := RunComposeBench(ComposeBenchOptions{Topology: topo, AllShare: share, Messages: 100, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Log(fmt.Sprintf("%+v", r))
		}
	}
}
