package lwg

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
)

// TestHWGMembershipLeaveThenJoin: the Core asks to leave an HWG and then to
// join it again before the leave is done. The join must reach the node
// after the leave has finished, and the node must end up in the group.
// With each request in a goroutine of its own (as before), the join met
// the group still joined or leaving (ErrAlreadyMember) in either order,
// and the node ended outside the group.
func TestHWGMembershipLeaveThenJoin(t *testing.T) {
	const g hwg.GroupID = "h/membership"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	net := transport.NewMemNetwork()
	var members []hwg.Process
	nodes := map[hwg.NodeID]*hwg.Node{}
	for id := hwg.NodeID(1); id <= 3; id++ {
		members = append(members, hwg.Process{Node: id, Inc: 1})
	}
	for _, p := range members {
		ep := net.Endpoint(transport.Peer{Node: uint64(p.Node), Inc: p.Inc})
		n, err := hwg.NewNode(hwg.FastTiming(hwg.NodeConfig{Self: p, Transport: ep}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close(); ep.Close() })
		nodes[p.Node] = n
	}
	for _, n := range nodes {
		if err := n.Bootstrap(ctx, g, members); err != nil {
			t.Fatal(err)
		}
	}
	n3 := nodes[3]
	waitEvent(t, ctx, n3, nil, "the first install", func(e hwg.Event) bool { return e.Type == hwg.EventInstall })

	stop := make(chan struct{})
	defer close(stop)
	m := newHWGMembership(n3, hclog.NewNullLogger(), stop)
	m.do(ctx, Action{Type: ActLeave, Group: g})
	m.do(ctx, Action{Type: ActJoin, Group: g, Contacts: []hwg.NodeID{1}})
	// The Core retries its join while the leave lasts: the latest stands
	// for the ones before (the queue stays one long, however long the
	// leave is held).
	for range 5 {
		m.do(ctx, Action{Type: ActJoin, Group: g, Contacts: []hwg.NodeID{1, 2}})
	}
	if q, ok := m.leaving[g]; !ok || len(q) != 1 || q[0].Type != ActJoin || len(q[0].Contacts) != 2 {
		t.Fatalf("the latest join should wait behind the leave, alone; waiting: %v (%v)", q, ok)
	}

	left := false
	waitEvent(t, ctx, n3, m, "install with node 3 after it left", func(e hwg.Event) bool {
		switch e.Type {
		case hwg.EventLeft:
			left = true
		case hwg.EventInstall:
			return left && slices.ContainsFunc(e.View.Members, func(p hwg.Process) bool { return p.Node == 3 })
		}
		return false
	})
	if len(m.leaving) != 0 {
		t.Fatalf("requests still waiting: %v", m.leaving)
	}
}

// waitEvent reads n's events until pred holds for one, serving m's
// finished leaves meanwhile as the Service's loop does.
func waitEvent(t *testing.T, ctx context.Context, n *hwg.Node, m *hwgMembership, what string, pred func(hwg.Event) bool) {
	t.Helper()
	var done chan hwg.GroupID
	if m != nil {
		done = m.done
	}
	for {
		select {
		case e := <-n.Events():
			if e.Group != "" && pred(e) {
				return
			}
		case g := <-done:
			m.resume(ctx, g)
		case <-ctx.Done():
			t.Fatalf("node %v: no %s: %v", n.Self(), what, ctx.Err())
		}
	}
}
