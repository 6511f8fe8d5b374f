package storage_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/storage"
	"github.com/lwgkit/lwgkit/storage/storagetest"
)

// BenchmarkSetApplied measures SetApplied from concurrent callers (one
// goroutine per object), group-committed through bbolt's Batch, against a
// baseline run beside it in the same benchmark: the same calls each in its
// own transaction (one fsync per call). It reports both times per call and
// their ratio, "speedup" (baseline / group commit), which is what to
// compare across machines. It runs with the default batch delay and with
// bbolt's own (10 ms), which shows what a lone caller pays for waiting.
func BenchmarkSetApplied(b *testing.B) {
	for _, delay := range []time.Duration{storage.DefaultMaxBatchDelay, 10 * time.Millisecond} {
		for _, callers := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("delay=%v/callers=%d", delay, callers), func(b *testing.B) {
				db := storagetest.Open(b, b.TempDir()+"/node.db", storage.Options{MaxBatchDelay: delay})
				objects := make([]string, callers)
				for i := range objects {
					objects[i] = fmt.Sprintf("obj-%d", i)
				}
				// run makes n calls of set, spread over the callers, and
				// returns the time they took.
				run := func(n int, set func(object string, index uint64) error) time.Duration {
					var next atomic.Int64
					var wg sync.WaitGroup
					start := time.Now()
					for _, object := range objects {
						wg.Go(func() {
							for {
								i := next.Add(1)
								if i > int64(n) {
									return
								}
								if err := set(object, uint64(i)); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					wg.Wait()
					return time.Since(start)
				}
				run(callers, db.SetApplied) // warm up: every key exists
				b.ResetTimer()
				batched := run(b.N, db.SetApplied)
				b.StopTimer()
				// The baseline makes at most 2,000 calls, enough to measure an
				// fsync, not b.N of them, which would take minutes.
				m := min(b.N, 2000)
				unbatched := run(m, db.SetAppliedUnbatched)
				perBatched := float64(batched.Nanoseconds()) / float64(b.N)
				perUnbatched := float64(unbatched.Nanoseconds()) / float64(m)
				b.ReportMetric(perUnbatched, "ns/op-unbatched")
				b.ReportMetric(perUnbatched/perBatched, "speedup")
			})
		}
	}
}
