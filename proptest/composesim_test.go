package proptest

import (
	"strings"
	"testing"
)

func TestComposeSimNoFaults(t *testing.T) {
	for _, topo := range []string{"chain", "star", "cycle"} {
		r := RunCompose(ComposeOptions{Topology: topo, LWG: LWGOptions{Seed: 1, Steps: 1500}})
		for _, v := range r.Violations {
			t.Errorf("%s: %v", topo, v)
		}
		if !r.Stats.Settled || r.Stats.Delivered == 0 || r.Stats.Forwarded == 0 || len(r.Ordered) == 0 {
			t.Errorf("%s: settled=%v delivered=%d forwarded=%d", topo, r.Stats.Settled, r.Stats.Delivered, r.Stats.Forwarded)
		}
	}
}

// composeOptions varies the composition run with the seed: topology, fault
// rate, senders (single-group senders make the causal checker apply),
// carriers, and both ways of answering Hold.up.
func composeOptions(seed uint64) ComposeOptions {
	return ComposeOptions{
		Topology:      []string{"chain", "star", "cycle"}[seed%3],
		SingleSenders: seed%2 == 0,
		AllShare:      0.2 + float64(seed%3)*0.2,
		RouterCrashes: 0.02 + float64(seed%3)*0.02,
		LWG: LWGOptions{Seed: seed, Steps: 4000, Faults: FaultAll, FaultRate: 0.004 + float64(seed%4)*0.002,
			Carriers: int(seed % 3), ManualHoldOK: seed%4 == 1},
	}
}

func composeRuns(t *testing.T) int {
	if n, ok := soakRuns(t); ok {
		return n
	}
	if raceEnabled {
		return 4 // seeds 1-4 include router crashes and claim rounds
	}
	return 40
}

// TestComposeSimulations runs seeded composition simulations with loss,
// duplication, reordering and routers crashed between delivery and
// forwarding, and checks every row of the semantics table, plus every LWG
// invariant.
func TestComposeSimulations(t *testing.T) {
	composeSimulations(t, FaultDrop|FaultDup|FaultReorder, 0.05)
}

// TestComposeSimulationsAllFaults adds partitions, crashes of any node,
// leaves and joins to loss, duplication, reordering and router crashes.
// Partitions exclude every holder of a group's routing state at once in
// many runs: the group's routing waits, and continues from a kept state
// by a claim round (compose.Router), so every checker applies.
func TestComposeSimulationsAllFaults(t *testing.T) {
	composeSimulations(t, FaultAll, 0)
}

func composeSimulations(t *testing.T, faults Faults, crashRate float64) {
	runs := composeRuns(t)
	var (
		failures, settled           int
		changes, dups, crashes, all int
		routerCrashes, lost         int
		seeded, blocked             uint64
	)
	opts := func(seed uint64) ComposeOptions {
		o := composeOptions(seed)
		o.LWG.Faults = faults
		if crashRate > 0 {
			o.RouterCrashes = crashRate
		}
		return o
	}
	eachSeed(runs, func(seed uint64) ComposeResult { return RunCompose(opts(seed)) }, func(seed uint64, r ComposeResult) {
		all++
		if r.Stats.Settled {
			settled++
		}
		if r.Stats.StateLost {
			lost++
		}
		changes += r.Stats.RouterChanges
		dups += int(r.Stats.Duplicates)
		crashes += r.Stats.LWG.Crashes
		routerCrashes += r.Stats.RouterCrashes
		seeded += r.Stats.Seeded
		blocked += r.Stats.Blocked
		if len(r.Violations) > 0 && failures < 5 {
			failures++
			o := opts(seed)
			t.Errorf("seed %d (%s single=%v): %d violations, first: %.3000s", seed, o.Topology, o.SingleSenders, len(r.Violations), r.Violations[0])
		}
	})
	t.Logf("%d runs, %d lost a group's routing state, %d settled, %d crashes (%d of routers between delivery and forwarding), %d router changes, %d duplicate copies dropped, %d claim rounds seeded a group (%d blocked)",
		all, lost, settled, crashes, routerCrashes, changes, dups, seeded, blocked)
	// The faults must exercise the take-over: routers crash with copies
	// owed, and links change routers under load.
	if changes == 0 || routerCrashes == 0 {
		t.Errorf("no router change (%d) or no router crash (%d): the runs do not exercise take-over", changes, routerCrashes)
	}
	if lost > 0 {
		t.Errorf("%d of %d runs lost a group's routing state", lost, all)
	}
	if settled < all*3/4 {
		t.Errorf("only %d of %d runs settled", settled, all)
	}
}

// Without partitions, crashes, leaves and joins still remove holders one
// after another; no run may lose routing state, and every checker applies
// strictly.
func TestComposeSimulationsNoPartition(t *testing.T) {
	runs := composeRuns(t) / 4
	for seed := uint64(1); seed <= uint64(runs); seed++ {
		o := composeOptions(seed)
		o.LWG.Faults = FaultAll &^ FaultPartition
		r := RunCompose(o)
		if r.Stats.StateLost {
			t.Errorf("seed %d: a group's routing state was lost without a partition", seed)
		}
		for i, v := range r.Violations {
			if i < 3 {
				t.Errorf("seed %d (%s): %.2000s", seed, o.Topology, v)
			}
		}
	}
}

// Seeds that lost a group's routing state before claim rounds (a member
// left alone without the state started the group afresh: seeds 1 and 10,
// a lone holder excluded and the group recreated by another member; 7,
// every holder left or was excluded; 9, which also broke total order in
// l/a), and seed 22 of TestComposeSimulations' faults, where a member
// excluded before it got a round's seed state later went on from its own
// older state while the seed, which had gone on, was away (a message
// ordered in l/y never reached the other groups; claims now name such
// seeds). They must keep the state, continue from the latest kept one,
// and pass every checker.
func TestComposeLostStateSeeds(t *testing.T) {
	var seeded uint64
	type run struct {
		seed uint64
		all  bool
	}
	runs := []run{{1, true}, {7, true}, {9, true}, {10, true}, {22, false}}
	if raceEnabled {
		runs = []run{{22, false}} // seed 1 runs in the other tests
	}
	for _, rn := range runs {
		seed := rn.seed
		o := composeOptions(seed)
		o.LWG.Faults = FaultAll
		if !rn.all {
			o.LWG.Faults, o.RouterCrashes = FaultDrop|FaultDup|FaultReorder, 0.05
		}
		r := RunCompose(o)
		if r.Stats.StateLost || !r.Stats.Settled {
			t.Errorf("seed %d: state lost=%v settled=%v", seed, r.Stats.StateLost, r.Stats.Settled)
		}
		for i, v := range r.Violations {
			if i < 3 {
				t.Errorf("seed %d (%s): %.2000s", seed, o.Topology, v)
			}
		}
		seeded += r.Stats.Seeded
	}
	if seeded == 0 {
		t.Error("no claim round seeded a group: the seeds no longer exercise the loss of every holder")
	}
}

// TestComposeSendRecordedBeforeExclusion: a multicast a layer makes while
// it handles an LWG install enters the trace before the node's next carrier
// event. It entered after it, at the Core's next Ready; when that event
// excluded the node from the carrier, one-carrier saw a send made outside
// the carrier's view (seed 167, found at LWGKIT_SOAK=300).
func TestComposeSendRecordedBeforeExclusion(t *testing.T) {
	o := composeOptions(167)
	o.LWG.Faults, o.RouterCrashes = FaultDrop|FaultDup|FaultReorder, 0.05
	r := RunCompose(o)
	for i, v := range r.Violations {
		if i < 3 {
			t.Errorf("%.2000s", v)
		}
	}
}

// TestComposeNoSecondLifeWhileHeld: compose seed 189 with every fault
// (found at LWGKIT_SOAK=300). Partitions cost the members of one LWG's
// carrier their directory registrations (their own and the admitting
// member's kMember were lost with their directory memberships); the
// registered members then crashed or were excluded, the directory declared
// the carrier dead while two members still held its table, and the LWG
// began a second life on a new carrier: its routing state was lost.
// Members back in the directory now register the rest of their view.
func TestComposeNoSecondLifeWhileHeld(t *testing.T) {
	o := composeOptions(189)
	o.LWG.Faults = FaultAll
	r := RunCompose(o)
	if r.Stats.StateLost || !r.Stats.Settled {
		t.Errorf("state lost=%v settled=%v", r.Stats.StateLost, r.Stats.Settled)
	}
	for i, v := range r.Violations {
		if i < 3 {
			t.Errorf("%.2000s", v)
		}
	}
}

// Totals order is only within a group: the simulator finds two messages
// that two groups deliver in opposite orders, which is allowed.
func TestComposeNoGlobalOrder(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		r := RunCompose(ComposeOptions{Topology: "chain", AllShare: 1, Sends: 0.5, LWG: LWGOptions{Seed: seed, Steps: 1500}})
		pos := map[string]map[string]int{} // group → msg → position at its first member
		first := map[string]composeAt{}
		for _, e := range r.Routes {
			if e.Ev != EvDeliver {
				continue
			}
			at := composeAt{e.Node, e.Inc, e.Group}
			if f, ok := first[e.Group]; !ok {
				first[e.Group] = at
				pos[e.Group] = map[string]int{}
			} else if f != at {
				continue
			}
			pos[e.Group][e.Msg] = len(pos[e.Group])
		}
		a, c := pos["l/a"], pos["l/c"]
		for m1, i1 := range a {
			for m2, i2 := range a {
				if i1 < i2 && c[m1] > c[m2] && c[m1] != 0 && c[m2] != 0 {
					return // found: a orders m1 first, c orders m2 first
				}
			}
		}
	}
	t.Fatal("no two messages were ordered differently by two groups; the experiment does not show the table's limit")
}

func TestComposeCheckersFire(t *testing.T) {
	send := func(t uint64, node uint64, msg, origin string, seq uint64, dests ...string) RouteEvent {
		return RouteEvent{T: t, Node: node, Inc: 1, Ev: EvSend, Msg: msg, Origin: origin, Seq: seq, Src: "l/a", Dests: dests}
	}
	del := func(t uint64, node uint64, group, msg, origin string, seq uint64, dests ...string) RouteEvent {
		return RouteEvent{T: t, Node: node, Inc: 1, Ev: EvDeliver, Group: group, Msg: msg, Origin: origin, Seq: seq, Src: "l/a", Dests: dests}
	}
	cases := []struct {
		name   string
		res    ComposeResult
		checks string
	}{
		{"never sent", ComposeResult{Routes: []RouteEvent{del(1, 2, "l/b", "1.1/1", "1.1", 1)}}, nameComposeIntegrity},
		{"wrong group", ComposeResult{Routes: []RouteEvent{send(1, 1, "1.1/1", "1.1", 1, "l/c"), del(2, 2, "l/b", "1.1/1", "1.1", 1, "l/c")}}, nameComposeIntegrity},
		{"twice", ComposeResult{Routes: []RouteEvent{send(1, 1, "1.1/1", "1.1", 1), del(2, 2, "l/b", "1.1/1", "1.1", 1), del(3, 2, "l/b", "1.1/1", "1.1", 1)}}, nameComposeNoDup},
		{"fifo", ComposeResult{Routes: []RouteEvent{send(1, 1, "1.1/1", "1.1", 1), send(1, 1, "1.1/2", "1.1", 2),
			del(2, 2, "l/b", "1.1/2", "1.1", 2), del(3, 2, "l/b", "1.1/1", "1.1", 1)}}, nameComposeFIFO},
		{"total", ComposeResult{Routes: []RouteEvent{send(1, 1, "1.1/1", "1.1", 1), send(1, 4, "4.1/1", "4.1", 1),
			del(2, 2, "l/b", "1.1/1", "1.1", 1), del(3, 2, "l/b", "4.1/1", "4.1", 1),
			del(2, 3, "l/b", "4.1/1", "4.1", 1), del(3, 3, "l/b", "1.1/1", "1.1", 1)}}, nameComposeTotal},
		// 1 sends m1 to b; 5 (in a) delivers it... via b: node 3 delivers m1
		// in b, then sends m2 to b; node 2 delivers m2 before m1.
		{"causal", ComposeResult{Routes: []RouteEvent{send(1, 1, "1.1/1", "1.1", 1, "l/b"),
			del(2, 3, "l/b", "1.1/1", "1.1", 1, "l/b"), send(3, 3, "3.1/1", "3.1", 1, "l/b"),
			del(4, 2, "l/b", "3.1/1", "3.1", 1, "l/b"), del(5, 2, "l/b", "1.1/1", "1.1", 1, "l/b")}}, nameComposeCausal},
		{"lost", ComposeResult{Routes: []RouteEvent{send(1, 1, "1.1/1", "1.1", 1), del(2, 2, "l/a", "1.1/1", "1.1", 1)},
			Ordered: map[string]bool{"1.1/1": true}, Members: map[string][]uint64{"l/a": {1, 2}, "l/b": {2, 3}}}, nameComposeReliable},
	}
	for _, tc := range cases {
		found := map[string]bool{}
		for _, ck := range ComposeCheckers() {
			for _, v := range ck.Check(tc.res) {
				found[v.Checker] = true
			}
		}
		if !found[tc.checks] {
			t.Errorf("%s: %s did not fire (fired: %v)", tc.name, tc.checks, found)
		}
	}
	// And a clean history passes every checker.
	clean := ComposeResult{Routes: []RouteEvent{send(1, 1, "1.1/1", "1.1", 1), del(2, 2, "l/a", "1.1/1", "1.1", 1), del(2, 3, "l/b", "1.1/1", "1.1", 1)},
		Ordered: map[string]bool{"1.1/1": true}, Members: map[string][]uint64{"l/a": {1, 2}, "l/b": {2, 3}}}
	for _, ck := range ComposeCheckers() {
		if vs := ck.Check(clean); len(vs) > 0 {
			t.Errorf("%s fired on a clean history: %v", ck.Name, vs)
		}
	}
	_ = strings.TrimSpace
}
