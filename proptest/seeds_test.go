package proptest

import "sync"

// seedWorkers is how many seeded runs a test makes at once.
const seedWorkers = 2

// eachSeed runs seeds 1..runs, seedWorkers at a time, and hands each result
// to report under one lock, in no particular order (report may add to
// totals and fail the test).
func eachSeed[R any](runs int, run func(seed uint64) R, report func(seed uint64, r R)) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for w := range seedWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := uint64(1 + w); seed <= uint64(runs); seed += seedWorkers {
				r := run(seed)
				mu.Lock()
				report(seed, r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
