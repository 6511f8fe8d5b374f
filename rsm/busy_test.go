package rsm_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/lwgkit/lwgkit/rsm/rsmtest"
)

// gatedCounter is a Counter whose Apply of "wait" blocks until gate
// closes (the commands proposed behind it stay in flight), and which
// applies a command starting with "pad" as nothing.
type gatedCounter struct {
	*rsmtest.Counter
	entered, gate chan struct{}
}

func (g *gatedCounter) Apply(cmd []byte) ([]byte, error) {
	if string(cmd) == "wait" {
		close(g.entered)
		<-g.gate
		return nil, nil
	}
	if bytes.HasPrefix(cmd, []byte("pad")) {
		return nil, nil
	}
	return g.Counter.Apply(cmd)
}

// TestProposeBusy: past Config.MaxInFlight (and MaxInFlightBytes) calls
// in flight, Propose, ProposeAsync and Read return ErrBusy at once, which
// wraps ErrNotApplied, and nothing of them is applied; once the calls in
// flight end, new ones are taken again, and every call taken got its
// outcome.
func TestProposeBusy(t *testing.T) {
	ctx := ctxT(t)
	nodes := startCluster(t, transport.NewMemNetwork(), 1, rsm.Config{MaxInFlight: 3, MaxInFlightBytes: 1 << 10})
	entered, gate := make(chan struct{}), make(chan struct{})
	o := openGated(t, ctx, nodes[0], "busy", entered, gate)
	release := releaser(t, gate)
	waited := make(chan error, 1)
	go func() { _, err := o.Propose(ctx, []byte("wait")); waited <- err }()
	<-entered
	outcomes := make(chan error, 2)
	for range 2 {
		if err := o.ProposeAsync(rsmtest.Add(1), func(_ []byte, err error) { outcomes <- err }); err != nil {
			t.Fatalf("a call under the limit: %v", err)
		}
	}
	if n, _, err := o.InFlight(); err != nil || n != 3 {
		t.Fatalf("in flight: %d calls (%v), want 3", n, err)
	}
	busy := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, rsm.ErrBusy) || !errors.Is(err, rsm.ErrNotApplied) {
			t.Fatalf("%s at the limit: %v, want ErrBusy wrapping ErrNotApplied", what, err)
		}
	}
	busy("ProposeAsync", o.ProposeAsync(rsmtest.Add(100), func([]byte, error) { t.Error("done called for a refused proposal") }))
	_, err := o.Propose(ctx, rsmtest.Add(100))
	busy("Propose", err)
	_, err = o.Read(ctx, []byte("total"))
	busy("Read", err)

	release()
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-outcomes; err != nil {
			t.Fatal(err)
		}
	}
	total, err := o.Read(ctx, []byte("total"))
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint64(total); got != 2 {
		t.Fatalf("total %d, want 2: the refused calls must not be applied", got)
	}
	if n, b, err := o.InFlight(); err != nil || n != 0 || b != 0 {
		t.Fatalf("after every outcome: %d calls, %d bytes in flight (%v)", n, b, err)
	}
}

// TestProposeBusyBytes: MaxInFlightBytes refuses a call whose bytes would
// pass it, but a call is always taken when none is in flight, however
// large.
func TestProposeBusyBytes(t *testing.T) {
	ctx := ctxT(t)
	nodes := startCluster(t, transport.NewMemNetwork(), 1, rsm.Config{MaxInFlightBytes: 64})
	entered, gate := make(chan struct{}), make(chan struct{})
	o := openGated(t, ctx, nodes[0], "bytes", entered, gate)
	big := append([]byte("pad"), make([]byte, 100)...) // over the limit alone
	if _, err := o.Propose(ctx, big); err != nil {
		t.Fatalf("a call over MaxInFlightBytes with nothing in flight: %v", err)
	}
	release := releaser(t, gate)
	waited := make(chan error, 1)
	go func() { _, err := o.Propose(ctx, []byte("wait")); waited <- err }()
	<-entered
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := o.Propose(short, big); !errors.Is(err, rsm.ErrBusy) {
		t.Fatalf("a call whose bytes pass the limit: %v, want ErrBusy", err)
	}
	release()
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if _, b, err := o.InFlight(); err != nil || b != 0 {
		t.Fatalf("bytes in flight after the outcomes: %d (%v)", b, err)
	}
}

// openGated opens id on n as a gatedCounter.
func openGated(t *testing.T, ctx context.Context, n *testNode, id rsm.ObjectID, entered, gate chan struct{}) *rsm.Object {
	t.Helper()
	o, err := n.Open(ctx, id, func(id rsm.ObjectID) (rsm.StateMachine, error) {
		c, err := rsmtest.NewCounter(id)
		if err != nil {
			return nil, err
		}
		return &gatedCounter{Counter: c.(*rsmtest.Counter), entered: entered, gate: gate}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// releaser returns a function that closes gate once; it also runs when the
// test ends, before the node's cleanup, which would wait for the Apply
// blocked on gate.
func releaser(t *testing.T, gate chan struct{}) func() {
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return release
}
