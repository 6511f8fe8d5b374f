package lwg

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestMulticastBatchPoolRace: senders making MulticastBatch calls while
// the loop drains them must not touch a batch the loop gave back to the
// pool (run with -race).
func TestMulticastBatchPoolRace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc := batchService(t)
	joinReading(t, ctx, svc, "l/1")
	go func() {
		for b := range svc.Batches() {
			svc.Release(b)
		}
	}()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs := []Message{{"l/1", []byte("a")}, {"l/1", []byte("b")}, {"l/1", []byte("c")}}
			errs := make([]error, len(msgs))
			for range 3000 {
				if err := svc.MulticastBatch(ctx, msgs, errs); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
