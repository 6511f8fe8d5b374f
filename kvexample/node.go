package kvexample

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/lwgkit/lwgkit/compose"
	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/lwgkit/lwgkit/switching"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NodeConfig describes one lwgkv node.
type NodeConfig struct {
	// ID is this node's stable id, Cluster the cluster's name. Both are
	// recorded in the data directory on the first start and checked on
	// every later one (storage.ErrWrongNode, storage.ErrWrongCluster).
	ID      hwg.NodeID
	Cluster string
	// DataDir holds the node's bbolt file (created if missing).
	DataDir string
	// Listen is the cluster transport's TCP address, Advertise the one
	// peers dial (default Listen).
	Listen, Advertise string
	// Peers are the cluster addresses of the cluster's nodes (this one may
	// be listed). The node set the shards are placed on is the ids of
	// Peers and ID: every node must be configured with the same set.
	Peers map[hwg.NodeID]string
	// RESPPeers and HTTPPeers are the other nodes' client addresses:
	// requests for shards with no replica here are forwarded to RESPPeers;
	// HTTPPeers only show in /status.
	RESPPeers, HTTPPeers map[hwg.NodeID]string
	// RESP and HTTP are the addresses to serve clients on ("" for none).
	RESP, HTTP string
	// Bootstrap creates the cluster: set it on one node, the first time the
	// cluster starts. It is ignored when DataDir already holds this node's
	// data (a restart joins the running cluster).
	Bootstrap bool
	// Rebootstrap makes Bootstrap apply even when DataDir holds data: for
	// the first node of a cluster restarting after every node stopped
	// (then no running directory is left to join; the shards come back
	// from the nodes' local snapshots). Never set it on a node that
	// restarts while others run: it would start a second cluster.
	Rebootstrap bool
	// Shards (default 1,024) and Replicas (default 3) place the keys.
	Shards, Replicas int
	// MaxValueBytes bounds a value (default 1 MiB); Timeout one request
	// (default 5s).
	MaxValueBytes int
	Timeout       time.Duration
	// Fast: failure detection in about 200 ms (for loopback and LANs).
	Fast bool
	// NoRebalance turns off the switching.Rebalancer that otherwise runs on
	// the node (it moves LWGs to the HWGs of their member sets; shards are
	// created there already, so it mostly watches).
	NoRebalance bool
	// OpenParallelism is how many shards are opened at once. Default 64.
	OpenParallelism int
	// ComposeAttempt is how long a request for a shard with no replica
	// here, sent through group composition, waits for its result before
	// it is sent again (under its first attempt's id: it is applied
	// once). Default 1s.
	ComposeAttempt time.Duration
	// RSM tunes the replicated objects.
	RSM rsm.Config
	// Logger. Default silent.
	Logger hclog.Logger
}

// Node is one lwgkv server: an rsm node hosting this node's shards, a
// Store routing keys to them, and the RESP and HTTP front ends.
//
// Shards open in the background after Start returns; until a shard is
// ready here, its requests go to another replica. A shard this node is
// excluded from (it was cut off while the others went on) is opened again.
type Node struct {
	cfg   NodeConfig
	place *Placement
	rsm   *rsm.Node
	store *Store
	fwd   *RESPForwarder
	objs  *compose.Objects
	resp  *RESPServer
	http  *HTTPServer
	reg   *prometheus.Registry
	reb   *switching.Rebalancer
	log   hclog.Logger

	shards  []atomic.Pointer[rsm.Object] // ready local replicas by shard
	local   []int
	nReady  atomic.Int64
	live    atomic.Pointer[map[hwg.NodeID]bool] // nodes in the directory's view
	ready   chan struct{}
	reopen  chan int
	started time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Start starts a node. It returns once the node runs and its RESP and HTTP
// servers listen; Ready says when every local shard is open.
func Start(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if cfg.ID == 0 {
		return nil, fmt.Errorf("%w: node id must be ≥ 1", ErrInvalidConfig)
	}
	if cfg.Cluster == "" {
		return nil, fmt.Errorf("%w: empty cluster name", ErrInvalidConfig)
	}
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: no data directory", ErrInvalidConfig)
	}
	if cfg.OpenParallelism <= 0 {
		cfg.OpenParallelism = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.ComposeAttempt <= 0 {
		cfg.ComposeAttempt = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ids := []hwg.NodeID{cfg.ID}
	for id := range cfg.Peers {
		if id != cfg.ID {
			ids = append(ids, id)
		}
	}
	place, err := NewPlacement(cfg.Shards, cfg.Replicas, ids)
	if err != nil {
		return nil, err
	}
	bootstrap := cfg.Bootstrap
	if bootstrap && !cfg.Rebootstrap {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "node.db")); err == nil {
			log.Info("data directory exists: joining the cluster instead of creating it")
			bootstrap = false
		}
	}
	peers := maps.Clone(cfg.Peers)
	delete(peers, cfg.ID)
	var seeds []string
	var contacts []hwg.NodeID
	for _, id := range slices.Sorted(maps.Keys(peers)) {
		seeds = append(seeds, peers[id])
		contacts = append(contacts, id)
	}
	topo, err := place.ComposeTopology()
	if err != nil {
		return nil, err
	}
	// The shards' groups carry group composition too (cross-shard
	// requests from a node with no replica of the shard): rsm hands
	// their views and the routing payloads to compose.Objects.
	tap := &tapRelay{}
	rcfg := cfg.RSM
	userTap := rcfg.Tap
	rcfg.Tap = func(id rsm.ObjectID, e lwg.Event) {
		tap.event(id, e)
		if userTap != nil {
			userTap(id, e)
		}
	}
	rn, err := rsm.Start(ctx, rsm.StartConfig{
		Node: cfg.ID, Cluster: cfg.Cluster, DataDir: cfg.DataDir,
		Listen: cfg.Listen, Advertise: cfg.Advertise, Seeds: seeds, Peers: peers,
		Bootstrap: bootstrap, Contacts: contacts, Fast: cfg.Fast,
		Place: place.LWGPlacement(), Config: rcfg, Logger: log.Named("rsm"),
	})
	if err != nil {
		return nil, fmt.Errorf("kvexample: starting node %d: %w", cfg.ID, err)
	}
	n := &Node{
		cfg: cfg, place: place, rsm: rn, log: log,
		shards:  make([]atomic.Pointer[rsm.Object], place.Shards),
		local:   place.LocalShards(cfg.ID),
		ready:   make(chan struct{}),
		reopen:  make(chan int, place.Shards),
		started: time.Now(),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	fail := func(err error) (*Node, error) {
		n.Close()
		return nil, err
	}
	n.objs, err = compose.NewObjects(compose.ObjectsConfig{
		Router: compose.Config{Self: rn.Self(), Topology: topo}, Attempt: cfg.ComposeAttempt,
		Check: func(target rsm.ObjectID, cmd []byte) error { return checkRouted(place, target, cmd) },
	})
	if err != nil {
		return fail(err)
	}
	tap.attach(n.objs)
	n.objs.Attach(rn)
	n.fwd = NewRESPForwarder(cfg.RESPPeers)
	n.store, err = NewStore(StoreConfig{
		Placement: place, Self: cfg.ID, Local: n.localReplica, Compose: n.composeCall, Forward: n.fwd, MaxValueBytes: cfg.MaxValueBytes,
		Live: n.isLive,
	})
	if err != nil {
		return fail(err)
	}
	n.reg = prometheus.NewRegistry()
	n.reg.MustRegister(rn.Service().Collector(), rn.Collector(), collectors.NewGoCollector())
	n.reg.MustRegister(n.store.Collectors()...)
	n.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kv_shards_ready", Help: "Local shards open and ready.", ConstLabels: prometheus.Labels{"node": fmt.Sprint(cfg.ID)},
	}, func() float64 { return float64(n.nReady.Load()) }))
	rn.Observe(n.observe)
	if cfg.RESP != "" {
		n.resp, err = NewRESPServer(RESPConfig{Store: n.store, Timeout: cfg.Timeout, Info: n.infoLines, Logger: log.Named("resp")})
		if err == nil {
			err = n.resp.Listen(cfg.RESP)
		}
		if err != nil {
			n.resp = nil
			return fail(err)
		}
	}
	if cfg.HTTP != "" {
		n.http, err = NewHTTPServer(HTTPConfig{Store: n.store, Status: n.Status, Gatherer: n.reg, Timeout: cfg.Timeout, Logger: log.Named("http")})
		if err == nil {
			err = n.http.Listen(cfg.HTTP)
		}
		if err != nil {
			n.http = nil
			return fail(err)
		}
	}
	if !cfg.NoRebalance {
		n.reb, err = switching.NewRebalancer(switching.RebalancerConfig{Layer: rn.Service(), Logger: log.Named("rebalancer")})
		if err != nil {
			return fail(err)
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.reb.Run(n.ctx); err != nil && n.ctx.Err() == nil {
				log.Warn("rebalancer stopped", "error", err)
			}
		}()
	}
	n.wg.Add(2)
	go n.openAll()
	go n.watchLive()
	return n, nil
}

// DirectoryGroup is the cluster-wide HWG every node is a member of.
const DirectoryGroup hwg.GroupID = "h/dir"

// watchLive keeps the set of nodes in the directory's view, which
// forwarding uses to skip nodes that failed or were cut off.
func (n *Node) watchLive() {
	defer n.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		// No deadline: hwg.Node.Info writes its result after returning
		// when its context ends first (a data race); it returns when the
		// node closes.
		info, err := n.rsm.HWG().Info(context.Background(), DirectoryGroup)
		if err == nil && len(info.View.Members) > 0 {
			m := make(map[hwg.NodeID]bool, len(info.View.Members))
			for _, p := range info.View.Members {
				m[p.Node] = true
			}
			n.live.Store(&m)
		}
		select {
		case <-t.C:
		case <-n.ctx.Done():
			return
		}
	}
}

// isLive: a node in the directory's last known view (all nodes until one
// is known).
func (n *Node) isLive(id hwg.NodeID) bool {
	m := n.live.Load()
	return m == nil || (*m)[id]
}

func (n *Node) localReplica(shard int) (Replica, bool) {
	if shard < 0 || shard >= len(n.shards) {
		return nil, false
	}
	o := n.shards[shard].Load()
	if o == nil {
		return nil, false
	}
	return o, true
}

// observe runs on rsm's goroutines: it must not block.
func (n *Node) observe(e rsm.Event) {
	if e.Type != rsm.EventClosed {
		return
	}
	sh, ok := ShardOfObject(e.Object)
	if !ok || sh >= len(n.shards) {
		return
	}
	if n.shards[sh].Swap(nil) != nil {
		n.nReady.Add(-1)
		n.log.Warn("shard closed here; opening it again", "shard", sh, "error", e.Err)
		select {
		case n.reopen <- sh:
		default:
		}
	}
}

// openAll opens every local shard, OpenParallelism at a time, retrying
// failures, then reopens shards this node was excluded from.
func (n *Node) openAll() {
	defer n.wg.Done()
	sem := make(chan struct{}, n.cfg.OpenParallelism)
	var wg sync.WaitGroup
	for _, sh := range n.local {
		select {
		case sem <- struct{}{}:
		case <-n.ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			n.open(sh)
		}()
	}
	wg.Wait()
	if n.ctx.Err() != nil {
		return
	}
	close(n.ready)
	n.log.Info("all local shards open", "shards", len(n.local), "took", time.Since(n.started))
	for {
		select {
		case sh := <-n.reopen:
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.open(sh)
			}()
		case <-n.ctx.Done():
			return
		}
	}
}

// open opens one shard, retrying with backoff until it is open or the node
// closes.
func (n *Node) open(sh int) {
	backoff := 100 * time.Millisecond
	for n.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
		o, err := n.rsm.Open(ctx, ObjectID(sh), Factory)
		cancel()
		if err == nil {
			if n.shards[sh].Swap(o) == nil {
				n.nReady.Add(1)
			}
			return
		}
		if errors.Is(err, rsm.ErrClosed) && n.ctx.Err() != nil {
			return
		}
		n.log.Warn("opening shard failed; retrying", "shard", sh, "error", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-n.ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Ready is closed once every local shard has been open (they may close
// and reopen later).
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Store returns the node's key-value API.
func (n *Node) Store() *Store { return n.store }

// RSM returns the rsm node under the store.
func (n *Node) RSM() *rsm.Node { return n.rsm }

// Placement returns the shard placement.
func (n *Node) Placement() *Placement { return n.place }

// Registry returns the node's Prometheus registry (what /metrics serves).
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// RESPAddr and HTTPAddr return the listening addresses ("" if none).
func (n *Node) RESPAddr() string {
	if n.resp == nil {
		return ""
	}
	return n.resp.Addr().String()
}

// HTTPAddr returns the HTTP listening address ("" if none).
func (n *Node) HTTPAddr() string {
	if n.http == nil {
		return ""
	}
	return n.http.Addr().String()
}

func (n *Node) infoLines() []string {
	composed, forwarded := n.store.Routed()
	cs := n.objs.Stats()
	return []string{
		fmt.Sprintf("process:%s", n.rsm.Self()),
		fmt.Sprintf("shards_local:%d", len(n.local)),
		fmt.Sprintf("shards_ready:%d", n.nReady.Load()),
		fmt.Sprintf("uptime_in_seconds:%d", int(time.Since(n.started).Seconds())),
		// Requests for shards with no replica here: through group
		// composition, or forwarded over RESP; and this node's work as a
		// router between shard groups.
		fmt.Sprintf("requests_composed:%d", composed),
		fmt.Sprintf("requests_forwarded:%d", forwarded),
		fmt.Sprintf("compose_calls_retried:%d", n.objs.CallRetries()),
		fmt.Sprintf("compose_router_forwarded:%d", cs.Forwarded),
		fmt.Sprintf("compose_claim_rounds_seeded:%d", cs.Seeded),
	}
}

// Status describes the cluster as this node sees it: the configured nodes
// and which are live in the directory's view, and the HWGs carrying this
// node's shards with their views and LWG counts.
func (n *Node) Status(ctx context.Context) (Status, error) {
	// hwg.Node.Info and lwg.Service.View write their results after
	// returning if their context ends first (a data race): call them
	// without cancellation (they return when the node closes).
	ctx = context.WithoutCancel(ctx)
	st := Status{
		Cluster: n.cfg.Cluster, Node: uint64(n.cfg.ID), Process: n.rsm.Self().String(),
		Shards:   ShardStatus{Total: n.place.Shards, Replicas: n.place.Replicas, Local: len(n.local), Ready: int(n.nReady.Load())},
		Switches: []string{},
	}
	live := map[hwg.NodeID]hwg.Process{}
	addLive := func(v hwg.View) {
		for _, p := range v.Members {
			if p.Inc > live[p.Node].Inc {
				live[p.Node] = p
			}
		}
	}
	if info, err := n.rsm.HWG().Info(ctx, DirectoryGroup); err == nil {
		addLive(info.View)
	}
	counts := map[hwg.GroupID]int{}
	for _, sh := range n.local {
		if n.shards[sh].Load() == nil {
			continue
		}
		_, carrier, err := n.rsm.Service().View(ctx, ObjectID(sh).LWG())
		if err != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			continue
		}
		counts[carrier]++
	}
	for _, g := range slices.Sorted(maps.Keys(counts)) {
		hs := HWGStatus{ID: string(g), LWGs: counts[g]}
		if info, err := n.rsm.HWG().Info(ctx, g); err == nil {
			hs.ViewID = uint64(info.View.ID)
			for _, p := range info.View.Members {
				hs.Members = append(hs.Members, p.String())
			}
			addLive(info.View)
		}
		st.HWGs = append(st.HWGs, hs)
	}
	for _, id := range n.place.Nodes {
		ns := NodeStatus{ID: uint64(id), Cluster: n.cfg.Peers[id], RESP: n.cfg.RESPPeers[id], HTTP: n.cfg.HTTPPeers[id]}
		if id == n.cfg.ID {
			ns.Cluster, ns.RESP, ns.HTTP = n.cfg.Listen, n.RESPAddr(), n.HTTPAddr()
		}
		if p, ok := live[id]; ok {
			ns.Live, ns.Process = true, p.String()
		}
		st.Nodes = append(st.Nodes, ns)
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].ID < st.Nodes[j].ID })
	if n.reb != nil {
		rs := n.reb.Stats()
		st.Rebalancer = &RebalancerStatus{
			Rounds: rs.Rounds, Started: rs.Started, Completed: rs.Completed, Failed: rs.Failed,
			InFlight: rs.InFlight, Settled: rs.Last.Settled,
		}
		for _, a := range rs.Last.Actions {
			st.Switches = append(st.Switches, a.String())
		}
	} else {
		st.Notes = append(st.Notes, "the rebalancer is off on this node")
	}
	return st, nil
}

// Close stops the servers and the node. Safe to call more than once.
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
		n.cancel()
		if n.resp != nil {
			err = errors.Join(err, n.resp.Close())
		}
		if n.http != nil {
			err = errors.Join(err, n.http.Close())
		}
		if n.fwd != nil {
			err = errors.Join(err, n.fwd.Close())
		}
		if n.objs != nil {
			err = errors.Join(err, n.objs.Close())
		}
		err = errors.Join(err, n.rsm.Close())
		n.wg.Wait()
	})
	return err
}
