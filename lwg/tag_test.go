package lwg

import (
	"context"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
)

// taggedService starts a one-node cluster whose events the test reads.
func taggedService(t *testing.T) *Service { return oneNodeService(t, false) }

// oneNodeService starts a one-node cluster on the shared carrier h/a;
// batches: its events come on Batches (ServiceConfig.EventBatches).
func oneNodeService(t *testing.T, batches bool) *Service {
	t.Helper()
	self := hwg.Process{Node: 1, Inc: 1}
	net := transport.NewMemNetwork()
	ep := net.Endpoint(transport.Peer{Node: 1, Inc: 1})
	node, err := hwg.NewNode(hwg.FastTiming(hwg.NodeConfig{Self: self, Transport: ep}))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(ServiceConfig{Node: node, Core: Config{Place: Shared("h/a")}, DirectoryMembers: []hwg.Process{self}, TickInterval: 10 * time.Millisecond, NoSendEvents: true, EventBatches: batches})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		svc.Close()
		node.Close()
		ep.Close()
	})
	return svc
}

// sendTagged multicasts payload in l and returns the tag its delivery
// carried.
func sendTagged(t *testing.T, ctx context.Context, svc *Service, l ID, payload string) any {
	t.Helper()
	if err := svc.Multicast(ctx, l, []byte(payload)); err != nil {
		t.Fatal(err)
	}
	return deliveredTag(t, ctx, svc, l, payload)
}

func deliveredTag(t *testing.T, ctx context.Context, svc *Service, l ID, payload string) any {
	t.Helper()
	for {
		select {
		case e := <-svc.Events():
			if e.Type == EventDeliver && e.LWG == l && string(e.Payload) == payload {
				return e.Tag
			}
		case <-ctx.Done():
			t.Fatalf("no delivery of %q in %s", payload, l)
		}
	}
}

// joinReading joins l, reading svc's events meanwhile (and releasing
// its batches, with EventBatches; a nil Batches channel is never ready).
func joinReading(t *testing.T, ctx context.Context, svc *Service, l ID) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- svc.Join(ctx, l) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		case <-svc.Events():
		case b := <-svc.Batches():
			svc.Release(b)
		}
	}
}

// TestSetTag: deliveries carry the LWG's tag, from before the Join, across
// a Leave and a new Join, and not once it is removed; other LWGs' do not.
func TestSetTag(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc := taggedService(t)
	type obj struct{ name string }
	a := &obj{"a"}
	if err := svc.SetTag(ctx, "l/a", a); err != nil {
		t.Fatal(err)
	}
	joinReading(t, ctx, svc, "l/a")
	joinReading(t, ctx, svc, "l/b")
	if got := sendTagged(t, ctx, svc, "l/a", "1"); got != a {
		t.Fatalf("delivery in l/a carries %v, want the tag set before Join", got)
	}
	if got := sendTagged(t, ctx, svc, "l/b", "2"); got != nil {
		t.Fatalf("delivery in untagged l/b carries %v", got)
	}
	leave := make(chan error, 1)
	go func() { leave <- svc.Leave(ctx, "l/a") }()
	for err := error(nil); ; {
		select {
		case err = <-leave:
		case <-svc.Events():
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	joinReading(t, ctx, svc, "l/a")
	if got := sendTagged(t, ctx, svc, "l/a", "3"); got != a {
		t.Fatalf("after a Leave and a Join, delivery carries %v, want the tag", got)
	}
	if err := svc.SetTag(ctx, "l/a", nil); err != nil {
		t.Fatal(err)
	}
	if got := sendTagged(t, ctx, svc, "l/a", "4"); got != nil {
		t.Fatalf("after SetTag(nil), delivery carries %v", got)
	}
}

// TestMulticastAfterRejoinWithStaleEndpoint: a multicast queued with the
// endpoint of an earlier membership (Multicast looked it up just before
// the node left and joined again) is sent in the current membership, not
// dropped.
func TestMulticastAfterRejoinWithStaleEndpoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc := taggedService(t)
	joinReading(t, ctx, svc, "l/a")
	old := svc.member("l/a")
	if old == nil {
		t.Fatal("no endpoint after Join")
	}
	leave := make(chan error, 1)
	go func() { leave <- svc.Leave(ctx, "l/a") }()
	for done := false; !done; {
		select {
		case err := <-leave:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		case <-svc.Events():
		}
	}
	joinReading(t, ctx, svc, "l/a")
	if svc.member("l/a") == old {
		t.Fatal("the new membership kept the old endpoint")
	}
	select {
	case svc.mcast <- svcMulticast{l: "l/a", payload: []byte("late"), ep: old}:
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	deliveredTag(t, ctx, svc, "l/a", "late")
	if n := svc.dropped.Load(); n != 0 {
		t.Fatalf("%d multicasts dropped", n)
	}
}
