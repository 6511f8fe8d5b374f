package proptest

import (
	"testing"
)

// TestComposeBench checks the experiment's accounting on small runs:
// every message completes, each reaches exactly the members of the groups
// it is addressed to, and a message crossing routers takes longer than
// one ordered in a single group.
func TestComposeBench(t *testing.T) {
	run := func(topo string, share float64) ComposeBenchResult {
		t.Helper()
		r, err := RunComposeBench(ComposeBenchOptions{Topology: topo, AllShare: share, Messages: 160, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		if r.Messages != 160 {
			t.Fatalf("%s: %d messages complete, want 160", topo, r.Messages)
		}
		t.Logf("%+v", r)
		return r
	}
	flat := run("flat16", 1)
	if flat.Deliveries != 160*16 {
		t.Fatalf("flat16: %d deliveries, want %d", flat.Deliveries, 160*16)
	}
	star := run("star4x4", 1)
	if star.Deliveries != 160*(7+5+5+5) {
		t.Fatalf("star4x4, all global: %d deliveries, want %d", star.Deliveries, 160*22)
	}
	if star.MeanLatency <= flat.MeanLatency {
		t.Fatalf("global messages through routers (%.1f) no slower than in one group (%.1f)", star.MeanLatency, flat.MeanLatency)
	}
	local := run("star4x4", 0.1)
	if local.MaxLoad >= flat.MaxLoad {
		t.Fatalf("star4x4 at 10%% global: busiest node's load %.2f, flat16 %.2f", local.MaxLoad, flat.MaxLoad)
	}
}
