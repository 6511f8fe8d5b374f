package proptest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
)

func TestLWGSimNoFaults(t *testing.T) {
	for _, carriers := range []int{0, 1, 2} {
		res := RunLWG(LWGOptions{Seed: 1, Nodes: 4, LWGs: 6, Carriers: carriers, Steps: 2000, Switches: 8})
		for _, v := range res.Violations {
			t.Errorf("carriers=%d: %v", carriers, v)
		}
		// Without faults every LWG converges, messages flow, and switches
		// move members between carriers.
		if !res.Stats.Converged || res.Stats.Delivered == 0 || res.Stats.Moves == 0 {
			t.Errorf("carriers=%d: converged=%v delivered=%d moves=%d", carriers, res.Stats.Converged, res.Stats.Delivered, res.Stats.Moves)
		}
	}
}

// TestLWGOwnCarriersSettle: with an HWG per LWG and switches at 100 LWGs,
// the lazy leave of a carrier a switch emptied unregisters it in the
// directory late, and the run must wait for that traffic before the
// liveness checker reads the trace. These seeds ended with a directory
// message delivered at some members and still on its way to others.
func TestLWGOwnCarriersSettle(t *testing.T) {
	for _, seed := range []uint64{1, 5, 8, 9} {
		res := RunLWG(LWGOptions{Seed: seed, Nodes: 5, LWGs: 100, Carriers: 0, Switches: 20, Steps: 2000, Faults: FaultAll})
		for _, v := range res.Violations {
			t.Errorf("seed %d: %v", seed, v)
		}
		if !res.Stats.Converged || res.Stats.Moves == 0 {
			t.Errorf("seed %d: converged=%v moves=%d", seed, res.Stats.Converged, res.Stats.Moves)
		}
	}
}

// lwgOptions varies the LWG cluster with the seed: 3 to 6 nodes, 5 to 24
// LWGs, every carrier placement (one per LWG, one shared, two shared),
// up to 11 switches, fault rates, both ways of answering Hold.up; in a
// third of the runs control messages capped at 64 bytes, so snapshots go
// in many parts and batches are split (as tens of thousands of LWGs make
// them in a real cluster), and in half of them multicasts in bursts, so
// data of several LWGs rides in one HWG message.
func lwgOptions(seed uint64) LWGOptions {
	o := LWGOptions{
		Seed: seed, Nodes: 3 + int(seed%4), LWGs: 5 + int(seed%20), Carriers: int(seed % 3),
		Steps: 3000 + int(seed%5)*500, Switches: int(seed % 12), Faults: FaultAll,
		FaultRate: 0.003 + float64(seed%5)*0.003, ManualHoldOK: seed%4 == 0,
	}
	if seed%3 == 1 {
		o.Core.MaxMessageBytes = 64
	}
	if seed%2 == 0 {
		o.Burst = 4
	}
	return o
}

// lwgRuns: 300 seeded LWG simulations by default, 60 under the race
// detector, LWGKIT_SOAK for more.
func lwgRuns(t *testing.T) int {
	if n, ok := soakRuns(t); ok {
		return n
	}
	if raceEnabled {
		return 60
	}
	return 300
}

// TestLWGSimulations runs seeded LWG simulations with every fault, switches
// under traffic, and checks every invariant, LWG ones and liveness after
// the heal included.
func TestLWGSimulations(t *testing.T) {
	runs := lwgRuns(t)
	var (
		failures int
		lost     int
		total    LWGStats
	)
	eachSeed(runs, func(seed uint64) LWGResult { return RunLWG(lwgOptions(seed)) }, func(seed uint64, r LWGResult) {
		total.Switches += r.Stats.Switches
		total.LWGInstalls += r.Stats.LWGInstalls
		total.Delivered += r.Stats.Delivered
		total.Crashes += r.Stats.Crashes
		total.Partitions += r.Stats.Partitions
		total.Batched += r.Stats.Batched
		if r.Stats.PrimaryLost {
			lost++
		}
		if len(r.Violations) > 0 && failures < 5 {
			failures++
			t.Errorf("seed %d (%+v): %d violations, first: %.3000s", seed, lwgOptions(seed), len(r.Violations), r.Violations[0])
		}
	})
	t.Logf("%d runs: %d switches requested, %d LWG installs, %d deliveries (%d multicasts sent in batches), %d crashes, %d partitions; %d ended with an HWG's primary lost",
		runs, total.Switches, total.LWGInstalls, total.Delivered, total.Batched, total.Crashes, total.Partitions, lost)
	if total.Batched == 0 {
		t.Error("no multicast was sent in a batch: the burst runs exercised nothing")
	}
	if lost*10 > runs {
		t.Errorf("%d of %d runs lost a primary component; the fault planner should keep that rare", lost, runs)
	}
}

// runtimeWiring has o's layers wired as lwg.Service and hwg.Node wire them:
// events and actions through queues (LWGOptions.Async), and groups with
// LazyAcks and LazyRetransmit.
func runtimeWiring(o *LWGOptions) {
	o.Async = true
	o.Group.LazyAcks, o.Group.LazyRetransmit = true, true
}

// TestLWGSimulationsAsync runs seeded LWG simulations with the layers wired
// as in the runtime: the lwg core sees the HWG events late, in batches,
// while the groups go on; its multicasts and BlockOKs, and its joins and
// leaves, reach the groups late, apart from each other; a join or leave
// of a group being left waits for the leave.
func TestLWGSimulationsAsync(t *testing.T) {
	runs := lwgRuns(t) / 2
	var (
		failures int
		total    LWGStats
	)
	opts := func(seed uint64) LWGOptions {
		o := lwgOptions(seed)
		runtimeWiring(&o)
		return o
	}
	eachSeed(runs, func(seed uint64) LWGResult { return RunLWG(opts(seed)) }, func(seed uint64, r LWGResult) {
		total.Waited += r.Stats.Waited
		total.Moves += r.Stats.Moves
		total.Crashes += r.Stats.Crashes
		if len(r.Violations) > 0 && failures < 5 {
			failures++
			t.Errorf("seed %d (%+v): %d violations, first: %.3000s", seed, opts(seed), len(r.Violations), r.Violations[0])
		}
	})
	t.Logf("%d runs: %d moves, %d crashes, %d joins or leaves waited for a leave", runs, total.Moves, total.Crashes, total.Waited)
	// (Requests held behind a leave are rare here, and frequent in
	// TestRSMSimulationsAsync, which requires them.)
	if total.Moves == 0 || total.Crashes == 0 {
		t.Errorf("the runs exercised too little: %+v", total)
	}
}

// TestLWGDirectoryAnswersItsBlocks: runs wired as the runtime is, in which
// nodes' cores fall behind on events. With the core answering the
// directory's Blocks (as lwg.Service had it), each directory member that
// held the directory's state answered late, was excluded, and came back
// without it, until no member held it and every LWG stalled for good
// (seeds 115 and 139, found by a review of the asynchronous wiring). As
// the Service sets it now, the group answers them itself and the run
// passes. With the old setting such runs now pass too, restoring late
// states: the directory's members keep the state they held when cut off
// and offer it when back, and joiners take late snapshots (seed 346 is one
// of 1..1,500 that needs them; lwg's TestDirectoryRecoveryIsCaught shows
// that without them such runs stall).
func TestLWGDirectoryAnswersItsBlocks(t *testing.T) {
	for _, seed := range []uint64{346} {
		o := lwgOptions(seed)
		runtimeWiring(&o)
		for _, v := range RunLWG(o).Violations {
			t.Errorf("seed %d: %.2000s", seed, v)
		}
		o.manualDirectory = true
		r := RunLWG(o)
		for _, v := range r.Violations {
			t.Errorf("seed %d with the core answering the directory's Blocks: %.2000s", seed, v)
		}
		if r.Stats.LateRestores == 0 {
			t.Errorf("seed %d with the core answering the directory's Blocks restored no late state: it no longer shows the hazard (pick another seed)", seed)
		}
	}
}

// lwgRegressions are runs that once failed, each named for the bug it
// caught; they must pass for good.
var lwgRegressions = []struct {
	bug  string
	opts LWGOptions
}{
	{"a rejoiner's group core forgot its views and installed one twice", LWGOptions{Seed: 12, Nodes: 5, LWGs: 10, Carriers: 0, Steps: 4000, Switches: 5, Faults: FaultAll, FaultRate: 0.01}},
	{"a partition made the directory kill a live carrier: a second life of an LWG", LWGOptions{Seed: 6, Nodes: 5, LWGs: 10, Carriers: 0, Steps: 4000, Switches: 5, Faults: FaultAll, FaultRate: 0.01}},
	{"a registration lost with a directory membership was never retried", LWGOptions{Seed: 16, Nodes: 5, LWGs: 10, Carriers: 1, Steps: 4000, Switches: 5, Faults: FaultAll, FaultRate: 0.01}},
	{"a join that followed a move restarted view ids (view agreement)", LWGOptions{Seed: 110, Nodes: 5, LWGs: 10, Carriers: 2, Steps: 4000, Switches: 5, Faults: FaultAll, FaultRate: 0.01}},
	{"a switch arrival held the new carrier's BlockOK: deadlock", LWGOptions{Seed: 22, Nodes: 5, LWGs: 10, Carriers: 1, Steps: 4000, Switches: 5, Faults: FaultAll, FaultRate: 0.01}},
	{"an exclusion looked like a move to the checkers (exclude events)", LWGOptions{Seed: 226, Nodes: 5, LWGs: 10, Carriers: 1, Steps: 4000, Switches: 5, Faults: FaultAll, FaultRate: 0.01}},
	{"every member of a carrier waited for a snapshot nobody held", LWGOptions{Seed: 19, Nodes: 5, LWGs: 10, Carriers: 1, Steps: 4000, Switches: 5, Faults: FaultAll, FaultRate: 0.01}},
	{"a rebind lost while out of the directory let the old carrier die", LWGOptions{Seed: 12, Nodes: 5, LWGs: 10, Carriers: 0, Steps: 4000, Switches: 5, Faults: FaultAll, FaultRate: 0.01, ManualHoldOK: true}},
	{"an LWG that moved to a carrier that died was stranded", LWGOptions{Seed: 213, Nodes: 5, LWGs: 10, Carriers: 0, Steps: 4000, Switches: 5, Faults: FaultAll, FaultRate: 0.01}},
	{"a fresh life was bound to the carrier holding the move record: bind loop", LWGOptions{Seed: 114, Nodes: 5, LWGs: 10, Carriers: 0, Steps: 4000, Switches: 5, Faults: FaultAll, FaultRate: 0.01}},
	{"a joiner's membership reached the directory after the carrier was declared dead", lwgOptions(335)},
	{"a Join during a Leave was dropped", lwgOptions(688)},
	{"members without the table left a carrier behind a member stranded in an old view", lwgOptions(245)},
	{"members lazily left a carrier behind a member stranded in an old view", lwgOptions(1848)},
	// Found by lwg-directory-regs (lwgsim -seed 53 -lwgs 200 -carriers 1
	// -switches 50 -manual-blockok, and -seed 21 -nodes 7 -lwgs 60
	// -carriers 0 -switches 40).
	{"a member's late kMember registered a crashed incarnation again", LWGOptions{Seed: 53, Nodes: 5, LWGs: 200, Size: 3, Carriers: 1, Steps: 2000, Switches: 50, Faults: FaultAll, ManualHoldOK: true}},
	{"a carrier created for a switch that ended stayed registered to its creator", LWGOptions{Seed: 21, Nodes: 7, LWGs: 60, Size: 3, Carriers: 0, Steps: 2000, Switches: 40, Faults: FaultAll}},
}

func TestLWGRegressions(t *testing.T) {
	for _, r := range lwgRegressions {
		t.Run(r.bug, func(t *testing.T) {
			res := RunLWG(r.opts)
			for _, v := range res.Violations {
				t.Errorf("%.3000s", v)
			}
		})
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

// TestLWGDeterministic: one seed gives one trace, with bursts of data on
// two shared carriers (batches flushed per carrier in every step) and
// control messages in parts.
func TestLWGDeterministic(t *testing.T) {
	o := lwgOptions(14) // two carriers and bursts
	o.Core.MaxMessageBytes = 64
	if o.Carriers != 2 || o.Burst < 2 {
		t.Fatalf("seed 14 no longer gives two carriers with bursts: %+v", o)
	}
	var a, b bytes.Buffer
	ra := RunLWG(o)
	if err := ra.Trace.WriteJSONL(&a); err != nil {
		t.Fatal(err)
	}
	if err := RunLWG(o).Trace.WriteJSONL(&b); err != nil {
		t.Fatal(err)
	}
	if ra.Stats.Batched == 0 || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("batched %d; traces of %d and %d bytes differ: %v", ra.Stats.Batched, a.Len(), b.Len(), !bytes.Equal(a.Bytes(), b.Bytes()))
	}
}
