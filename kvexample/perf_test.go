package kvexample

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestPerf measures the KV store beside the raw rsm ceiling in one run:
// a 3-node cluster in this process (1,024 shards, 3 replicas), writes
// (SET) and linearizable reads (GET) at 1, 16 and 256 clients, through
// RESP on node 1 (go-redis) and straight through rsm.Object.Propose/Read
// on node 1's replicas. It prints a Markdown table. LWGKV_PERF=1 runs it;
// LWGKV_PERF_SECONDS sets the time per cell (default 3).
func TestPerf(t *testing.T) {
	if os.Getenv("LWGKV_PERF") == "" {
		t.Skip("set LWGKV_PERF=1 to measure")
	}
	secs := 3
	if s, err := strconv.Atoi(os.Getenv("LWGKV_PERF_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	ns := startLocal(t, 3, DefaultShards, t.TempDir())
	n1 := ns[0]
	const keys = 10000
	value := []byte(strings.Repeat("x", 16))
	key := func(rng *rand.Rand) []byte { return []byte("key:" + strconv.Itoa(rng.IntN(keys))) }
	type op func(ctx context.Context, c int, rng *rand.Rand) error
	measure := func(clients int, f op) (float64, time.Duration, time.Duration, int) {
		ctx := context.Background()
		lats := make([][]time.Duration, clients)
		errs := make([]int, clients)
		deadline := time.Now().Add(time.Duration(secs) * time.Second)
		start := time.Now()
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(c), 3))
				for time.Now().Before(deadline) {
					t0 := time.Now()
					if err := f(ctx, c, rng); err != nil {
						errs[c]++
					}
					lats[c] = append(lats[c], time.Since(t0))
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		all := slices.Concat(lats...)
		slices.Sort(all)
		ne := 0
		for _, e := range errs {
			ne += e
		}
		return float64(len(all)) / el.Seconds(), all[len(all)/2], all[len(all)*99/100], ne
	}
	// Raw rsm: encoded commands straight to node 1's replicas.
	rawSet := func(ctx context.Context, _ int, rng *rand.Rand) error {
		k := key(rng)
		o, _ := n1.rsm.Object(ObjectID(n1.place.ShardOf(k)))
		cmd, _ := EncodeCommand(Command{Op: OpSet, Args: [][]byte{k, value}})
		_, err := o.Propose(ctx, cmd)
		return err
	}
	rawGet := func(ctx context.Context, _ int, rng *rand.Rand) error {
		k := key(rng)
		o, _ := n1.rsm.Object(ObjectID(n1.place.ShardOf(k)))
		q, _ := EncodeCommand(Command{Op: OpGet, Args: [][]byte{k}})
		_, err := o.Read(ctx, q)
		return err
	}
	rc := redis.NewClient(&redis.Options{Addr: n1.RESPAddr(), PoolSize: 300, MaxRetries: -1, DisableIdentity: true, Protocol: 2})
	defer rc.Close()
	kvSet := func(ctx context.Context, _ int, rng *rand.Rand) error {
		return rc.Set(ctx, string(key(rng)), value, 0).Err()
	}
	kvGet := func(ctx context.Context, _ int, rng *rand.Rand) error {
		err := rc.Get(ctx, string(key(rng))).Err()
		if err == redis.Nil {
			err = nil
		}
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| op | clients | rsm ops/s | rsm p50 | rsm p99 | KV (RESP) ops/s | KV p50 | KV p99 | KV / rsm |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, w := range []struct {
		name    string
		raw, kv op
	}{{"SET", rawSet, kvSet}, {"GET", rawGet, kvGet}} {
		for _, c := range []int{1, 16, 256} {
			rr, rp50, rp99, re := measure(c, w.raw)
			kr, kp50, kp99, ke := measure(c, w.kv)
			if re+ke > 0 {
				t.Errorf("%s at %d clients: %d rsm and %d KV errors", w.name, c, re, ke)
			}
			fmt.Fprintf(&b, "| %s | %d | %.0f | %v | %v | %.0f | %v | %v | %.2f |\n", w.name, c,
				rr, rp50.Round(10*time.Microsecond), rp99.Round(10*time.Microsecond),
				kr, kp50.Round(10*time.Microsecond), kp99.Round(10*time.Microsecond), kr/rr)
		}
	}
	t.Logf("%d s per cell, 10,000 keys, 16-byte values\n%s", secs, b.String())
}
