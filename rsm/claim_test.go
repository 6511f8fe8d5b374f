package rsm

import (
	"errors"
	"fmt"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// Claim rounds, driven step by step on a transferNet: the shape of the
// RSM simulation's seed 92 with partitions. A holds the state; J joins,
// queues a command A applies, and never gets the state (every transfer
// message is lost); A is excluded (partitioned away, not crashed), so J
// is alone in the group, with no state.

// claimTicksRun ticks every replica of the view past a claim round's
// wait, then delivers what they multicast (the claims), a few times.
func claimTicksRun(n *transferNet, rounds int) {
	for range rounds {
		for range claimTicks {
			for _, p := range n.view.Members {
				n.objs[p].onTick(1)
			}
		}
		n.run(nil)
		n.run(nil) // the messages the claims caused (an offer, RESTORED)
	}
}

func lonelyJoiner(t *testing.T) *transferNet {
	n := newTransferNet(t, Config{})
	n.add(pA, nil)
	n.add(pJ, nil)
	n.install(1<<32|1, []hwg.Process{pA}, []hwg.Process{pA})
	n.propose("a")
	n.propose("b")
	n.install(1<<32|2, []hwg.Process{pA, pJ}, []hwg.Process{pJ})
	n.queue = nil // the offer is lost
	n.propose("c")
	if string(n.sm(pA).b) != "abc" || n.objs[pJ].ready {
		t.Fatalf("A holds %q, J ready %v", n.sm(pA).b, n.objs[pJ].ready)
	}
	n.objs[pA].onEvent(&lwg.Event{Type: lwg.EventExcluded, LWG: xferObject.LWG()})
	n.install(1<<32|3, []hwg.Process{pJ}, nil)
	return n
}

// TestClaimWaitsForExcludedHolder: J's claim rounds do not start the
// object over while A, which held the state and was excluded, may come
// back with it (before, after two empty rounds J seeded from nothing plus
// the command it had queued: a state "c" that no order of commands gives,
// and A's "abc" was dropped when it came back). When A joins again, its
// claim wins and J gets A's state.
func TestClaimWaitsForExcludedHolder(t *testing.T) {
	n := lonelyJoiner(t)
	claimTicksRun(n, 2*emptyRounds+2)
	if j := n.objs[pJ]; j.ready || j.hasState {
		t.Fatalf("J started the object over while A may come back: ready %v, state %q", j.ready, n.sm(pJ).b)
	}
	n.install(1<<32|4, []hwg.Process{pJ, pA}, []hwg.Process{pA})
	claimTicksRun(n, 2)
	for _, p := range []hwg.Process{pA, pJ} {
		if o := n.objs[p]; !o.ready || string(n.sm(p).b) != "abc" {
			t.Fatalf("%v: ready %v, state %q; want A's state abc", p, o.ready, n.sm(p).b)
		}
	}
	// A seeded from the state it kept: told, without a start over.
	if got := seededEvents(n, pA, pJ); len(got) != 1 || got[0].Err != nil || got[0].Index != n.objs[pA].index {
		t.Fatalf("EventSeeded: %+v, want one from A's kept state at index %d", got, n.objs[pA].index)
	}
}

// TestClaimAfterHolderCrashStartsEmpty: when a later incarnation of A's
// node shows up (A crashed: its state is gone), the rounds start the
// object over from nothing, and the new state is empty: the command J
// queued while A held the state belongs to the lost state.
func TestClaimAfterHolderCrashStartsEmpty(t *testing.T) {
	n := lonelyJoiner(t)
	a2 := hwg.Process{Node: pA.Node, Inc: pA.Inc + 1}
	n.add(a2, nil)
	n.install(1<<32|4, []hwg.Process{pJ, a2}, []hwg.Process{a2})
	claimTicksRun(n, emptyRounds+3)
	for _, p := range []hwg.Process{pJ, a2} {
		if o := n.objs[p]; !o.ready || len(n.sm(p).b) != 0 {
			t.Fatalf("%v: ready %v, state %q; want the empty state", p, o.ready, n.sm(p).b)
		}
	}
	// The start over is told, once, with its cause.
	if got := seededEvents(n, pJ, a2); len(got) != 1 || !errors.Is(got[0].Err, ErrStartedOver) {
		t.Fatalf("EventSeeded: %+v, want one with ErrStartedOver", got)
	}
}

// seededEvents returns the EventSeeded that ps observed.
func seededEvents(n *transferNet, ps ...hwg.Process) []Event {
	var out []Event
	for _, p := range ps {
		for _, e := range n.events[p] {
			if e.Type == EventSeeded {
				out = append(out, e)
			}
		}
	}
	return out
}

// TestClaimRejoinerRemembersHolder: the shape of RSM seed 448. J, without
// the state, leaves the group where it saw A (the holder, excluded) and
// joins again alone, in a view that is all new. What it learned of A in
// its first membership still holds: its rounds wait for A (before, it
// forgot A and started the object over), and when A comes back, A's
// state wins.
func TestClaimRejoinerRemembersHolder(t *testing.T) {
	n := lonelyJoiner(t)
	claimTicksRun(n, 1)
	n.objs[pJ].onEvent(&lwg.Event{Type: lwg.EventLeft, LWG: xferObject.LWG()})
	n.install(1<<32|5, []hwg.Process{pJ}, []hwg.Process{pJ})
	claimTicksRun(n, 2*emptyRounds+2)
	if j := n.objs[pJ]; j.ready || j.hasState {
		t.Fatalf("J started the object over while A may come back: ready %v, state %q", j.ready, n.sm(pJ).b)
	}
	n.install(1<<32|6, []hwg.Process{pJ, pA}, []hwg.Process{pA})
	claimTicksRun(n, 2)
	for _, p := range []hwg.Process{pA, pJ} {
		if o := n.objs[p]; !o.ready || string(n.sm(p).b) != "abc" {
			t.Fatalf("%v: ready %v, state %q; want A's state abc", p, o.ready, n.sm(p).b)
		}
	}
}

// TestClaimNoneOutliveItsRound: the shape of RSM seeds 448, 662 and 628.
// J joins alone in a view that is all new and not a new life: A, which
// held the state, vanished from the view before (excluded), and the LWG
// layer names it (Vanished). J's first claim is sent in the next view
// (the LWG held for the view change), where J claims again. J keeps one
// claim out at a time (before, a spare claim reached the view where A
// came back, A counted it as "J holds nothing" and seeded its own state
// while J served its new one: two states), and it does not start the
// object over while A may come back (before, knowing nothing of A, it did
// after two empty rounds, and A's state was dropped when A came back:
// seed 628). When A comes back, A's state is the state.
func TestClaimNoneOutliveItsRound(t *testing.T) {
	n := newTransferNet(t, Config{})
	n.add(pA, nil)
	n.add(pJ, nil)
	n.install(1<<32|1, []hwg.Process{pA}, []hwg.Process{pA})
	n.propose("a")
	n.objs[pA].onEvent(&lwg.Event{Type: lwg.EventExcluded, LWG: xferObject.LWG()})
	n.installAfter(1<<32|3, []hwg.Process{pJ}, []hwg.Process{pJ}, []hwg.Process{pA})
	n.install(1<<32|4, []hwg.Process{pJ}, nil) // J's claim goes out in this view
	// Deliver J's claims one at a time, ticking when none is in flight,
	// for many rounds.
	for i := 0; i < 10*emptyRounds; i++ {
		claims := 0
		for _, m := range n.multicasts {
			if d, err := decodeOrdered(m.b); err == nil && d.kind == kindClaim && m.from == pJ {
				claims++
			}
		}
		if claims > 1 {
			t.Fatalf("J has %d claims in flight", claims)
		}
		if len(n.multicasts) == 0 {
			for range claimTicks {
				n.objs[pJ].onTick(1)
			}
			continue
		}
		m := n.multicasts[0]
		n.multicasts = n.multicasts[1:]
		n.objs[pJ].onEvent(&lwg.Event{Type: lwg.EventDeliver, LWG: xferObject.LWG(), From: m.from, Payload: m.b})
	}
	if j := n.objs[pJ]; j.ready || j.hasState || len(seededEvents(n, pJ)) != 0 {
		t.Fatalf("J started the object over while A, which vanished, may come back: ready %v, seeded %v", j.ready, seededEvents(n, pJ))
	}
	// A comes back; what J multicast meanwhile is delivered in this view.
	n.install(1<<32|5, []hwg.Process{pJ, pA}, []hwg.Process{pA})
	claimTicksRun(n, 2)
	if a, j := n.objs[pA], n.objs[pJ]; !a.ready || !j.ready || string(n.sm(pA).b) != "a" || string(n.sm(pJ).b) != "a" {
		t.Fatalf("A ready %v state %q, J ready %v state %q: want A's state a at both", a.ready, n.sm(pA).b, j.ready, n.sm(pJ).b)
	}
}

// forget delivers a ForgetAbsent from p, in the view, to every replica.
func forget(n *transferNet, p hwg.Process) {
	n.multicasts = append(n.multicasts, msg{from: p, b: encodeForget()})
	n.run(nil)
}

// TestForgetAbsentStartsOver: J waits for A, which held the state and was
// excluded, however many rounds pass; an operator's ForgetAbsent ends the
// wait, and the next rounds start the object over from nothing (told as
// ErrStartedOver). When A comes back later, it takes the new state: its
// old one was given up.
func TestForgetAbsentStartsOver(t *testing.T) {
	n := lonelyJoiner(t)
	claimTicksRun(n, 2*emptyRounds+2)
	if j := n.objs[pJ]; j.ready {
		t.Fatalf("J started over before the operator gave up on A")
	}
	forget(n, pJ)
	claimTicksRun(n, 2)
	if j := n.objs[pJ]; !j.ready || len(n.sm(pJ).b) != 0 {
		t.Fatalf("after ForgetAbsent: J ready %v, state %q; want the empty state", j.ready, n.sm(pJ).b)
	}
	if got := seededEvents(n, pJ); len(got) != 1 || !errors.Is(got[0].Err, ErrStartedOver) {
		t.Fatalf("EventSeeded: %+v, want one with ErrStartedOver", got)
	}
	n.propose("d")
	n.objs[pA].onEvent(&lwg.Event{Type: lwg.EventLeft, LWG: xferObject.LWG()})
	n.install(1<<32|4, []hwg.Process{pJ, pA}, []hwg.Process{pA})
	n.run(nil)
	for _, p := range []hwg.Process{pA, pJ} {
		if o := n.objs[p]; !o.ready || string(n.sm(p).b) != "d" {
			t.Fatalf("%v: ready %v, state %q; want the new state d", p, o.ready, n.sm(p).b)
		}
	}
}

// TestForgetAbsentHolderBackFirst: a holder that comes back after the
// ForgetAbsent but before a round decides still offers its state, and its
// state wins over starting over.
func TestForgetAbsentHolderBackFirst(t *testing.T) {
	n := lonelyJoiner(t)
	forget(n, pJ)
	n.install(1<<32|4, []hwg.Process{pJ, pA}, []hwg.Process{pA})
	claimTicksRun(n, 2)
	for _, p := range []hwg.Process{pA, pJ} {
		if o := n.objs[p]; !o.ready || string(n.sm(p).b) != "abc" {
			t.Fatalf("%v: ready %v, state %q; want A's state abc", p, o.ready, n.sm(p).b)
		}
	}
	if got := seededEvents(n, pA, pJ); len(got) != 1 || got[0].Err != nil {
		t.Fatalf("EventSeeded: %+v, want one from A's state", got)
	}
}

// TestForgetAbsentHeldState: in a group that holds the state a
// ForgetAbsent changes nothing, and no replica counts it malformed.
func TestForgetAbsentHeldState(t *testing.T) {
	n := newTransferNet(t, Config{})
	n.add(pA, nil)
	n.add(pJ, nil)
	n.install(1<<32|1, []hwg.Process{pA}, []hwg.Process{pA})
	n.propose("a")
	n.install(1<<32|2, []hwg.Process{pA, pJ}, []hwg.Process{pJ})
	n.run(nil)
	forget(n, pA)
	n.propose("b")
	for _, p := range []hwg.Process{pA, pJ} {
		if o := n.objs[p]; !o.ready || string(n.sm(p).b) != "ab" || o.malformed.Load() != 0 || len(seededEvents(n, p)) != 0 {
			t.Fatalf("%v: ready %v, state %q, malformed %d, seeded %v", p, o.ready, n.sm(p).b, o.malformed.Load(), seededEvents(n, p))
		}
	}
}

// TestForgetAbsentNoEmptyRounds: after a ForgetAbsent the next complete
// round decides; it does not wait for more empty rounds (whose point is
// a holder nobody knows of, which the operator just gave up on).
func TestForgetAbsentNoEmptyRounds(t *testing.T) {
	n := lonelyJoiner(t)
	forget(n, pJ)
	claimTicksRun(n, 1)
	if j := n.objs[pJ]; !j.ready || len(n.sm(pJ).b) != 0 {
		t.Fatalf("one round after ForgetAbsent: J ready %v, state %q; want the empty state", j.ready, n.sm(pJ).b)
	}
}

var pK = hwg.Process{Node: 4, Inc: 1}

// dropTo loses every transfer message in flight to p.
func dropTo(n *transferNet, p hwg.Process) {
	q := n.queue[:0]
	for _, m := range n.queue {
		if m.to != p {
			q = append(q, m)
		}
	}
	n.queue = q
}

// halfFetched: A holds 30 commands; K and J joined in view 2, and J is
// half-way through fetching A's snapshot (K's transfer messages are
// lost). It returns A's chunk messages still in flight to J.
func halfFetched(t *testing.T) (n *transferNet, saved []msg) {
	n = newTransferNet(t, Config{ChunkSize: 64, TransferWindow: 128})
	n.add(pA, nil)
	j := n.add(pJ, nil)
	n.add(pK, nil)
	n.install(1<<32|1, []hwg.Process{pA}, []hwg.Process{pA})
	for i := range 30 {
		n.propose(fmt.Sprintf("%0100d", i))
	}
	n.install(1<<32|2, []hwg.Process{pA, pK, pJ}, []hwg.Process{pK, pJ})
	for j.fetch == nil || j.fetch.next < 1500 {
		dropTo(n, pK)
		if !n.step(nil) {
			t.Fatal("transfer stopped")
		}
	}
	dropTo(n, pK)
	saved, n.queue = n.queue, nil
	return n, saved
}

// fetchingWhileRound: halfFetched, then A is excluded (view 3 is K and
// J). The caller delivers A's chunks after a claim round without A.
func fetchingWhileRound(t *testing.T) (n *transferNet, saved []msg) {
	n, saved = halfFetched(t)
	n.objs[pA].onEvent(&lwg.Event{Type: lwg.EventExcluded, LWG: xferObject.LWG()})
	n.install(1<<32|3, []hwg.Process{pK, pJ}, nil)
	return n, saved
}

// oneState fails t unless p and q are both ready with the same state of
// the same lineage.
func oneState(t *testing.T, n *transferNet, p, q hwg.Process) {
	t.Helper()
	a, b := n.objs[p], n.objs[q]
	if !a.ready || !b.ready || string(n.sm(p).b) != string(n.sm(q).b) || a.lineage != b.lineage {
		t.Fatalf("%v ready %v lineage %d (%d bytes), %v ready %v lineage %d (%d bytes): want one state",
			p, a.ready, a.lineage, len(n.sm(p).b), q, b.ready, b.lineage, len(n.sm(q).b))
	}
}

// TestClaimAbortsEarlierTransfer (found in review): after a claim round
// in which K seeds, J must not finish the transfer of A's state that it
// began before the round (A, excluded, still serves from its store): the
// view would hold two states. Here the operator gave up on A.
func TestClaimAbortsEarlierTransfer(t *testing.T) {
	n, saved := fetchingWhileRound(t)
	k := n.objs[pK]
	forget(n, pJ)
	k.waiting = claimTicks - 1
	k.onTick(1)
	dropTo(n, pJ) // K's WANT
	n.run(nil)    // K's claim: J claims
	n.run(nil)    // J's claim: both decide
	later := n.queue
	n.queue = saved // A's chunks arrive first
	for n.step(nil) {
	}
	n.queue = append(n.queue, later...)
	n.run(nil)
	n.run(nil)
	oneState(t, n, pK, pJ)
}

// TestClaimAbortsEarlierTransferRejoin (found in review): the same
// without ForgetAbsent: A is excluded and back at once, a command is
// delivered while it is away, and a round in the next view makes A seed
// while J still fetches A's older snapshot.
func TestClaimAbortsEarlierTransferRejoin(t *testing.T) {
	n, saved := fetchingWhileRound(t)
	j, k := n.objs[pJ], n.objs[pK]
	n.propose("V3-command")
	n.install(1<<32|4, []hwg.Process{pK, pJ, pA}, []hwg.Process{pA})
	k.waiting = claimTicks - 1
	k.onTick(1)
	for range 4 {
		dropTo(n, pJ)
		q := n.queue
		n.queue = nil
		n.run(nil)
		n.queue = q
	}
	later := n.queue
	n.queue = saved
	for n.step(nil) {
	}
	n.queue = append(n.queue, later...)
	a := n.objs[pA]
	for range 5 { // J asks again (its offer was lost) and fetches
		for range retryTicks {
			for _, o := range []*Object{a, j, k} {
				o.onTick(1)
			}
		}
		n.run(nil)
	}
	if !a.ready || !j.ready || string(n.sm(pA).b) != string(n.sm(pJ).b) || a.index != j.index {
		t.Fatalf("A ready %v index %d, J ready %v index %d (K ready %v): want one state",
			a.ready, a.index, j.ready, j.index, k.ready)
	}
}

// TestClaimHoldsTransferFinishedAfterClaim (found in review): A's chunks
// complete J's transfer after J claimed (holding nothing) and before the
// round decides on that claim: J must not take A's state, or it would
// stand beside the state K seeds.
func TestClaimHoldsTransferFinishedAfterClaim(t *testing.T) {
	n, saved := fetchingWhileRound(t)
	j, k := n.objs[pJ], n.objs[pK]
	forget(n, pJ)
	k.waiting = claimTicks - 1
	k.onTick(1)
	dropTo(n, pJ) // K's WANT
	n.run(nil)    // K's claim is delivered: J claims (its claim not yet delivered)
	if j.round == nil || !j.round.claimed {
		t.Fatal("J did not claim")
	}
	n.queue = saved // A's chunks arrive now
	for n.step(nil) {
	}
	n.run(nil) // J's claim: both decide
	n.run(nil)
	n.run(nil)
	oneState(t, n, pK, pJ)
}

// TestForgetAbsentNotInNextView (found in review): a claim J made after a
// FORGET in view 3 is delivered in view 4 (it was out when the view
// changed, so it is J's claim there); nobody gave up on A in view 4, so
// the round there must not start the object over.
func TestForgetAbsentNotInNextView(t *testing.T) {
	n := lonelyJoiner(t)
	k := n.add(pK, nil)
	j := n.objs[pJ]
	forget(n, pJ)
	for range claimTicks {
		j.onTick(1)
	}
	if len(n.multicasts) != 1 {
		t.Fatalf("J's claim is not out: %d messages", len(n.multicasts))
	}
	n.queue = nil
	n.install(1<<32|4, []hwg.Process{pJ, pK}, []hwg.Process{pK})
	n.queue = nil
	n.run(nil) // J's claim from view 3: K claims
	n.queue = nil
	n.run(nil) // K's claim: the round
	if j.ready || k.ready {
		t.Fatalf("started over in view 4, where no FORGET was delivered (seeded %+v)", seededEvents(n, pJ, pK))
	}
}

// claimOutAfterHold: A holds 30 commands; J, half-way through fetching
// A's snapshot, claims when K does in view 2, A's HOLD ends the round,
// and J's claim is still out (sent while the LWG holds for a view change,
// so it is delivered in the next view). It returns A's chunk messages in
// flight to J and J's claim, which the caller delivers.
func claimOutAfterHold(t *testing.T) (n *transferNet, saved []msg, jc []byte) {
	n, saved = halfFetched(t)
	j, k := n.objs[pJ], n.objs[pK]
	k.waiting = claimTicks - 1
	k.onTick(1) // K claims in view 2
	n.queue = nil
	n.run(nil) // K's claim: A answers HOLD, J claims
	var rest []msg
	for _, m := range n.multicasts {
		if m.from == pJ {
			jc = m.b
		} else {
			rest = append(rest, m)
		}
	}
	if jc == nil {
		t.Fatal("J did not claim")
	}
	n.multicasts = rest
	n.run(nil) // A's HOLD in view 2; J's claim waits for the view change
	if j.round == nil || j.round.claimed || j.round.out != 1 {
		t.Fatalf("set-up: J's round %+v", j.round)
	}
	return n, saved, jc
}

// TestClaimHoldsTransferWhileClaimOut (found in review): J's claim is
// still out when A's HOLD ends its round in view 2 (so J is no longer
// "claimed"), and the view changes with A excluded: that claim counts as
// J's in view 3. A's chunks, arriving in view 3, must not make J ready
// with A's state while the group decides on J's "nothing"; and J must not
// claim a second time in view 3.
func TestClaimHoldsTransferWhileClaimOut(t *testing.T) {
	n, saved, jc := claimOutAfterHold(t)
	j, k := n.objs[pJ], n.objs[pK]
	n.objs[pA].onEvent(&lwg.Event{Type: lwg.EventExcluded, LWG: xferObject.LWG()})
	n.install(1<<32|3, []hwg.Process{pK, pJ}, nil)
	forget(n, pK)
	n.queue = saved // A, excluded, still serves its store
	for n.step(nil) {
	}
	jmsgs := n.multicasts
	n.multicasts = []msg{{from: pJ, b: jc}}
	n.run(nil) // J's claim from view 2: K claims
	var kc []msg
	for _, m := range n.multicasts {
		switch {
		case m.from == pJ && m.b[0] == kindClaim:
			t.Fatal("J claimed again in view 3: its claim from view 2 is its claim here")
		case m.from == pK:
			kc = append(kc, m)
		default:
			jmsgs = append(jmsgs, m)
		}
	}
	n.multicasts = append(kc, jmsgs...) // the order puts K's claim first
	for range 3 {
		n.run(nil)
	}
	for range 3 {
		for range retryTicks {
			j.onTick(1)
			k.onTick(1)
		}
		n.run(nil)
		n.run(nil)
	}
	oneState(t, n, pK, pJ)
}

// TestClaimHeldTransferSurvivesTicks (found in review): a complete
// transfer held for a round is not dropped by ticks as an idle one; the
// round ends waiting for A, and J takes the state it holds.
func TestClaimHeldTransferSurvivesTicks(t *testing.T) {
	n, saved := fetchingWhileRound(t)
	j, k := n.objs[pJ], n.objs[pK]
	k.waiting = claimTicks - 1
	k.onTick(1)
	dropTo(n, pJ) // K's WANT
	n.run(nil)    // K's claim: J claims
	n.queue = saved
	for n.step(nil) {
	}
	if j.fetch == nil || j.fetch.next < j.fetch.size || j.ready {
		t.Fatalf("set-up: J's transfer is not held complete (ready %v)", j.ready)
	}
	for range abandonTicks {
		j.onTick(1)
	}
	n.run(nil) // J's claim: the round waits for A (no decision)
	if !j.ready || string(n.sm(pJ).b) != string(n.sm(pA).b) {
		t.Fatalf("the round ended without a decision and J held A's complete state: ready %v, %d bytes", j.ready, len(n.sm(pJ).b))
	}
}

// TestClaimNotReadyWhileClaimOut (found in review): as
// TestClaimHoldsTransferWhileClaimOut, but J's transfer completes in view
// 2, where its point is not before the view: J must still not become
// ready while its claim ("nothing") is out, or that claim decides view
// 3's round, K seeds an empty state, and J holds A's beside it.
func TestClaimNotReadyWhileClaimOut(t *testing.T) {
	n, saved, jc := claimOutAfterHold(t)
	j, k := n.objs[pJ], n.objs[pK]
	n.queue = saved // A's chunks arrive while still in view 2
	for n.step(nil) {
	}
	jmsgs := n.multicasts // sent after its claim: FIFO
	n.multicasts = nil
	n.objs[pA].onEvent(&lwg.Event{Type: lwg.EventExcluded, LWG: xferObject.LWG()})
	n.install(1<<32|3, []hwg.Process{pK, pJ}, nil)
	forget(n, pK)
	n.queue = nil
	n.multicasts = []msg{{from: pJ, b: jc}}
	n.run(nil) // J's claim from view 2: K claims
	var kc, other []msg
	for _, m := range n.multicasts {
		if m.from == pK {
			kc = append(kc, m)
		} else {
			other = append(other, m)
		}
	}
	n.multicasts = append(kc, append(jmsgs, other...)...) // the order puts K's claim first
	for range 3 {
		n.run(nil)
	}
	for range 3 {
		for range retryTicks {
			j.onTick(1)
			k.onTick(1)
		}
		n.run(nil)
		n.run(nil)
	}
	oneState(t, n, pK, pJ)
}

// joinersConverge runs rounds, ticks and messages until J and K can have
// settled, then checks that they hold one state.
func joinersConverge(t *testing.T, n *transferNet) {
	t.Helper()
	claimTicksRun(n, 5)
	for range 10 {
		for range retryTicks {
			n.objs[pK].onTick(1)
			n.objs[pJ].onTick(1)
		}
		n.run(nil)
		n.run(nil)
	}
	oneState(t, n, pK, pJ)
}

// TestJoinerGetsDonorWhenOneRestores (found in review): J finishes A's
// transfer after A, the only holder and K's donor too, was excluded (A
// still serves its store). K's donor left when no member held the state,
// so it has none; when J's RESTORED is applied, J becomes K's donor.
// Before, K waited for a later view change: J ignored its WANTs and
// answered its claims with HOLD.
func TestJoinerGetsDonorWhenOneRestores(t *testing.T) {
	n, saved := fetchingWhileRound(t)
	n.queue = saved
	for n.step(nil) {
	}
	n.run(nil) // J's RESTORED
	if !n.objs[pJ].ready {
		t.Fatal("set-up: J is not ready")
	}
	joinersConverge(t, n)
}

// TestJoinerGetsDonorAfterHeldTransfer (found in review): the same after a
// round that waited for A released the transfer J held.
func TestJoinerGetsDonorAfterHeldTransfer(t *testing.T) {
	n, saved := fetchingWhileRound(t)
	j, k := n.objs[pJ], n.objs[pK]
	k.waiting = claimTicks - 1
	k.onTick(1)
	dropTo(n, pJ) // K's WANT
	n.run(nil)    // K's claim: J claims
	n.queue = saved
	for n.step(nil) {
	}
	for range abandonTicks {
		j.onTick(1)
	}
	n.run(nil) // J's claim: the round waits for A; J takes A's state
	if !j.ready {
		t.Fatal("set-up: J is not ready")
	}
	joinersConverge(t, n)
}

// staleClaimNet: A and B held "a"; B was excluded and A went on to "ab".
// B joins again (view 4) with its old state, its transfer is lost, and it
// claims: A is in view 4, so its claim does not wait. The LWG holds for a
// view change that drops A (partitioned away, not crashed, so view 5's
// install names it Vanished), and B's claim is delivered in view 5.
func staleClaimNet(t *testing.T) *transferNet {
	n := newTransferNet(t, Config{})
	n.add(pA, nil)
	n.add(pB, nil)
	n.install(1<<32|1, []hwg.Process{pA}, []hwg.Process{pA})
	n.propose("a")
	n.install(1<<32|2, []hwg.Process{pA, pB}, []hwg.Process{pB})
	n.run(nil)
	n.run(nil)
	if !n.objs[pB].ready || string(n.sm(pB).b) != "a" {
		t.Fatalf("set-up: B ready %v, state %q", n.objs[pB].ready, n.sm(pB).b)
	}
	n.objs[pB].onEvent(&lwg.Event{Type: lwg.EventExcluded, LWG: xferObject.LWG()})
	n.install(1<<32|3, []hwg.Process{pA}, nil)
	n.propose("b")
	n.install(1<<32|4, []hwg.Process{pA, pB}, []hwg.Process{pB})
	n.queue = nil // the offer is lost
	b := n.objs[pB]
	for range claimTicks {
		b.onTick(1)
		n.queue = nil // and so are B's WANTs
	}
	if len(n.multicasts) != 1 || n.multicasts[0].from != pB {
		t.Fatalf("set-up: B's claim is not out: %d messages", len(n.multicasts))
	}
	n.objs[pA].onEvent(&lwg.Event{Type: lwg.EventExcluded, LWG: xferObject.LWG()})
	n.installAfter(1<<32|5, []hwg.Process{pB}, nil, []hwg.Process{pA})
	return n
}

// TestClaimFromEarlierViewWaits (found in review): B's claim, made in
// view 4 where A (the holder of a later state) was present, does not
// wait; delivered in view 5, whose install named A vanished, it must not
// decide that round: B would seed its older state "a" while A, which may
// come back, holds "ab" (and when A came back it took B's state, so "b"
// was lost). A claim made for an earlier view counts as waiting; B's next
// claim, made in view 5, waits for A; when A comes back, its state wins.
func TestClaimFromEarlierViewWaits(t *testing.T) {
	n := staleClaimNet(t)
	b := n.objs[pB]
	n.run(nil) // B's claim from view 4
	if b.ready || len(seededEvents(n, pB)) != 0 {
		t.Fatalf("B seeded its older state %q in view 5, where A (holding %q) was named vanished", n.sm(pB).b, n.sm(pA).b)
	}
	claimTicksRun(n, 2*emptyRounds+2)
	if b.ready {
		t.Fatalf("B seeded its older state %q while A (holding %q) may come back", n.sm(pB).b, n.sm(pA).b)
	}
	n.install(1<<32|6, []hwg.Process{pB, pA}, []hwg.Process{pA})
	claimTicksRun(n, 2)
	for _, p := range []hwg.Process{pA, pB} {
		if o := n.objs[p]; !o.ready || string(n.sm(p).b) != "ab" {
			t.Fatalf("%v: ready %v, state %q; want A's state ab", p, o.ready, n.sm(p).b)
		}
	}
}

// TestClaimWaitsForStartOverSeed (found in review): K, J and A2 (A
// restarted, so A's state is gone) join a view that is all new, and the
// rounds start the object over: K seeds from nothing and applies "z",
// and the others' transfers are lost. K's claim said it had no state, so
// nothing noted it as a member that may hold one; when K is dropped
// (partitioned away, named Vanished by the next install), J and A2 had
// seen emptyRounds empty rounds already and started over again, dropping
// "z". The seed of a round may hold the state from then on: the rounds
// wait for K, and when it comes back its state is the state.
func TestClaimWaitsForStartOverSeed(t *testing.T) {
	n := newTransferNet(t, Config{})
	n.add(pA, nil)
	n.install(1<<32|1, []hwg.Process{pA}, []hwg.Process{pA})
	n.propose("a")
	a2 := hwg.Process{Node: pA.Node, Inc: pA.Inc + 1}
	n.add(a2, nil)
	n.add(pJ, nil)
	n.add(pK, nil)
	n.installAfter(1<<32|3, []hwg.Process{pK, pJ, a2}, []hwg.Process{pK, pJ, a2}, []hwg.Process{pA})
	lose := func(*direct) bool { return false }
	rounds := func() {
		for range claimTicks {
			for _, p := range n.view.Members {
				n.objs[p].onTick(1)
			}
			n.queue = nil
		}
		n.run(lose)
		n.queue = nil
	}
	for i := 0; i < 2*emptyRounds+2 && !n.objs[pK].ready; i++ {
		rounds()
	}
	if got := seededEvents(n, pK); !n.objs[pK].ready || len(got) != 1 || !errors.Is(got[0].Err, ErrStartedOver) {
		t.Fatalf("set-up: K ready %v, seeded %+v; want K started over", n.objs[pK].ready, got)
	}
	n.propose("z")
	n.queue = nil
	n.objs[pK].onEvent(&lwg.Event{Type: lwg.EventExcluded, LWG: xferObject.LWG()})
	n.installAfter(1<<32|4, []hwg.Process{pJ, a2}, nil, []hwg.Process{pK})
	for range 2*emptyRounds + 2 {
		rounds()
	}
	if got := seededEvents(n, pJ, a2); len(got) != 0 {
		t.Fatalf("J and A2 started over again while K, which holds %q and was named vanished, may come back: %+v", n.sm(pK).b, got)
	}
	n.install(1<<32|5, []hwg.Process{pJ, a2, pK}, []hwg.Process{pK})
	claimTicksRun(n, 3)
	for _, p := range []hwg.Process{pJ, a2, pK} {
		if o := n.objs[p]; !o.ready || string(n.sm(p).b) != "z" {
			t.Fatalf("%v: ready %v, state %q; want K's state z", p, o.ready, n.sm(p).b)
		}
	}
}
