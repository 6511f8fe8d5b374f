package lwg_test

import (
	"slices"
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

// TestStaleRegistrationIsCaught: a node back in the directory that does not
// unregister the carriers it is out of leaves a registration behind, and
// the simulator's lwg-directory-regs check reports it; the same run passes
// without the mutation. It is the test of that correction, which no other
// checker notices (the carrier merely stays alive, with no member).
func TestStaleRegistrationIsCaught(t *testing.T) {
	opts := func(broken bool) proptest.LWGOptions {
		// A leak never settles: a shorter quiescent budget ends the run sooner.
		o := proptest.LWGOptions{Seed: 36, Nodes: 5, LWGs: 100, Size: 3, Carriers: 0, Steps: 2000, Switches: 20, Faults: proptest.FaultAll, QuiescentSteps: 60_000}
		if broken {
			lwg.KeepStaleRegs(&o.Core)
		}
		return o
	}
	r := proptest.RunLWG(opts(true))
	if !slices.ContainsFunc(r.Violations, func(v proptest.Violation) bool { return v.Checker == "lwg-directory-regs" }) {
		t.Fatalf("seed 36 does not find the registration left behind: %v", r.Violations)
	}
	if good := proptest.RunLWG(opts(false)); len(good.Violations) > 0 {
		t.Fatalf("seed 36 fails without the mutation too: %.300s", good.Violations[0])
	}
}

// TestDirectoryRecoveryIsCaught: runs wired as the runtime is, in which
// partitions cut off one directory member holding the state after another
// before the snapshots they owed a joiner were delivered. With the
// replicas' recoveries undone (a joiner takes only its current view's
// snapshot, and a member cut off drops its state), no member is left
// holding the directory and every LWG stalls; as built, the same runs
// converge, restoring late snapshots and kept states. (RSM seeds 542 and
// 946 of the tests' options, found by the simulator with the application
// wired apart.)
func TestDirectoryRecoveryIsCaught(t *testing.T) {
	opts := func(seed uint64, forget, broken bool) proptest.RSMOptions {
		o := proptest.RSMOptions{LWG: proptest.LWGOptions{
			Seed: seed, Nodes: 3 + int(seed%4), LWGs: 2 + int(seed%8), Carriers: int(seed % 3),
			Steps: 3000 + int(seed%3)*1000, Switches: int(seed % 4), Faults: proptest.FaultAll,
			FaultRate: 0.004 + float64(seed%3)*0.002, ManualHoldOK: seed%4 == 0, Async: true,
		}}
		o.LWG.Group.LazyAcks, o.LWG.Group.LazyRetransmit = true, true
		if forget {
			o.Forget = 0.2
		}
		if broken {
			lwg.CurrentSnapshotsOnly(&o.LWG.Core)
		}
		return o
	}
	for _, c := range []struct {
		seed   uint64
		forget bool
	}{{542, false}, {946, true}} {
		r := proptest.RunRSM(opts(c.seed, c.forget, true))
		if !slices.ContainsFunc(r.Violations, func(v proptest.Violation) bool { return v.Checker == "liveness" }) {
			t.Errorf("seed %d without the recoveries converged: it no longer shows the stall (%d violations)", c.seed, len(r.Violations))
		}
		good := proptest.RunRSM(opts(c.seed, c.forget, false))
		for _, v := range good.Violations {
			t.Errorf("seed %d: %.2000s", c.seed, v)
		}
		if good.Stats.LWG.LateRestores == 0 {
			t.Errorf("seed %d converged without a late restore", c.seed)
		}
	}
}
