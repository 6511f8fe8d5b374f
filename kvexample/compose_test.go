package kvexample

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/redis/go-redis/v9"
)

// TestCrossShardThroughCompose: with 5 nodes and 3 replicas, node 1
// serves SET, GET and INCR on a shard it holds no replica of through group
// composition (no RESP forwarding), and a run of INCRs stays exactly once
// — each returns the next value — while the router that forwards into
// the shard's group is stopped mid-run (the successor forwards). Node 1
// sends a request again after 15 ms without a result, under the id of
// its first attempt, so most INCRs are retried and must still apply once.
func TestCrossShardThroughCompose(t *testing.T) {
	ns := startLocalWith(t, 5, 16, t.TempDir(), func(c *NodeConfig) {
		if c.ID == 1 {
			c.ComposeAttempt = 15 * time.Millisecond
		}
	})
	x := ns[0]
	p := x.place
	var tag string
	var shard int
	for i := 0; ; i++ {
		tag = "t" + strconv.Itoa(i)
		if shard = p.ShardOf([]byte(tag)); !p.IsReplica(shard, x.cfg.ID) {
			break
		}
	}
	key, ctr := "{"+tag+"}k", "{"+tag+"}ctr"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: x.RESPAddr(), MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx, key, "v1", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	if v, err := c.Get(ctx, key).Result(); err != nil || v != "v1" {
		t.Fatalf("get: %q %v", v, err)
	}
	composed, forwarded := x.store.Routed()
	if composed < 2 || forwarded != 0 {
		t.Fatalf("composed %d, forwarded over RESP %d: the requests did not go through composition", composed, forwarded)
	}
	// The path from node 1 to the shard, and the router into its group.
	target := ObjectID(shard).LWG()
	src, err := x.objs.Through(ctx, []lwg.ID{target})
	if err != nil {
		t.Fatal(err)
	}
	topo, _ := p.ComposeTopology()
	route, err := topo.Route(src, target)
	if err != nil || len(route) < 2 {
		t.Fatalf("route %v %v", route, err)
	}
	last := route[len(route)-2]
	var router hwg.Process
	for _, n := range ns {
		if r, ok, err := n.objs.RouterFor(ctx, last, target); err == nil && ok {
			router = r
			break
		}
	}
	if router.Node == 0 || router.Node == x.cfg.ID {
		t.Fatalf("router of %s→%s: %v", last, target, router)
	}
	// For the record (not asserted): INCR latency on a shard node 1
	// replicates, against through composition (the INCRs below before
	// the router stops).
	var local string
	for i := 0; ; i++ {
		local = "{l" + strconv.Itoa(i) + "}c"
		if p.IsReplica(p.ShardOf([]byte(local)), x.cfg.ID) {
			break
		}
	}
	start := time.Now()
	for range 20 {
		if err := c.Incr(ctx, local).Err(); err != nil {
			t.Fatal(err)
		}
	}
	localMean := time.Since(start) / 20
	const n = 30
	stopped := make(chan struct{})
	var composedTook time.Duration
	for i := 1; i <= n; i++ {
		if i == 1 {
			start = time.Now()
		}
		if i == n/3 {
			composedTook = time.Since(start) / time.Duration(i-1)
			go func() { // while INCRs are under way
				ns[router.Node-1].Close()
				close(stopped)
			}()
		}
		v, err := c.Incr(ctx, ctr).Result()
		if err != nil {
			t.Fatalf("incr %d: %v", i, err)
		}
		if v != int64(i) {
			t.Fatalf("incr %d returned %d: not exactly once", i, v)
		}
	}
	<-stopped
	if v, err := c.Get(ctx, ctr).Result(); err != nil || v != fmt.Sprint(n) {
		t.Fatalf("ctr: %q %v", v, err)
	}
	composed, forwarded = x.store.Routed()
	if forwarded != 0 {
		t.Fatalf("%d requests forwarded over RESP", forwarded)
	}
	if x.objs.CallRetries() == 0 {
		t.Error("no request was sent again: the test does not exercise retries")
	}
	t.Logf("route %v, router %v stopped; %d requests through composition, %d calls sent again; INCR mean %v local, %v through composition",
		route, router, composed, x.objs.CallRetries(), localMean, composedTook)
}
