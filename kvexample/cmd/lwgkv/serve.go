package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/kvexample"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/lwgkit/lwgkit/storage"
)

// common flags of demo and serve
type nodeFlags struct {
	cluster          string
	shards, replicas int
	maxValue         int
	timeout          time.Duration
	composeAttempt   time.Duration
	snapEvery        time.Duration
	logLevel         string
}

func (f *nodeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cluster, "cluster", "lwgkv", "cluster name, recorded in the data directory and checked at every start")
	fs.IntVar(&f.shards, "shards", kvexample.DefaultShards, "number of shards (every node must use the same)")
	fs.IntVar(&f.replicas, "replicas", kvexample.DefaultReplicas, "replicas per shard (every node must use the same)")
	fs.IntVar(&f.maxValue, "max-value", kvexample.DefaultMaxValueBytes, "largest value accepted, in bytes")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "time limit of one request")
	fs.DurationVar(&f.composeAttempt, "compose-attempt", time.Second, "a request for a shard with no replica on this node goes through group composition; without a result after this long it is sent again (under its first id: applied once)")
	fs.DurationVar(&f.snapEvery, "snapshot-interval", time.Minute, "snapshot a shard that changed at least this often: bounds what a restart of every node at once loses (rsm keeps no log); shorter intervals cost latency spikes while many shards snapshot at once")
	fs.StringVar(&f.logLevel, "log", "warn", "log level: trace, debug, info, warn, error, off")
}

func (f *nodeFlags) rsmConfig() rsm.Config { return rsm.Config{SnapshotInterval: f.snapEvery} }

func (f *nodeFlags) logger(w io.Writer) hclog.Logger {
	if f.logLevel == "off" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: "lwgkv", Level: hclog.LevelFromString(f.logLevel), Output: w})
}

// explain turns identity errors into advice.
func explain(err error, dataDir string) error {
	switch {
	case errors.Is(err, storage.ErrWrongCluster):
		return fmt.Errorf("%w\n  the data directory %s belongs to another cluster: pass its -cluster name, or use a fresh -data directory", err, dataDir)
	case errors.Is(err, storage.ErrWrongNode):
		return fmt.Errorf("%w\n  the data directory %s belongs to another node: pass that node's -id, or use a fresh -data directory", err, dataDir)
	case errors.Is(err, storage.ErrLocked):
		return fmt.Errorf("%w\n  another process uses the data directory %s", err, dataDir)
	}
	return err
}

// parseNodeMap parses "1=host:port,2=host:port".
func parseNodeMap(s string) (map[hwg.NodeID]string, error) {
	out := map[hwg.NodeID]string{}
	if s == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		idS, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		id, err := strconv.ParseUint(idS, 10, 64)
		if !ok || err != nil || id == 0 || addr == "" {
			return nil, fmt.Errorf("bad node entry %q: want id=host:port, id ≥ 1", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("bad address in %q: %v", part, err)
		}
		if _, dup := out[hwg.NodeID(id)]; dup {
			return nil, fmt.Errorf("node %d listed twice", id)
		}
		out[hwg.NodeID(id)] = addr
	}
	return out, nil
}

// shiftPort returns addr with its port moved by delta.
func shiftPort(addr string, delta int) string {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	n, err := strconv.Atoi(p)
	if err != nil || n+delta <= 0 || n+delta > 65535 {
		return ""
	}
	return net.JoinHostPort(host, strconv.Itoa(n+delta))
}

// busOffset: by default a node's cluster transport listens on its RESP
// port + 10000, as Redis Cluster's bus does, so a peer's RESP address can
// be derived from its cluster address.
const busOffset = 10000

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lwgkv serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nf nodeFlags
	nf.register(fs)
	id := fs.Uint64("id", 0, "this node's id (≥ 1, stable across restarts)")
	data := fs.String("data", "", "data directory (created if missing; keeps the node's identity and snapshots)")
	resp := fs.String("resp", "127.0.0.1:6380", "address for Redis-protocol clients")
	httpAddr := fs.String("http", "127.0.0.1:8080", "address for HTTP (/status, /metrics, /kv/{key}); empty for none")
	listen := fs.String("listen", "", "cluster transport address (default: the -resp port + 10000)")
	advertise := fs.String("advertise", "", "cluster address peers dial (default -listen)")
	join := fs.String("join", "", "every other node of the cluster as id=host:port of its cluster transport, comma-separated; the same node set on every node")
	peerResp := fs.String("peer-resp", "", "RESP addresses of the other nodes, id=host:port,... (default: their cluster port - 10000)")
	peerHTTP := fs.String("peer-http", "", "HTTP addresses of the other nodes, id=host:port,... (shown in status only)")
	bootstrap := fs.Bool("bootstrap", false, "create the cluster (one node, on the cluster's first start; ignored if -data already holds this node)")
	rebootstrap := fs.Bool("rebootstrap", false, "create the cluster again on existing data: only for one node, when every node of the cluster stopped (never while others run)")
	fast := fs.Bool("fast", true, "fast failure detection (about 200 ms; for LANs and loopback)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: lwgkv serve -id N -data DIR -join 2=host:16381,3=host:16382 [-bootstrap] [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if *id == 0 || *data == "" {
		fmt.Fprintln(stderr, "lwgkv serve: -id and -data are required")
		fs.Usage()
		return errUsage
	}
	if *listen == "" {
		*listen = shiftPort(*resp, busOffset)
	}
	peers, err := parseNodeMap(*join)
	if err != nil {
		return fmt.Errorf("-join: %w", err)
	}
	resps, err := parseNodeMap(*peerResp)
	if err != nil {
		return fmt.Errorf("-peer-resp: %w", err)
	}
	https, err := parseNodeMap(*peerHTTP)
	if err != nil {
		return fmt.Errorf("-peer-http: %w", err)
	}
	for pid, addr := range peers {
		if _, ok := resps[pid]; !ok && pid != hwg.NodeID(*id) {
			resps[pid] = shiftPort(addr, -busOffset)
		}
	}
	if len(peers) == 0 && !*bootstrap {
		fmt.Fprintln(stderr, "lwgkv serve: warning: no -join list: this node is a cluster of one")
	}
	adv := *advertise
	if adv == "" {
		adv = *listen
	}
	peers[hwg.NodeID(*id)] = adv
	log := nf.logger(stderr)
	cfg := kvexample.NodeConfig{
		ID: hwg.NodeID(*id), Cluster: nf.cluster, DataDir: *data,
		Listen: *listen, Advertise: *advertise, Peers: peers, RESPPeers: resps, HTTPPeers: https,
		RESP: *resp, HTTP: *httpAddr, Bootstrap: *bootstrap || *rebootstrap || len(peers) == 1,
		Rebootstrap: *rebootstrap || len(peers) == 1, RSM: nf.rsmConfig(),
		Shards: nf.shards, Replicas: nf.replicas, MaxValueBytes: nf.maxValue, Timeout: nf.timeout,
		ComposeAttempt: nf.composeAttempt, Fast: *fast, Logger: log,
	}
	start := time.Now()
	n, err := kvexample.Start(ctx, cfg)
	if err != nil {
		return explain(err, *data)
	}
	defer n.Close()
	ids := make([]int, 0, len(peers))
	for p := range peers {
		ids = append(ids, int(p))
	}
	sort.Ints(ids)
	fmt.Fprintf(stdout, "lwgkv node %d (%s) of cluster %q, nodes %v: RESP %s, HTTP %s, cluster %s\n",
		*id, n.RSM().Self(), nf.cluster, ids, n.RESPAddr(), n.HTTPAddr(), *listen)
	select {
	case <-n.Ready():
		fmt.Fprintf(stdout, "lwgkv node %d: %d local shards open in %v\n", *id, len(n.Placement().LocalShards(cfg.ID)), time.Since(start).Round(time.Millisecond))
	case <-ctx.Done():
	}
	<-ctx.Done()
	fmt.Fprintf(stdout, "lwgkv node %d: stopping\n", *id)
	return n.Close()
}

func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lwgkv demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nf nodeFlags
	nf.register(fs)
	data := fs.String("data", "", "data directory to keep (default: a temporary one, removed on exit)")
	nodes := fs.Int("nodes", 3, "number of nodes")
	respBase := fs.Int("resp-base", 6380, "node i serves RESP on 127.0.0.1:(resp-base+i)")
	httpBase := fs.Int("http-base", 8080, "node i serves HTTP on 127.0.0.1:(http-base+i)")
	busBase := fs.Int("bus-base", 16380, "node i's cluster transport is on 127.0.0.1:(bus-base+i)")
	if err := parse(fs, args); err != nil {
		return err
	}
	dir := *data
	if dir == "" {
		tmp, err := os.MkdirTemp("", "lwgkv-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	for i := 0; i < *nodes; i++ {
		for _, p := range []int{*respBase + i, *httpBase + i, *busBase + i} {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				return fmt.Errorf("port %d is taken (another lwgkv or a redis-server?): %w\n  choose other ports with -resp-base, -http-base, -bus-base", p, err)
			}
			ln.Close()
		}
	}
	cfgs, err := kvexample.LocalConfigs(kvexample.LocalClusterConfig{
		Cluster: nf.cluster, Nodes: *nodes, DataDir: dir,
		RESPBase: *respBase, HTTPBase: *httpBase, BusBase: *busBase,
		Shards: nf.shards, Replicas: nf.replicas, MaxValueBytes: nf.maxValue, Logger: nf.logger(stderr),
	})
	if err != nil {
		return err
	}
	for i := range cfgs {
		cfgs[i].Timeout = nf.timeout
		cfgs[i].ComposeAttempt = nf.composeAttempt
		cfgs[i].RSM = nf.rsmConfig()
	}
	fmt.Fprintf(stdout, "lwgkv demo: starting %d nodes (%d shards, %d replicas each) in %s\n", *nodes, nf.shards, min(nf.replicas, *nodes), dir)
	start := time.Now()
	ns, err := kvexample.StartLocal(ctx, cfgs)
	if err != nil {
		return explain(err, dir)
	}
	defer func() {
		for _, n := range ns {
			n.Close()
		}
	}()
	for _, n := range ns {
		select {
		case <-n.Ready():
		case <-ctx.Done():
			return nil
		}
	}
	fmt.Fprintf(stdout, "lwgkv demo: ready in %v\n\n", time.Since(start).Round(time.Millisecond))
	for i, n := range ns {
		fmt.Fprintf(stdout, "  node %d: redis-cli -p %d    curl http://%s/status\n", i+1, *respBase+i, n.HTTPAddr())
	}
	fmt.Fprintf(stdout, "\ntry:\n  redis-cli -p %d set foo bar\n  redis-cli -p %d get foo\n  curl -X PUT --data-binary hello http://127.0.0.1:%d/kv/greeting\n  go run ./kvexample/cmd/lwgkv status -http 127.0.0.1:%d\n  go run ./kvexample/cmd/lwgkv bench -addr 127.0.0.1:%d\n\nCtrl-C stops the cluster", *respBase, *respBase+1, *httpBase, *httpBase, *respBase)
	if *data == "" {
		fmt.Fprint(stdout, " and removes its data (keep it with -data DIR)")
	}
	fmt.Fprintln(stdout, ".")
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nlwgkv demo: stopping")
	var errs []error
	for _, n := range ns {
		errs = append(errs, n.Close())
	}
	return errors.Join(errs...)
}
