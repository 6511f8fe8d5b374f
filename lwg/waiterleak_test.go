package lwg

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
)

// A blocking call whose context ends must not leave its waiter on the
// loop: nothing removed it before an event satisfied it, and with retries
// one LWG that never got there collected 17 of them.

// onLoop runs f on svc's loop.
func onLoop(t *testing.T, ctx context.Context, svc *Service, f func()) {
	t.Helper()
	if err := svc.do(ctx, func(ch chan error) error { f(); now(ch); return nil }); err != nil {
		t.Fatal(err)
	}
}

// ghostBind has svc's directory copy apply a bind of its, as if from a
// process that no node runs: a carrier it creates for a base is one this
// node can never join.
func ghostBind(t *testing.T, ctx context.Context, svc *Service, its ...item) {
	t.Helper()
	ghost := hwg.Process{Node: 9, Inc: 1}
	bind := encodeControl(&control{Kind: kBind, Items: its})
	onLoop(t, ctx, svc, func() {
		svc.core.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: "h/dir", Msg: hwg.MsgID{Sender: ghost}, Payload: bind})
	})
}

// waiters fails the test unless n calls wait on svc's loop for l's events.
func wantWaiters(t *testing.T, ctx context.Context, svc *Service, l ID, n int) {
	t.Helper()
	got, err := Waiters(ctx, svc, l)
	if err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("%d calls wait for events of %q, want %d", got, l, n)
	}
}

// expire calls call with a context that ends after 100 ms and checks that
// it was that end that ended the call.
func expire(t *testing.T, what string, call func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := call(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: %v, want context.DeadlineExceeded", what, err)
	}
}

func TestExpiredCallsLeaveNoWaiter(t *testing.T) {
	svc := soloService(t, Config{SwitchTimeoutTicks: 1 << 30})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const stuck, l, l2 ID = "l/stuck", "l/obj", "l/obj2"
	if err := svc.Join(ctx, l); err != nil { // and the directory is up
		t.Fatal(err)
	}
	wantWaiters(t, ctx, svc, l, 0)
	// stuck is bound to a carrier of h/g, and h/b's carrier is another:
	// both created by the ghost, neither ever admits this node.
	ghostBind(t, ctx, svc, item{LWG: stuck, Group: "h/g"}, item{Group: "h/b"})

	expire(t, "Join of an LWG on a carrier this node cannot join", func(ctx context.Context) error { return svc.Join(ctx, stuck) })
	wantWaiters(t, ctx, svc, stuck, 0)
	expire(t, "Switch to a carrier this node cannot join", func(ctx context.Context) error { return svc.Switch(ctx, l, "h/b") })
	wantWaiters(t, ctx, svc, l, 0)
	// The switch goes on in the Core: a second one is refused, and adds
	// no waiter either.
	if err := svc.Switch(ctx, l, "h/b"); !errors.Is(err, ErrSwitching) {
		t.Fatalf("a second Switch: %v, want ErrSwitching", err)
	}
	wantWaiters(t, ctx, svc, "", 0)

	// Later calls that get there are answered, and leave nothing behind.
	if err := svc.Join(ctx, l2); err != nil {
		t.Fatal(err)
	}
	if err := svc.Leave(ctx, l2); err != nil {
		t.Fatal(err)
	}
	wantWaiters(t, ctx, svc, "", 0)
}

// A call whose context ends as its answer comes returns one or the other,
// and either way leaves no waiter: many Joins and Leaves with deadlines
// about as long as they take.
func TestCallsRacingTheirDeadlineLeaveNoWaiter(t *testing.T) {
	svc := soloService(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const l ID = "l/race"
	until := func(member bool) {
		t.Helper()
		for {
			_, _, err := svc.View(ctx, l)
			if err == nil == member {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("waiting for member=%v: %v", member, err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i := range 40 {
		d := time.Duration(i%8) * time.Millisecond
		cctx, ccancel := context.WithTimeout(ctx, d)
		err := svc.Join(cctx, l)
		ccancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Join: %v", err)
		}
		if err := svc.Join(ctx, l); err != nil && !errors.Is(err, ErrAlreadyMember) {
			t.Fatal(err)
		}
		until(true)
		cctx, ccancel = context.WithTimeout(ctx, d)
		err = svc.Leave(cctx, l)
		ccancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Leave: %v", err)
		}
		if err := svc.Leave(ctx, l); err != nil && !errors.Is(err, ErrNotMember) {
			t.Fatal(err)
		}
		until(false)
	}
	wantWaiters(t, ctx, svc, "", 0)
}
