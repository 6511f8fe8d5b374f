package hwg_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
)

// TestNodeFlushesWhatFramesStep: with ticks an hour apart, what a node
// owes after a frame, a multicast or a request goes out in that turn of
// its loop, in every one of many groups. The node flushes only the groups
// stepped since its last flush (and all after a tick or a request); a
// path that stepped a group without noting it would leave its messages
// for the next tick, and the deliveries below would not come.
func TestNodeFlushesWhatFramesStep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	net := transport.NewMemNetwork()
	ids := []hwg.NodeID{1, 2, 3}
	nodes := map[hwg.NodeID]*hwg.Node{}
	for _, id := range ids {
		p := hwg.Process{Node: id, Inc: 1}
		ep := net.Endpoint(transport.Peer{Node: uint64(id), Inc: 1})
		n, err := hwg.NewNode(hwg.NodeConfig{Self: p, Transport: ep, TickInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close(); ep.Close() })
		nodes[id] = n
	}
	const groups = 20
	gid := func(i int) hwg.GroupID { return hwg.GroupID(fmt.Sprintf("g%02d", i)) }
	for i := range groups {
		for _, n := range nodes {
			if err := n.Bootstrap(ctx, gid(i), members(ids...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Node 2 is no group's sequencer: each message is forwarded, ordered,
	// acknowledged and announced, every hop a frame stepping one group.
	for i := range groups {
		if err := nodes[2].Multicast(ctx, gid(i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		got := map[hwg.GroupID]bool{}
		for len(got) < groups {
			select {
			case e := <-nodes[id].Events():
				if e.Type == hwg.EventDeliver {
					got[e.Group] = true
				}
			case <-ctx.Done():
				t.Fatalf("node %d delivered in %d of %d groups without a tick", id, len(got), groups)
			}
		}
	}
}
