package proptest

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/lwgkit/lwgkit/rsm/rsmtest"
)

// rsmFaults are the faults of the seeded RSM runs: all of them.
const rsmFaults = FaultAll

// rsmOptions varies the RSM cluster with the seed: 3 to 6 nodes, 2 to 9
// objects, each LWG on its own carrier or on shared ones, switches, and
// both ways of answering Hold.up.
func rsmOptions(seed uint64) RSMOptions {
	return RSMOptions{LWG: LWGOptions{
		Seed: seed, Nodes: 3 + int(seed%4), LWGs: 2 + int(seed%8), Carriers: int(seed % 3),
		Steps: 3000 + int(seed%3)*1000, Switches: int(seed % 4), Faults: rsmFaults,
		FaultRate: 0.004 + float64(seed%3)*0.002, ManualHoldOK: seed%4 == 0,
	}}
}

func rsmRuns(t *testing.T) int {
	if n, ok := soakRuns(t); ok {
		return n
	}
	if raceEnabled {
		return 40
	}
	return 100
}

func TestRSMSimNoFaults(t *testing.T) {
	r := RunRSM(RSMOptions{LWG: LWGOptions{Seed: 1}})
	for _, v := range r.Violations {
		t.Errorf("%.2000s", v)
	}
	st := r.Stats
	if !st.LWG.Converged || st.Received == 0 || st.Applies == 0 || st.Snapshots == 0 || st.Answered == 0 || st.Unknown != 0 || st.Batches == 0 {
		t.Errorf("stats: %+v", st)
	}
}

// TestRSMSimulations runs seeded RSM simulations under crashes, loss,
// duplication, reordering, partitions, joins, leaves and switches, with
// every checker: LWG ones, rsm-digest, rsm-index, rsm-joiner,
// restore-and-replay, linearizability, and that every replica gets the
// state after the heal.
func TestRSMSimulations(t *testing.T) {
	runs := rsmRuns(t)
	var (
		failures int
		total    RSMStats
	)
	eachSeed(runs, func(seed uint64) RSMResult { return RunRSM(rsmOptions(seed)) }, func(seed uint64, r RSMResult) {
		total.Proposals += r.Stats.Proposals
		total.Reads += r.Stats.Reads
		total.Unknown += r.Stats.Unknown
		total.Received += r.Stats.Received
		total.LWG.Crashes += r.Stats.LWG.Crashes
		total.Operations += r.Stats.Operations
		if len(r.Violations) > 0 && failures < 5 {
			failures++
			t.Errorf("seed %d (%+v): %d violations, first: %.3000s", seed, rsmOptions(seed).LWG, len(r.Violations), r.Violations[0])
		}
	})
	t.Logf("%d runs: %d proposals, %d reads, %d outcomes unknown, %d states received, %d crashes, %d operations checked",
		runs, total.Proposals, total.Reads, total.Unknown, total.Received, total.LWG.Crashes, total.Operations)
	if total.Received == 0 || total.LWG.Crashes == 0 || total.Unknown == 0 {
		t.Errorf("the runs exercised too little: %+v", total)
	}
}

// forgetOptions is rsmOptions with an operator who calls ForgetAbsent.
func forgetOptions(seed uint64) RSMOptions {
	o := rsmOptions(seed)
	o.Forget = 0.2
	return o
}

// TestRSMSimulationsForget runs seeded RSM simulations in which an
// operator calls ForgetAbsent on replicas that wait for their state, often
// (a fifth of the requests that find one), with every fault and checker:
// giving up on absent holders must never make two states in one view,
// split the replicas of a view, or break linearizability within a life.
func TestRSMSimulationsForget(t *testing.T) {
	runs := rsmRuns(t) / 2
	forgets, branches, lives := 0, 0, 0
	for seed := uint64(1); seed <= uint64(runs); seed++ {
		o := forgetOptions(seed)
		r := RunRSM(o)
		forgets += r.Stats.Forgets
		branches += r.Stats.Branches
		lives += r.Stats.Lives
		if len(r.Violations) > 0 {
			t.Fatalf("seed %d (%+v): %d violations, first: %.3000s", seed, o.LWG, len(r.Violations), r.Violations[0])
		}
	}
	if forgets == 0 {
		t.Fatal("no replica ever waited for its state: nothing was forgotten")
	}
	t.Logf("%d runs, %d ForgetAbsent calls, %d lives, %d of them going on from a kept state", runs, forgets, lives, branches)
}

// TestRSMSimulationsAsync runs seeded RSM simulations, half of them with
// an operator who calls ForgetAbsent, with the layers wired as in the
// runtime (runtimeWiring): every fault and checker.
func TestRSMSimulationsAsync(t *testing.T) {
	runs := rsmRuns(t)
	var (
		failures int
		total    RSMStats
	)
	opts := func(seed uint64) RSMOptions {
		o := rsmOptions(seed)
		if seed%2 == 0 {
			o = forgetOptions(seed)
		}
		runtimeWiring(&o.LWG)
		return o
	}
	eachSeed(runs, func(seed uint64) RSMResult { return RunRSM(opts(seed)) }, func(seed uint64, r RSMResult) {
		total.Received += r.Stats.Received
		total.Unknown += r.Stats.Unknown
		total.Forgets += r.Stats.Forgets
		total.LWG.Waited += r.Stats.LWG.Waited
		if len(r.Violations) > 0 && failures < 5 {
			failures++
			t.Errorf("seed %d (%+v): %d violations, first: %.3000s", seed, opts(seed).LWG, len(r.Violations), r.Violations[0])
		}
	})
	t.Logf("%d runs: %d states received, %d outcomes unknown, %d ForgetAbsent calls, %d joins or leaves waited for a leave",
		runs, total.Received, total.Unknown, total.Forgets, total.LWG.Waited)
	if total.Received == 0 || total.Forgets == 0 || total.LWG.Waited == 0 {
		t.Errorf("the runs exercised too little: %+v", total)
	}
}

// rsmRegressions are RSM runs that once failed, each named for the bug it
// caught; they must pass for good.
var rsmRegressions = []struct {
	bug  string
	opts RSMOptions
}{
	{"a claim round started the object over while its holder was partitioned away, and applied the commands it had queued to the empty state", rsmOptions(92)},
	{"porcupine did not decide 50-60 operations of a key: commands of a leaving node, open forever", rsmOptions(88)},
	{"porcupine did not decide 43-67 operations of a key: commands of a leaving node, open forever", rsmOptions(56)},
	{"a replica that left with the state came back alone and went on from it while a later holder was partitioned away", rsmOptions(233)},
	{"a lone rejoiner forgot the holder it had seen before it left, started over, and a claim it sent before seeding made the holder seed too: two states in one view", rsmOptions(448)},
	{"a claim sent before its sender seeded reached the next view, where a returning holder counted it and seeded too: two states in one view", rsmOptions(662)},
	{"the fault planner crashed the only holder of the latest state while it was not ready (rejoining after an exclusion): it counted ready replicas only, so the group went on from an older state", rsmOptions(568)},
	{"the fault planner crashed the only holder of the latest state, because another replica held an older one", rsmOptions(580)},
	{"a replica alone in an all-new view that did not begin a life started the object over after two empty rounds, and a partitioned holder's state was dropped when it came back", rsmOptions(628)},
	{"after a ForgetAbsent a member went on from the state it kept while a newer holder was away; the simulator took that for the same life, whose acknowledged commands were missing (a checker bug: such a continuation is a life of its own; found with the first FORGET, which did not expire with its view; with FORGET scoped to its view this run no longer gets there)", forgetOptions(332)},
	{"a carrier's last member left it and was excluded from the directory before its unregistration was delivered; back in the directory it stayed registered, so the carrier never died and its joiners waited for it after the heal", rsmOptions(1178)},
	{"the fault planner unmarked a leaving node when the join it asked was refused (its leave was under way), took it for a holder that stays, and let the only other holder of the state leave: that one applied newer commands alone, and the first came back with its older state", rsmOptions(5168)},
	{"the same as 5168: a refused join unmarked a leaving holder, and the other holder was let leave", rsmOptions(5789)},
	{"a node lazily leaving a carrier it held nothing on acknowledged a switch to it; the leave then ended its endpoint (EventExcluded) while its peer, which joined the carrier later, kept it in the LWG and announced it there once the node was back: its replica, state dropped, waited for a transfer nobody owed it", rsmOptions(6131)},
	{"the only member of an LWG that had switched was excluded from the new carrier before announcing it there and ended its endpoint; hwg took it back into the carrier, and the LWG's joiners, this node's among them, waited for an announcement nobody would make", rsmOptions(10690)},
	{"an LWG switched (the rebind raised its directory version to 2, its view ids kept version 1) and ended on the new carrier; a member excluded before the switch, with an older state, joined through the directory and the table took the join for a new life (view 2.1, nobody vanished): it went on from its state, and the commands the absent holder had applied were lost", forgetOptions(11201)},
	{"the fault planner let the only member of an LWG leave because a node outside the LWG kept a state at the same index; the member applied three more commands during its leave, and the node that came back went on from its older state (a planner bug: only holders ready in the leaver's view count)", rsmOptions(5540)},
	{"the same as 5540, with the node that had left still in the leaver's view (the flush of its leave was slow); asked while excluded, the leaver came back alone before its leave ended", forgetOptions(13096)},
	{"a node left a carrier of two whose other member missed the decision removing it; hwg.Node dropped the left Group after 20 view-change rounds (the simulator, which kept it, could not show this), and the member stayed in its view change for good, the leaver answering it as a joiner (found once the simulator kept left groups as the node does)", forgetOptions(2936)},
	{"a simulator bug: a join the Core asked before it read the EventLeft of the same group started a new membership, and the simulator then put that group away as left, dropping its install (the node puts a group away as it leaves)", forgetOptions(4570)},
}

func TestRSMRegressions(t *testing.T) {
	for _, r := range rsmRegressions {
		t.Run(r.bug, func(t *testing.T) {
			if r.opts.LWG.Faults&FaultPartition == 0 {
				t.Fatal("the regression runs have partitions")
			}
			res := RunRSM(r.opts)
			for _, v := range res.Violations {
				t.Errorf("%.3000s", v)
			}
		})
	}
}

func TestRSMDeterministic(t *testing.T) {
	o := rsmOptions(7)
	var a, b bytes.Buffer
	if err := RunRSM(o).Trace.WriteJSONL(&a); err != nil {
		t.Fatal(err)
	}
	if err := RunRSM(o).Trace.WriteJSONL(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("one seed gave two traces")
	}
	tr, err := ReadJSONL(&a)
	if err != nil {
		t.Fatal(err)
	}
	if vs := CheckRSM(tr); len(vs) > 0 {
		t.Fatalf("the trace read back: %v", vs[0])
	}
}

// cleanRSMTrace is the trace of a faulty run that passes, with states
// received from donors.
func cleanRSMTrace(t *testing.T) Trace {
	t.Helper()
	r := RunRSM(rsmOptions(3))
	if len(r.Violations) > 0 || r.Stats.Received == 0 {
		t.Fatalf("the base run: %d violations, %+v", len(r.Violations), r.Stats)
	}
	return r.Trace
}

func fired(vs []Violation, name string) bool {
	return slices.ContainsFunc(vs, func(v Violation) bool { return v.Checker == name })
}

func TestRSMCheckersCatchMutations(t *testing.T) {
	tr := cleanRSMTrace(t)
	find := func(tr Trace, ok func(i int, e Event) bool) int {
		for i, e := range tr {
			if ok(i, e) {
				return i
			}
		}
		t.Fatal("no such event")
		return -1
	}
	t.Run("digest", func(t *testing.T) {
		m := slices.Clone(tr)
		seen := map[[2]any]bool{}
		i := find(m, func(_ int, e Event) bool {
			k := [2]any{e.Group, e.Index}
			if e.Ev != EvApply || e.Index < 3 {
				return false
			}
			if seen[k] {
				return true // the second replica to apply this index
			}
			seen[k] = true
			return false
		})
		m[i].Digest = strings.Repeat("ab", 32)
		if vs := CheckRSM(m); !fired(vs, nameRSMDigest) {
			t.Fatalf("rsm-digest silent: %v", vs)
		}
	})
	t.Run("index", func(t *testing.T) {
		i := find(tr, func(_ int, e Event) bool { return e.Ev == EvApply && e.Index > 3 })
		m := slices.Delete(slices.Clone(tr), i, i+1)
		if vs := CheckRSM(m); !fired(vs, nameRSMIndex) {
			t.Fatalf("rsm-index silent: %v", vs)
		}
	})
	t.Run("apply-without-state", func(t *testing.T) {
		i := find(tr, func(_ int, e Event) bool { return e.Ev == EvState && e.From != 0 })
		m := slices.Delete(slices.Clone(tr), i, i+1)
		if vs := CheckRSM(m); !fired(vs, nameRSMIndex) {
			t.Fatalf("rsm-index silent: %v", vs)
		}
	})
	t.Run("joiner", func(t *testing.T) {
		m := slices.Clone(tr)
		i := find(m, func(_ int, e Event) bool { return e.Ev == EvState && e.From != 0 })
		m[i].Digest = strings.Repeat("cd", 32)
		if vs := CheckRSM(m); !fired(vs, nameRSMJoiner) {
			t.Fatalf("rsm-joiner silent: %v", vs)
		}
	})
	t.Run("joiner-index", func(t *testing.T) {
		// A snapshot said to be at an index its donor never reached.
		m := slices.Clone(tr)
		i := find(m, func(_ int, e Event) bool { return e.Ev == EvState && e.From != 0 })
		m[i].Index += 1000
		if vs := CheckRSM(m); !fired(vs, nameRSMJoiner) {
			t.Fatalf("rsm-joiner silent: %v", vs)
		}
	})
}

// corruptingRestore wraps a state machine whose Restore changes the state
// after restoring it: snapshots no longer reproduce the state.
type corruptingRestore struct {
	rsm.StateMachine
	cmd []byte
}

func (c *corruptingRestore) Restore(r io.Reader) error {
	if err := c.StateMachine.Restore(r); err != nil {
		return err
	}
	_, err := c.StateMachine.Apply(c.cmd)
	return err
}

func (c *corruptingRestore) Query(q []byte) ([]byte, error) {
	return c.StateMachine.(rsm.Querier).Query(q)
}

func TestRSMSnapshotCheckerCatchesBadRestore(t *testing.T) {
	o := rsmOptions(3)
	o.Factory = func(id rsm.ObjectID) (rsm.StateMachine, error) {
		if id[len(id)-1]%2 == 0 {
			m, _ := rsmtest.NewMap(id)
			return &corruptingRestore{m, rsmtest.Set("zz", "corrupt")}, nil
		}
		return &corruptingRestore{&rsmtest.Counter{}, rsmtest.Add(1)}, nil
	}
	r := RunRSM(o)
	if !fired(r.Violations, nameRSMSnapshot) {
		t.Fatalf("rsm-snapshot silent: %v", r.Violations)
	}
	if !fired(r.Violations, nameRSMDigest) {
		t.Errorf("joiners restored a corrupt state but rsm-digest is silent")
	}
}

type failingRestore struct{ rsm.StateMachine }

func (f failingRestore) Restore(io.Reader) error { return errors.New("restore refused") }
func (f failingRestore) Query(q []byte) ([]byte, error) {
	return f.StateMachine.(rsm.Querier).Query(q)
}

func TestRSMLivenessCatchesStuckJoiner(t *testing.T) {
	o := RSMOptions{LWG: LWGOptions{Seed: 2, Nodes: 3, LWGs: 2, Steps: 1000}, SettleSteps: 20_000}
	o.Factory = func(id rsm.ObjectID) (rsm.StateMachine, error) {
		m, _ := rsmtest.NewMap(id)
		return failingRestore{m}, nil
	}
	r := RunRSM(o)
	if !fired(r.Violations, nameRSMLiveness) {
		t.Fatalf("rsm-liveness silent: %v", r.Violations)
	}
}

func TestRSMCommandCheck(t *testing.T) {
	r := &rsmSim{log: map[lifeIndex]logEntry{}, s: &LWGSim{}}
	p, q := hwg.Process{Node: 1, Inc: 1}, hwg.Process{Node: 2, Inc: 1}
	r.logDigest("o", 1, 5, "d", []byte("set a 1"), p)
	r.logDigest("o", 1, 5, "d", []byte("set a 1"), q)
	if len(r.extra) != 0 {
		t.Fatalf("equal commands reported: %v", r.extra)
	}
	r.logDigest("o", 1, 5, "d", []byte("set a 2"), q)
	if !fired(r.extra, nameRSMCommand) {
		t.Fatal("different commands at one index not reported")
	}
}

// TestRSMPlannerKeepsLeaverMarked: the shape of RSM seeds 5168 and 5789.
// A join the fault planner asks of a node whose leave is under way is
// refused (lwg: already a member), and the node still leaves; the
// planner unmarked it anyway, took it for a member that stays with the
// state, and let the only other holder leave too. That one applied newer
// commands alone before its leave completed, the first came back alone
// with its older state and went on from it (the holder had left
// voluntarily, which rsm accepts), and two states stood at one index.
func TestRSMPlannerKeepsLeaverMarked(t *testing.T) {
	r := newRSMSim(RSMOptions{LWG: LWGOptions{Seed: 5, Nodes: 3, LWGs: 2, Size: 3, Carriers: 1}})
	s := r.s
	obj := rsm.ObjectID("0")
	l := obj.LWG()
	for i := 0; ; i++ {
		ready := 0
		for _, n := range s.nodes {
			if _, _, ok := r.nodes[n.id].sn.State(obj); ok {
				ready++
			}
		}
		if ready == len(s.nodes) {
			break
		}
		if i == 100_000 {
			t.Fatalf("the replicas did not get ready\n%s", r.dump())
		}
		s.Step()
	}
	if !s.Leave(3, l) || !s.Leave(1, l) {
		t.Fatal("a leave was refused while another member held the state")
	}
	if s.Rejoin(1) {
		t.Fatal("node 1 joined again while its leave was under way")
	}
	if s.Leave(2, l) {
		t.Fatal("node 2, the only holder that stays, was let leave: node 1's refused join unmarked it as leaving")
	}
	for i := 0; ; i++ {
		if _, _, ok := s.node(1).core.View(l); !ok {
			break
		}
		if i == 100_000 {
			t.Fatal("node 1's leave did not complete")
		}
		s.Step()
	}
	if !s.Rejoin(1) {
		t.Fatal("node 1 could not join again after its leave")
	}
}

// TestRSMDonorCrashMidTransfer: a restarted node fetches a snapshot of many
// chunks; its donor crashes after a few of them; the joiner gets the state
// from the other member, and every check passes.
func TestRSMDonorCrashMidTransfer(t *testing.T) {
	r := newRSMSim(RSMOptions{LWG: LWGOptions{Seed: 5, Nodes: 3, LWGs: 2, Size: 3, Carriers: 1}, CounterPad: 2000})
	s := r.s
	obj := rsm.ObjectID("1") // a counter: its snapshots are padded
	run := func(what string, done func() bool) {
		t.Helper()
		for range 100_000 {
			if done() {
				return
			}
			s.Step()
		}
		t.Fatalf("%s: not reached\n%s", what, r.dump())
	}
	allReady := func() bool {
		for _, n := range s.nodes {
			if _, _, ok := r.nodes[n.id].sn.State(obj); !n.alive || !ok {
				return false
			}
		}
		return true
	}
	run("every replica ready", allReady)
	for range 30 {
		r.request()
		for range 20 {
			s.Step()
		}
	}
	joiner := s.node(3)
	if !s.Crash(3) {
		t.Fatal("crash refused")
	}
	for range 200 {
		s.Step()
	}
	s.Restart(3)
	self := joiner.self()
	var donor hwg.Process
	run("chunks from a donor", func() bool {
		for k, c := range r.directs {
			if k[0] == self && c >= 3 {
				donor = k[1]
				return true
			}
		}
		return false
	})
	if _, _, ok := r.nodes[3].sn.State(obj); ok {
		t.Fatal("the joiner was ready before the transfer ended: make the snapshot larger")
	}
	if !s.Crash(donor.Node) {
		t.Fatalf("crash of donor %v refused", donor)
	}
	run("joiner ready", func() bool {
		_, _, ok := r.nodes[3].sn.State(obj)
		return ok
	})
	var from uint64
	for _, e := range s.trace {
		if e.Ev == EvState && e.Node == 3 && e.Inc == self.Inc && e.Group == string(obj.LWG()) {
			from = e.From
		}
	}
	if from == 0 || from == uint64(donor.Node) {
		t.Fatalf("the joiner's state came from node %d; its first donor was %v", from, donor)
	}
	res := r.finish()
	for _, v := range res.Violations {
		t.Errorf("%.2000s", v)
	}
}

// rsm-digest compares digests within a life. A replica that goes on from a
// kept state after a ForgetAbsent (a branch) starts a life of its own, in
// which an index may hold another command than in the life it left
// (ForgetAbsent seed 7444: the branch and the holder given up on both
// applied index 7); without the branch mark the same trace is a
// violation.
func TestRSMDigestBranchIsALife(t *testing.T) {
	ev := func(node uint64, kind string, from, index uint64, digest string, branch bool) Event {
		return Event{Node: node, Inc: 1, Ev: kind, Group: "l/0", From: from, Index: index, Digest: digest, Branch: branch}
	}
	trace := func(branch bool) []Event {
		return []Event{
			ev(1, EvState, 0, 0, "d0", false),
			ev(1, EvApply, 0, 1, "a1", false),
			ev(2, EvState, 1, 1, "a1", false), // from node 1
			ev(1, EvApply, 0, 2, "a2", false),
			ev(2, EvExclude, 0, 0, "", false),
			ev(2, EvState, 0, 1, "a1", branch), // goes on from its kept state
			ev(2, EvApply, 0, 2, "b2", false),
		}
	}
	if vs := checkRSMDigest(trace(true)); len(vs) != 0 {
		t.Fatalf("a branch's own index 2 reported: %v", vs)
	}
	if vs := checkRSMDigest(trace(false)); !fired(vs, nameRSMDigest) {
		t.Fatalf("index 2 with two digests in one life not reported: %v", vs)
	}
}
