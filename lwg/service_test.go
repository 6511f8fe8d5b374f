package lwg_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/lwg"
)

// The Service does I/O and uses real timers, so these tests run with short
// real time (hwg.FastTiming); the protocol is proven in the simulator
// (proptest.RunLWG).

type svcNode struct {
	node *hwg.Node
	svc  *lwg.Service
	ep   transport.Transport
}

func startCluster(t *testing.T, net *transport.MemNetwork, place lwg.Placement, n int) []*svcNode {
	t.Helper()
	var members []hwg.Process
	for i := 1; i <= n; i++ {
		members = append(members, hwg.Process{Node: hwg.NodeID(i), Inc: 1})
	}
	var out []*svcNode
	for _, p := range members {
		out = append(out, startSvc(t, net, p, place, members, nil))
	}
	return out
}

func startSvc(t *testing.T, net *transport.MemNetwork, p hwg.Process, place lwg.Placement, boot []hwg.Process, contacts []hwg.NodeID) *svcNode {
	t.Helper()
	ep := net.Endpoint(transport.Peer{Node: uint64(p.Node), Inc: p.Inc})
	cfg := hwg.FastTiming(hwg.NodeConfig{Self: p, Transport: ep})
	cfg.Group.ManualBlockOK = true
	node, err := hwg.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := lwg.NewService(lwg.ServiceConfig{Node: node, Core: lwg.Config{Place: place}, DirectoryMembers: boot, Contacts: contacts, TickInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sn := &svcNode{node: node, svc: svc, ep: ep}
	t.Cleanup(sn.stop)
	return sn
}

func (sn *svcNode) stop() {
	sn.svc.Close()
	sn.node.Close()
	sn.ep.Close()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// next returns sn's next event of l that matches pred, skipping others.
func next(t *testing.T, ctx context.Context, sn *svcNode, l lwg.ID, what string, pred func(lwg.Event) bool) lwg.Event {
	t.Helper()
	for {
		select {
		case e, ok := <-sn.svc.Events():
			if !ok {
				t.Fatalf("events closed while waiting for %s", what)
			}
			if e.LWG == l && pred(e) {
				return e
			}
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestServiceJoinMulticastCrash(t *testing.T) {
	for _, tc := range []struct {
		name  string
		place lwg.Placement
	}{{"shared", lwg.Shared("h/shared")}, {"per-LWG", lwg.PerLWG}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			net := transport.NewMemNetwork()
			nodes := startCluster(t, net, tc.place, 3)
			const l lwg.ID = "l/obj"
			for _, sn := range nodes {
				if err := sn.svc.Join(ctx, l); err != nil {
					t.Fatal(err)
				}
			}
			// Wait until every node sees the full view.
			for _, sn := range nodes {
				next(t, ctx, sn, l, "a view of 3", func(e lwg.Event) bool { return e.Type == lwg.EventInstall && len(e.View.Members) == 3 })
			}
			v0, h, err := nodes[0].svc.View(ctx, l)
			if err != nil {
				t.Fatal(err)
			}
			// Every node's directory copy binds the LWG to that carrier.
			for i, sn := range nodes {
				if bound, ok, err := sn.svc.Lookup(ctx, l); err != nil || !ok || bound != h {
					t.Fatalf("node %d: Lookup = %s, %v, %v; want %s", i+1, bound, ok, err, h)
				}
			}
			for i, sn := range nodes {
				if err := sn.svc.Multicast(ctx, l, fmt.Appendf(nil, "m%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			var orders [3][]string
			for i, sn := range nodes {
				for len(orders[i]) < 3 {
					e := next(t, ctx, sn, l, "a delivery", func(e lwg.Event) bool { return e.Type == lwg.EventDeliver })
					if e.View.ID != v0.ID {
						t.Fatalf("node %d delivered in view %d, sent in %d", i+1, e.View.ID, v0.ID)
					}
					orders[i] = append(orders[i], string(e.Payload))
				}
			}
			for i := 1; i < 3; i++ {
				if fmt.Sprint(orders[i]) != fmt.Sprint(orders[0]) {
					t.Fatalf("total order broken: %v vs %v", orders[0], orders[i])
				}
			}
			// A crash: the survivors install the view without it, on the
			// same carrier.
			nodes[2].stop()
			for _, sn := range nodes[:2] {
				e := next(t, ctx, sn, l, "the view without node 3", func(e lwg.Event) bool {
					return e.Type == lwg.EventInstall && len(e.View.Members) == 2
				})
				if e.HWG != h || e.View.ID <= v0.ID {
					t.Fatalf("after the crash: view %v on %s, want a later view on %s", e.View, e.HWG, h)
				}
			}
		})
	}
}

func TestServiceSwitch(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	nodes := startCluster(t, net, lwg.Shared("h/a"), 3)
	const l lwg.ID = "l/moving"
	for _, sn := range nodes {
		if err := sn.svc.Join(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	for _, sn := range nodes {
		next(t, ctx, sn, l, "a view of 3", func(e lwg.Event) bool { return e.Type == lwg.EventInstall && len(e.View.Members) == 3 })
	}
	if err := nodes[0].svc.Multicast(ctx, l, []byte("before")); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].svc.Switch(ctx, l, "h/b"); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].svc.Multicast(ctx, l, []byte("after")); err != nil {
		t.Fatal(err)
	}
	for i, sn := range nodes {
		var got []string
		var carriers []hwg.GroupID
		for len(got) < 2 {
			e := next(t, ctx, sn, l, "deliveries around the switch", func(e lwg.Event) bool {
				return e.Type == lwg.EventDeliver || e.Type == lwg.EventInstall
			})
			if e.Type == lwg.EventInstall {
				carriers = append(carriers, e.HWG)
				continue
			}
			got = append(got, string(e.Payload))
		}
		if fmt.Sprint(got) != "[before after]" {
			t.Fatalf("node %d delivered %v", i+1, got)
		}
		if len(carriers) == 0 || carriers[len(carriers)-1] == "" || string(carriers[len(carriers)-1])[:4] != "h/b#" {
			t.Fatalf("node %d: carriers %v, want the last on h/b", i+1, carriers)
		}
	}
}

// TestServiceInterferenceMetric: on a shared carrier, a node that is not in
// an LWG still receives its data, drops it and counts it; the Prometheus
// collector exports the count.
func TestServiceInterferenceMetric(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	nodes := startCluster(t, net, lwg.Shared("h/shared"), 3)
	for i, sn := range nodes {
		l := lwg.ID("l/a")
		if i == 2 {
			l = "l/b" // node 3 shares the carrier but not the LWG
		}
		if err := sn.svc.Join(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	for _, sn := range nodes[:2] {
		next(t, ctx, sn, "l/a", "a view of 2", func(e lwg.Event) bool { return e.Type == lwg.EventInstall && len(e.View.Members) == 2 })
	}
	const sent = 5
	for i := range sent {
		if err := nodes[0].svc.Multicast(ctx, "l/a", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for range sent {
		next(t, ctx, nodes[1], "l/a", "a delivery", func(e lwg.Event) bool { return e.Type == lwg.EventDeliver })
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(nodes[2].svc.Collector())
	// The carrier delivers at node 3 on its own schedule: poll.
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for got := gauge(t, reg, "lwg_interference_total"); got < sent; got = gauge(t, reg, "lwg_interference_total") {
		select {
		case <-poll.C:
		case <-ctx.Done():
			t.Fatalf("lwg_interference_total = %v at node 3, want at least %d", got, sent)
		}
	}
	if eps := gauge(t, reg, "lwg_endpoints"); eps != 1 {
		t.Fatalf("lwg_endpoints = %v, want 1", eps)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestServiceFitsMessagesToTheHWG: Core.MaxMessageBytes must stay within
// what the carriers take in one message (a refused message loses the
// data handles or table parts it carried): a larger setting is refused,
// and the default is lowered to fit.
func TestServiceFitsMessagesToTheHWG(t *testing.T) {
	net := transport.NewMemNetwork()
	p := hwg.Process{Node: 1, Inc: 1}
	cfg := hwg.FastTiming(hwg.NodeConfig{Self: p, Transport: net.Endpoint(transport.Peer{Node: 1, Inc: 1})})
	cfg.Group.ManualBlockOK = true
	cfg.Group.MaxPendingBytes = 64 << 10
	node, err := hwg.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	if node.MaxPayload() != 64<<10 {
		t.Fatalf("MaxPayload %d, want %d", node.MaxPayload(), 64<<10)
	}
	sc := lwg.ServiceConfig{Node: node, DirectoryMembers: []hwg.Process{p}, Core: lwg.Config{MaxMessageBytes: 128 << 10}}
	if svc, err := lwg.NewService(sc); !errors.Is(err, lwg.ErrInvalidConfig) {
		if svc != nil {
			svc.Close()
		}
		t.Fatalf("MaxMessageBytes over the HWG's 64 KiB: %v, want ErrInvalidConfig", err)
	}
	sc.Core.MaxMessageBytes = 0
	svc, err := lwg.NewService(sc)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if got := lwg.MaxMessageBytes(svc); got != 64<<10 {
		t.Fatalf("default MaxMessageBytes %d under a 64 KiB HWG, want %d", got, 64<<10)
	}
}
