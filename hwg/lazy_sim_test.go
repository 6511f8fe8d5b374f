package hwg_test

import (
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/proptest"
)

// lazy is the part of the Config a Node always sets (Config.LazyAcks and
// Config.LazyRetransmit). The simulator's own tests run without it, so
// that their fixed seeds keep their schedules; these runs check the same
// invariants, liveness after the heal included, with it.
func lazy(c hwg.Config) hwg.Config {
	c.LazyAcks, c.LazyRetransmit = true, true
	return c
}

func TestSimulationsLazy(t *testing.T) {
	runs := 400
	if testing.Short() {
		runs = 100
	}
	lost := 0
	for seed := uint64(1); seed <= uint64(runs); seed++ {
		// As proptest's TestSimulations varies its runs.
		o := proptest.Options{Seed: seed, Nodes: 3 + int(seed%5), Steps: 2000 + int(seed%3)*1500,
			Faults: proptest.FaultAll, ManualBlockOK: seed%2 == 0}
		if seed%4 == 1 {
			o.Group.MaxUnstable, o.Group.MaxUnstableBytes, o.Group.MaxPendingBytes = 8, 64, 32
		}
		o.Group = lazy(o.Group)
		r := proptest.Run(o)
		if r.Stats.PrimaryLost {
			lost++
		}
		if len(r.Violations) > 0 {
			t.Fatalf("seed %d (%+v): %d violations, first: %.2000s", seed, o, len(r.Violations), r.Violations[0])
		}
	}
	if lost > runs/20+1 {
		t.Errorf("%d of %d runs lost the primary component", lost, runs)
	}
}

func TestLWGSimulationsLazy(t *testing.T) {
	runs := 60
	if testing.Short() {
		runs = 20
	}
	for seed := uint64(1); seed <= uint64(runs); seed++ {
		// As proptest's TestLWGSimulations varies its runs.
		o := proptest.LWGOptions{Seed: seed, Nodes: 3 + int(seed%4), LWGs: 5 + int(seed%20), Carriers: int(seed % 3),
			Steps: 3000 + int(seed%5)*500, Switches: int(seed % 12), Faults: proptest.FaultAll,
			FaultRate: 0.003 + float64(seed%5)*0.003, ManualHoldOK: seed%4 == 0}
		if seed%3 == 1 {
			o.Core.MaxMessageBytes = 64
		}
		o.Group = lazy(o.Group)
		r := proptest.RunLWG(o)
		if len(r.Violations) > 0 {
			t.Fatalf("seed %d (%+v): %d violations, first: %.2000s", seed, o, len(r.Violations), r.Violations[0])
		}
	}
}
