package kvexample

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/redis/go-redis/v9"
)

// fakeReplica stands for a shard's rsm object in unit tests: one Machine
// shared by every replica node, as if replication were instant.
type fakeReplica struct {
	mu sync.Mutex
	m  *Machine
}

func (f *fakeReplica) Propose(_ context.Context, cmd []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m.Apply(cmd)
}

func (f *fakeReplica) Read(_ context.Context, q []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m.Query(q)
}

// fakeCluster is a cluster of Stores over fake replicas, forwarding
// in-process (or over RESP when servers are started).
type fakeCluster struct {
	place  *Placement
	shards []*fakeReplica
	stores map[hwg.NodeID]*Store

	mu   sync.Mutex
	down map[hwg.NodeID]bool
}

func newFakeCluster(t *testing.T, nodes, shards, replicas int) *fakeCluster {
	t.Helper()
	var ids []hwg.NodeID
	for i := 1; i <= nodes; i++ {
		ids = append(ids, hwg.NodeID(i))
	}
	p, err := NewPlacement(shards, replicas, ids)
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeCluster{place: p, stores: map[hwg.NodeID]*Store{}, down: map[hwg.NodeID]bool{}}
	for range shards {
		c.shards = append(c.shards, &fakeReplica{m: NewMachine()})
	}
	for _, id := range ids {
		st, err := NewStore(StoreConfig{Placement: p, Self: id, Local: c.local(id), Forward: c, MaxValueBytes: 1000})
		if err != nil {
			t.Fatal(err)
		}
		c.stores[id] = st
	}
	return c
}

func (c *fakeCluster) local(id hwg.NodeID) func(int) (Replica, bool) {
	return func(shard int) (Replica, bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.down[id] || !c.place.IsReplica(shard, id) {
			return nil, false
		}
		return c.shards[shard], true
	}
}

func (c *fakeCluster) Forward(ctx context.Context, to hwg.NodeID, shard int, cmd []byte, read bool) ([]byte, error) {
	c.mu.Lock()
	down := c.down[to]
	c.mu.Unlock()
	if down {
		return nil, fmt.Errorf("%w: node %d down", ErrNotHere, to)
	}
	return c.stores[to].ExecLocal(ctx, shard, cmd, read)
}

func TestPlacement(t *testing.T) {
	p, err := NewPlacement(1024, 3, []hwg.NodeID{5, 1, 4, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	sets := map[hwg.GroupID]int{}
	perNode := map[hwg.NodeID]int{}
	for s := 0; s < p.Shards; s++ {
		ms := p.MemberSet(s)
		if len(ms) != 3 {
			t.Fatalf("shard %d: %v", s, ms)
		}
		sets[p.Carrier(s)]++
		for _, n := range ms {
			perNode[n]++
		}
		if got := p.LWGPlacement()(ObjectID(s).LWG()); got != p.Carrier(s) {
			t.Fatalf("LWGPlacement(%d) = %s, want %s", s, got, p.Carrier(s))
		}
	}
	if len(sets) != 10 {
		t.Fatalf("%d member sets, want the 10 of C(5,3): %v", len(sets), sets)
	}
	for n, k := range perNode {
		if k < 1024*3/5*8/10 || k > 1024*3/5*12/10 {
			t.Errorf("node %d replicates %d shards: unbalanced %v", n, k, perNode)
		}
	}
	// Removing a node moves only the shards it held.
	q, _ := NewPlacement(1024, 3, []hwg.NodeID{1, 2, 3, 4})
	for s := 0; s < p.Shards; s++ {
		if !p.IsReplica(s, 5) && fmt.Sprint(p.MemberSet(s)) != fmt.Sprint(q.MemberSet(s)) {
			t.Fatalf("shard %d moved without involving node 5", s)
		}
	}
	if p.ShardOf([]byte("{user1}.a")) != p.ShardOf([]byte("{user1}.b")) {
		t.Fatal("hash tags not honoured")
	}
	if s, ok := ShardOfObject(ObjectID(77)); !ok || s != 77 {
		t.Fatal("ShardOfObject")
	}
	for _, bad := range []rsm.ObjectID{"kv/", "kv/01", "kv/-1", "x/1"} {
		if _, ok := ShardOfObject(bad); ok {
			t.Errorf("ShardOfObject(%q) accepted", bad)
		}
	}
	if _, err := NewPlacement(8, 3, []hwg.NodeID{1, 1}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal("duplicate node accepted")
	}
}

func TestStoreForwardsAndSurvivesADownReplica(t *testing.T) {
	c := newFakeCluster(t, 5, 64, 3)
	ctx := context.Background()
	keys := make([][]byte, 100)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("key-%d", i))
		if _, err := c.stores[hwg.NodeID(i%5+1)].Set(ctx, keys[i], []byte(fmt.Sprint(i)), 0); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	c.down[2] = true
	c.mu.Unlock()
	for _, from := range []hwg.NodeID{1, 3, 4, 5} {
		vs, err := c.stores[from].MGet(ctx, keys...)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vs {
			if string(v) != fmt.Sprint(i) {
				t.Fatalf("from %d: key %d = %q", from, i, v)
			}
		}
		n, err := c.stores[from].Exists(ctx, append(keys, []byte("missing"))...)
		if err != nil || n != 100 {
			t.Fatalf("exists = %d, %v", n, err)
		}
	}
	if n, err := c.stores[1].Del(ctx, keys[:10]...); err != nil || n != 10 {
		t.Fatalf("del = %d, %v", n, err)
	}
	if _, err := c.stores[1].Set(ctx, []byte("k"), make([]byte, 1001), 0); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	// With every replica of a shard down, the shard is unavailable and
	// the error says a retry is safe.
	sh := c.place.ShardOf([]byte("k"))
	c.mu.Lock()
	for _, n := range c.place.ReplicasOf(sh) {
		c.down[n] = true
	}
	c.mu.Unlock()
	var from hwg.NodeID
	for _, n := range c.place.Nodes {
		if !c.place.IsReplica(sh, n) {
			from = n
		}
	}
	_, err := c.stores[from].Set(ctx, []byte("k"), []byte("v"), 0)
	if !errors.Is(err, ErrUnavailable) || !strings.HasPrefix(respError(err), "TRYAGAIN") {
		t.Fatalf("all replicas down: %v (%s)", err, respError(err))
	}
}

// respCluster starts a RESP server per fake node, forwarding over RESP.
func respCluster(t *testing.T, nodes int) (*fakeCluster, map[hwg.NodeID]string) {
	c := newFakeCluster(t, nodes, 32, 2)
	addrs := map[hwg.NodeID]string{}
	var servers []*RESPServer
	for id := range c.stores {
		srv, err := NewRESPServer(RESPConfig{Store: c.stores[id], Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		addrs[id] = srv.Addr().String()
		servers = append(servers, srv)
	}
	fwd := NewRESPForwarder(addrs)
	for _, st := range c.stores {
		st.cfg.Forward = fwd
	}
	t.Cleanup(func() {
		fwd.Close()
		for _, s := range servers {
			s.Close()
		}
	})
	return c, addrs
}

func TestRESP(t *testing.T) {
	_, addrs := respCluster(t, 3)
	ctx := context.Background()
	cl := redis.NewClient(&redis.Options{Addr: addrs[1], MaxRetries: -1})
	defer cl.Close()
	cl2 := redis.NewClient(&redis.Options{Addr: addrs[3], MaxRetries: -1})
	defer cl2.Close()

	if v, err := cl.Ping(ctx).Result(); err != nil || v != "PONG" {
		t.Fatalf("ping: %q %v", v, err)
	}
	for i := 0; i < 40; i++ {
		k := fmt.Sprintf("k%d", i)
		if v, err := cl.Set(ctx, k, i, 0).Result(); err != nil || v != "OK" {
			t.Fatalf("set: %q %v", v, err)
		}
		if v, err := cl2.Get(ctx, k).Result(); err != nil || v != fmt.Sprint(i) {
			t.Fatalf("get %s from another node: %q %v", k, v, err)
		}
	}
	if _, err := cl.Get(ctx, "missing").Result(); err != redis.Nil {
		t.Fatalf("get missing: %v", err)
	}
	if v, err := cl.MGet(ctx, "k1", "missing", "k2").Result(); err != nil || v[0] != "1" || v[1] != nil || v[2] != "2" {
		t.Fatalf("mget: %v %v", v, err)
	}
	if v, err := cl.Incr(ctx, "k5").Result(); err != nil || v != 6 {
		t.Fatalf("incr: %v %v", v, err)
	}
	if v, err := cl.DecrBy(ctx, "k5", 10).Result(); err != nil || v != -4 {
		t.Fatalf("decrby: %v %v", v, err)
	}
	if v, err := cl.Exists(ctx, "k1", "k2", "nope").Result(); err != nil || v != 2 {
		t.Fatalf("exists: %v %v", v, err)
	}
	if v, err := cl.Del(ctx, "k1", "k2", "nope").Result(); err != nil || v != 2 {
		t.Fatalf("del: %v %v", v, err)
	}
	if ok, err := cl.SetNX(ctx, "k3", "x", 0).Result(); err != nil || ok {
		t.Fatalf("setnx existing: %v %v", ok, err)
	}
	if v, err := cl.Info(ctx).Result(); err != nil || !strings.Contains(v, "redis_version:") || !strings.Contains(v, "shards:32") {
		t.Fatalf("info: %q %v", v, err)
	}
	cl.Set(ctx, "s", "abc", 0)
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"get"}, "ERR wrong number of arguments for 'get' command"},
		{[]any{"set", "a"}, "ERR wrong number of arguments for 'set' command"},
		{[]any{"incr", "a", "b"}, "ERR wrong number of arguments for 'incr' command"},
		{[]any{"hset", "h", "f", "v"}, "ERR unknown command 'hset', with args beginning with: 'h' 'f' 'v' "},
		{[]any{"incr", "s"}, "ERR value is not an integer or out of range"},
		{[]any{"incrby", "n", "1.5"}, "ERR value is not an integer or out of range"},
		{[]any{"set", "a", "b", "EX", "10"}, "ERR SET option EX is not supported by lwgkv"},
		{[]any{"set", "a", "b", "NX", "XX"}, "ERR syntax error"},
		{[]any{"set", "big", strings.Repeat("x", 1001)}, "ERR kvexample: value too large: 1001 bytes, the limit is 1000"},
		{[]any{"lwgkv.shard", "0", "w", "garbage"}, "ERR kvexample: malformed encoding: count 97 too large"},
	} {
		err := cl.Do(ctx, tc.args...).Err()
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
	}
	if v, err := cl.Get(ctx, "s").Result(); err != nil || v != "abc" {
		t.Fatalf("a failed INCR changed the value: %q %v", v, err)
	}
	if _, err := cl.Get(ctx, "big").Result(); err != redis.Nil {
		t.Fatalf("an oversized SET stored something: %v", err)
	}
	if v, err := cl.ConfigGet(ctx, "save").Result(); err != nil || len(v) != 1 {
		t.Fatalf("config get: %v %v", v, err)
	}
	// The connection still works after errors.
	if err := cl.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestRESPMalformed(t *testing.T) {
	_, addrs := respCluster(t, 1)
	for _, in := range []string{"*1\r\n$abc\r\n", "*2\r\n$3\r\nget\r\n$-5\r\n", "*x\r\n"} {
		c, err := net.Dial("tcp", addrs[1])
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(c, in)
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || !strings.HasPrefix(line, "-ERR Protocol error") {
			t.Errorf("%q: got %q, %v", in, line, err)
		}
	}
	// Inline commands (what telnet users type) work.
	c, err := net.Dial("tcp", addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "PING\r\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Fatalf("inline ping: %q %v", line, err)
	}
}

// TestCheckRouted: a command that reached a shard through composition is
// refused unless its keys belong to that shard, as one forwarded over
// RESP is: nodes whose placements differ must not write a key into the
// wrong shard.
func TestCheckRouted(t *testing.T) {
	p, err := NewPlacement(16, 3, []hwg.NodeID{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("some-key")
	shard := p.ShardOf(key)
	cmd, err := EncodeCommand(Command{Op: OpSet, Args: [][]byte{key, []byte("v")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkRouted(p, ObjectID(shard), cmd); err != nil {
		t.Fatalf("a command for its own shard refused: %v", err)
	}
	for name, c := range map[string]struct {
		target rsm.ObjectID
		cmd    []byte
	}{
		"another shard": {ObjectID((shard + 1) % 16), cmd},
		"not a shard":   {rsm.ObjectID("elsewhere"), cmd},
		"no such shard": {ObjectID(99), cmd},
		"not a command": {ObjectID(shard), []byte{0xff}},
	} {
		if err := checkRouted(p, c.target, c.cmd); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// A composition route that never answers (a group on it lost its
// majority): a read gets half its time there and the rest forwarded over
// RESP, so it is served; a write is not forwarded (it may still be
// applied through the route) and ends with the request.
func TestStoreReadFallsBackWhenCompositionStalls(t *testing.T) {
	c := newFakeCluster(t, 5, 64, 3)
	key := []byte("k")
	sh := c.place.ShardOf(key)
	var from hwg.NodeID
	for _, n := range c.place.Nodes {
		if !c.place.IsReplica(sh, n) {
			from = n
		}
	}
	if _, err := c.stores[c.place.ReplicasOf(sh)[0]].Set(context.Background(), key, []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	st := c.stores[from]
	var calls []time.Duration
	st.cfg.Compose = func(ctx context.Context, shard int, cmd []byte, read bool) ([]byte, error) {
		dl, _ := ctx.Deadline()
		calls = append(calls, time.Until(dl))
		<-ctx.Done() // the route is stuck
		return nil, fmt.Errorf("%w: read of shard %d: %v", rsm.ErrNotApplied, shard, ctx.Err())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	v, ok, err := st.Get(ctx, key)
	if err != nil || !ok || string(v) != "v" {
		t.Fatalf("get = %q, %v; want the value, forwarded", v, err)
	}
	if composed, forwarded := st.Routed(); composed != 1 || forwarded == 0 || len(calls) != 1 || calls[0] > 250*time.Millisecond {
		t.Fatalf("composed %d, forwarded %d, composition had %v: want one try with half the time, then forwarding", composed, forwarded, calls)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	_, before := st.Routed()
	if _, err := st.Set(ctx2, key, []byte("w"), 0); err == nil {
		t.Fatal("a write through a stuck route succeeded")
	}
	if _, after := st.Routed(); after != before {
		t.Fatalf("a write was forwarded over RESP after composition (%d forwards): it could apply twice", after-before)
	}
	if v, _, _ := c.stores[c.place.ReplicasOf(sh)[0]].Get(context.Background(), key); string(v) != "v" {
		t.Fatalf("value %q: the write went somewhere", v)
	}
}
