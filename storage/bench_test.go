package storage_test

import (
	"fmt"
	"os"
	"slices"
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

// BenchmarkSnapshotWrite writes a 64 MiB snapshot through a SnapshotWriter
// and commits it, in a fresh file and in one whose pages an earlier
// snapshot freed, beside a baseline in the same run: the same bytes
// written to a plain file and synced. It reports MB/s and the ratio.
func BenchmarkSnapshotWrite(b *testing.B) {
	const size = 64 << 20
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i)
	}
	write := func(db *storage.DB) time.Duration {
		start := time.Now()
		w, err := db.CreateSnapshot("o", nil)
		if err != nil {
			b.Fatal(err)
		}
		for left := size; left > 0; left -= len(buf) {
			if _, err := w.Write(buf[:min(left, len(buf))]); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := w.Commit(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	for _, reuse := range []bool{false, true} {
		b.Run(fmt.Sprintf("reuse=%v", reuse), func(b *testing.B) {
			var rates, bases []float64
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				db := storagetest.Open(b, dir+"/node.db", storage.Options{})
				if reuse {
					write(db)
					write(db) // the first one's pages are free now
				}
				bases = append(bases, size/(1<<20)/plainWrite(b, dir+"/plain", buf, size).Seconds())
				b.StartTimer()
				rates = append(rates, size/(1<<20)/write(db).Seconds())
			}
			rate, base := median(rates), median(bases)
			b.ReportMetric(rate, "MB/s")
			b.ReportMetric(base, "file-MB/s")
			b.ReportMetric(rate/base, "ratio")
		})
	}
}

// plainWrite writes size bytes to a new file, in writes of len(buf), and
// syncs it.
func plainWrite(b *testing.B, path string, buf []byte, size int) time.Duration {
	start := time.Now()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for left := size; left > 0; left -= len(buf) {
		if _, err := f.Write(buf[:min(left, len(buf))]); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
