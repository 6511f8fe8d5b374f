package lwg

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
)

// batchService starts a one-node cluster with EventBatches.
func batchService(t *testing.T) *Service { return oneNodeService(t, true) }

// TestMulticastBatch: a batch's messages are sent in order, and before a
// Multicast made after it; one for an LWG this node is not in is refused
// with ErrNotMember and the rest still go. The deliveries arrive on
// Batches, in order, and nothing on Events.
func TestMulticastBatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc := batchService(t)
	if svc.Batches() == nil {
		t.Fatal("Batches is nil with EventBatches")
	}
	joinReading(t, ctx, svc, "l/1")
	joinReading(t, ctx, svc, "l/2")

	msgs := []Message{{"l/1", []byte("a")}, {"l/3", []byte("x")}, {"l/2", []byte("b")}, {"l/1", []byte("c")}}
	if err := svc.MulticastBatch(ctx, msgs, make([]error, 3)); err == nil {
		t.Fatal("MulticastBatch took fewer errs than msgs")
	}
	errs := make([]error, len(msgs))
	for i := range errs {
		errs[i] = errors.New("stale")
	}
	if err := svc.MulticastBatch(ctx, msgs, errs); err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, ErrNotMember, nil, nil} {
		if !errors.Is(errs[i], want) || (want == nil && errs[i] != nil) {
			t.Fatalf("errs[%d] = %v, want %v", i, errs[i], want)
		}
	}
	if err := svc.Multicast(ctx, "l/2", []byte("d")); err != nil {
		t.Fatal(err)
	}

	var got []string
	for len(got) < 4 {
		select {
		case b, ok := <-svc.Batches():
			if !ok {
				t.Fatal("Batches closed")
			}
			for _, e := range b {
				if e.Type == EventDeliver {
					got = append(got, string(e.LWG)+":"+string(e.Payload))
				}
			}
			svc.Release(b)
		case <-ctx.Done():
			t.Fatalf("deliveries so far: %v", got)
		}
	}
	want := []string{"l/1:a", "l/2:b", "l/1:c", "l/2:d"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	}
	select {
	case e := <-svc.Events():
		t.Fatalf("event on Events with EventBatches: %+v", e)
	default:
	}

	svc.Close()
	if err := svc.MulticastBatch(ctx, msgs, errs); !errors.Is(err, ErrClosed) {
		t.Fatalf("MulticastBatch after Close: %v, want ErrClosed", err)
	}
	for range svc.Batches() { // drains what was left, then ends: closed
	}
}

// TestBatchesNilWithoutEventBatches: a Service that hands events out one
// at a time has no Batches channel, and Release is a no-op there.
func TestBatchesNilWithoutEventBatches(t *testing.T) {
	svc := taggedService(t)
	if svc.Batches() != nil {
		t.Fatal("Batches not nil without EventBatches")
	}
	svc.Release(make([]Event, 4)) // must not block or panic
}

// TestReleasedBatchesReused: batches released by the reader come back to
// the loop, so a steady stream of deliveries reuses their arrays instead
// of making new ones.
func TestReleasedBatchesReused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc := batchService(t)
	joinReading(t, ctx, svc, "l/1")
	seen := map[*Event]int{}
	for i := range 50 {
		if err := svc.Multicast(ctx, "l/1", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		for delivered := false; !delivered; {
			select {
			case b := <-svc.Batches():
				for _, e := range b {
					delivered = delivered || e.Type == EventDeliver
				}
				seen[&b[:1][0]]++
				svc.Release(b)
			case <-ctx.Done():
				t.Fatal("no delivery")
			}
		}
	}
	reused := 0
	for _, n := range seen {
		if n > 1 {
			reused += n - 1
		}
	}
	if reused == 0 {
		t.Fatalf("50 deliveries came in %d distinct arrays, none reused", len(seen))
	}
}

// TestMulticastBatchWaitsForRoom: MulticastBatch waits while the batches
// queued hold MulticastQueue messages, goes once the loop takes some, and
// gives up with the caller's context.
func TestMulticastBatchWaitsForRoom(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc := batchService(t)
	joinReading(t, ctx, svc, "l/1")
	limit := int64(svc.cfg.MulticastQueue)
	svc.batchQueued.Add(limit) // as if the loop were behind by that many

	sent := make(chan error, 1)
	go func() {
		sent <- svc.MulticastBatch(ctx, []Message{{"l/1", []byte("a")}}, make([]error, 1))
	}()
	select {
	case err := <-sent:
		t.Fatalf("MulticastBatch went with a full queue: %v", err)
	case <-time.After(50 * time.Millisecond): // real time: the waiter is a goroutine
	}
	svc.batchTaken(1)
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("MulticastBatch still waiting after the loop made room")
	}

	svc.batchQueued.Add(2) // full again (the batch above is counted and taken)
	short, stop := context.WithTimeout(ctx, 20*time.Millisecond)
	defer stop()
	if err := svc.MulticastBatch(short, []Message{{"l/1", []byte("b")}}, make([]error, 1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("MulticastBatch on a full queue with an ending context: %v", err)
	}
}

// TestDrainBoundsEvents: the loop stops taking HWG events once the Core
// holds maxDrainEvents events for the reader, rather than taking
// maxDrainData of them whatever they bring. Run on the loop, with a
// channel of deliveries of 100 entries each standing in for the node's.
func TestDrainBoundsEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc := batchService(t)
	joinReading(t, ctx, svc, "l/1")
	const perMsg = 100
	type outcome struct {
		pending, left, before int
	}
	done := make(chan outcome, 1)
	drain := func() {
		ep := svc.core.eps["l/1"]
		car := svc.core.carriers[ep.h]
		view := car.entry(ep).View.ID
		es := make([]dataEntry, perMsg)
		for i := range es {
			es[i] = dataEntry{l: "l/1", view: view, payload: []byte{byte(i)}}
		}
		msg := encodeBatch(es)
		ch := make(chan hwg.Event, maxDrainData)
		for range cap(ch) {
			ch <- hwg.Event{Type: hwg.EventDeliver, Group: ep.h, Msg: hwg.MsgID{Sender: svc.core.self}, Payload: msg}
		}
		before := svc.core.PendingEvents()
		svc.drain(ch)
		done <- outcome{svc.core.PendingEvents(), len(ch), before}
	}
	select {
	case svc.reqs <- drain:
	case <-ctx.Done():
		t.Fatal("the loop took no request")
	}
	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		t.Fatal("the loop did not run the drain")
	}
	// It stopped at the first HWG event that took the Core to the bound,
	// whatever was pending before (taken, perMsg events each).
	taken := maxDrainData - o.left
	if o.pending-o.before != taken*perMsg {
		t.Fatalf("drain took %d HWG events but %d events are new, want %d each", taken, o.pending-o.before, perMsg)
	}
	if o.left == 0 || o.pending < maxDrainEvents || o.pending-perMsg >= maxDrainEvents {
		t.Fatalf("drain left %d events for the reader (%d before) and %d HWG events waiting; want it to stop once past %d", o.pending, o.before, o.left, maxDrainEvents)
	}
}
