package hwg_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/storage"
)

func TestStartFromDataFiles(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	file := func(id int) string { return filepath.Join(dir, fmt.Sprintf("node-%d.db", id)) }
	start := func(id hwg.NodeID, peers map[hwg.NodeID]string) *hwg.Node {
		n, err := hwg.Start(hwg.StartConfig{Node: id, Cluster: "start-test", DataFile: file(int(id)),
			Listen: "127.0.0.1:0", Peers: peers, Config: hwg.FastTiming(hwg.NodeConfig{})})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	nodes := map[hwg.NodeID]*hwg.Node{}
	addrs := map[hwg.NodeID]string{}
	for id := hwg.NodeID(1); id <= 3; id++ {
		nodes[id] = start(id, addrs)
		addrs[id] = nodes[id].Addr()
	}
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	var all []hwg.Process
	for id := hwg.NodeID(1); id <= 3; id++ {
		if nodes[id].Self().Inc != 1 {
			t.Fatalf("first start of node %d has incarnation %d", id, nodes[id].Self().Inc)
		}
		all = append(all, nodes[id].Self())
	}
	for _, n := range nodes {
		if err := n.Bootstrap(ctx, grp, all); err != nil {
			t.Fatal(err)
		}
	}
	if err := nodes[1].Multicast(ctx, grp, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	for id, n := range nodes {
		e := waitFor(t, ctx, &testNode{Node: n}, "the multicast", func(e hwg.Event) bool { return e.Type == hwg.EventDeliver })
		if string(e.Payload) != "hello" {
			t.Fatalf("node %d delivered %q", id, e.Payload)
		}
	}

	// A restart is a new incarnation, which rejoins.
	if err := nodes[3].Close(); err != nil {
		t.Fatal(err)
	}
	nodes[3] = start(3, addrs)
	if got := nodes[3].Self(); got.Inc != 2 {
		t.Fatalf("restarted node 3 is %v, want incarnation 2", got)
	}
	if err := nodes[3].Join(ctx, grp, []hwg.NodeID{1, 2}); err != nil {
		t.Fatal(err)
	}

	// Someone else's data file, or another cluster's, is refused.
	_, err := hwg.Start(hwg.StartConfig{Node: 3, Cluster: "other", DataFile: file(1), Listen: "127.0.0.1:0"})
	if err == nil {
		t.Fatal("node 3 started on node 1's data file, which is open")
	}
	nodes[2].Close()
	delete(nodes, 2)
	_, err = hwg.Start(hwg.StartConfig{Node: 2, Cluster: "other", DataFile: file(2), Listen: "127.0.0.1:0"})
	if !errors.Is(err, storage.ErrWrongCluster) {
		t.Fatalf("start with another cluster's name: %v, want ErrWrongCluster", err)
	}
}
