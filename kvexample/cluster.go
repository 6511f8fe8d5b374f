package kvexample

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/rsm"
)

// LocalClusterConfig describes a cluster of nodes in one process on
// loopback: what `lwgkv demo` runs, and what tests use.
type LocalClusterConfig struct {
	Cluster string // default "lwgkv"
	Nodes   int    // default 3
	// DataDir holds node-<i> per node.
	DataDir string
	// Node i (from 1) serves RESP on RESPBase+i-1, HTTP on HTTPBase+i-1 and
	// the cluster transport on BusBase+i-1. A zero base picks free ports
	// (HTTP: a zero HTTPBase with NoHTTP serves no HTTP).
	RESPBase, HTTPBase, BusBase int
	NoHTTP                      bool
	Shards, Replicas            int
	MaxValueBytes               int
	RSM                         rsm.Config
	Logger                      hclog.Logger
}

// addrs returns the loopback addresses of node i (from 1) in a local
// cluster: cluster transport, RESP, HTTP. A zero base takes the next of
// free, addresses from FreeAddrs.
func (c LocalClusterConfig) addrs(i int, free *[]string) (bus, resp, http string) {
	port := func(base int) string {
		if base != 0 {
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i-1))
		}
		a := (*free)[0]
		*free = (*free)[1:]
		return a
	}
	bus, resp = port(c.BusBase), port(c.RESPBase)
	if !c.NoHTTP {
		http = port(c.HTTPBase)
	}
	return
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago; see FreeAddrs.
func FreeAddr() (string, error) {
	as, err := FreeAddrs(1)
	if err != nil {
		return "", err
	}
	return as[0], nil
}

// FreeAddrs returns n distinct loopback addresses whose ports were free a
// moment ago. The ports are below the kernel's ephemeral range where it
// can be read, so that the outgoing connections of the nodes that will
// listen on them (which take ephemeral ports) cannot take one first; and
// all n are held until every one is chosen, so no two are the same (a
// port closed at once can be handed out again by the next bind to port 0).
func FreeAddrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	lo, hi := belowEphemeral()
	out := make([]string, 0, n)
	for tries := 0; len(out) < n; tries++ {
		addr := "127.0.0.1:0"
		if hi > lo && tries < 100*n {
			addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(lo+rand.IntN(hi-lo)))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if addr == "127.0.0.1:0" {
				return nil, err
			}
			continue // taken: try another
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// belowEphemeral returns a range of ports [lo, hi) below the kernel's
// ephemeral ports, or an empty range if it cannot tell.
func belowEphemeral() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	first, err := strconv.Atoi(f[0])
	if err != nil || first <= 12000 {
		return 0, 0
	}
	return 10000, first
}

// LocalConfigs returns the NodeConfig of every node of a local cluster
// (node 1 bootstraps it), with Fast failure detection.
func LocalConfigs(c LocalClusterConfig) ([]NodeConfig, error) {
	if c.Cluster == "" {
		c.Cluster = "lwgkv"
	}
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.DataDir == "" {
		return nil, fmt.Errorf("%w: no data directory", ErrInvalidConfig)
	}
	free, err := FreeAddrs(3 * c.Nodes)
	if err != nil {
		return nil, err
	}
	peers, resps, https := map[hwg.NodeID]string{}, map[hwg.NodeID]string{}, map[hwg.NodeID]string{}
	for i := 1; i <= c.Nodes; i++ {
		bus, resp, http := c.addrs(i, &free)
		id := hwg.NodeID(i)
		peers[id], resps[id], https[id] = bus, resp, http
	}
	var out []NodeConfig
	for i := 1; i <= c.Nodes; i++ {
		id := hwg.NodeID(i)
		log := c.Logger
		if log != nil {
			log = log.Named("node" + strconv.Itoa(i))
		}
		out = append(out, NodeConfig{
			ID: id, Cluster: c.Cluster, DataDir: filepath.Join(c.DataDir, "node-"+strconv.Itoa(i)),
			Listen: peers[id], Peers: peers, RESPPeers: resps, HTTPPeers: https,
			// All nodes run in this process, so they always start
			// together: node 1 creates the directory, even on old data.
			RESP: resps[id], HTTP: https[id], Bootstrap: i == 1, Rebootstrap: i == 1,
			Shards: c.Shards, Replicas: c.Replicas, MaxValueBytes: c.MaxValueBytes,
			Fast: true, RSM: c.RSM, Logger: log,
		})
	}
	return out, nil
}

// StartLocal starts the nodes of cfgs concurrently (the first, which
// bootstraps, a moment ahead) and returns them once all are started; on
// any error it closes those that started.
func StartLocal(ctx context.Context, cfgs []NodeConfig) ([]*Node, error) {
	nodes := make([]*Node, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		if i == 0 {
			nodes[0], errs[0] = Start(ctx, cfg)
			if errs[0] != nil {
				return nil, errs[0]
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = Start(ctx, cfg)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, n := range nodes {
			if n != nil {
				n.Close()
			}
		}
		return nil, err
	}
	return nodes, nil
}
