package compose_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/compose"
	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/lwgkit/lwgkit/rsm/rsmtest"
)

type rsmStack struct {
	p    hwg.Process
	ep   transport.Transport
	hn   *hwg.Node
	svc  *lwg.Service
	rn   *rsm.Node
	objs *compose.Objects
	once sync.Once

	mu      sync.Mutex
	applied map[string]int // routed commands whose proposal here ended
}

func (s *rsmStack) stop() {
	s.once.Do(func() {
		s.objs.Close()
		s.rn.Close()
		s.svc.Close()
		s.hn.Close()
		s.ep.Close()
	})
}

func startRSM(t *testing.T, net *transport.MemNetwork, p hwg.Process, boot []hwg.Process, topo *compose.Topology, attempt time.Duration, check func(rsm.ObjectID, []byte) error, opts ...func(*compose.ObjectsConfig)) *rsmStack {
	t.Helper()
	s := &rsmStack{p: p, applied: map[string]int{}}
	s.ep = net.Endpoint(transport.Peer{Node: uint64(p.Node), Inc: p.Inc})
	nc := hwg.FastTiming(hwg.NodeConfig{Self: p, Transport: s.ep})
	nc.Group.ManualBlockOK = true
	var err error
	if s.hn, err = hwg.NewNode(nc); err != nil {
		t.Fatal(err)
	}
	if s.svc, err = lwg.NewService(lwg.ServiceConfig{Node: s.hn, DirectoryMembers: boot, TickInterval: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ocfg := compose.ObjectsConfig{Router: compose.Config{Self: p, Topology: topo, AckEvery: 8},
		TickInterval: 20 * time.Millisecond, Attempt: attempt, Check: check,
		Applied: func(_ rsm.ObjectID, d compose.Delivery, _ []byte, err error) {
			if err == nil || errors.Is(err, rsm.ErrDuplicate) {
				s.mu.Lock()
				s.applied[fmt.Sprint(compose.OriginOf(d))]++
				s.mu.Unlock()
			}
		}}
	for _, f := range opts {
		f(&ocfg)
	}
	s.objs, err = compose.NewObjects(ocfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.rn, err = rsm.New(rsm.Config{Service: s.svc, HWG: s.hn, TickInterval: 10 * time.Millisecond, Tap: s.objs.Tap}); err != nil {
		t.Fatal(err)
	}
	s.objs.Attach(s.rn)
	t.Cleanup(s.stop)
	return s
}

// TestObjectsExactlyOnceThroughRouterCrash: node 1 holds a replica of
// object a only and sends commands to object b (replicas on 2, 3, 4)
// through the routers of a→b (2 and 3, both replicas of a); the router is
// crashed mid-stream. b's surviving replicas apply every command exactly
// once (counter total), in one order (digest), although every replica
// proposes each.
func TestObjectsExactlyOnceThroughRouterCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	a, b := rsm.ObjectID("a"), rsm.ObjectID("b")
	st, objs := startAB(t, ctx, a, b, 2*time.Second, nil)
	if _, err := st[4].objs.Send(ctx, "nowhere", rsmtest.Add(1)); !errors.Is(err, compose.ErrUnknownGroup) {
		t.Fatalf("Send to an unknown object: %v", err)
	}
	rp, ok, err := st[2].objs.RouterFor(ctx, a.LWG(), b.LWG())
	if err != nil || !ok {
		t.Fatalf("RouterFor: %v %v", ok, err)
	}
	router := int(rp.Node)
	const n = 60
	send := func(from, to int) {
		for k := from; k < to; k++ {
			if _, err := st[1].objs.Send(ctx, b, rsmtest.Add(1)); err != nil {
				t.Fatalf("send %d: %v", k, err)
			}
		}
	}
	send(0, n/2)
	waitFor(t, ctx, "some commands applied at b", func() bool { return objs[4].Applied() >= n/6 })
	st[router].stop()
	send(n/2, n)
	var survivors []int
	for _, i := range []int{2, 3, 4} {
		if i != router {
			survivors = append(survivors, i)
		}
	}
	total := func(i int) uint64 {
		v, err := objs[i].StaleRead([]byte("total"))
		if err != nil {
			return 0
		}
		return binary.BigEndian.Uint64(v)
	}
	waitFor(t, ctx, "every command applied at b's survivors", func() bool {
		for _, i := range survivors {
			if total(i) < n {
				return false
			}
		}
		return true
	})
	// Let any late duplicate proposal land: every survivor's proposers
	// reach the end of their queues (each proposes every command).
	waitFor(t, ctx, "the survivors' proposals settle", func() bool {
		for _, i := range survivors {
			st[i].mu.Lock()
			c := len(st[i].applied)
			st[i].mu.Unlock()
			if c < n/2 { // the second half was delivered to every survivor
				return false
			}
		}
		return true
	})
	rd, err := objs[survivors[0]].Read(ctx, []byte("total"))
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint64(rd); got != n {
		t.Fatalf("b's total %d after %d commands of 1: not exactly once", got, n)
	}
	d0, _ := objs[survivors[0]].StaleRead([]byte("digest"))
	for _, i := range survivors[1:] {
		waitFor(t, ctx, "replicas agree", func() bool { return total(i) == n })
		if d, _ := objs[i].StaleRead([]byte("digest")); string(d) != string(d0) {
			t.Fatalf("replica %d digest differs", i)
		}
	}
	t.Logf("router %d crashed; b applied %d commands once", router, n)
}

// TestCallExactlyOnceThroughRouterCrash: node 1 (a replica of a only)
// calls b; each call returns b's counter after its Add(1), so the results
// must be 1, 2, 3, … exactly, across a crash of a→b's router mid-stream
// and the retries (under the first attempt's id) that the crash causes.
func TestCallExactlyOnceThroughRouterCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	a, b := rsm.ObjectID("a"), rsm.ObjectID("b")
	// Node 1 asks again after 40ms without a result: most calls are
	// sent more than once, under their first attempt's id.
	st, objs := startAB(t, ctx, a, b, 40*time.Millisecond, nil)
	if _, err := st[1].objs.Call(ctx, "nowhere", rsmtest.Add(1)); !errors.Is(err, rsm.ErrNotApplied) || !errors.Is(err, compose.ErrUnknownGroup) {
		t.Fatalf("Call to an unknown object: %v", err)
	}
	rp, ok, err := st[2].objs.RouterFor(ctx, a.LWG(), b.LWG())
	if err != nil || !ok {
		t.Fatalf("RouterFor: %v %v", ok, err)
	}
	const n = 24
	crashed := make(chan struct{})
	for k := 1; k <= n; k++ {
		if k == n/3 {
			go func() { // while the call is under way
				st[int(rp.Node)].stop()
				close(crashed)
			}()
		}
		res, err := st[1].objs.Call(ctx, b, rsmtest.Add(1))
		if err != nil {
			t.Fatalf("call %d: %v", k, err)
		}
		if got := binary.BigEndian.Uint64(res); got != uint64(k) {
			t.Fatalf("call %d returned total %d: not exactly once", k, got)
		}
	}
	<-crashed
	if st[1].objs.CallRetries() == 0 {
		t.Error("no call was sent again: the test does not exercise retries")
	}
	for _, i := range []int{2, 3, 4} {
		if i == int(rp.Node) {
			continue
		}
		rd, err := objs[i].Read(ctx, []byte("total"))
		if err != nil || binary.BigEndian.Uint64(rd) != n {
			t.Fatalf("replica %d total %v %v", i, rd, err)
		}
	}
	t.Logf("router %d crashed; %d calls applied once, %d attempts repeated", rp.Node, n, st[1].objs.CallRetries())
}

// TestCallRefusedByCheck: the target's replicas refuse a routed command
// their Check rejects: the Call returns the refusal (ErrCallFailed) and
// the target never applies it, while a command Check accepts goes through.
func TestCallRefusedByCheck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := rsm.ObjectID("a"), rsm.ObjectID("b")
	errRefused := errors.New("refused: adds 7")
	check := func(target rsm.ObjectID, cmd []byte) error {
		if target == b && string(cmd) == string(rsmtest.Add(7)) {
			return errRefused
		}
		return nil
	}
	st, objs := startAB(t, ctx, a, b, 2*time.Second, check)
	if _, err := st[1].objs.Call(ctx, b, rsmtest.Add(7)); !errors.Is(err, compose.ErrCallFailed) {
		t.Fatalf("Call of a refused command: %v, want ErrCallFailed", err)
	}
	res, err := st[1].objs.Call(ctx, b, rsmtest.Add(1))
	if err != nil || binary.BigEndian.Uint64(res) != 1 {
		t.Fatalf("Call of an accepted command: %v %v, want total 1", res, err)
	}
	for _, i := range []int{2, 3, 4} {
		rd, err := objs[i].Read(ctx, []byte("total"))
		if err != nil || binary.BigEndian.Uint64(rd) != 1 {
			t.Fatalf("replica %d total %v %v, want 1: the refused command was applied", i, rd, err)
		}
	}
}

// startAB starts 4 rsm nodes with Objects over the topology a–b, opens a
// on 1, 2, 3 and b on 2, 3, 4, and waits for the routing state; it
// returns the stacks and b's replicas.
func startAB(t *testing.T, ctx context.Context, a, b rsm.ObjectID, attempt1 time.Duration, check func(rsm.ObjectID, []byte) error, opts ...func(*compose.ObjectsConfig)) (map[int]*rsmStack, map[int]*rsm.Object) {
	t.Helper()
	topo, err := compose.NewTopology(nil, []compose.Link{{A: a.LWG(), B: b.LWG()}})
	if err != nil {
		t.Fatal(err)
	}
	var boot []hwg.Process
	for i := 1; i <= 4; i++ {
		boot = append(boot, proc(i))
	}
	net := transport.NewMemNetwork()
	st := map[int]*rsmStack{}
	for i := 1; i <= 4; i++ {
		attempt := 2 * time.Second
		if i == 1 {
			attempt = attempt1
		}
		st[i] = startRSM(t, net, proc(i), boot, topo, attempt, check, opts...)
	}
	objs := map[int]*rsm.Object{}
	open := func(id rsm.ObjectID, ns ...int) {
		for _, i := range ns {
			o, err := st[i].rn.Open(ctx, id, rsmtest.NewCounter)
			if err != nil {
				t.Fatalf("node %d opening %s: %v", i, id, err)
			}
			if id == b {
				objs[i] = o
			}
		}
	}
	open(a, 1, 2, 3)
	open(b, 2, 3, 4)
	waitFor(t, ctx, "routing state", func() bool {
		for i, s := range st {
			for _, g := range []rsm.ObjectID{a, b} {
				in := (g == a && i <= 3) || (g == b && i >= 2)
				if ok, _ := s.objs.HasState(ctx, g.LWG()); in && !ok {
					return false
				}
			}
		}
		return true
	})
	return st, objs
}

// TestConcurrentCallsRetriedAfterLater: node 1 runs two Calls to b at
// once, the earlier one's retries reaching b only after the later call
// was applied. First the early call is applied but every reply of its
// first attempt is lost; then the early call's first attempt is lost
// everywhere, unapplied. Either way its retry, under an id below the
// later call's, must be applied exactly once and return its own result
// (rsm keeps a window of applied ids per source, not only the last).
func TestConcurrentCallsRetriedAfterLater(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	a, b := rsm.ObjectID("a"), rsm.ObjectID("b")
	early1, late1, early2, late2 := rsmtest.Add(1), rsmtest.Add(10), rsmtest.Add(100), rsmtest.Add(1000)
	var (
		late1Done, late2Done atomic.Bool
		skipped2             atomic.Int64
	)
	hooks := func(c *compose.ObjectsConfig) {
		compose.CallHooksForTest(c,
			func(cmd []byte, retry bool) bool {
				switch {
				case bytes.Equal(cmd, early1):
					return retry && !late1Done.Load() // retries only after late1 applied
				case bytes.Equal(cmd, early2) && !retry:
					skipped2.Add(1)
					return true // the first attempt is lost: never applied
				case bytes.Equal(cmd, early2):
					return !late2Done.Load()
				}
				return false
			},
			func(cmd []byte, retry bool) bool { return bytes.Equal(cmd, early1) && !retry })
	}
	st, objs := startAB(t, ctx, a, b, 50*time.Millisecond, nil, hooks)
	total := func(i int) uint64 {
		v, err := objs[i].StaleRead([]byte("total"))
		if err != nil {
			return 0
		}
		return binary.BigEndian.Uint64(v)
	}
	type result struct {
		res []byte
		err error
	}
	call := func(cmd []byte) <-chan result {
		ch := make(chan result, 1)
		go func() {
			res, err := st[1].objs.Call(ctx, b, cmd)
			ch <- result{res, err}
		}()
		return ch
	}
	want := func(what string, ch <-chan result, total uint64) {
		t.Helper()
		r := <-ch
		if r.err != nil || len(r.res) != 8 || binary.BigEndian.Uint64(r.res) != total {
			t.Fatalf("%s: %x, %v; want total %d", what, r.res, r.err, total)
		}
	}

	// The early call is applied, its replies lost; the later call (a
	// higher id) is applied and answered; then the early call's retries
	// are proposed and must get its recorded result, not a refusal.
	e1 := call(early1)
	waitFor(t, ctx, "early call 1 applied", func() bool { return total(2) == 1 && total(3) == 1 && total(4) == 1 })
	want("late call 1", call(late1), 11)
	late1Done.Store(true)
	want("early call 1, retried after late call 1", e1, 1)

	// The early call's first attempt is lost everywhere; the later call
	// is applied; only then its retry is proposed: it must be applied.
	e2 := call(early2)
	waitFor(t, ctx, "early call 2's first attempt lost at b's replicas", func() bool { return skipped2.Load() >= 3 })
	want("late call 2", call(late2), 1011)
	late2Done.Store(true)
	want("early call 2, retried after late call 2", e2, 1111)

	for _, i := range []int{2, 3, 4} {
		rd, err := objs[i].Read(ctx, []byte("total"))
		if err != nil || binary.BigEndian.Uint64(rd) != 1111 {
			t.Fatalf("replica %d total %x, %v; want 1111: not exactly once", i, rd, err)
		}
	}
	if st[1].objs.CallRetries() == 0 {
		t.Fatal("no call was sent again: the test does not exercise retries")
	}
}
