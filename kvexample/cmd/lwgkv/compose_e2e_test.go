package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
	_, p := fiveNodes(t, shards)
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

// Kill -9 a node of shard 0's group (the hub) that is the only replica
// node some shard shares with it, then read every acknowledged key
// through every live node: each read of a shard the node does not hold
// crosses composition links, and none may lose its router. (With the
// topology a star around the hub, every such shard was cut off from the
// hub's side until the node came back: reads through the other hub nodes
// timed out for good.) Writes go on through another node meanwhile.
func TestServeKillLeavesEveryShardReachable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const shards = 64
	nodes, p := fiveNodes(t, shards)
	victim := hwg.NodeID(0)
	for s := 1; s < shards && victim == 0; s++ {
		var common []hwg.NodeID
		for _, n := range p.ReplicasOf(0) {
			if p.IsReplica(s, n) {
				common = append(common, n)
			}
		}
		if len(common) == 1 {
			victim = common[0]
		}
	}
	if victim == 0 {
		t.Fatal("no shard shares a single node with shard 0: the test shows nothing")
	}
	c := startProcs(t, len(nodes), shards)
	acked := map[string]string{}
	write := func(via int, prefix string, k int) { c.mustWriteKeys(via, prefix, k, acked) }
	write(0, "before", 100)
	c.procs[victim-1].kill9()
	other := 0
	for other+1 == int(victim) {
		other++
	}
	write(other, "after", 100)
	composed := 0
	for i := range nodes {
		if hwg.NodeID(i+1) == victim {
			continue
		}
		c.readBack(i, acked)
		if f := c.infoInt(i, "requests_forwarded"); f != 0 {
			t.Fatalf("node %d forwarded %d requests over RESP: composition did not serve them", i+1, f)
		}
		composed += c.infoInt(i, "requests_composed")
	}
	if composed == 0 {
		t.Fatal("no request went through composition: the test shows nothing")
	}
	t.Logf("node %d killed; %d keys read through each of the other nodes, %d requests through composition", victim, len(acked), composed)
}

// A rolling restart: each of 5 processes in turn is killed with kill -9
// while writes go on through another, then restarted from its data
// directory; once it is ready the next goes. At the end every
// acknowledged write reads back through every node, and every node holds
// all its shards again.
func TestServeRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const shards = 64
	c := startProcs(t, 5, shards)
	acked := map[string]string{}
	write := func(via int, prefix string, k int) { c.mustWriteKeys(via, prefix, k, acked) }
	write(0, "start", 50)
	for i := range c.procs {
		c.procs[i].kill9()
		write((i+1)%len(c.procs), fmt.Sprintf("down%d", i+1), 50)
		c.procs[i].start(t)
		c.waitReady(c.procs[i], 60*time.Second)
		write(i, fmt.Sprintf("back%d", i+1), 20)
	}
	for i := range c.procs {
		c.readBack(i, acked)
	}
	t.Logf("%d acknowledged writes read back through all 5 nodes after a rolling restart", len(acked))
}

// A process frozen with SIGSTOP (a stalled VM, a long pause) for longer
// than the failure detector's timeout is excluded while the others go on;
// resumed, it learns it was excluded, joins its groups again as a new
// member and serves again. The node frozen is a replica of shard 0 (the
// composition hub). A write through it right after it resumes may end
// UNKNOWN (proposed in a view it had already been excluded from); every
// acknowledged write reads back through every node.
func TestServePausedProcessRejoins(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const shards = 64
	_, p := fiveNodes(t, shards)
	frozen := int(p.MemberSet(0)[1]) - 1 // a hub replica, not node 1
	c := startProcs(t, 5, shards)
	acked := map[string]string{}
	write := func(via int, prefix string, k int) int { return c.writeKeys(via, prefix, k, acked) }
	write(0, "before", 50)
	if err := c.procs[frozen].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	other := (frozen + 1) % 5
	if u := write(other, "frozen", 100); u > 0 {
		t.Fatalf("%d writes through node %d ended UNKNOWN while node %d was frozen", u, other+1, frozen+1)
	}
	time.Sleep(3 * time.Second) // the frozen node is surely excluded by now
	if err := c.procs[frozen].cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	const after = 50
	if u := write(frozen, "resumed", after); u > after/10 {
		t.Fatalf("%d of %d writes through the resumed node %d ended UNKNOWN", u, after, frozen+1)
	}
	for i := range c.procs {
		c.readBack(i, acked)
	}
	t.Logf("node %d frozen 3 s and resumed; %d acknowledged writes read back through all 5 nodes", frozen+1, len(acked))
}

// Two of shard 0's three replicas killed: shard 0's group (the hub of the
// composition tree) loses its majority and stops, and with it every route
// that crosses it, while most shards keep a majority. A read of such a
// shard through a node that holds no replica of it gets half its time on
// the composition route and is then forwarded over RESP to a live
// replica: every acknowledged key of a shard that kept a majority reads
// back through every live node.
func TestServeReadsAroundAStoppedHub(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const shards = 64
	nodes, p := fiveNodes(t, shards)
	hub := p.MemberSet(0)
	killed := hub[:2]
	c := startProcs(t, len(nodes), shards, "-timeout", "1s")
	var live []int
	for i := range nodes {
		if !slices.Contains(killed, hwg.NodeID(i+1)) {
			live = append(live, i)
		}
	}
	keys := map[string]int{}
	for j := 0; len(keys) < 40; j++ {
		k := "k" + strconv.Itoa(j)
		sh := p.ShardOf([]byte(k))
		down := 0
		for _, n := range killed {
			if p.IsReplica(sh, n) {
				down++
			}
		}
		if down <= 1 { // keeps a majority of its replicas
			keys[k] = sh
		}
	}
	for k := range keys {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.client(live[0]).Set(ctx, k, k, 0).Err()
		cancel()
		if err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	for _, n := range killed {
		c.procs[n-1].kill9()
	}
	crossing := 0
	for _, i := range live {
		for k, sh := range keys {
			if !p.IsReplica(sh, hwg.NodeID(i+1)) {
				crossing++
			}
			got, err := getRetry(c.client(i), k)
			if err != nil || got != k {
				t.Fatalf("node %d: %s (shard %d, replicas %v) = %q, %v; nodes %v killed", i+1, k, sh, p.MemberSet(sh), got, err, killed)
			}
		}
	}
	forwarded := 0
	for _, i := range live {
		forwarded += c.infoInt(i, "requests_forwarded")
	}
	if forwarded == 0 {
		t.Fatal("no read was forwarded over RESP: no route crossed the stopped hub, and the test shows nothing")
	}
	t.Logf("nodes %v killed; %d reads of shards not held by the reading node, %d forwarded over RESP after composition", killed, crossing, forwarded)
}

// setRetry sets key through rc, asking again while the answer is TRYAGAIN
// (not applied: safe to retry), up to 25 tries of 5 s each: right after a
// failure a request waits until the failure detector excludes the node.
func setRetry(rc *redis.Client, key, val string) error {
	var err error
	for try := 0; try < 25; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = rc.Set(ctx, key, val, 0).Err()
		cancel()
		if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// getRetry reads key through rc as setRetry writes.
func getRetry(rc *redis.Client, key string) (string, error) {
	var (
		got string
		err error
	)
	for try := 0; try < 25; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err = rc.Get(ctx, key).Result()
		cancel()
		if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
			return got, err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return got, err
}

// writeKeys sets prefix-0 … prefix-(k−1) through node via (an index of
// c.procs) with setRetry and records the acknowledged ones in acked. It
// returns how many ended UNKNOWN (maybe applied); any other error fails
// the test.
func (c *procCluster) writeKeys(via int, prefix string, k int, acked map[string]string) (unknown int) {
	c.t.Helper()
	for j := 0; j < k; j++ {
		key, val := fmt.Sprintf("%s-%d", prefix, j), strconv.Itoa(j)
		switch err := setRetry(c.client(via), key, val); {
		case err == nil:
			acked[key] = val
		case strings.HasPrefix(err.Error(), "UNKNOWN"):
			unknown++
		default:
			c.t.Fatalf("set %s through node %d: %v", key, via+1, err)
		}
	}
	return unknown
}

// mustWriteKeys is writeKeys where no write may end UNKNOWN.
func (c *procCluster) mustWriteKeys(via int, prefix string, k int, acked map[string]string) {
	c.t.Helper()
	if u := c.writeKeys(via, prefix, k, acked); u > 0 {
		c.t.Fatalf("%d writes through node %d ended UNKNOWN", u, via+1)
	}
}

// readBack reads every key of acked through node via with getRetry and
// fails the test on an error or a value other than the acknowledged one.
func (c *procCluster) readBack(via int, acked map[string]string) {
	c.t.Helper()
	for k, v := range acked {
		if got, err := getRetry(c.client(via), k); err != nil || got != v {
			c.t.Fatalf("node %d: %s = %q, %v; want %q", via+1, k, got, err, v)
		}
	}
}

// infoInt returns a numeric INFO field of node i.
func (c *procCluster) infoInt(i int, field string) int {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.client(i).Info(ctx).Result()
	if err != nil {
		c.t.Fatalf("node %d: INFO: %v", i+1, err)
	}
	n, err := strconv.Atoi(infoField(info, field))
	if err != nil {
		c.t.Fatalf("node %d: INFO %s: %v", i+1, field, err)
	}
	return n
}

// fiveNodes is the cluster of the process tests: nodes 1-5 and the
// placement of shards over them with 3 replicas.
func fiveNodes(t *testing.T, shards int) ([]hwg.NodeID, *kvexample.Placement) {
	t.Helper()
	nodes := []hwg.NodeID{1, 2, 3, 4, 5}
	p, err := kvexample.NewPlacement(shards, 3, nodes)
	if err != nil {
		t.Fatal(err)
	}
	return nodes, p
}
