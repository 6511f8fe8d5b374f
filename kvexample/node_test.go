package kvexample

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/lwgkit/lwgkit/storage"
	"github.com/redis/go-redis/v9"
)

func testLogger(testing.TB) hclog.Logger {
	if os.Getenv("LWGKV_LOG") == "" {
		return nil
	}
	return hclog.New(&hclog.LoggerOptions{Level: hclog.LevelFromString(os.Getenv("LWGKV_LOG")), Output: os.Stderr})
}

// startLocal starts an in-process cluster and waits until it is ready.
func startLocal(t testing.TB, nodes, shards int, dir string) []*Node {
	t.Helper()
	return startLocalWith(t, nodes, shards, dir, nil)
}

// startLocalWith is startLocal with each node's config changed by tune.
func startLocalWith(t testing.TB, nodes, shards int, dir string, tune func(*NodeConfig)) []*Node {
	t.Helper()
	cfgs, err := LocalConfigs(LocalClusterConfig{Nodes: nodes, DataDir: dir, Shards: shards, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfgs {
		if tune != nil {
			tune(&cfgs[i])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ns, err := StartLocal(ctx, cfgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range ns {
			n.Close()
		}
	})
	for _, n := range ns {
		select {
		case <-n.Ready():
		case <-ctx.Done():
			t.Fatalf("node %d: %d of %d shards ready after 60s", n.cfg.ID, n.nReady.Load(), len(n.local))
		}
	}
	return ns
}

func TestLocalCluster(t *testing.T) {
	ns := startLocal(t, 3, 32, t.TempDir())
	ctx := context.Background()
	c1 := redis.NewClient(&redis.Options{Addr: ns[0].RESPAddr(), MaxRetries: -1})
	defer c1.Close()
	c2 := redis.NewClient(&redis.Options{Addr: ns[1].RESPAddr(), MaxRetries: -1})
	defer c2.Close()
	if v, err := c1.Set(ctx, "a", "1", 0).Result(); err != nil || v != "OK" {
		t.Fatalf("set: %q %v", v, err)
	}
	if v, err := c2.Get(ctx, "a").Result(); err != nil || v != "1" {
		t.Fatalf("get on another node: %q %v", v, err)
	}
	for i := 0; i < 50; i++ {
		if err := c1.Incr(ctx, "ctr").Err(); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := c2.Get(ctx, "ctr").Result(); err != nil || v != "50" {
		t.Fatalf("ctr: %q %v", v, err)
	}
	// HTTP.
	base := "http://" + ns[2].HTTPAddr()
	req, _ := http.NewRequest(http.MethodPut, base+"/kv/h", strings.NewReader("hello"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("put: %v %v", resp, err)
	}
	if v, err := c1.Get(ctx, "h").Result(); err != nil || v != "hello" {
		t.Fatalf("get of an HTTP put: %q %v", v, err)
	}
	for path, want := range map[string]string{
		"/kv/h":    "hello",
		"/status":  `"hwgs"`,
		"/metrics": "lwg_delivered_total",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("GET %s: %d %.400s", path, resp.StatusCode, b)
		}
	}
	st, err := ns[0].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.HWGs) != 1 || st.HWGs[0].ID[:7] != "h/m/1.2" || st.HWGs[0].LWGs != 32 || len(st.HWGs[0].Members) != 3 {
		t.Fatalf("status HWGs: %+v", st.HWGs)
	}
	for _, n := range st.Nodes {
		if !n.Live {
			t.Fatalf("status nodes: %+v", st.Nodes)
		}
	}
}

func TestWrongClusterOrDataDir(t *testing.T) {
	dir := t.TempDir()
	cfgs, err := LocalConfigs(LocalClusterConfig{Nodes: 1, DataDir: dir, Shards: 4, NoHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n, err := Start(ctx, cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	bad := cfgs[0]
	bad.Cluster = "other"
	if _, err := Start(ctx, bad); !errors.Is(err, storage.ErrWrongCluster) {
		t.Fatalf("wrong cluster: %v", err)
	}
	bad = cfgs[0]
	bad.ID = 2
	bad.Peers = nil
	if _, err := Start(ctx, bad); !errors.Is(err, storage.ErrWrongNode) {
		t.Fatalf("someone else's data: %v", err)
	}
}
