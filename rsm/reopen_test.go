package rsm

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// An object every replica of which was closed has no state anywhere: its
// replicas left voluntarily, and Close deleted their snapshots. Opened
// again, it must start over at once, not after emptyRounds claim rounds
// (about 30 s at the default tick), which wait for holders that may be
// away: nobody can be.

func blobFactory(ObjectID) (StateMachine, error) { return &blobSM{}, nil }

// roundState describes o's claim round, for failure messages.
func roundState(o *Object) string {
	o.smMu.Lock()
	defer o.smMu.Unlock()
	if o.round == nil {
		return fmt.Sprintf("ready=%v latest=%v round=none empty=%d", o.ready, o.latest, o.empty)
	}
	r := o.round
	var away []hwg.Process
	for p := range r.away.procs {
		away = append(away, p)
	}
	return fmt.Sprintf("ready=%v latest=%v round{view=%v claimed=%v cancelled=%v claims=%v out=%d mayHold=%v left=%v} empty=%d waiting=%d",
		o.ready, o.latest, r.view, r.claimed, r.cancelled, r.claims, r.out, away, r.away.left, o.empty, o.waiting)
}

func startReopenNode(t *testing.T, ctx context.Context, id hwg.NodeID, seeds []string) *Node {
	t.Helper()
	n, err := Start(ctx, StartConfig{Node: id, Cluster: "reopen", DataDir: t.TempDir(), Listen: "127.0.0.1:0",
		Seeds: seeds, Bootstrap: len(seeds) == 0, Contacts: []hwg.NodeID{1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// reopenWithin opens id on n and fails the test if it is not ready within d.
func reopenWithin(t *testing.T, n *Node, id ObjectID, d time.Duration) *Object {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	o, err := n.Open(ctx, id, blobFactory)
	if err != nil {
		if cur, ok := n.Object(id); ok {
			t.Logf("node %v: %s", n.self, roundState(cur))
		}
		t.Fatalf("node %v: reopening %s after every replica closed: %v", n.self, id, err)
	}
	t.Logf("node %v: %s ready again after %v", n.self, id, time.Since(start).Round(time.Millisecond))
	return o
}

func TestReopenAfterCloseOneNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := startReopenNode(t, ctx, 1, nil)
	const id ObjectID = "x"
	o, err := n.Open(ctx, id, blobFactory)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Propose(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	o = reopenWithin(t, n, id, 3*time.Second)
	// It started over from nothing: the closed state is gone.
	if _, err := o.Propose(ctx, []byte("b")); err != nil {
		t.Fatal(err)
	}
	o.smMu.Lock()
	got := string(o.sm.(*blobSM).b)
	o.smMu.Unlock()
	if got != "b" {
		t.Fatalf("state after reopening = %q, want %q (started over)", got, "b")
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// A third life, to see the rule hold when the view ids went on twice.
	reopenWithin(t, n, id, 3*time.Second)
}

func TestReopenAfterCloseThreeNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n1 := startReopenNode(t, ctx, 1, nil)
	n2 := startReopenNode(t, ctx, 2, []string{n1.HWG().Addr()})
	n3 := startReopenNode(t, ctx, 3, []string{n1.HWG().Addr(), n2.HWG().Addr()})
	nodes := []*Node{n1, n2, n3}
	const id ObjectID = "y"
	var objs []*Object
	for _, n := range nodes {
		o, err := n.Open(ctx, id, blobFactory)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	for i, o := range objs {
		if _, err := o.Propose(ctx, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range objs {
		if err := o.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Reopened everywhere at once: the replicas join one after another
	// (or together), and every one must be ready within a few seconds.
	type res struct {
		o   *Object
		err error
	}
	done := make(chan res, len(nodes))
	start := time.Now()
	for _, n := range nodes {
		go func() {
			octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
			defer ocancel()
			o, err := n.Open(octx, id, blobFactory)
			if err != nil {
				if cur, ok := n.Object(id); ok {
					err = fmt.Errorf("node %v: %w (%s)", n.self, err, roundState(cur))
				}
			}
			done <- res{o, err}
		}()
	}
	var reopened []*Object
	for range nodes {
		r := <-done
		if r.err != nil {
			t.Errorf("reopening %s after every replica closed: %v", id, r.err)
			continue
		}
		reopened = append(reopened, r.o)
	}
	if t.Failed() {
		return
	}
	t.Logf("every replica of %s ready again after %v", id, time.Since(start).Round(time.Millisecond))
	if _, err := reopened[0].Propose(ctx, []byte("z")); err != nil {
		t.Fatal(err)
	}
	// One state: what the new life applied, and nothing of the old one.
	for _, o := range reopened {
		if _, err := o.Propose(ctx, nil); err != nil { // after "z" in the order
			t.Fatal(err)
		}
		o.smMu.Lock()
		got := string(o.sm.(*blobSM).b)
		o.smMu.Unlock()
		if got != "z" {
			t.Errorf("%v: state after reopening = %q, want %q", o.self, got, "z")
		}
	}
}

// TestClaimAllLeftStartsOverAtOnce: A, alone with the state, leaves (as
// Close does); B joins alone in the next view of the LWG (its view ids go
// on), which names nobody that vanished. Every earlier member left, so
// nobody can come back with the state: B's first round starts the object
// over, with no claim ticks (before, two more rounds, 15 s apart).
func TestClaimAllLeftStartsOverAtOnce(t *testing.T) {
	n := newTransferNet(t, Config{})
	n.add(pA, nil)
	n.add(pB, nil)
	n.install(1<<32|1, []hwg.Process{pA}, []hwg.Process{pA})
	n.propose("a")
	n.objs[pA].onEvent(lwg.Event{Type: lwg.EventLeft, LWG: xferObject.LWG()})
	n.install(1<<32|3, []hwg.Process{pB}, []hwg.Process{pB})
	n.run(nil)
	if b := n.objs[pB]; !b.ready || len(n.sm(pB).b) != 0 {
		t.Fatalf("B: ready %v, state %q; want the empty state at once", b.ready, n.sm(pB).b)
	}
	if got := seededEvents(n, pB); len(got) != 1 || !errors.Is(got[0].Err, ErrStartedOver) {
		t.Fatalf("EventSeeded: %+v, want one with ErrStartedOver", got)
	}
}

// TestClaimAfterVanishedStillWaits: the same, but A vanished (its LWG
// ended by failure, and lwg names A in the next life's first install):
// B's rounds wait for A, which may come back with the state.
func TestClaimAfterVanishedStillWaits(t *testing.T) {
	n := newTransferNet(t, Config{})
	n.add(pA, nil)
	n.add(pB, nil)
	n.install(1<<32|1, []hwg.Process{pA}, []hwg.Process{pA})
	n.propose("a")
	n.objs[pA].onEvent(lwg.Event{Type: lwg.EventExcluded, LWG: xferObject.LWG()})
	n.installAfter(1<<32|3, []hwg.Process{pB}, []hwg.Process{pB}, []hwg.Process{pA})
	claimTicksRun(n, 2*emptyRounds+2)
	if b := n.objs[pB]; b.ready || b.hasState {
		t.Fatalf("B started the object over while A may come back: ready %v, state %q", b.ready, n.sm(pB).b)
	}
}

// TestClaimCompleteWhileNobodyVanishes: a replica that joined when every
// earlier member had left knows every member that may hold the state
// (its claims count as emptyRounds empty rounds) until one goes without
// leaving: named in Vanished, or dropped from a view without being in
// Left (a switch's new carrier may drop members so).
func TestClaimCompleteWhileNobodyVanishes(t *testing.T) {
	// lastClaim decodes the one claim B sent since the last call.
	lastClaim := func(t *testing.T, n *transferNet) claim {
		t.Helper()
		var mine []msg
		for _, m := range n.multicasts {
			if m.from == pB {
				mine = append(mine, m)
			}
		}
		if len(mine) != 1 {
			t.Fatalf("B sent %d claims, want 1", len(mine))
		}
		m, err := decodeOrdered(mine[0].b)
		if err != nil || m.kind != kindClaim {
			t.Fatalf("B's claim: kind %d, %v", m.kind, err)
		}
		// The claims are lost: B's next round (an install starts one)
		// sends a new one.
		n.multicasts, n.objs[pB].round.out = nil, 0
		return m.claim
	}
	for _, c := range []struct {
		name string
		last lwg.Event
		want bool
	}{
		{"left", lwg.Event{View: lwg.View{ID: 1<<32 | 4, Members: []hwg.Process{pB}}, Left: []hwg.Process{pJ}}, true},
		{"vanished", lwg.Event{View: lwg.View{ID: 1<<32 | 4, Members: []hwg.Process{pB}}, Vanished: []hwg.Process{pJ}}, false},
		{"dropped", lwg.Event{View: lwg.View{ID: 1<<32 | 4, Members: []hwg.Process{pB}}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newTransferNet(t, Config{})
			n.add(pB, nil)
			n.add(pJ, nil)
			// B and J join together, after every earlier member left.
			n.install(1<<32|3, []hwg.Process{pB, pJ}, []hwg.Process{pB, pJ})
			if cl := lastClaim(t, n); cl.empty < emptyRounds {
				t.Fatalf("B joined after every earlier member left, but its claim counts %d empty rounds", cl.empty)
			}
			e := c.last
			e.Type, e.LWG = lwg.EventInstall, xferObject.LWG()
			n.view = e.View
			n.objs[pB].onEvent(e)
			if cl := lastClaim(t, n); (cl.empty >= emptyRounds) != c.want {
				t.Fatalf("B's claim counts %d empty rounds; want the all-left count: %v", cl.empty, c.want)
			}
		})
	}
}
