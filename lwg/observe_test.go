package lwg_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/lwg"
)

// observeUntil polls sn's Observation until ok accepts it.
func observeUntil(t *testing.T, ctx context.Context, sn *svcNode, what string, ok func(lwg.Observation) bool) lwg.Observation {
	t.Helper()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		o, err := sn.svc.Observe(ctx)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok(o) {
			return o
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			t.Fatalf("%s: not reached; last observation %+v", what, o)
		}
	}
}

func findLWG(o lwg.Observation, l lwg.ID) (lwg.LWGObservation, bool) {
	for _, lo := range o.LWGs {
		if lo.ID == l {
			return lo, true
		}
	}
	return lwg.LWGObservation{}, false
}

// TestServiceObserve: a node sees the LWGs of its carrier whether or not it
// is in them, with their traffic (every carrier member receives all of
// it), and every carrier of the directory; after a switch it sees the LWG
// on the new carrier, bound there.
func TestServiceObserve(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	nodes := startCluster(t, net, lwg.Shared("h/shared"), 3)
	for i, sn := range nodes {
		l := lwg.ID("l/a")
		if i == 2 {
			l = "l/b"
		}
		if err := sn.svc.Join(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	for _, sn := range nodes[:2] {
		next(t, ctx, sn, "l/a", "a view of 2", func(e lwg.Event) bool { return e.Type == lwg.EventInstall && len(e.View.Members) == 2 })
	}
	const sent = 5
	for range sent {
		if err := nodes[0].svc.Multicast(ctx, "l/a", []byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	// Node 3 is not in l/a but carries it: it counts l/a's traffic.
	o := observeUntil(t, ctx, nodes[2], "node 3 sees l/a's traffic", func(o lwg.Observation) bool {
		lo, ok := findLWG(o, "l/a")
		return ok && lo.Traffic == sent && o.Stats.Interference == sent
	})
	a, _ := findLWG(o, "l/a")
	b, okb := findLWG(o, "l/b")
	if a.Local || !okb || !b.Local || a.HWG != b.HWG || a.Bound != a.HWG || len(a.View.Members) != 2 || a.Sent != 0 {
		t.Fatalf("node 3: l/a %+v, l/b %+v (found %v)", a, b, okb)
	}
	if len(o.Carriers) != 1 || o.Carriers[0].ID != a.HWG || o.Carriers[0].Base != "h/shared" || !o.Carriers[0].Current ||
		!o.Carriers[0].Member || len(o.Carriers[0].View.Members) != 3 || o.Carriers[0].LWGs != 2 || len(o.Carriers[0].Regs) != 3 {
		t.Fatalf("node 3 carriers: %+v", o.Carriers)
	}
	o = observeUntil(t, ctx, nodes[0], "node 1 sees its own sends delivered", func(o lwg.Observation) bool {
		lo, ok := findLWG(o, "l/a")
		return ok && lo.Traffic == sent
	})
	if a, _ = findLWG(o, "l/a"); !a.Local || a.Sent != sent || a.Busy {
		t.Fatalf("node 1: l/a %+v", a)
	}

	if err := nodes[1].svc.Switch(ctx, "l/a", "h/b"); err != nil {
		t.Fatal(err)
	}
	o = observeUntil(t, ctx, nodes[1], "node 2 sees l/a settled on h/b", func(o lwg.Observation) bool {
		lo, ok := findLWG(o, "l/a")
		return ok && strings.HasPrefix(string(lo.HWG), "h/b#") && lo.Bound == lo.HWG && !lo.Busy
	})
	a, _ = findLWG(o, "l/a")
	var onB *lwg.CarrierObservation
	for i, co := range o.Carriers {
		if co.ID == a.HWG {
			onB = &o.Carriers[i]
		}
	}
	if onB == nil || onB.Base != "h/b" || !onB.Member || onB.LWGs != 1 || a.Traffic != sent {
		t.Fatalf("node 2 after the switch: l/a %+v, carriers %+v", a, o.Carriers)
	}
	// With no endpoint left on h/shared, node 2 leaves it lazily and no
	// longer sees l/b.
	observeUntil(t, ctx, nodes[1], "node 2 leaves h/shared", func(o lwg.Observation) bool {
		_, ok := findLWG(o, "l/b")
		return !ok
	})
}
