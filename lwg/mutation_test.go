package lwg_test

import (
	"testing"

	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/proptest"
)

// TestBrokenFlushIsCaught: with a join that installs the next view at once
// instead of flushing, seeded simulations find a violation, and the same
// seeds pass without the mutation. It proves the LWG simulator and
// checkers can see a broken LWG flush.
func TestBrokenFlushIsCaught(t *testing.T) {
	opts := func(seed uint64, broken bool) proptest.LWGOptions {
		o := proptest.LWGOptions{Seed: seed, Nodes: 4, LWGs: 6, Carriers: 1, Steps: 3000, SendRate: 0.5,
			Faults: proptest.FaultLeave | proptest.FaultJoin, FaultRate: 0.02}
		if broken {
			lwg.BreakFlush(&o.Core)
		}
		return o
	}
	for seed := uint64(1); seed <= 20; seed++ {
		r := proptest.RunLWG(opts(seed, true))
		if len(r.Violations) == 0 {
			continue
		}
		t.Logf("seed %d finds the broken flush: %.300s", seed, r.Violations[0])
		if good := proptest.RunLWG(opts(seed, false)); len(good.Violations) > 0 {
			t.Fatalf("seed %d fails without the mutation too: %.300s", seed, good.Violations[0])
		}
		return
	}
	t.Fatal("no seed in 1..20 found the broken LWG flush")
}
