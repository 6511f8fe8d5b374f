package rsm_test

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/lwgkit/lwgkit/rsm/rsmtest"
)

// outcomes collects ProposeAsync's results and fails the test on a
// second call for the same proposal.
type outcomes struct {
	t    *testing.T
	mu   sync.Mutex
	got  map[int][]byte
	errs map[int]error
	left atomic.Int64
	done chan struct{}
}

func newOutcomes(t *testing.T, n int) *outcomes {
	oc := &outcomes{t: t, got: map[int][]byte{}, errs: map[int]error{}, done: make(chan struct{})}
	oc.left.Store(int64(n))
	return oc
}

func (oc *outcomes) callback(i int) func([]byte, error) {
	return func(val []byte, err error) {
		oc.mu.Lock()
		_, twice := oc.got[i]
		if _, e := oc.errs[i]; e {
			twice = true
		}
		if err != nil {
			oc.errs[i] = err
		} else {
			oc.got[i] = val
		}
		oc.mu.Unlock()
		if twice {
			oc.t.Errorf("proposal %d: done called twice", i)
			return
		}
		if oc.left.Add(-1) == 0 {
			close(oc.done)
		}
	}
}

// TestProposeAsync: async proposals from every replica are applied once
// each, in the total order, each node's in the order it made them; done
// runs once per proposal and may propose again; errors found before
// queueing are returned, not passed to done.
func TestProposeAsync(t *testing.T) {
	ctx := ctxT(t)
	nodes := startCluster(t, transport.NewMemNetwork(), 3, rsm.Config{MaxCommandBytes: 16})
	objs := openAll(t, ctx, nodes, "async")

	const per = 100
	oc := newOutcomes(t, 3*per)
	for k := range per {
		for i, o := range objs {
			if err := o.ProposeAsync(rsmtest.Add(1), oc.callback(i*per+k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case <-oc.done:
	case <-ctx.Done():
		t.Fatalf("%d proposals without an outcome", oc.left.Load())
	}
	converge(t, ctx, objs, 3*per)
	seen := map[uint64]bool{}
	for i := range objs {
		last := uint64(0)
		for k := range per {
			if err := oc.errs[i*per+k]; err != nil {
				t.Fatalf("node %d proposal %d: %v", i+1, k, err)
			}
			// Each adds 1, so its result is its place in the order.
			at := binary.BigEndian.Uint64(oc.got[i*per+k])
			if at <= last || seen[at] || at > 3*per {
				t.Fatalf("node %d proposal %d applied at %d (after %d; seen: %v)", i+1, k, at, last, seen[at])
			}
			last, seen[at] = at, true
		}
	}

	// A chain: each outcome makes the next proposal, from the goroutine
	// that applied the last.
	const chain = 20
	var step func(k int)
	finished := make(chan error, 1)
	step = func(k int) {
		err := objs[k%3].ProposeAsync(rsmtest.Add(1), func(_ []byte, err error) {
			switch {
			case err != nil:
				finished <- err
			case k+1 == chain:
				finished <- nil
			default:
				step(k + 1)
			}
		})
		if err != nil {
			finished <- err
		}
	}
	step(0)
	select {
	case err := <-finished:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("chain of proposals stalled")
	}
	converge(t, ctx, objs, 3*per+chain)

	called := func([]byte, error) { t.Error("done called for a refused proposal") }
	if err := objs[0].ProposeAsync(make([]byte, 17), called); !errors.Is(err, rsm.ErrTooLarge) {
		t.Fatalf("oversized: err = %v, want ErrTooLarge", err)
	}
	if err := objs[1].ProposeAsync(rsmtest.Add(1), nil); err != nil { // outcome discarded
		t.Fatal(err)
	}
	converge(t, ctx, objs, 3*per+chain+1)
	if err := objs[2].Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := objs[2].ProposeAsync(rsmtest.Add(1), called); !errors.Is(err, rsm.ErrClosed) {
		t.Fatalf("after Close: err = %v, want ErrClosed", err)
	}
}

// TestProposeAsyncPendingAtClose: a proposal waiting behind a blocked
// Apply when its object closes gets exactly one outcome.
func TestProposeAsyncPendingAtClose(t *testing.T) {
	ctx := ctxT(t)
	nodes := startCluster(t, transport.NewMemNetwork(), 1, rsm.Config{})
	g := &gateSM{entered: make(chan struct{}), gate: make(chan struct{})}
	o, err := nodes[0].Open(ctx, "gated", func(rsm.ObjectID) (rsm.StateMachine, error) { return g, nil })
	if err != nil {
		t.Fatal(err)
	}
	oc := newOutcomes(t, 2)
	if err := o.ProposeAsync([]byte("wait"), oc.callback(0)); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	if err := o.ProposeAsync([]byte("after"), oc.callback(1)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- o.Close(ctx) }()
	close(g.gate)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	select {
	case <-oc.done:
	case <-ctx.Done():
		t.Fatalf("%d proposals without an outcome after Close", oc.left.Load())
	}
	if err := oc.errs[0]; err != nil {
		t.Fatalf("the applied proposal: %v", err)
	}
	if err := oc.errs[1]; err != nil && !errors.Is(err, rsm.ErrClosed) && !errors.Is(err, rsm.ErrUnknown) && !errors.Is(err, rsm.ErrNotApplied) {
		t.Fatalf("the pending proposal: %v", err)
	}
}

// TestProposeAsyncCallbackUsesObject: done runs once the turn that applied
// its command let go of the object's state, so it may read the object
// (StaleRead) and propose again, from whichever goroutine applied it.
func TestProposeAsyncCallbackUsesObject(t *testing.T) {
	ctx := ctxT(t)
	nodes := startCluster(t, transport.NewMemNetwork(), 1, rsm.Config{})
	o := openAll(t, ctx, nodes, "reentrant")[0]
	type seen struct {
		total []byte
		err   error
	}
	got := make(chan seen, 2)
	var again func([]byte, error)
	again = func(_ []byte, err error) {
		if err != nil {
			got <- seen{err: err}
			return
		}
		total, err := o.StaleRead([]byte("total"))
		got <- seen{total, err}
	}
	if err := o.ProposeAsync(rsmtest.Add(3), func(_ []byte, err error) {
		if err == nil {
			err = o.ProposeAsync(rsmtest.Add(4), again)
		}
		if err != nil {
			got <- seen{err: err}
			return
		}
		total, err := o.StaleRead([]byte("total"))
		got <- seen{total, err}
	}); err != nil {
		t.Fatal(err)
	}
	var totals []uint64
	for range 2 {
		select {
		case s := <-got:
			if s.err != nil {
				t.Fatal(s.err)
			}
			totals = append(totals, binary.BigEndian.Uint64(s.total))
		case <-ctx.Done():
			t.Fatalf("callbacks stalled (a callback's StaleRead waits for the turn that runs it); got %v", totals)
		}
	}
	if totals[0] < 3 || totals[1] != 7 {
		t.Fatalf("StaleRead in the callbacks saw totals %v, want at least 3 and then 7", totals)
	}
}
