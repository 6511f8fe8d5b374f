package rsm

import (
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
	n.objs[pA].onEvent(lwg.Event{Type: lwg.EventExcluded, LWG: xferObject.LWG()})
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
}
