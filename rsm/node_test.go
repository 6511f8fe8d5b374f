package rsm_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/lwgkit/lwgkit/rsm/rsmtest"
)

// The Node does I/O and uses real timers, so these tests run over the
// in-memory transport with short real time (hwg.FastTiming); the replica
// logic is proven in the simulator.

type testNode struct {
	*rsm.Node
	hn  *hwg.Node
	svc *lwg.Service
	ep  transport.Transport

	mu     sync.Mutex
	events []rsm.Event
	once   sync.Once
}

func (tn *testNode) stop() {
	tn.once.Do(func() {
		tn.Node.Close()
		tn.svc.Close()
		tn.hn.Close()
		tn.ep.Close()
	})
}

func (tn *testNode) seen(t rsm.EventType) []rsm.Event {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	var out []rsm.Event
	for _, e := range tn.events {
		if e.Type == t {
			out = append(out, e)
		}
	}
	return out
}

func startNode(t *testing.T, net *transport.MemNetwork, p hwg.Process, boot []hwg.Process, contacts []hwg.NodeID, cfg rsm.Config) *testNode {
	t.Helper()
	ep := net.Endpoint(transport.Peer{Node: uint64(p.Node), Inc: p.Inc})
	nc := hwg.FastTiming(hwg.NodeConfig{Self: p, Transport: ep})
	nc.Group.ManualBlockOK = true
	hn, err := hwg.NewNode(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Odd nodes take their LWG events in batches (what rsm.Start sets),
	// even ones one at a time: every cluster test runs the router's both
	// ways of reading them.
	svc, err := lwg.NewService(lwg.ServiceConfig{Node: hn, DirectoryMembers: boot, Contacts: contacts, TickInterval: 10 * time.Millisecond,
		EventBatches: p.Node%2 == 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Service, cfg.HWG = svc, hn
	cfg.TickInterval = 10 * time.Millisecond
	n, err := rsm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{Node: n, hn: hn, svc: svc, ep: ep}
	n.Observe(func(e rsm.Event) {
		tn.mu.Lock()
		tn.events = append(tn.events, e)
		tn.mu.Unlock()
	})
	t.Cleanup(tn.stop)
	return tn
}

func startCluster(t *testing.T, net *transport.MemNetwork, size int, cfg rsm.Config) []*testNode {
	t.Helper()
	var members []hwg.Process
	for i := 1; i <= size; i++ {
		members = append(members, hwg.Process{Node: hwg.NodeID(i), Inc: 1})
	}
	var out []*testNode
	for _, p := range members {
		out = append(out, startNode(t, net, p, members, nil, cfg))
	}
	return out
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openAll(t *testing.T, ctx context.Context, nodes []*testNode, id rsm.ObjectID) []*rsm.Object {
	t.Helper()
	var objs []*rsm.Object
	for _, n := range nodes {
		o, err := n.Open(ctx, id, rsmtest.NewCounter)
		if err != nil {
			t.Fatalf("open %s on %v: %v", id, n.Self(), err)
		}
		objs = append(objs, o)
	}
	return objs
}

func query(t *testing.T, o *rsm.Object, q string) []byte {
	t.Helper()
	b, err := o.StaleRead([]byte(q))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// converge waits until every replica applied want commands, then checks
// that they agree on the digest.
func converge(t *testing.T, ctx context.Context, objs []*rsm.Object, want uint64) {
	t.Helper()
	for _, o := range objs {
		for o.Applied() < want {
			select {
			case <-ctx.Done():
				t.Fatalf("replica stuck at %d of %d commands", o.Applied(), want)
			case <-time.After(5 * time.Millisecond):
			}
		}
		if got := o.Applied(); got != want {
			t.Fatalf("replica applied %d commands, want %d", got, want)
		}
	}
	d0 := query(t, objs[0], "digest")
	for i, o := range objs[1:] {
		if d := query(t, o, "digest"); !bytes.Equal(d, d0) {
			t.Fatalf("replica %d digest %x, replica 0 %x", i+1, d, d0)
		}
	}
}

func TestProposeTotalOrderAndRead(t *testing.T) {
	ctx := ctxT(t)
	nodes := startCluster(t, transport.NewMemNetwork(), 3, rsm.Config{})
	objs := openAll(t, ctx, nodes, "counter")

	const per = 50
	var wg sync.WaitGroup
	var sum atomic.Uint64
	errs := make(chan error, len(objs)*per)
	for i, o := range objs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range per {
				v := uint64(i*1000 + k + 1)
				if _, err := o.Propose(ctx, rsmtest.Add(v)); err != nil {
					errs <- err
					return
				}
				sum.Add(v)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	converge(t, ctx, objs, 3*per)
	// A linearizable read on any replica sees every acknowledged command.
	for _, o := range objs {
		b, err := o.Read(ctx, []byte("total"))
		if err != nil {
			t.Fatal(err)
		}
		if got := binary.BigEndian.Uint64(b); got != sum.Load() {
			t.Fatalf("Read total = %d, want %d", got, sum.Load())
		}
	}
	// Apply's error is the proposal's result, and it is applied (counted)
	// everywhere alike.
	if _, err := objs[0].Propose(ctx, []byte{0xff}); !errors.Is(err, rsmtest.ErrBadCommand) {
		t.Fatalf("bad command: err = %v, want ErrBadCommand", err)
	}
	converge(t, ctx, objs, 3*per+1)
}

// TestRouterTurnsKeepSnapshotsAndStats: commands an idle object receives
// are applied by the router itself (no worker hand-off), except those
// that make a scheduled snapshot due, which a worker takes: every replica
// still snapshots at exactly every SnapshotEvery commands. Stats count
// the applied commands, including those of a closed object.
func TestRouterTurnsKeepSnapshotsAndStats(t *testing.T) {
	ctx := ctxT(t)
	const every, total = 10, 100
	nodes := startCluster(t, transport.NewMemNetwork(), 3, rsm.Config{SnapshotEvery: every})
	objs := openAll(t, ctx, nodes, "counter")
	for i := range total {
		if _, err := objs[i%3].Propose(ctx, rsmtest.Add(1)); err != nil {
			t.Fatal(err)
		}
	}
	converge(t, ctx, objs, total)
	for i, n := range nodes {
		if n.InlineTurns() == 0 {
			t.Errorf("node %d: the router applied nothing itself", i+1)
		}
		var at []uint64
		for _, e := range n.seen(rsm.EventSnapshotTaken) {
			if e.Index > 0 { // not the seed's or a donation's
				at = append(at, e.Index)
			}
		}
		if len(at) != total/every {
			t.Fatalf("node %d: snapshots at %v, want one every %d commands", i+1, at, every)
		}
		for k, idx := range at {
			if idx != uint64(every*(k+1)) {
				t.Fatalf("node %d: snapshots at %v, want one every %d commands", i+1, at, every)
			}
		}
	}
	other := openAll(t, ctx, nodes, "other")
	if _, err := other[0].Propose(ctx, rsmtest.Add(1)); err != nil {
		t.Fatal(err)
	}
	converge(t, ctx, other, 1)
	if err := other[1].Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := nodes[1].Stats(); st.Applied != total+1 || st.Objects != 1 {
		t.Fatalf("after closing an object: %d applied in %d objects, want %d in 1", st.Applied, st.Objects, total+1)
	}
}

func TestProposeErrors(t *testing.T) {
	ctx := ctxT(t)
	nodes := startCluster(t, transport.NewMemNetwork(), 1, rsm.Config{MaxCommandBytes: 16})
	o := openAll(t, ctx, nodes, "small")[0]
	if _, err := o.Propose(ctx, make([]byte, 17)); !errors.Is(err, rsm.ErrTooLarge) {
		t.Fatalf("oversized: err = %v, want ErrTooLarge", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := o.Propose(done, rsmtest.Add(1)); !errors.Is(err, rsm.ErrNotApplied) {
		t.Fatalf("cancelled before sending: err = %v, want ErrNotApplied", err)
	}
	if _, err := o.Propose(ctx, rsmtest.Add(2)); err != nil {
		t.Fatal(err)
	}
	converge(t, ctx, []*rsm.Object{o}, 1)
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Propose(ctx, rsmtest.Add(1)); !errors.Is(err, rsm.ErrClosed) {
		t.Fatalf("after Close: err = %v, want ErrClosed", err)
	}
	if _, ok := nodes[0].Object("small"); ok {
		t.Fatal("closed object still listed")
	}
}

// TestForgetAbsentOnANode: ForgetAbsent goes through the group's order
// (the step-by-step effect is in claim_test.go): on a group that holds
// the state it changes nothing and is not counted malformed; on a closed
// object it fails with ErrClosed.
func TestForgetAbsentOnANode(t *testing.T) {
	ctx := ctxT(t)
	nodes := startCluster(t, transport.NewMemNetwork(), 2, rsm.Config{})
	objs := openAll(t, ctx, nodes, "kept")
	if _, err := objs[0].Propose(ctx, rsmtest.Add(3)); err != nil {
		t.Fatal(err)
	}
	if err := objs[1].ForgetAbsent(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := objs[0].Propose(ctx, rsmtest.Add(4)); err != nil {
		t.Fatal(err)
	}
	converge(t, ctx, objs, 2)
	for i, n := range nodes {
		if st := n.Stats(); st.Malformed != 0 || len(n.seen(rsm.EventSeeded)) > 1 {
			t.Fatalf("node %d: %d malformed, seeded %v", i+1, st.Malformed, n.seen(rsm.EventSeeded))
		}
	}
	if err := objs[1].Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := objs[1].ForgetAbsent(ctx); !errors.Is(err, rsm.ErrClosed) {
		t.Fatalf("after Close: err = %v, want ErrClosed", err)
	}
}

func TestJoinerGetsStateAtItsJoinPoint(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	cfg := rsm.Config{ChunkSize: 4 << 10, TransferWindow: 16 << 10}
	nodes := startCluster(t, net, 3, cfg)
	objs := openAll(t, ctx, nodes[:2], "grow")
	for i := range 40 {
		if _, err := objs[i%2].Propose(ctx, rsmtest.Add(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Proposals keep coming while the third replica joins: it must end
	// with the same digest, so the snapshot was cut exactly at its join.
	stop := make(chan struct{})
	var sent atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := objs[i%2].Propose(ctx, rsmtest.Add(uint64(i))); err != nil {
				t.Error(err)
				return
			}
			sent.Add(1)
		}
	}()
	third, err := nodes[2].Open(ctx, "grow", rsmtest.NewCounter)
	if err != nil {
		t.Fatal(err)
	}
	// Traffic after the join, too.
	for at := sent.Load(); sent.Load() < at+20; {
		select {
		case <-ctx.Done():
			t.Fatal("proposals stopped")
		case <-time.After(time.Millisecond):
		}
	}
	close(stop)
	wg.Wait()
	converge(t, ctx, append(objs, third), 40+sent.Load())
	if got := nodes[2].seen(rsm.EventSnapshotReceived); len(got) != 1 {
		t.Fatalf("joiner saw %d SnapshotReceived events, want 1", len(got))
	}
	if len(nodes[0].seen(rsm.EventSnapshotSent))+len(nodes[1].seen(rsm.EventSnapshotSent)) == 0 {
		t.Fatal("no donor reported SnapshotSent")
	}
}

func TestDonorCrashMidTransfer(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	// An 8 MiB state in 1 KiB chunks, one at a time: the transfer takes
	// long enough (8,192 round trips) to crash its donor in the middle.
	// (4 MiB in 4 KiB chunks finished first once, after received chunks
	// stopped being copied.)
	cfg := rsm.Config{ChunkSize: 1 << 10, TransferWindow: 1 << 10}
	nodes := startCluster(t, net, 3, cfg)
	big := func(rsm.ObjectID) (rsm.StateMachine, error) { return &rsmtest.Counter{Pad: 8 << 20}, nil }
	var objs []*rsm.Object
	for _, n := range nodes[:2] {
		o, err := n.Open(ctx, "big", big)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	for i := range 10 {
		if _, err := objs[i%2].Propose(ctx, rsmtest.Add(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	type opened struct {
		o   *rsm.Object
		err error
	}
	res := make(chan opened, 1)
	go func() {
		o, err := nodes[2].Open(ctx, "big", rsmtest.NewCounter)
		res <- opened{o, err}
	}()
	// Find the donor (the node that snapshotted for the join) once the
	// joiner has received part of its snapshot, and crash it.
	var donor, other int
	for donor = -1; donor < 0; {
		for i := range 2 {
			if len(nodes[i].seen(rsm.EventSnapshotTaken)) > 0 {
				donor, other = i, 1-i
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("no donor snapshotted")
		case <-time.After(time.Millisecond):
		}
	}
	for len(nodes[2].seen(rsm.EventSnapshotReceived)) == 0 && nodes[2].Stats().ChunkBytesReceived < 64<<10 {
		select {
		case <-ctx.Done():
			t.Fatal("the transfer did not start")
		case <-time.After(time.Millisecond):
		}
	}
	if len(nodes[2].seen(rsm.EventSnapshotReceived)) > 0 {
		t.Fatal("the transfer finished before the donor could be crashed; make it slower")
	}
	nodes[donor].stop()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if _, err := objs[other].Propose(ctx, rsmtest.Add(99)); err != nil {
		t.Fatal(err)
	}
	converge(t, ctx, []*rsm.Object{objs[other], r.o}, 11)
	got := nodes[2].seen(rsm.EventSnapshotReceived)
	if len(got) != 1 || got[0].Peer.Node != nodes[other].Self().Node {
		t.Fatalf("joiner's SnapshotReceived %+v, want one from the surviving node %v", got, nodes[other].Self())
	}
}

func TestCollector(t *testing.T) {
	ctx := ctxT(t)
	nodes := startCluster(t, transport.NewMemNetwork(), 1, rsm.Config{})
	o := openAll(t, ctx, nodes, "metrics")[0]
	for range 3 {
		if _, err := o.Propose(ctx, rsmtest.Add(1)); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(nodes[0].Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			got[mf.GetName()] = c.GetValue()
		} else {
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	if got["rsm_proposals_total"] != 3 || got["rsm_applied_total"] != 3 || got["rsm_objects"] != 1 {
		t.Fatalf("metrics %v: want 3 proposals, 3 applied, 1 object", got)
	}
}

func TestProposeFromAppliesOnce(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	var tapped atomic.Int64
	cfg := rsm.Config{Tap: func(id rsm.ObjectID, e lwg.Event) {
		if e.Type == lwg.EventDeliver && len(e.Payload) > 0 && e.Payload[0] == 0xc1 {
			tapped.Add(1)
		}
	}}
	nodes := startCluster(t, net, 3, cfg)
	objs := openAll(t, ctx, nodes[:2], "once")
	id := rsm.OriginID{Source: "router/7", Seq: 1}
	// Two nodes propose the same command under one id: applied once, and
	// both get its result.
	r0, err0 := objs[0].ProposeFrom(ctx, id, rsmtest.Add(5))
	r1, err1 := objs[1].ProposeFrom(ctx, id, rsmtest.Add(5))
	if err0 != nil || err1 != nil || !bytes.Equal(r0, r1) {
		t.Fatalf("results %x %v / %x %v, want equal", r0, err0, r1, err1)
	}
	// Seq 3 of the source is applied before seq 2 (concurrent callers):
	// 2, never applied, still is, and 3 keeps its result.
	r3, err := objs[0].ProposeFrom(ctx, rsm.OriginID{Source: "router/7", Seq: 3}, rsmtest.Add(10))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := objs[1].ProposeFrom(ctx, rsm.OriginID{Source: "router/7", Seq: 2}, rsmtest.Add(1)); err != nil {
		t.Fatal(err)
	}
	converge(t, ctx, objs, 3)
	// The window travels in snapshots: a joiner answers retries of 1 and
	// 3, below and at the highest, with their results, applying nothing.
	third, err := nodes[2].Open(ctx, "once", rsmtest.NewCounter)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := third.ProposeFrom(ctx, id, rsmtest.Add(5)); err != nil || !bytes.Equal(r, r0) {
		t.Fatalf("retry of seq 1 on the joiner: %x, %v; want %x", r, err, r0)
	}
	if r, err := third.ProposeFrom(ctx, rsm.OriginID{Source: "router/7", Seq: 3}, rsmtest.Add(10)); err != nil || !bytes.Equal(r, r3) {
		t.Fatalf("retry of seq 3 on the joiner: %x, %v; want %x", r, err, r3)
	}
	// A seq past the window makes every seq at or below 3 too old.
	if _, err := objs[0].ProposeFrom(ctx, rsm.OriginID{Source: "router/7", Seq: 1000}, rsmtest.Add(100)); err != nil {
		t.Fatal(err)
	}
	if _, err := third.ProposeFrom(ctx, id, rsmtest.Add(5)); !errors.Is(err, rsm.ErrDuplicate) {
		t.Fatalf("seq below the window: err = %v, want ErrDuplicate", err)
	}
	converge(t, ctx, append(objs, third), 4)
	if b, err := third.Read(ctx, []byte("total")); err != nil || binary.BigEndian.Uint64(b) != 116 {
		t.Fatalf("total %x, %v; want 116", b, err)
	}
	// Foreign payloads ride the group and reach the tap on every node,
	// and the replicas skip them.
	if err := nodes[0].Multicast(ctx, "once", []byte{0xc1, 'R'}); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].Multicast(ctx, "once", []byte{1}); !errors.Is(err, rsm.ErrInvalidConfig) {
		t.Fatalf("rsm-kind payload: err = %v, want ErrInvalidConfig", err)
	}
	for tapped.Load() < 3 {
		select {
		case <-ctx.Done():
			t.Fatalf("tapped %d foreign deliveries, want 3", tapped.Load())
		case <-time.After(time.Millisecond):
		}
	}
	if st := nodes[0].Stats(); st.Malformed != 0 {
		t.Fatalf("foreign payload counted as malformed: %+v", st)
	}
}

// gateSM is a state machine whose Apply of "wait" blocks until its gate
// opens, and of "slow" takes a few milliseconds.
type gateSM struct{ entered, gate chan struct{} }

func (g *gateSM) Apply(cmd []byte) ([]byte, error) {
	switch string(cmd) {
	case "wait":
		close(g.entered)
		<-g.gate
	case "slow":
		time.Sleep(5 * time.Millisecond) // real time: the router's budget is
	}
	return nil, nil
}
func (g *gateSM) Snapshot(io.Writer) error { return nil }
func (g *gateSM) Restore(io.Reader) error  { return nil }

// TestSlowApplyLeftToWorkers: an object whose Apply was once slow on the
// router goroutine is applied by workers from then on, so when its Apply
// blocks, the node's other objects still apply their commands.
func TestSlowApplyLeftToWorkers(t *testing.T) {
	ctx := ctxT(t)
	nodes := startCluster(t, transport.NewMemNetwork(), 1, rsm.Config{})
	entered, gate := make(chan struct{}), make(chan struct{})
	defer close(gate)
	slow, err := nodes[0].Open(ctx, "gated", func(rsm.ObjectID) (rsm.StateMachine, error) {
		return &gateSM{entered: entered, gate: gate}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fast := openAll(t, ctx, nodes, "fast")[0]
	if _, err := slow.Propose(ctx, []byte("slow")); err != nil {
		t.Fatal(err)
	}
	go slow.Propose(ctx, []byte("wait")) // blocks its Apply until the test ends
	<-entered
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for i := range 3 {
		if _, err := fast.Propose(short, rsmtest.Add(1)); err != nil {
			t.Fatalf("proposal %d to another object while one Apply blocks: %v", i, err)
		}
	}
}

// Open of an object whose local snapshot a newer build wrote fails with
// ErrSnapshotFormat and leaves the snapshot as it was.
func TestOpenLocalSnapshotNewerFormat(t *testing.T) {
	ctx := ctxT(t)
	cfg, stored := rsm.StoreSnapshotInNewerFormat(rsm.Config{}, "newer")
	before := stored()
	if len(before) == 0 {
		t.Fatal("no snapshot stored")
	}
	n := startCluster(t, transport.NewMemNetwork(), 1, cfg)[0]
	if _, err := n.Open(ctx, "newer", rsmtest.NewCounter); !errors.Is(err, rsm.ErrSnapshotFormat) {
		t.Fatalf("Open: %v, want ErrSnapshotFormat", err)
	}
	if _, ok := n.Object("newer"); ok {
		t.Fatal("the object is open after its Open failed")
	}
	if after := stored(); !bytes.Equal(after, before) {
		t.Fatalf("the stored snapshot changed: %d bytes, was %d", len(after), len(before))
	}
}
