package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// benchResult is what one workload measured.
type benchResult struct {
	Op      string
	Ops     int64
	Errors  int64
	Elapsed time.Duration
	Lat     []time.Duration // sorted
}

func (r benchResult) rate() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

func (r benchResult) pct(p float64) time.Duration {
	if len(r.Lat) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(r.Lat)))
	return r.Lat[min(i, len(r.Lat)-1)]
}

func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lwgkv bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addrs := fs.String("addr", "127.0.0.1:6380", "RESP addresses of nodes, comma-separated; clients spread over them")
	clients := fs.Int("c", 16, "concurrent clients")
	n := fs.Int("n", 100000, "requests per workload")
	tests := fs.String("t", "set,get", "workloads, in order: set, get, incr, mget")
	size := fs.Int("d", 16, "value size in bytes")
	keys := fs.Int("r", 10000, "number of distinct keys")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *clients < 1 || *n < 1 || *keys < 1 || *size < 0 {
		return fmt.Errorf("-c, -n and -r must be ≥ 1, -d ≥ 0")
	}
	var rcs []*redis.Client
	for _, a := range strings.Split(*addrs, ",") {
		rc := redis.NewClient(&redis.Options{Addr: strings.TrimSpace(a), PoolSize: *clients, MaxRetries: -1, DisableIdentity: true, Protocol: 2})
		defer rc.Close()
		if err := rc.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("%s: %w (is lwgkv running?)", a, err)
		}
		rcs = append(rcs, rc)
	}
	fmt.Fprintf(stdout, "lwgkv bench: %d clients over %d node(s), %d requests per workload, %d keys, %d-byte values\n\n",
		*clients, len(rcs), *n, *keys, *size)
	var results []benchResult
	for _, t := range strings.Split(*tests, ",") {
		t = strings.TrimSpace(t)
		r, err := runWorkload(ctx, rcs, t, *clients, *n, *keys, *size, stderr)
		if err != nil {
			return err
		}
		results = append(results, r)
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Fprintf(stdout, "%-6s %10s %10s %9s %9s %9s %9s %9s %8s\n", "op", "requests", "ops/s", "p50", "p90", "p99", "p99.9", "max", "errors")
	for _, r := range results {
		fmt.Fprintf(stdout, "%-6s %10d %10.0f %9s %9s %9s %9s %9s %8d\n", r.Op, r.Ops, r.rate(),
			fmtDur(r.pct(50)), fmtDur(r.pct(90)), fmtDur(r.pct(99)), fmtDur(r.pct(99.9)), fmtDur(r.pct(100)), r.Errors)
	}
	for _, r := range results {
		if r.Errors > 0 {
			return fmt.Errorf("%d %s requests failed", r.Errors, r.Op)
		}
	}
	return nil
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}

// runWorkload runs n requests of one op from clients goroutines, drawing a
// progress bar on progress.
func runWorkload(ctx context.Context, rcs []*redis.Client, op string, clients, n, keys, size int, progress io.Writer) (benchResult, error) {
	value := strings.Repeat("x", size)
	var do func(ctx context.Context, rc *redis.Client, rng *rand.Rand) error
	key := func(rng *rand.Rand) string { return "key:" + strconv.Itoa(rng.IntN(keys)) }
	switch op {
	case "set":
		do = func(ctx context.Context, rc *redis.Client, rng *rand.Rand) error {
			return rc.Set(ctx, key(rng), value, 0).Err()
		}
	case "get":
		do = func(ctx context.Context, rc *redis.Client, rng *rand.Rand) error {
			err := rc.Get(ctx, key(rng)).Err()
			if errors.Is(err, redis.Nil) {
				return nil
			}
			return err
		}
	case "incr":
		do = func(ctx context.Context, rc *redis.Client, rng *rand.Rand) error {
			return rc.Incr(ctx, "counter:"+strconv.Itoa(rng.IntN(keys))).Err()
		}
	case "mget":
		do = func(ctx context.Context, rc *redis.Client, rng *rand.Rand) error {
			return rc.MGet(ctx, key(rng), key(rng), key(rng), key(rng)).Err()
		}
	default:
		return benchResult{}, fmt.Errorf("unknown workload %q (want set, get, incr or mget)", op)
	}
	var next, done, failed atomic.Int64
	lats := make([][]time.Duration, clients)
	var firstErr atomic.Value
	stop := make(chan struct{})
	barDone := make(chan struct{})
	go func() {
		defer close(barDone)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				drawBar(progress, op, n, n)
				fmt.Fprintln(progress)
				return
			case <-t.C:
				drawBar(progress, op, int(done.Load()), n)
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := rcs[c%len(rcs)]
			rng := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				t0 := time.Now()
				err := do(ctx, rc, rng)
				lats[c] = append(lats[c], time.Since(t0))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	<-barDone
	if e, ok := firstErr.Load().(error); ok {
		fmt.Fprintf(progress, "  %s: first error: %v\n", op, e)
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	return benchResult{Op: op, Ops: done.Load(), Errors: failed.Load(), Elapsed: elapsed, Lat: all}, nil
}

func drawBar(w io.Writer, op string, done, total int) {
	const width = 40
	filled := width * done / total
	fmt.Fprintf(w, "\r%-5s [%s%s] %3d%% %d/%d", op, strings.Repeat("#", filled), strings.Repeat(".", width-filled), 100*done/total, done, total)
}
