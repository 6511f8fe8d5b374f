package hwg_test

import (
	"fmt"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
)

// TestNodeBlockOKKeepsOrderWithMulticasts: an application that answers
// Block with some multicasts and then BlockOK expects them in the view
// being flushed. BlockOK must not overtake multicasts made before it.
func TestNodeBlockOKKeepsOrderWithMulticasts(t *testing.T) {
	ctx := ctxT(t)
	nodes := manualNodes(t)
	for _, n := range nodes {
		if err := n.Bootstrap(ctx, grp, members(1, 2, 3)); err != nil {
			t.Fatal(err)
		}
	}
	nodes[3].Close()
	nodes[3].ep.Close()
	const burst = 100
	n1 := nodes[1]
	blk := waitFor(t, ctx, n1, "Block", func(e hwg.Event) bool { return e.Type == hwg.EventBlock })
	for i := range burst {
		if err := n1.Multicast(ctx, grp, fmt.Appendf(nil, "late-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := n1.BlockOK(ctx, grp, blk.View.ID); err != nil {
		t.Fatal(err)
	}
	// Node 2 answers at once.
	blk2 := waitFor(t, ctx, nodes[2], "Block", func(e hwg.Event) bool { return e.Type == hwg.EventBlock })
	if err := nodes[2].BlockOK(ctx, grp, blk2.View.ID); err != nil {
		t.Fatal(err)
	}
	got := 0
	for got < burst {
		e := waitFor(t, ctx, nodes[2], "the burst", func(e hwg.Event) bool { return e.Type == hwg.EventDeliver || e.Type == hwg.EventInstall })
		if e.Type == hwg.EventInstall {
			t.Fatalf("view %d installed after %d of %d messages multicast before BlockOK", e.View.ID, got, burst)
		}
		if e.View.ID != blk.View.ID {
			t.Fatalf("message %q delivered in view %d, multicast before BlockOK in view %d", e.Payload, e.View.ID, blk.View.ID)
		}
		got++
	}
}

// TestNodeSetManualBlockOK: a group set to answer its Blocks itself
// finishes a view change that no reader answers, and one set so while its
// Block waits is answered at once.
func TestNodeSetManualBlockOK(t *testing.T) {
	ctx := ctxT(t)
	nodes := manualNodes(t)
	// Node 1 answers its Blocks itself from the start; node 2 only once
	// its Block waits.
	if err := nodes[1].SetManualBlockOK(ctx, grp, false); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := n.Bootstrap(ctx, grp, members(1, 2, 3)); err != nil {
			t.Fatal(err)
		}
	}
	nodes[3].Close()
	nodes[3].ep.Close()
	waitFor(t, ctx, nodes[2], "Block", func(e hwg.Event) bool { return e.Type == hwg.EventBlock })
	if err := nodes[2].SetManualBlockOK(ctx, grp, false); err != nil {
		t.Fatal(err)
	}
	for _, id := range []hwg.NodeID{1, 2} {
		e := waitFor(t, ctx, nodes[id], "the view without node 3", func(e hwg.Event) bool { return e.Type == hwg.EventInstall && e.View.ID > 1 })
		if e.View.ID != 2 || len(e.View.Members) != 2 {
			t.Errorf("node %d installed %v, want view 2 of nodes 1 and 2", id, e.View)
		}
	}
}

// manualNodes starts nodes 1, 2 and 3 on a memory network, their groups
// with ManualBlockOK.
func manualNodes(t *testing.T) map[hwg.NodeID]*testNode {
	net := transport.NewMemNetwork()
	nodes := map[hwg.NodeID]*testNode{}
	for _, id := range []hwg.NodeID{1, 2, 3} {
		p := hwg.Process{Node: id, Inc: 1}
		ep := net.Endpoint(transport.Peer{Node: uint64(id), Inc: 1})
		cfg := hwg.FastTiming(hwg.NodeConfig{Self: p, Transport: ep})
		cfg.Group.ManualBlockOK = true
		n, err := hwg.NewNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close(); ep.Close() })
		nodes[id] = &testNode{Node: n, ep: ep}
	}
	return nodes
}
