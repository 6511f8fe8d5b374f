package kvexample

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lwgkit/lwgkit/lwg"
)

// BenchmarkCrossShardINCR: 5 nodes in this process over loopback TCP (64
// shards, 3 replicas, the composition tree of Placement.ComposeTopology).
// Through RESP on node 1, each iteration INCRs a key of a shard node 1
// replicates (the baseline, in the same iteration) and a key of a shard
// it does not, whose composition route from node 1's home group (the
// group its routed requests go through) crosses `links` links. It reports both mean latencies and their ratio.
//
//	go test ./kvexample -run '^$' -bench CrossShardINCR -benchtime 300x
func BenchmarkCrossShardINCR(b *testing.B) {
	ns := startLocal(b, 5, 64, b.TempDir())
	x := ns[0]
	topo, err := x.place.ComposeTopology()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: x.RESPAddr(), MaxRetries: -1, DisableIdentity: true, Protocol: 2})
	defer rc.Close()
	// The first routed request fixes node 1's home group, which later
	// ones go through (one tree per process, FIFO): route lengths are
	// measured from it.
	for i := 0; ; i++ {
		key := "{h" + strconv.Itoa(i) + "}c"
		if !x.place.IsReplica(x.place.ShardOf([]byte(key)), x.cfg.ID) {
			if err := rc.Incr(ctx, key).Err(); err != nil {
				b.Fatal(err)
			}
			break
		}
	}
	local := ""
	byLinks := map[int]string{}
	for i := 0; i < 100000 && (local == "" || len(byLinks) < 4); i++ {
		key := "{t" + strconv.Itoa(i) + "}c"
		sh := x.place.ShardOf([]byte(key))
		if x.place.IsReplica(sh, x.cfg.ID) {
			if local == "" {
				local = key
			}
			continue
		}
		target := ObjectID(sh).LWG()
		src, err := x.objs.Through(ctx, []lwg.ID{target})
		if err != nil {
			b.Fatal(err)
		}
		d, err := topo.Distance(src, target)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := byLinks[d]; !ok {
			byLinks[d] = key
		}
	}
	for links := 1; links <= 4; links++ {
		key, ok := byLinks[links]
		if !ok {
			continue
		}
		b.Run(fmt.Sprintf("links=%d", links), func(b *testing.B) {
			var tl, tr time.Duration
			for range b.N {
				t0 := time.Now()
				if err := rc.Incr(ctx, local).Err(); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := rc.Incr(ctx, key).Err(); err != nil {
					b.Fatal(err)
				}
				tl += t1.Sub(t0)
				tr += time.Since(t1)
			}
			b.ReportMetric(float64(tl.Microseconds())/float64(b.N), "local-µs")
			b.ReportMetric(float64(tr.Microseconds())/float64(b.N), "routed-µs")
			b.ReportMetric(float64(tr)/float64(tl), "routed/local")
		})
	}
}
