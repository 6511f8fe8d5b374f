package main

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/kvexample"
)

// Kill -9 a router between shard groups while INCRs for a shard the
// client's node does not replicate go through group composition: with 5
// processes and 3 replicas, node X is in shard 0's group (the hub) but
// not in the target shard's, and the two nodes in both are the routers
// of the path (request and reply). The busier one is killed; every INCR
// still returns the next value (the successor forwards; no copy is lost
// or applied twice), none is forwarded over RESP, and the restarted node
// catches up.
func TestServeCrossShardKillRouter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const shards = 16
	c := startProcs(t, 5, shards)
	p, err := kvexample.NewPlacement(shards, 3, []hwg.NodeID{1, 2, 3, 4, 5})
	if err != nil {
		t.Fatal(err)
	}
	hub := p.ReplicasOf(0)
	x, tag := -1, ""
	var both []hwg.NodeID
	for i := 0; x < 0 && i < 10000; i++ {
		tg := "t" + strconv.Itoa(i)
		sh := p.ShardOf([]byte(tg))
		for _, n := range hub {
			if p.IsReplica(sh, n) {
				continue
			}
			var common []hwg.NodeID
			for _, h := range hub {
				if p.IsReplica(sh, h) {
					common = append(common, h)
				}
			}
			if len(common) == 2 {
				x, tag, both = int(n)-1, tg, common
				break
			}
		}
	}
	if x < 0 {
		t.Fatal("no key with the wanted placement")
	}
	rc := c.client(x)
	ctr := "{" + tag + "}ctr"
	incr := func(i int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v, err := rc.Incr(ctx, ctr).Result()
		if err != nil {
			t.Fatalf("incr %d: %v", i, err)
		}
		if v != int64(i) {
			t.Fatalf("incr %d returned %d: not exactly once", i, v)
		}
	}
	const n = 60
	for i := 1; i <= n/3; i++ {
		incr(i)
	}
	fwd := func(id hwg.NodeID) int {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		info, err := c.client(int(id) - 1).Info(ctx).Result()
		if err != nil {
			return -1
		}
		v, _ := strconv.Atoi(infoField(info, "compose_router_forwarded"))
		return v
	}
	router := both[0]
	if fwd(both[1]) > fwd(router) {
		router = both[1]
	}
	if fwd(router) <= 0 {
		t.Fatalf("neither %v forwarded anything", both)
	}
	done := make(chan struct{})
	go func() { // while the INCRs go on
		defer close(done)
		c.procs[router-1].kill9()
	}()
	for i := n/3 + 1; i <= n; i++ {
		incr(i)
	}
	<-done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := rc.Info(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if f := infoField(info, "requests_forwarded"); f != "0" {
		t.Fatalf("%s requests forwarded over RESP", f)
	}
	c.procs[router-1].start(t)
	c.waitReady(c.procs[router-1], 60*time.Second)
	incr(n + 1)
	t.Logf("node %d sent %s requests through composition (%s sent again); router %d killed", x+1,
		infoField(info, "requests_composed"), infoField(info, "compose_calls_retried"), router)
}
