package lwg_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/lwg"
)

// TestServiceEventsBacklog: bursts of events larger than the Events
// channel, met by a reader that is not reading, reach it each exactly
// once and in order once it reads: 1,000 installs at once, then 1,000
// deliveries sent with one MulticastBatch. The Service hands a burst the
// channel took only in part back to the Core whole, for the next burst to
// reuse; a batch recycled too early would show here as a lost or repeated
// event.
func TestServiceEventsBacklog(t *testing.T) {
	const n = 1000
	ctx := ctxT(t)
	sn := startCluster(t, transport.NewMemNetwork(), lwg.Shared("h/x"), 1)[0]
	ls := make([]lwg.ID, n)
	for i := range ls {
		ls[i] = lwg.ID(fmt.Sprintf("l/backlog-%04d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, l := range ls {
		wg.Go(func() { errs <- sn.svc.Join(ctx, l) })
	}
	wg.Wait() // nobody reads Events meanwhile
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// read takes events until it has seen want of type typ, one per LWG,
	// and fails on a repeat or a zero Event.
	read := func(typ lwg.EventType, want int) {
		t.Helper()
		seen := map[lwg.ID]int{}
		for len(seen) < want {
			select {
			case e := <-sn.svc.Events():
				if e.Type == 0 {
					t.Fatalf("a zero Event after %d %v events: one handed out twice, or from a recycled batch", len(seen), typ)
				}
				if e.Type != typ {
					continue
				}
				if seen[e.LWG]++; seen[e.LWG] > 1 {
					t.Fatalf("%v of %s delivered twice", typ, e.LWG)
				}
			case <-ctx.Done():
				t.Fatalf("%d of %d %v events arrived", len(seen), want, typ)
			}
		}
	}
	read(lwg.EventInstall, n)
	msgs := make([]lwg.Message, n)
	for i, l := range ls {
		msgs[i] = lwg.Message{LWG: l, Payload: []byte(l)}
	}
	if err := sn.svc.MulticastBatch(ctx, msgs, make([]error, n)); err != nil {
		t.Fatal(err)
	}
	// Wait until all n are delivered, still without reading: every
	// delivery is queued behind the first 256.
	for {
		st, err := sn.svc.Stats(ctx) // a round trip through the loop
		if err != nil {
			t.Fatalf("%d of %d delivered: %v", st.Delivered, n, err)
		}
		if st.Delivered >= n {
			break
		}
	}
	read(lwg.EventDeliver, n)
}
