package rsm_test

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/lwgkit/lwgkit/rsm/rsmtest"
)

// TestOpenNotRecorded: Open records the object while it joins; if the
// record fails, Open returns the error and the object is not open here
// (it left its group again), as when the record came first.
func TestOpenNotRecorded(t *testing.T) {
	ctx := ctxT(t)
	disk := errors.New("disk full")
	nodes := startCluster(t, transport.NewMemNetwork(), 1, rsm.WithRegisterHook(rsm.Config{}, func(rsm.ObjectID) error { return disk }))
	if _, err := nodes[0].Open(ctx, "unrecorded", rsmtest.NewCounter); !errors.Is(err, disk) {
		t.Fatalf("Open with a failing record: %v, want the record's error", err)
	}
	if _, ok := nodes[0].Object("unrecorded"); ok {
		t.Fatal("the object is open although it was not recorded")
	}
	if ids := nodes[0].Objects(); len(ids) != 0 {
		t.Fatalf("open objects: %v, want none", ids)
	}
}

// TestOpenRaceRecordsOnce: of two Opens of one object racing on a node,
// only the one that put the object in place records it; a failing record
// by the other (before: it recorded too) must not close the object the
// first returned.
func TestOpenRaceRecordsOnce(t *testing.T) {
	ctx := ctxT(t)
	var calls atomic.Int32
	disk := errors.New("disk hiccup")
	cfg := rsm.WithRegisterHook(rsm.Config{}, func(rsm.ObjectID) error {
		if calls.Add(1) == 2 {
			return disk
		}
		return nil
	})
	nodes := startCluster(t, transport.NewMemNetwork(), 1, cfg)
	n := nodes[0]
	bErr := make(chan error, 1)
	go func() {
		_, err := n.Open(ctx, "x", func(id rsm.ObjectID) (rsm.StateMachine, error) {
			for { // wait until A's object is in place
				if _, ok := n.Object("x"); ok {
					break
				}
				time.Sleep(time.Millisecond)
			}
			return rsmtest.NewCounter(id)
		})
		bErr <- err
	}()
	time.Sleep(20 * time.Millisecond)
	a, aerr := n.Open(ctx, "x", rsmtest.NewCounter)
	berr := <-bErr
	// Both Opens share the one Join, in either order: neither fails with
	// ErrAlreadyMember (CI once saw B's Join win and A's fail), and B's
	// must not undo A's.
	if aerr != nil || berr != nil {
		t.Fatalf("Opens: %v and %v, want both to succeed", aerr, berr)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("%d records, want 1", got)
	}
	if _, ok := n.Object("x"); !ok {
		t.Fatal("the object is no longer open")
	}
	if _, err := a.Propose(ctx, rsmtest.Add(1)); err != nil {
		t.Errorf("Propose on the object: %v", err)
	}
}

// TestCloseWaitsForOpenRecord: a Close while Open's record is still being
// written waits for it before it removes the object, so the record cannot
// land after the removal and have a restart reopen a closed object.
func TestCloseWaitsForOpenRecord(t *testing.T) {
	ctx := ctxT(t)
	release := make(chan struct{})
	cfg := rsm.WithRegisterHook(rsm.Config{}, func(rsm.ObjectID) error { <-release; return nil })
	nodes := startCluster(t, transport.NewMemNetwork(), 1, cfg)
	n := nodes[0]
	done := make(chan error, 1)
	go func() { _, err := n.Open(ctx, "y", rsmtest.NewCounter); done <- err }()
	var o *rsm.Object
	for {
		if x, ok := n.Object("y"); ok {
			o = x
			break
		}
		time.Sleep(time.Millisecond)
	}
	cl := make(chan error, 1)
	go func() { cl <- o.Close(ctx) }()
	time.Sleep(20 * time.Millisecond)
	close(release)
	if err := <-cl; err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-done; !errors.Is(err, rsm.ErrClosed) {
		t.Errorf("Open of an object closed while it opened: %v, want ErrClosed", err)
	}
	ids, err := n.Stored()
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 0 {
		t.Errorf("closed object recorded for restart: %v", ids)
	}
}

// TestConcurrentOpens: Opens of one object racing on a node all return the
// one object (before: each Joined, and all but one failed with
// ErrAlreadyMember), and an Open of an open object returns it.
func TestConcurrentOpens(t *testing.T) {
	ctx := ctxT(t)
	n := startCluster(t, transport.NewMemNetwork(), 1, rsm.Config{})[0]
	const opens = 8
	type res struct {
		o   *rsm.Object
		err error
	}
	out := make(chan res, opens)
	start := make(chan struct{})
	for range opens {
		go func() {
			<-start
			o, err := n.Open(ctx, "c", rsmtest.NewCounter)
			out <- res{o, err}
		}()
	}
	close(start)
	var first *rsm.Object
	for range opens {
		r := <-out
		if r.err != nil {
			t.Fatalf("concurrent Open: %v", r.err)
		}
		if first == nil {
			first = r.o
		} else if r.o != first {
			t.Fatal("concurrent Opens returned different objects")
		}
	}
	again, err := n.Open(ctx, "c", rsmtest.NewCounter)
	if err != nil || again != first {
		t.Fatalf("Open of the open object: %p, %v; want %p", again, err, first)
	}
	if _, err := first.Propose(ctx, rsmtest.Add(1)); err != nil {
		t.Errorf("Propose: %v", err)
	}
}

// TestOpenAfterFailedOpen: an Open whose ctx ended leaves the object on
// the node; the next Open joins and returns it.
func TestOpenAfterFailedOpen(t *testing.T) {
	ctx := ctxT(t)
	n := startCluster(t, transport.NewMemNetwork(), 1, rsm.Config{})[0]
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := n.Open(gone, "f", rsmtest.NewCounter); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with an ended ctx: %v, want context.Canceled", err)
	}
	if _, ok := n.Object("f"); !ok {
		t.Fatal("an Open whose ctx ended took the object away")
	}
	o, err := n.Open(ctx, "f", rsmtest.NewCounter)
	if err != nil {
		t.Fatalf("Open after a failed Open: %v", err)
	}
	if _, err := o.Propose(ctx, rsmtest.Add(1)); err != nil {
		t.Fatalf("Propose: %v", err)
	}
	ids, err := n.Stored()
	if err != nil || len(ids) != 1 || ids[0] != "f" {
		t.Fatalf("recorded: %v, %v; want [f]", ids, err)
	}
}

// TestCloseDuringOpenJoin: a Close that begins while an Open waits for its
// turn at the join, while its Join is under way, or after it returned but
// before the turn went back, leaves the node out of the object's group,
// also when Close gives up waiting (its ctx ends). Before the fixes,
// Close's Leave found nothing to leave, the Open's Join landed after it,
// and the node stayed in the group of a detached object, where a later
// Open of the object hung.
func TestCloseDuringOpenJoin(t *testing.T) {
	for _, tc := range []struct {
		name, stage string
		closeWithin time.Duration // 0: ctxT's; < 0: already ended
	}{
		{"before the check", "turn", 0},
		{"joining", "checked", 0},
		{"joining, Close gives up", "checked", 50 * time.Millisecond},
		{"joined, Close gives up", "joined", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			n := startCluster(t, transport.NewMemNetwork(), 1, rsm.Config{})[0]
			reached, release := make(chan *rsm.Object, 1), make(chan struct{})
			defer rsm.SetJoinHook(func(o *rsm.Object, stage string) {
				if stage == tc.stage {
					reached <- o
					<-release
				}
			})()
			opened := make(chan error, 1)
			go func() {
				_, err := n.Open(ctx, "c", rsmtest.NewCounter)
				opened <- err
			}()
			o := <-reached
			cctx := ctx
			if tc.closeWithin != 0 {
				var cancel context.CancelFunc
				cctx, cancel = context.WithTimeout(ctx, max(tc.closeWithin, 0))
				defer cancel()
			}
			closed := make(chan error, 1)
			go func() { closed <- o.Close(cctx) }()
			for !o.Closing() {
				runtime.Gosched()
			}
			if tc.closeWithin != 0 {
				// Close gives up waiting for the join.
				if err := <-closed; !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Close: %v, want its deadline", err)
				}
			}
			close(release)
			if err := <-opened; !errors.Is(err, rsm.ErrClosed) {
				t.Errorf("Open: %v, want ErrClosed", err)
			}
			if tc.closeWithin == 0 {
				if err := <-closed; err != nil {
					t.Errorf("Close: %v", err)
				}
			}
			if err := n.WaitForgotten(ctx, "c"); err != nil {
				t.Fatal(err)
			}
			if v, h, err := n.Service().View(ctx, rsm.ObjectID("c").LWG()); !errors.Is(err, lwg.ErrNotMember) {
				t.Errorf("after Close, the node is in the object's group: view %v on %s, %v", v, h, err)
			}
			if _, ok := n.Object("c"); ok {
				t.Error("the closed object is still open")
			}
			rsm.SetJoinHook(nil)
			again, err := n.Open(ctx, "c", rsmtest.NewCounter)
			if err != nil {
				t.Fatalf("Open after the Close: %v", err)
			}
			if _, err := again.Propose(ctx, rsmtest.Add(1)); err != nil {
				t.Errorf("Propose after reopening: %v", err)
			}
		})
	}
}

// TestReopenWhileClosedJoinPends: after a Close gave up waiting for an
// Open's join, a new Open of the object waits until the old join is over
// and the node left again, then opens; the old Open's Leave cannot take
// the new object out of its group (found in review: it did).
func TestReopenWhileClosedJoinPends(t *testing.T) {
	ctx := ctxT(t)
	n := startCluster(t, transport.NewMemNetwork(), 1, rsm.Config{})[0]
	reached, release := make(chan *rsm.Object, 1), make(chan struct{})
	var first atomic.Pointer[rsm.Object]
	defer rsm.SetJoinHook(func(o *rsm.Object, stage string) {
		if stage == "checked" && first.CompareAndSwap(nil, o) {
			reached <- o
			<-release
		}
	})()
	waiting := make(chan struct{}, 1)
	defer rsm.SetCloseHooks(nil, func(rsm.ObjectID) {
		select {
		case waiting <- struct{}{}:
		default:
		}
	})()
	old := make(chan error, 1)
	go func() {
		_, err := n.Open(ctx, "c", rsmtest.NewCounter)
		old <- err
	}()
	o := <-reached
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := o.Close(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want its deadline", err)
	}
	type res struct {
		o   *rsm.Object
		err error
	}
	reopened := make(chan res, 1)
	go func() {
		o2, err := n.Open(ctx, "c", rsmtest.NewCounter)
		reopened <- res{o2, err}
	}()
	select {
	case <-waiting:
	case r := <-reopened:
		t.Fatalf("the new Open returned (%v) while the old join was pending", r.err)
	}
	close(release)
	if err := <-old; !errors.Is(err, rsm.ErrClosed) {
		t.Errorf("old Open: %v, want ErrClosed", err)
	}
	r := <-reopened
	if r.err != nil {
		t.Fatalf("new Open: %v", r.err)
	}
	if _, err := r.o.Propose(ctx, rsmtest.Add(1)); err != nil {
		t.Errorf("Propose on the reopened object: %v", err)
	}
	if _, _, err := n.Service().View(ctx, rsm.ObjectID("c").LWG()); err != nil {
		t.Errorf("the reopened object's group: %v", err)
	}
}

// TestOpenWaitsForClose: an Open of an id whose earlier object is still
// closing (out of the node's objects, its record and snapshots not yet
// removed) waits for that Close. Before, it opened at once, and the old
// Close then removed the new object's record, so a restart did not reopen
// it.
func TestOpenWaitsForClose(t *testing.T) {
	ctx := ctxT(t)
	n := startCluster(t, transport.NewMemNetwork(), 1, rsm.Config{})[0]
	o, err := n.Open(ctx, "c", rsmtest.NewCounter)
	if err != nil {
		t.Fatal(err)
	}
	detached, release, waiting := make(chan struct{}), make(chan struct{}), make(chan struct{}, 1)
	defer rsm.SetCloseHooks(func(*rsm.Object) {
		close(detached)
		<-release
	}, func(rsm.ObjectID) { waiting <- struct{}{} })()
	closed := make(chan error, 1)
	go func() { closed <- o.Close(ctx) }()
	<-detached
	opened := make(chan error, 1)
	go func() {
		_, err := n.Open(ctx, "c", rsmtest.NewCounter)
		opened <- err
	}()
	var openErr error
	select {
	case <-waiting:
		close(release)
		openErr = <-opened
	case openErr = <-opened:
		t.Error("Open returned while the earlier object was still closing")
		close(release)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if openErr != nil {
		t.Fatalf("Open: %v", openErr)
	}
	stored, err := n.Stored()
	if err != nil || len(stored) != 1 || stored[0] != "c" {
		t.Errorf("recorded objects after the Open: %v, %v; want [c]", stored, err)
	}
}
