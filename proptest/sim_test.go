package proptest

import (
	"bytes"
	"os"
	"strconv"
	"testing"
)

// simRuns is how many seeded simulations TestSimulations runs: 1,000 by
// default, 300 under the race detector (ten times slower), or
// LWGKIT_SOAK for a longer soak (for example LWGKIT_SOAK=100000).
func simRuns(t *testing.T) (runs, steps int) {
	if n, ok := soakRuns(t); ok {
		return n, 5000
	}
	if raceEnabled {
		return 300, 2000
	}
	return 1000, 2000
}

// soakRuns reads LWGKIT_SOAK, the number of runs of a longer soak.
func soakRuns(t *testing.T) (int, bool) {
	v := os.Getenv("LWGKIT_SOAK")
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("LWGKIT_SOAK=%q: want a positive number of runs", v)
	}
	return n, true
}

// simOptions varies the cluster with the seed so the runs cover 3 to 7
// nodes and both ways of answering Block.
func simOptions(seed uint64, steps int) Options {
	o := Options{
		Seed:          seed,
		Nodes:         3 + int(seed%5),
		Steps:         steps + int(seed%3)*steps*3/4,
		Faults:        FaultAll,
		ManualBlockOK: seed%2 == 0,
	}
	if seed%4 == 1 {
		// Tight windows: the sequencer parks forwards, the flow-control
		// paths and ErrBusy run under faults too.
		o.Group.MaxUnstable, o.Group.MaxUnstableBytes, o.Group.MaxPendingBytes = 8, 64, 32
	}
	return o
}

// TestSimulations runs seeded simulations with every fault and checks every
// invariant, liveness after the heal included. A run may end with its
// primary component provably lost (a crashed member's vote counted after
// its death); those must stay rare, and even they must be safe.
func TestSimulations(t *testing.T) {
	runs, steps := simRuns(t)
	var (
		lost     int
		total    Stats
		failures int
	)
	eachSeed(runs, func(seed uint64) Result { return Run(simOptions(seed, steps)) }, func(seed uint64, r Result) {
		total = addStats(total, r.Stats)
		if r.Stats.PrimaryLost {
			lost++
		}
		if len(r.Violations) > 0 && failures < 5 {
			failures++
			o := simOptions(seed, steps)
			t.Errorf("seed %d (nodes %d, steps %d, manual BlockOK %v): %d violations; replay with go run ./proptest/cmd/lwgsim -seed %d -nodes %d -steps %d -faults all -manual-blockok=%v",
				seed, o.Nodes, o.Steps, o.ManualBlockOK, len(r.Violations), seed, o.Nodes, o.Steps, o.ManualBlockOK)
			for i, v := range r.Violations {
				if i < 5 {
					t.Log(v)
				}
			}
		}
	})
	t.Logf("%d runs: %d installs, %d delivered, %d crashes, %d partitions, %d dropped, %d duplicated, %d joins, %d leaves, %d with the primary component lost",
		runs, total.Installs, total.Delivered, total.Crashes, total.Partitions, total.Dropped, total.Duplicated, total.Joins, total.Leaves, lost)
	if max := runs/20 + 1; lost > max {
		t.Errorf("%d of %d runs lost the primary component; more than %d means the protocol or the fault planner regressed", lost, runs, max)
	}
	// Every fault kind must actually have happened, or the run proves little.
	for name, n := range map[string]int{"crash": total.Crashes, "partition": total.Partitions, "drop": total.Dropped,
		"dup": total.Duplicated, "join": total.Joins, "leave": total.Leaves, "install": total.Installs} {
		if n == 0 {
			t.Errorf("no %s in %d runs: the fault planner is not exercising it", name, runs)
		}
	}
}

func addStats(a, b Stats) Stats {
	a.Steps += b.Steps
	a.Installs += b.Installs
	a.Sent += b.Sent
	a.Delivered += b.Delivered
	a.Crashes += b.Crashes
	a.Restarts += b.Restarts
	a.Partitions += b.Partitions
	a.Dropped += b.Dropped
	a.Duplicated += b.Duplicated
	a.Joins += b.Joins
	a.Leaves += b.Leaves
	return a
}

// TestRegressionSeeds replays the seeds that exposed bugs during
// development. Each line names what it caught.
func TestRegressionSeeds(t *testing.T) {
	for _, c := range []struct {
		opts Options
		why  string
	}{
		{simOptions(93, 2000), "an excluded member forgot the decision it was the last live witness of"},
		{simOptions(197, 2000), "a delayed join of a dead incarnation kept forcing identical view changes"},
		{simOptions(536, 2000), "a rejoining process installed a view it had been a continuing member of"},
		{simOptions(1326, 2000), "the fault planner let a laggard's view lose its majority"},
		{Options{Seed: 2}, "garbage collection cleared log entries that in-flight orders shared"},
		{lwgsimDefaults(1584), "a process excluded by Stale forgot what it had accepted (now a retired acceptor)"},
		{lwgsimDefaults(25), "two leavers dissolved the group behind a partitioned member"},
		{lwgsimDefaults(626), "everyone who answered was leaving and the rest was dead: a leaver must stay one view"},
		{lwgsimDefaults(1873), "the fault planner did not see a chosen view nobody had installed"},
		{lwgsimDefaults(41), "a group of one admitted a joiner whose request was long stale"},
		{lwgsimDefaults(49), "ballots restart with each view: a delayed answer from view 1 admitted dead joiners in view 2"},
		{simOptions(490, 2000), "a witness answered a laggard's Prepare as a joiner instead of with the decision"},
		{Options{Seed: 13, Nodes: 5, Steps: 2000, Faults: FaultAll}, "only witnesses knew a decision that admitted two joiners, and ignored their joins"},
		{simOptions(904, 2000), "a chosen view was not counted when classifying a lost primary"},
		{simOptions(1984, 5000), "stale suspicions made several members act as proposer and duel"},
		{simOptions(1674, 5000), "proposers duelled: restarts were not staggered and progress did not reset timers"},
	} {
		r := Run(c.opts)
		if len(r.Violations) > 0 {
			t.Errorf("seed %d (%s): %v", c.opts.Seed, c.why, r.Violations)
		}
		if !r.Stats.Converged && !r.Stats.PrimaryLost {
			t.Errorf("seed %d (%s): did not converge after the heal", c.opts.Seed, c.why)
		}
	}
}

// lwgsimDefaults are the options of go run ./proptest/cmd/lwgsim -seed S
// -nodes 5 -steps 5000 -faults all, under which some bugs were found.
func lwgsimDefaults(seed uint64) Options {
	return Options{Seed: seed, Nodes: 5, Steps: 5000, Faults: FaultAll}
}

// TestPrimaryLostClassifier: the one excuse from liveness is decided from
// ground truth. Killing members behind the fault planner's back, a view of
// three with one dead keeps its primary; with two dead it has lost it, and
// Run-style finishing then drops only liveness violations.
func TestPrimaryLostClassifier(t *testing.T) {
	s := NewSim(Options{Seed: 1, Nodes: 3})
	for range 200 {
		s.Step()
	}
	if s.primaryLost() {
		t.Fatal("a healthy cluster reported its primary lost")
	}
	s.nodes[2].alive = false
	if s.primaryLost() {
		t.Fatal("one dead member of three: the primary must survive")
	}
	if s.Crash(2) {
		t.Fatal("the planner crashed a second member of a view of three")
	}
	s.nodes[1].alive = false
	if !s.primaryLost() {
		t.Fatal("two dead members of three: the primary is lost")
	}
	if v := s.finish(); len(v) != 0 || !s.stats.PrimaryLost {
		t.Fatalf("finish after losing the primary: violations %v, PrimaryLost %v", v, s.stats.PrimaryLost)
	}
}

// TestDeterministic: the same options give a byte-identical trace.
func TestDeterministic(t *testing.T) {
	for _, seed := range []uint64{1, 7, 42} {
		var a, b bytes.Buffer
		if err := Run(simOptions(seed, 2000)).Trace.WriteJSONL(&a); err != nil {
			t.Fatal(err)
		}
		if err := Run(simOptions(seed, 2000)).Trace.WriteJSONL(&b); err != nil {
			t.Fatal(err)
		}
		if a.Len() == 0 || !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("seed %d: traces differ (%d vs %d bytes)", seed, a.Len(), b.Len())
		}
	}
}

// TestNoFaults: without faults nobody changes view and every multicast is
// delivered by every node.
func TestNoFaults(t *testing.T) {
	r := Run(Options{Seed: 3, Nodes: 5, Steps: 3000})
	if len(r.Violations) > 0 {
		t.Fatal(r.Violations)
	}
	if r.Stats.Installs != 5 {
		t.Errorf("installs = %d, want 5 (view 1 at each node)", r.Stats.Installs)
	}
	if r.Stats.Sent == 0 || r.Stats.Delivered != 5*r.Stats.Sent {
		t.Errorf("sent %d, delivered %d: want every message at all 5 nodes", r.Stats.Sent, r.Stats.Delivered)
	}
}

// TestSimulatorFindsBrokenFlush is in package hwg (mutation_test.go): it
// needs the core's unexported test hook.
