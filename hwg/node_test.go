package hwg_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
)

// The runtime does I/O and real timers, so these tests use real (short)
// time with FastTiming; protocol behaviour is proven in the simulator.

const grp hwg.GroupID = "h/node-test"

type testNode struct {
	*hwg.Node
	ep transport.Transport
}

func startNodes(t *testing.T, net *transport.MemNetwork, ids ...hwg.NodeID) map[hwg.NodeID]*testNode {
	t.Helper()
	out := map[hwg.NodeID]*testNode{}
	for _, id := range ids {
		out[id] = startNode(t, net, hwg.Process{Node: id, Inc: 1})
	}
	return out
}

func startNode(t *testing.T, net *transport.MemNetwork, p hwg.Process) *testNode {
	t.Helper()
	ep := net.Endpoint(transport.Peer{Node: uint64(p.Node), Inc: p.Inc})
	n, err := hwg.NewNode(hwg.FastTiming(hwg.NodeConfig{Self: p, Transport: ep}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); ep.Close() })
	return &testNode{Node: n, ep: ep}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor reads n's events until pred holds for one, or fails after the
// context's deadline.
func waitFor(t *testing.T, ctx context.Context, n *testNode, what string, pred func(hwg.Event) bool) hwg.Event {
	t.Helper()
	for {
		select {
		case e, ok := <-n.Events():
			if !ok {
				t.Fatalf("node %v closed while waiting for %s", n.Self(), what)
			}
			if pred(e) {
				return e
			}
		case <-ctx.Done():
			t.Fatalf("node %v: no %s: %v", n.Self(), what, ctx.Err())
		}
	}
}

// bootstrapped starts nodes with the given ids and bootstraps grp on all.
func bootstrapped(t *testing.T, ctx context.Context, net *transport.MemNetwork, ids ...hwg.NodeID) map[hwg.NodeID]*testNode {
	t.Helper()
	nodes := startNodes(t, net, ids...)
	for _, n := range nodes {
		if err := n.Bootstrap(ctx, grp, members(ids...)); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

func members(ids ...hwg.NodeID) []hwg.Process {
	var ps []hwg.Process
	for _, id := range ids {
		ps = append(ps, hwg.Process{Node: id, Inc: 1})
	}
	return ps
}

func TestNodeTotalOrderOverMemNetwork(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	nodes := bootstrapped(t, ctx, net, 1, 2, 3)
	const per = 200
	for id, n := range nodes {
		go func() {
			for i := range per {
				if err := n.Multicast(ctx, grp, fmt.Appendf(nil, "%d/%d", id, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	orders := map[hwg.NodeID][]string{}
	for id, n := range nodes {
		for len(orders[id]) < 3*per {
			e := waitFor(t, ctx, n, "deliveries", func(e hwg.Event) bool { return e.Type == hwg.EventDeliver })
			orders[id] = append(orders[id], string(e.Payload))
		}
	}
	if !slices.Equal(orders[1], orders[2]) || !slices.Equal(orders[1], orders[3]) {
		t.Fatal("nodes delivered in different orders")
	}
	// FIFO per sender.
	next := map[string]int{}
	for _, p := range orders[1] {
		var sender, i int
		fmt.Sscanf(p, "%d/%d", &sender, &i)
		if k := fmt.Sprint(sender); i != next[k] {
			t.Fatalf("sender %d: got %d, want %d", sender, i, next[k])
		}
		next[fmt.Sprint(sender)]++
	}
}

func TestNodeExcludesCrashedMember(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	nodes := bootstrapped(t, ctx, net, 1, 2, 3)
	start := time.Now()
	nodes[3].Close()
	nodes[3].ep.Close() // silence, as after kill -9
	for _, id := range []hwg.NodeID{1, 2} {
		e := waitFor(t, ctx, nodes[id], "a view without 3", func(e hwg.Event) bool {
			return e.Type == hwg.EventInstall && !e.View.Contains(hwg.Process{Node: 3, Inc: 1})
		})
		if !slices.Equal(e.View.Members, members(1, 2)) {
			t.Fatalf("node %d installed %v", id, e.View)
		}
	}
	t.Logf("crash to new view at both survivors: %v", time.Since(start))
}

func TestNodeJoinAndLeave(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	nodes := bootstrapped(t, ctx, net, 1, 2, 3)
	four := startNode(t, net, hwg.Process{Node: 4, Inc: 1})
	if err := four.Join(ctx, grp, []hwg.NodeID{2}); err != nil {
		t.Fatal(err)
	}
	in, err := four.Info(ctx, grp)
	if err != nil || !in.View.Contains(four.Self()) || len(in.View.Members) != 4 {
		t.Fatalf("after Join: %+v, %v", in, err)
	}
	if err := nodes[2].Leave(ctx, grp); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, nodes[1], "a view without 2", func(e hwg.Event) bool {
		return e.Type == hwg.EventInstall && len(e.View.Members) == 3 && !e.View.Contains(hwg.Process{Node: 2, Inc: 1})
	})
	if _, err := nodes[2].Info(ctx, grp); !errors.Is(err, hwg.ErrUnknownGroup) {
		t.Fatalf("after Leave, Info = %v, want ErrUnknownGroup", err)
	}
}

func TestNodeDropsSpoofedMessages(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	nodes := startNodes(t, net, 1, 2)
	for _, n := range nodes {
		if err := n.Bootstrap(ctx, grp, members(1, 2)); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := nodes[2].Info(ctx, grp)
	// Node 9 sends a Commit claiming to come from node 1.
	rogue := net.Endpoint(transport.Peer{Node: 9, Inc: 1})
	defer rogue.Close()
	forged := hwg.Message{Type: hwg.MsgCommit, Group: grp, From: hwg.Process{Node: 1, Inc: 1}, To: hwg.Process{Node: 2, Inc: 1}, View: 1,
		Decision: &hwg.Decision{Prev: 1, Next: hwg.View{ID: 2, Members: members(2)}}}
	if err := rogue.Send(2, hwg.EncodeFrameForTest(forged)); err != nil {
		t.Fatal(err)
	}
	if err := rogue.Send(2, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the runtime does real I/O; give the frames time to arrive
	after, _ := nodes[2].Info(ctx, grp)
	if after.View.ID != before.View.ID || after.Status != before.Status {
		t.Fatalf("a spoofed or garbage frame changed the group: %+v → %+v", before, after)
	}
}

func TestNodeCloseEndsWaits(t *testing.T) {
	net := transport.NewMemNetwork()
	n := startNode(t, net, hwg.Process{Node: 1, Inc: 1})
	errc := make(chan error, 1)
	go func() { errc <- n.Join(context.Background(), grp, []hwg.NodeID{2}) }() // nobody answers
	time.Sleep(20 * time.Millisecond)
	n.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, hwg.ErrNodeClosed) {
			t.Fatalf("Join after Close = %v, want ErrNodeClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Join did not return after Close")
	}
	if err := n.Multicast(context.Background(), grp, nil); !errors.Is(err, hwg.ErrNodeClosed) {
		t.Fatalf("Multicast after Close = %v, want ErrNodeClosed", err)
	}
}

// A payload too large for a flush is refused at once; before, it was taken,
// could never be framed, and wedged the group.
func TestNodeRejectsOversizedPayload(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	nodes := bootstrapped(t, ctx, net, 1, 2)
	if err := nodes[1].Multicast(ctx, grp, make([]byte, 1<<20+1)); !errors.Is(err, hwg.ErrTooLarge) {
		t.Fatalf("oversized multicast: %v, want ErrTooLarge", err)
	}
	if err := nodes[1].Multicast(ctx, grp, []byte("small")); err != nil {
		t.Fatal(err)
	}
	e := waitFor(t, ctx, nodes[2], "the small multicast", func(e hwg.Event) bool { return e.Type == hwg.EventDeliver })
	if string(e.Payload) != "small" {
		t.Fatalf("delivered %q", e.Payload)
	}
}

// Leave undoes a Join still in progress: the Join returns rather than
// waiting for a view that will not come.
func TestNodeLeaveEndsPendingJoin(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	n := startNode(t, net, hwg.Process{Node: 1, Inc: 1})
	errc := make(chan error, 1)
	go func() { errc <- n.Join(ctx, grp, []hwg.NodeID{2}) }() // nobody answers
	for {
		if _, err := n.Info(ctx, grp); err == nil {
			break // the join is under way
		}
		time.Sleep(time.Millisecond)
	}
	if err := n.Leave(ctx, grp); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, hwg.ErrNotMember) {
			t.Fatalf("Join after Leave = %v, want ErrNotMember", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Join still waiting after Leave")
	}
}

// TestNodeLeaveOfTwo: in a group of two, the first member (who proposes
// the view change) leaves. Its Commit goes out in the same step that ends
// its membership; the node used to drop the group at once, with that
// Commit unsent, and the other member then kept the leaver in its view
// for good (the leaver counts in the old view's quorum, and nobody
// answered for it): switching.TestRebalancerConvergesLive's carriers
// that every switch to timed out. And when that Commit is lost anyway,
// the node still answers for the group it left for a while.
func TestNodeLeaveOfTwo(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	nodes := bootstrapped(t, ctx, net, 1, 2)
	one := hwg.Process{Node: 1, Inc: 1}
	if err := nodes[1].Leave(ctx, grp); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	waitFor(t, short, nodes[2], "a view without the leaver", func(e hwg.Event) bool {
		return e.Type == hwg.EventInstall && !e.View.Contains(one)
	})
}

// TestNodeAnswersForLeftGroup: the Commit that removes a leaver from a
// group of two is lost; the leaver's node, which no longer has the group,
// still answers the other member's view change for it, and the other
// member ends up alone.
func TestNodeAnswersForLeftGroup(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	one, two := hwg.Process{Node: 1, Inc: 1}, hwg.Process{Node: 2, Inc: 1}
	ep := net.Endpoint(transport.Peer{Node: 1, Inc: 1})
	cfg := hwg.FastTiming(hwg.NodeConfig{Self: one, Transport: ep})
	hwg.LoseFinalForTest(&cfg)
	n1, err := hwg.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n1.Close(); ep.Close() })
	n2 := startNode(t, net, two)
	for _, n := range []*hwg.Node{n1, n2.Node} {
		if err := n.Bootstrap(ctx, grp, []hwg.Process{one, two}); err != nil {
			t.Fatal(err)
		}
	}
	if err := n1.Leave(ctx, grp); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	waitFor(t, short, n2, "a view without the leaver", func(e hwg.Event) bool {
		return e.Type == hwg.EventInstall && !e.View.Contains(one)
	})
}

// TestNodeWatchesContacts: the detector watches exactly the nodes that the
// node's groups list as contacts (counted per group, so an install or a
// leave of one group moves only that group's share), through joins, a
// second group, a leave and a group dropped.
func TestNodeWatchesContacts(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	nodes := bootstrapped(t, ctx, net, 1, 2, 3)
	four := startNode(t, net, hwg.Process{Node: 4, Inc: 1})
	check := func(what string, n *testNode, want ...hwg.NodeID) {
		t.Helper()
		got, err := n.CheckWatchedForTest(ctx)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: node %d watches %v, want %v", what, n.Self().Node, got, want)
		}
	}
	check("before joining", four)
	check("bootstrapped", nodes[1], 2, 3)
	other := hwg.GroupID("h/other")
	if err := four.Join(ctx, grp, []hwg.NodeID{2}); err != nil {
		t.Fatal(err)
	}
	check("in the group of four", four, 1, 2, 3)
	if err := nodes[1].Bootstrap(ctx, other, []hwg.Process{nodes[1].Self(), four.Self()}); err != nil {
		t.Fatal(err)
	}
	if err := four.Bootstrap(ctx, other, []hwg.Process{nodes[1].Self(), four.Self()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, four, "the second group's view", func(e hwg.Event) bool {
		return e.Type == hwg.EventInstall && e.Group == other
	})
	check("in two groups", four, 1, 2, 3)
	if err := four.Leave(ctx, grp); err != nil {
		t.Fatal(err)
	}
	check("left the first", four, 1)
	if err := four.Leave(ctx, other); err != nil {
		t.Fatal(err)
	}
	check("left both", four)
	// The check fires on a count the groups do not back.
	if err := nodes[1].MiscountWatchedForTest(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].CheckWatchedForTest(ctx); err == nil {
		t.Fatal("CheckWatchedForTest passed a miscounted node")
	}
}

// TestExclusionDropsBacklog: what waited behind a busy group (multicasts,
// and a BlockOK behind them) is dropped when the member is excluded, as at
// a leave. Before, it stayed, and a member admitted again in the step that
// excluded it handed that membership's BlockOK and multicasts to the new
// one, where the BlockOK could answer a later Block.
func TestExclusionDropsBacklog(t *testing.T) {
	ctx := ctxT(t)
	nodes := bootstrapped(t, ctx, transport.NewMemNetwork(), 1)
	left, err := nodes[1].BacklogAtExclusionForTest(ctx, grp)
	if err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d requests of the ended membership still queued", left)
	}
}

// TestRejoinRemembersViews: a node joining a group it left again does not
// forget the views it installed there, whether it still keeps the Group it
// left (it takes it up again) or not (the new Group gets
// Config.Installed): a laggard's old decision that admitted it must not
// install an old view again. Before, the new membership always had a new
// Group that remembered nothing (LastView 0); the LWG simulator, once it
// made new Groups as the node does, found a node installing view 64 after
// view 65.
func TestRejoinRemembersViews(t *testing.T) {
	ctx := ctxT(t)
	net := transport.NewMemNetwork()
	ep := net.Endpoint(transport.Peer{Node: 1, Inc: 1})
	n, err := hwg.NewNode(hwg.FastTiming(hwg.NodeConfig{Self: hwg.Process{Node: 1, Inc: 1}, Transport: ep}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); ep.Close() })
	if err := n.Bootstrap(ctx, grp, members(1)); err != nil {
		t.Fatal(err)
	}
	for _, expired := range []bool{false, true} {
		if err := n.Leave(ctx, grp); err != nil {
			t.Fatal(err)
		}
		if expired {
			if err := n.ExpireLeftForTest(ctx); err != nil {
				t.Fatal(err)
			}
		}
		// Nobody answers at node 2: the join stays under way.
		if _, err := n.JoinAsync(ctx, grp, []hwg.NodeID{2}); err != nil {
			t.Fatal(err)
		}
		info, err := n.Info(ctx, grp)
		if err != nil {
			t.Fatal(err)
		}
		if info.LastView != 1 {
			t.Fatalf("rejoining (left Group dropped: %v): LastView %d, want 1 (the bootstrap's view)", expired, info.LastView)
		}
	}
}

// TestLeftGroupKeptWhateverTheTime: a group this node left is kept (to
// answer a member that missed the decision removing it) however many
// ticks pass; only leftKeep later leaves push it out. Before, it was
// dropped after 20 view-change rounds, and in a group of two the member
// that missed the decision, cut off longer than that, stayed in its view
// change for good (RSM simulator seed 2936 with ForgetAbsent).
func TestLeftGroupKeptWhateverTheTime(t *testing.T) {
	ctx := ctxT(t)
	nodes := bootstrapped(t, ctx, transport.NewMemNetwork(), 1)
	if err := nodes[1].Leave(ctx, grp); err != nil {
		t.Fatal(err)
	}
	kept, err := nodes[1].TickForTest(ctx, 100*10, grp) // 5 times the old 20·ViewChangeTicks
	if err != nil {
		t.Fatal(err)
	}
	if !kept {
		t.Fatal("the left group was dropped after a thousand ticks")
	}
}

// TestLeftGroupAnswersLaggardAgain: a group this node left tells a member
// that missed the decision removing it about that decision again once a
// retransmission period passed, not only once. A kept left Group takes no
// ticks, and its answers to each laggard are rate-limited by its clock,
// which therefore never moved on: the first answer was the only one, and
// if it was lost the laggard waited for good.
func TestLeftGroupAnswersLaggardAgain(t *testing.T) {
	ctx := ctxT(t)
	nodes := bootstrapped(t, ctx, transport.NewMemNetwork(), 1, 2)
	if err := nodes[1].Leave(ctx, grp); err != nil {
		t.Fatal(err)
	}
	lag := hwg.Message{Type: hwg.MsgSync, Group: grp, From: hwg.Process{Node: 2, Inc: 1}, To: hwg.Process{Node: 1, Inc: 1}, View: 1}
	var got []int
	for range 3 {
		n, err := nodes[1].StepLeftForTest(ctx, lag)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
		if _, err := nodes[1].TickForTest(ctx, 10, grp); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, []int{1, 1, 1}) {
		t.Fatalf("Commits answered to the laggard per retransmission period: %v, want one each", got)
	}
}
