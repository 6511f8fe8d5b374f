package lwg_test

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/lwg"
)

// TestTablesLargerThanAMessage: a carrier's LWG table and the directory
// outgrow the largest message an HWG takes (here 4 KiB, as tens of
// thousands of LWGs outgrow the default 1 MiB). A node joining the
// directory and every LWG must still get both, in parts, and its batch of
// joins must be split to fit. Before snapshots went in parts, the
// snapshot multicast failed with hwg.ErrTooLarge and the joiner waited
// for its table forever.
func TestTablesLargerThanAMessage(t *testing.T) {
	const n = 300
	net := transport.NewMemNetwork()
	small := func(nc *hwg.NodeConfig, sc *lwg.ServiceConfig) {
		nc.Group.MaxPendingBytes = 4 << 10
		sc.Core.MaxMessageBytes = 1 << 10
	}
	p1, p2 := hwg.Process{Node: 1, Inc: 1}, hwg.Process{Node: 2, Inc: 1}
	a := startSvcWith(t, net, p1, lwg.Shared("h/big"), []hwg.Process{p1}, nil, small)
	ctx := ctxT(t)
	ids := make([]lwg.ID, n)
	for i := range ids {
		ids[i] = lwg.ID(fmt.Sprintf("l/a-long-enough-name-%04d", i))
	}
	joinAll := func(sn *svcNode) {
		t.Helper()
		var g errgroup.Group
		for _, l := range ids {
			g.Go(func() error { return sn.svc.Join(ctx, l) })
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	joinAll(a)
	b := startSvcWith(t, net, p2, lwg.Shared("h/big"), nil, []hwg.NodeID{1}, small)
	joinAll(b)
	for _, l := range ids {
		for _, sn := range []*svcNode{a, b} {
			v, _, err := sn.svc.View(ctx, l)
			if err != nil || len(v.Members) != 2 {
				t.Fatalf("%s at %v: view %v (%v), want both nodes", l, sn.node.Self(), v, err)
			}
		}
	}
}

func startSvcWith(t *testing.T, net *transport.MemNetwork, p hwg.Process, place lwg.Placement, boot []hwg.Process, contacts []hwg.NodeID, tune func(*hwg.NodeConfig, *lwg.ServiceConfig)) *svcNode {
	t.Helper()
	ep := net.Endpoint(transport.Peer{Node: uint64(p.Node), Inc: p.Inc})
	cfg := hwg.FastTiming(hwg.NodeConfig{Self: p, Transport: ep})
	cfg.Group.ManualBlockOK = true
	sc := lwg.ServiceConfig{Core: lwg.Config{Place: place}, DirectoryMembers: boot, Contacts: contacts, TickInterval: 10 * time.Millisecond}
	tune(&cfg, &sc)
	node, err := hwg.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sc.Node = node
	svc, err := lwg.NewService(sc)
	if err != nil {
		t.Fatal(err)
	}
	sn := &svcNode{node: node, svc: svc, ep: ep}
	t.Cleanup(sn.stop)
	return sn
}
