package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/lwgkit/lwgkit/internal/testproc"
	"github.com/lwgkit/lwgkit/kvexample"
	"github.com/redis/go-redis/v9"
)

// The test binary doubles as lwgkv: with LWGKV_CHILD set to a JSON list
// of arguments it runs them instead of the tests, so the end-to-end tests
// start real `lwgkv serve` processes without building another binary.
func TestMain(m *testing.M) {
	if a := os.Getenv("LWGKV_CHILD"); a != "" {
		var args []string
		if err := json.Unmarshal([]byte(a), &args); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(run(args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// proc is one `lwgkv serve` process of a test cluster.
type proc struct {
	id   int
	args []string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	resp string
}

type procCluster struct {
	t      *testing.T
	procs  []*proc
	shards int
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	a, _ := json.Marshal(p.args)
	p.cmd = exec.Command(os.Args[0])
	testproc.DieWithParent(p.cmd)
	p.cmd.Env = append(os.Environ(), "LWGKV_CHILD="+string(a))
	p.out = &bytes.Buffer{}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

// kill9 kills the process with SIGKILL and reaps it.
func (p *proc) kill9() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
		p.cmd = nil
	}
}

// startProcs starts n serve processes with free ports; extra flags are
// added to every process's (a later flag overrides an earlier one).
func startProcs(t *testing.T, n, shards int, extra ...string) *procCluster {
	dir := t.TempDir()
	type addrs struct{ bus, resp, http string }
	free, err := kvexample.FreeAddrs(3 * n)
	if err != nil {
		t.Fatal(err)
	}
	as := make([]addrs, n)
	for i := range as {
		as[i] = addrs{free[3*i], free[3*i+1], free[3*i+2]}
	}
	c := &procCluster{t: t, shards: shards}
	for i := 1; i <= n; i++ {
		var join, presp []string
		for j := 1; j <= n; j++ {
			if j != i {
				join = append(join, fmt.Sprintf("%d=%s", j, as[j-1].bus))
				presp = append(presp, fmt.Sprintf("%d=%s", j, as[j-1].resp))
			}
		}
		args := []string{"serve", "-id", strconv.Itoa(i), "-data", filepath.Join(dir, strconv.Itoa(i)),
			"-listen", as[i-1].bus, "-resp", as[i-1].resp, "-http", as[i-1].http,
			"-join", strings.Join(join, ","), "-peer-resp", strings.Join(presp, ","),
			"-shards", strconv.Itoa(shards), "-cluster", "e2e", "-timeout", "3s", "-log", logLevel()}
		args = append(args, extra...)
		if i == 1 {
			args = append(args, "-bootstrap")
		}
		c.procs = append(c.procs, &proc{id: i, args: args, resp: as[i-1].resp})
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			p.kill9()
			if t.Failed() {
				t.Logf("node %d output:\n%s", p.id, tail(p.out.String(), 3000))
			}
		}
	})
	c.procs[0].start(t)
	time.Sleep(300 * time.Millisecond)
	for _, p := range c.procs[1:] {
		p.start(t)
	}
	for _, p := range c.procs {
		c.waitReady(p, 60*time.Second)
	}
	return c
}

func logLevel() string {
	if l := os.Getenv("LWGKV_LOG"); l != "" {
		return l
	}
	return "warn"
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// waitReady waits until the node answers INFO with all its shards ready.
func (c *procCluster) waitReady(p *proc, limit time.Duration) {
	c.t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: p.resp, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rc.Close()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := rc.Info(ctx).Result()
		cancel()
		if err == nil && infoField(info, "shards_ready") == infoField(info, "shards_local") && infoField(info, "shards_local") != "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("node %d not ready after %v", p.id, limit)
}

func infoField(info, name string) string {
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return v
		}
	}
	return ""
}

func (c *procCluster) client(i int) *redis.Client {
	rc := redis.NewClient(&redis.Options{Addr: c.procs[i].resp, MaxRetries: -1, DialTimeout: 300 * time.Millisecond,
		ReadTimeout: 4 * time.Second, PoolSize: 64})
	c.t.Cleanup(func() { rc.Close() })
	return rc
}

func TestServeRESP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := startProcs(t, 3, 16)
	ctx := context.Background()
	a, b := c.client(0), c.client(1)
	if v, err := a.Set(ctx, "a", "1", 0).Result(); err != nil || v != "OK" {
		t.Fatalf("set: %q %v", v, err)
	}
	if v, err := b.Get(ctx, "a").Result(); err != nil || v != "1" {
		t.Fatalf("get from another process: %q %v", v, err)
	}
	if err := b.Incr(ctx, "a").Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.client(2).Get(ctx, "a").Result(); err != nil || v != "2" {
		t.Fatalf("get after incr: %q %v", v, err)
	}
	big := strings.Repeat("x", kvexample.DefaultMaxValueBytes+1)
	if err := a.Set(ctx, "big", big, 0).Err(); err == nil || !strings.Contains(err.Error(), "value too large") {
		t.Fatalf("oversized value: %v", err)
	}
	if err := a.Do(ctx, "flushall").Err(); err == nil || !strings.HasPrefix(err.Error(), "ERR unknown command 'flushall'") {
		t.Fatalf("unknown command: %v", err)
	}
	if v, err := a.Get(ctx, "a").Result(); err != nil || v != "2" {
		t.Fatalf("bad input changed state: %q %v", v, err)
	}
}

// A restarted node with the wrong cluster name, or on another node's data
// directory, stops with a clear error and leaves the data as it was.
func TestServeIdentityErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := startProcs(t, 3, 8)
	ctx := context.Background()
	if err := c.client(0).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	p := c.procs[2]
	p.kill9()
	for _, tc := range []struct {
		edit func([]string) []string
		want string
	}{
		{func(a []string) []string { return replaceFlag(a, "-cluster", "other") }, "belongs to another cluster"},
		{func(a []string) []string { return replaceFlag(a, "-id", "2") }, "belongs to another node"},
	} {
		var out bytes.Buffer
		code := run(tc.edit(slicesClone(p.args)), &out, &out)
		if code == 0 || !strings.Contains(out.String(), tc.want) {
			t.Fatalf("exit %d, output %q; want an error with %q", code, out.String(), tc.want)
		}
	}
	p.start(t)
	c.waitReady(p, 30*time.Second)
	if v, err := c.client(2).Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("after the refused starts: %q %v", v, err)
	}
}

func slicesClone(a []string) []string { return append([]string(nil), a...) }

func replaceFlag(args []string, name, value string) []string {
	for i := range args {
		if args[i] == name {
			args[i+1] = value
		}
	}
	return args
}

// Kill -9 one of three processes during a write load: every acknowledged
// write is readable afterwards, writes resume within the failure-detection
// time, and the restarted node catches up.
func TestServeKillDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := startProcs(t, 3, 32)
	clients := []*redis.Client{c.client(0), c.client(1)}
	var mu sync.Mutex
	acked := map[string]string{}
	var ackTimes []time.Time
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := clients[w%2]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k, v := fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("v%d", i)
				ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
				err := rc.Set(ctx, k, v, 0).Err()
				cancel()
				if err == nil {
					mu.Lock()
					acked[k] = v
					ackTimes = append(ackTimes, time.Now())
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	killed := time.Now()
	c.procs[2].kill9()
	time.Sleep(3 * time.Second)
	// Restart while writes go on.
	c.procs[2].start(t)
	c.waitReady(c.procs[2], 60*time.Second)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var gap time.Duration
	var resumed time.Time
	for i := 1; i < len(ackTimes); i++ {
		if ackTimes[i].After(killed) && resumed.IsZero() {
			resumed = ackTimes[i]
		}
		if d := ackTimes[i].Sub(ackTimes[i-1]); d > gap && ackTimes[i].After(killed) {
			gap = d
		}
	}
	t.Logf("%d acknowledged writes; first after the kill %v later; longest pause %v", len(acked), resumed.Sub(killed), gap)
	// Failure detection takes about 200 ms (-fast); allow for a loaded
	// machine.
	if resumed.IsZero() || gap > 3*time.Second {
		t.Fatalf("writes stopped for %v after the kill (more than 3s)", gap)
	}
	// Every acknowledged write is readable on every node, the restarted
	// one included.
	ctx := context.Background()
	keys := make([]string, 0, len(acked))
	for k := range acked {
		keys = append(keys, k)
	}
	for i := 0; i < 3; i++ {
		rc := c.client(i)
		for j := 0; j < len(keys); j += 200 {
			batch := keys[j:min(j+200, len(keys))]
			vs, err := rc.MGet(ctx, batch...).Result()
			if err != nil {
				t.Fatalf("node %d: mget: %v", i+1, err)
			}
			for x, k := range batch {
				if vs[x] != acked[k] {
					t.Fatalf("node %d: acknowledged %s=%s reads %v", i+1, k, acked[k], vs[x])
				}
			}
		}
	}
}

// Linearizability of single-key reads and writes through all three
// processes while they are killed and restarted, checked with porcupine.
func TestServeLinearizable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := startProcs(t, 3, 16)
	type input struct {
		put bool
		key string
		val string
	}
	type output struct {
		val     string
		unknown bool
	}
	var mu sync.Mutex
	var ops []porcupine.Operation
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const nclients = 6
	for cl := 0; cl < nclients; cl++ {
		rcs := []*redis.Client{c.client(0), c.client(1), c.client(2)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(cl), 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				in := input{key: fmt.Sprintf("k%d", rng.IntN(3)), put: rng.IntN(2) == 0}
				if in.put {
					in.val = fmt.Sprintf("%d.%d", cl, i)
				}
				rc := rcs[rng.IntN(len(rcs))]
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				call := now()
				var out output
				var err error
				if in.put {
					err = rc.Set(ctx, in.key, in.val, 0).Err()
				} else {
					out.val, err = rc.Get(ctx, in.key).Result()
					if err == redis.Nil {
						out.val, err = "", nil
					}
				}
				ret := now()
				cancel()
				switch {
				case err == nil:
				case !in.put:
					continue // a failed read constrains nothing
				case strings.HasPrefix(err.Error(), "TRYAGAIN"):
					continue // refused before it was sent: not applied
				default:
					// The write may or may not have happened: it may
					// take effect at any time after its call.
					out.unknown = true
					ret = 1 << 62
				}
				mu.Lock()
				ops = append(ops, porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
				if out.unknown {
					return // a client with an open operation issues no more
				}
			}
		}()
	}
	// Kill and restart processes under the load.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := 0; round < 2; round++ {
		time.Sleep(time.Second)
		p := c.procs[rng.IntN(3)]
		p.kill9()
		time.Sleep(1500 * time.Millisecond)
		p.start(t)
		c.waitReady(p, 60*time.Second)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	model := porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			by := map[string][]porcupine.Operation{}
			for _, op := range h {
				k := op.Input.(input).key
				by[k] = append(by[k], op)
			}
			var out [][]porcupine.Operation
			for _, p := range by {
				out = append(out, p)
			}
			return out
		},
		Init: func() any { return "" },
		Step: func(state, in, out any) (bool, any) {
			i, o := in.(input), out.(output)
			if i.put {
				return true, i.val
			}
			return o.val == state.(string), state
		},
	}
	puts, gets := 0, 0
	for _, op := range ops {
		if op.Input.(input).put {
			puts++
		} else {
			gets++
		}
	}
	t.Logf("%d operations (%d writes, %d reads)", len(ops), puts, gets)
	if puts < 50 || gets < 50 {
		t.Fatalf("too few operations to check: %d writes, %d reads", puts, gets)
	}
	res := porcupine.CheckOperationsTimeout(model, ops, 60*time.Second)
	if res != porcupine.Ok {
		t.Fatalf("history is not linearizable: %v", res)
	}
}
