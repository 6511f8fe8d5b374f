package hwg

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// assertLastView fails unless every listed node last installed want and is
// Normal in it.
func assertLastView(t *testing.T, c *cluster, want View, nodes ...NodeID) {
	t.Helper()
	for _, n := range nodes {
		vs := c.installed(n)
		if len(vs) == 0 || !reflect.DeepEqual(vs[len(vs)-1], want) {
			t.Errorf("node %d installed %v, want last %v", n, vs, want)
		}
		if got := c.g(n).Info(); got.Status != StatusNormal || !reflect.DeepEqual(got.View, want) {
			t.Errorf("node %d is %v in %v, want Normal in %v", n, got.Status, got.View, want)
		}
	}
}

// assertSameDeliveries fails unless the nodes delivered the same sequence
// in view v.
func assertSameDeliveries(t *testing.T, c *cluster, v ViewID, want []string, nodes ...NodeID) {
	t.Helper()
	for _, n := range nodes {
		if got := c.delivered(n, v); !slices.Equal(got, want) {
			t.Errorf("node %d delivered %q in view %d, want %q", n, got, v, want)
		}
	}
}

func TestMulticastTotalOrderFIFOAndSelfDelivery(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	// The third round is issued, in reverse node order, while the first two
	// are in flight, so the coordinator interleaves senders.
	for i := 1; i <= 2; i++ {
		for n := NodeID(1); n <= 3; n++ {
			c.multicast(n, fmt.Sprintf("%d/%d", n, i))
		}
	}
	c.collect()
	for n := NodeID(3); n >= 1; n-- {
		c.multicast(n, fmt.Sprintf("%d/3", n))
	}
	c.pump()

	ref := c.delivered(1, 1)
	if len(ref) != 9 {
		t.Fatalf("node 1 delivered %q, want 9 messages", ref)
	}
	assertSameDeliveries(t, c, 1, ref, 1, 2, 3)
	for n := NodeID(1); n <= 3; n++ {
		// FIFO: each sender's messages in the order sent, with FIFO
		// numbers 1, 2, 3 in view 1. Self-delivery: included for n itself.
		last := map[Process]uint64{}
		for _, e := range c.events[n] {
			if e.Type != EventDeliver {
				continue
			}
			if e.Msg.View != 1 || e.Msg.Seq != last[e.Msg.Sender]+1 {
				t.Errorf("node %d delivered %v after seq %d of its sender", n, e.Msg, last[e.Msg.Sender])
			}
			last[e.Msg.Sender] = e.Msg.Seq
			if want := fmt.Sprintf("%d/%d", e.Msg.Sender.Node, e.Msg.Seq); string(e.Payload) != want {
				t.Errorf("node %d delivered %v with payload %q, want %q", n, e.Msg, e.Payload, want)
			}
		}
		if last[proc(n)] != 3 {
			t.Errorf("node %d delivered %d of its own 3 multicasts", n, last[proc(n)])
		}
		if sends := c.count(n, EventSend); sends != 3 {
			t.Errorf("node %d emitted %d EventSend, want 3", n, sends)
		}
	}
}

func TestSingleMemberGroupDeliversOwnMulticasts(t *testing.T) {
	c := newCluster(t, Config{}, proc(1))
	c.multicast(1, "a")
	c.multicast(1, "b")
	c.pump()
	// The commit point of a group of one advances on the retransmit timer
	// (see TestSingleMemberGroupDeliversWithoutTick).
	c.tick(c.g(1).cfg.RetransmitTicks)
	assertSameDeliveries(t, c, 1, []string{"a", "b"}, 1)
	if len(c.sent) != 0 {
		t.Errorf("a group of one sent %v", c.sent)
	}
}

// A group of one holds a majority the moment it sequences, so nothing
// should wait for a timer.
func TestSingleMemberGroupDeliversWithoutTick(t *testing.T) {
	c := newCluster(t, Config{}, proc(1))
	c.multicast(1, "a")
	c.pump()
	assertSameDeliveries(t, c, 1, []string{"a"}, 1)
}

// In a view of one, Tick commits and garbage-collects the coordinator's
// own send that waited for window room, behind the batch cursor that Ready
// slices the log from.
func TestSingleMemberWindowDoesNotPanic(t *testing.T) {
	c := newCluster(t, Config{MaxUnstable: 1}, proc(1))
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic: %v", r)
		}
	}()
	c.multicast(1, "a")
	c.pump()
	c.multicast(1, "b") // the window is full until "a" is stable
	c.pump()
	c.tick(4) // Ready after every Tick
	assertSameDeliveries(t, c, 1, []string{"a", "b"}, 1)
}

func TestUniformDeliveryNeedsMajority(t *testing.T) {
	t.Run("two of three hold", func(t *testing.T) {
		c := newCluster(t, Config{}, procs(3)...)
		c.drop = func(m Message) bool { return m.To.Node == 3 }
		c.multicast(2, "a")
		c.multicast(1, "b")
		c.pump()
		// The coordinator's own "b" is sequenced first: "a" is still in
		// node 2's Ready.
		assertSameDeliveries(t, c, 1, []string{"b", "a"}, 1, 2)
		assertSameDeliveries(t, c, 1, nil, 3)

		// Once the link heals, retransmission brings node 3 up to date.
		c.drop = nil
		c.tick(c.g(1).cfg.RetransmitTicks)
		assertSameDeliveries(t, c, 1, []string{"b", "a"}, 3)
	})
	t.Run("only the coordinator holds", func(t *testing.T) {
		c := newCluster(t, Config{}, procs(3)...)
		c.drop = func(m Message) bool { return m.Type == MsgOrder || m.Type == MsgAck }
		c.multicast(2, "a")
		c.multicast(1, "b")
		c.pump()
		c.tick(10)
		if got := c.g(1).Info(); got.Held != 2 || got.Commit != 0 {
			t.Errorf("coordinator held/commit = %d/%d, want 2/0", got.Held, got.Commit)
		}
		for n := NodeID(1); n <= 3; n++ {
			if got := c.delivered(n, 0); got != nil {
				t.Errorf("node %d delivered %q without a majority", n, got)
			}
		}
	})
}

func TestSuspectedMemberIsExcluded(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	c.multicast(2, "a")
	c.pump()
	// "b" is held everywhere but committed nowhere: only the view change's
	// tail can deliver it.
	c.drop = func(m Message) bool { return m.Type == MsgAck }
	c.multicast(1, "b")
	c.pump()
	c.drop = nil
	if got := c.delivered(1, 0); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("before the view change node 1 delivered %q", got)
	}

	c.suspect(proc(3))
	c.pump()

	v2 := View{ID: 2, Members: []Process{proc(1), proc(2)}}
	assertLastView(t, c, v2, 1, 2)
	// Node 3 was alive: it learns the decision, delivers the same tail
	// and is told it was excluded.
	assertSameDeliveries(t, c, 1, []string{"a", "b"}, 1, 2, 3)
	if c.eventIndex(3, isType(EventExcluded)) < 0 || c.g(3).Info().Status != StatusIdle {
		t.Errorf("node 3 events %v, want EventExcluded and Idle", c.events[3])
	}
	for _, n := range []NodeID{1, 2} {
		block, b, inst := c.eventIndex(n, isType(EventBlock)), c.eventIndex(n, isDeliver("b")), c.eventIndex(n, isInstall(2))
		if !(block >= 0 && block < inst && b < inst) {
			t.Errorf("node %d: Block at %d, deliver b at %d, install at %d; want Block and b before install", n, block, b, inst)
		}
	}
}

// TestLateBlockOKOfEarlierMembershipIgnored: an application answers Block
// asynchronously, so its answer to a Block of one membership can reach the
// group after the member was excluded and admitted again, and a Block of
// the new membership was raised. It must not answer that Block, which the
// application may not have seen yet: its multicasts made before the real
// answer would go to the next view, not the one being flushed.
func TestLateBlockOKOfEarlierMembershipIgnored(t *testing.T) {
	c := newCluster(t, Config{ManualBlockOK: true}, procs(3)...)
	// Node 3 sees the Block of view 1 and does not answer: the others
	// go on without it.
	c.suspect(proc(3))
	c.pump()
	if c.eventIndex(3, isType(EventBlock)) < 0 {
		t.Fatalf("node 3 got no Block in view 1: %v", c.events[3])
	}
	c.g(1).BlockOK(1)
	c.g(2).BlockOK(1)
	c.pump()
	if c.eventIndex(3, isType(EventExcluded)) < 0 {
		t.Fatalf("node 3 was not excluded: %v", c.events[3])
	}
	// It joins again (view 3), and a view change of view 3 blocks it.
	if err := c.g(3).Join([]NodeID{1, 2}); err != nil {
		t.Fatal(err)
	}
	c.pump()
	c.g(1).BlockOK(2)
	c.g(2).BlockOK(2)
	c.pump()
	assertLastView(t, c, View{ID: 3, Members: procs(3)}, 1, 2, 3)
	c.events[3] = nil
	c.g(1).Suspect(proc(2))
	c.g(3).Suspect(proc(2))
	c.pump()
	if i := c.eventIndex(3, isType(EventBlock)); i < 0 || c.events[3][i].View.ID != 3 {
		t.Fatalf("node 3 got no Block in view 3: %v", c.events[3])
	}
	c.g(1).BlockOK(3)
	c.pump()
	oks := func() int {
		k := 0
		for _, m := range c.sentOf(MsgPrepareOK) {
			if m.From == proc(3) && m.View == 3 {
				k++
			}
		}
		return k
	}
	// The answer to view 1's Block arrives now.
	c.g(3).BlockOK(1)
	c.pump()
	if k, st := oks(), c.g(3).Info().Status; k != 0 || st != StatusFlushing {
		t.Fatalf("after a BlockOK of view 1, node 3 sent %d PrepareOKs in view 3 and is %v; want none, Flushing", k, st)
	}
	c.multicast(3, "before its answer") // still in view 3
	c.g(3).BlockOK(3)
	c.pump()
	if k := oks(); k == 0 {
		t.Fatal("node 3 sent no PrepareOK after its BlockOK of view 3")
	}
	if got := c.delivered(3, 3); !slices.Equal(got, []string{"before its answer"}) {
		t.Errorf("node 3 delivered %q in view 3, want its multicast made before BlockOK", got)
	}
}

func TestManualBlockOK(t *testing.T) {
	c := newCluster(t, Config{ManualBlockOK: true}, procs(3)...)
	c.crash(3)
	c.suspect(proc(3))
	c.pump()
	// Time passes (short of ViewChangeTicks): still nobody answers.
	c.tick(c.g(1).cfg.FlushWaitTicks)
	for n := NodeID(1); n <= 2; n++ {
		if c.eventIndex(n, isType(EventBlock)) < 0 {
			t.Fatalf("node %d got no EventBlock: %v", n, c.events[n])
		}
	}
	if oks := c.sentOf(MsgPrepareOK); len(oks) != 0 {
		t.Fatalf("PrepareOK sent before BlockOK: %v", oks)
	}

	c.multicast(2, "old") // before BlockOK: still in view 1
	c.g(2).BlockOK(1)
	c.multicast(2, "new") // after BlockOK: queued for view 2
	c.pump()
	if len(c.installed(2)) != 1 {
		t.Fatalf("view installed before the proposer's own BlockOK: %v", c.installed(2))
	}
	c.g(1).BlockOK(1)
	c.pump()

	assertLastView(t, c, View{ID: 2, Members: []Process{proc(1), proc(2)}}, 1, 2)
	assertSameDeliveries(t, c, 1, []string{"old"}, 1, 2)
	assertSameDeliveries(t, c, 2, []string{"new"}, 1, 2)
	inst := c.eventIndex(2, isInstall(2))
	send := c.eventIndex(2, func(e Event) bool { return e.Type == EventSend && string(e.Payload) == "new" })
	if send < inst || c.events[2][send].Msg.View != 2 {
		t.Errorf("EventSend of \"new\" at %d, install at %d; want after the install, in view 2", send, inst)
	}
}

func TestJoin(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	c.multicast(1, "before")
	c.pump()
	g4 := c.add(proc(4))
	// Contacts 2 and 3 are not the proposer: they relay to node 1.
	if err := g4.Join([]NodeID{2, 3}); err != nil {
		t.Fatal(err)
	}
	c.pump()

	v2 := View{ID: 2, Members: procs(4)}
	assertLastView(t, c, v2, 1, 2, 3, 4)
	if got := c.installed(4); len(got) != 1 {
		t.Errorf("joiner installed %v, want only view 2", got)
	}
	for n := NodeID(1); n <= 4; n++ {
		if e := c.events[n][c.eventIndex(n, isInstall(2))]; !slices.Equal(e.Joined, []Process{proc(4)}) || e.Left != nil {
			t.Errorf("node %d install has Joined %v Left %v, want [%v] and none", n, e.Joined, e.Left, proc(4))
		}
	}
	commits := c.sentOf(MsgCommit)
	if len(commits) == 0 {
		t.Fatal("no Commit sent")
	}
	for _, m := range commits {
		if !slices.Equal(m.Decision.Joined, []Process{proc(4)}) {
			t.Errorf("Commit to %v has Joined %v, want [%v]", m.To, m.Decision.Joined, proc(4))
		}
	}

	c.multicast(4, "hello")
	c.pump()
	assertSameDeliveries(t, c, 2, []string{"hello"}, 1, 2, 3, 4)
	assertSameDeliveries(t, c, 1, nil, 4)
}

// A joiner whose Commit is lost asks again and is sent the decision that
// added it.
func TestJoinerRecoversLostCommit(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	c.drop = func(m Message) bool { return m.Type == MsgCommit && m.To.Node == 4 }
	if err := c.add(proc(4)).Join([]NodeID{1}); err != nil {
		t.Fatal(err)
	}
	c.pump()
	if st := c.g(4).Info().Status; st != StatusJoining {
		t.Fatalf("joiner is %v, want Joining", st)
	}
	c.drop = nil
	c.tick(c.g(4).cfg.JoinRetryTicks)
	assertLastView(t, c, View{ID: 2, Members: procs(4)}, 1, 2, 3, 4)
}

func TestLeaveWhileJoining(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	g := c.add(proc(4))
	if err := g.Join([]NodeID{1}); err != nil {
		t.Fatal(err)
	}
	if err := g.Leave(); err != nil {
		t.Fatal(err)
	}
	if rd := g.Ready(); len(rd.Events) != 1 || rd.Events[0].Type != EventLeft {
		t.Errorf("Leave while joining gave %+v, want EventLeft", rd.Events)
	}
}

// EventLeft is terminal until Join, but Leave while joining leaves the
// status Joining: Join fails, and a Commit already in flight installs the
// view after EventLeft.
func TestLeaveWhileJoiningReturnsToIdle(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	var inFlight []Message
	c.drop = func(m Message) bool {
		if m.Type == MsgCommit && m.To.Node == 4 {
			inFlight = append(inFlight, m)
			return true
		}
		return false
	}
	g := c.add(proc(4))
	if err := g.Join([]NodeID{1}); err != nil {
		t.Fatal(err)
	}
	c.pump()
	if err := g.Leave(); err != nil {
		t.Fatal(err)
	}
	g.Ready()
	if st := g.Info().Status; st != StatusIdle {
		t.Errorf("status after Leave while joining is %v, want Idle", st)
	}
	for _, m := range inFlight {
		_ = g.Step(m)
	}
	if rd := g.Ready(); len(rd.Events) > 0 {
		t.Errorf("after EventLeft a late Commit produced %+v", rd.Events)
	}
	if err := g.Join([]NodeID{1}); err != nil {
		t.Errorf("Join after EventLeft = %v", err)
	}
}

// A member that missed the Commit of its view catches up when the runtime
// probes a peer, without waiting for a timer.
func TestProbeFetchesMissedDecision(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	c.multicast(1, "a")
	c.drop = func(m Message) bool { return m.Type == MsgCommit && m.To.Node == 3 }
	if err := c.g(2).Leave(); err != nil {
		t.Fatal(err)
	}
	c.pump()
	// Answers to one laggard are rate limited to one per RetransmitTicks,
	// and node 1 just answered node 3's late AcceptOK (into the drop).
	c.tick(c.g(1).cfg.RetransmitTicks)
	c.drop = nil
	if got := c.g(3).Info(); got.Status != StatusFlushing || got.View.ID != 1 {
		t.Fatalf("node 3 is %v in %v, want Flushing in view 1", got.Status, got.View)
	}
	c.g(3).Probe(1)
	c.pump()
	assertLastView(t, c, View{ID: 2, Members: []Process{proc(1), proc(3)}}, 1, 3)
	assertSameDeliveries(t, c, 1, []string{"a"}, 1, 2, 3)
}

// MaxUnstable bounds what the coordinator sequences while a member lags;
// the rest waits at the sender and goes out once the member catches up.
func TestMaxUnstableWindow(t *testing.T) {
	c := newCluster(t, Config{MaxUnstable: 2}, procs(3)...)
	c.drop = func(m Message) bool { return m.To.Node == 3 }
	for _, p := range []string{"a", "b", "c", "d"} {
		c.multicast(2, p)
	}
	c.pump()
	c.tick(4)
	if got := c.g(1).Info().Held; got != 2 {
		t.Errorf("coordinator sequenced %d with a window of 2", got)
	}
	assertSameDeliveries(t, c, 1, []string{"a", "b"}, 1, 2)
	c.drop = nil
	c.tick(10)
	assertSameDeliveries(t, c, 1, []string{"a", "b", "c", "d"}, 1, 2, 3)
}

func TestLeave(t *testing.T) {
	for _, leaver := range []NodeID{1, 2} { // the coordinator and a member
		t.Run(fmt.Sprint("node", leaver), func(t *testing.T) {
			c := newCluster(t, Config{}, procs(3)...)
			if err := c.g(leaver).Leave(); err != nil {
				t.Fatal(err)
			}
			c.pump()

			var rest []NodeID
			var next []Process
			for n := NodeID(1); n <= 3; n++ {
				if n != leaver {
					rest, next = append(rest, n), append(next, proc(n))
				}
			}
			assertLastView(t, c, View{ID: 2, Members: next}, rest...)
			if c.eventIndex(leaver, isType(EventLeft)) < 0 || c.eventIndex(leaver, isType(EventExcluded)) >= 0 {
				t.Errorf("leaver's events %v, want EventLeft and no EventExcluded", c.events[leaver])
			}
			for _, n := range rest {
				if e := c.events[n][c.eventIndex(n, isInstall(2))]; !slices.Equal(e.Left, []Process{proc(leaver)}) {
					t.Errorf("node %d install has Left %v, want [%v]", n, e.Left, proc(leaver))
				}
			}
			for _, m := range c.sentOf(MsgCommit) {
				if !slices.Equal(m.Decision.Left, []Process{proc(leaver)}) {
					t.Errorf("Decision.Left = %v, want [%v]", m.Decision.Left, proc(leaver))
				}
			}
			if err := c.g(leaver).Multicast([]byte("x")); !errors.Is(err, ErrNotMember) {
				t.Errorf("Multicast after leaving: %v, want ErrNotMember", err)
			}
			c.multicast(rest[0], "after")
			c.pump()
			assertSameDeliveries(t, c, 2, []string{"after"}, rest...)
		})
	}
}

func TestCoordinatorCrash(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	c.multicast(2, "a")
	c.pump()
	// "b" reaches a majority and the coordinator delivers it, but it
	// crashes before announcing the commit point.
	c.drop = func(m Message) bool { return m.From.Node == 1 && m.Type == MsgOrder && len(m.Entries) == 0 }
	c.multicast(2, "b")
	c.pump()
	c.crash(1)
	c.drop = nil
	if got := c.delivered(1, 1); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("coordinator delivered %q before crashing, want a, b", got)
	}
	if got := c.delivered(2, 1); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("node 2 delivered %q before the crash, want a", got)
	}
	// "c" is forwarded to the dead coordinator: it travels in the flush.
	c.multicast(3, "c")
	c.pump()

	c.suspect(proc(1))
	c.pump()

	assertLastView(t, c, View{ID: 2, Members: []Process{proc(2), proc(3)}}, 2, 3)
	assertSameDeliveries(t, c, 1, []string{"a", "b", "c"}, 2, 3)
	for _, n := range []NodeID{2, 3} {
		if d, i := c.eventIndex(n, isDeliver("b")), c.eventIndex(n, isInstall(2)); d > i {
			t.Errorf("node %d delivered b at %d, after the install at %d", n, d, i)
		}
	}
	// Node 2 coordinates view 2.
	c.multicast(3, "d")
	c.pump()
	assertSameDeliveries(t, c, 2, []string{"d"}, 2, 3)
}

// Two members each start a proposal before hearing of the other's; under
// any delivery order they settle on one view 2.
func TestCompetingProposersConverge(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			c := newCluster(t, Config{}, procs(3)...)
			if seed > 0 {
				c.rng = rand.New(rand.NewPCG(seed, 0))
			}
			c.multicast(3, "x")
			c.g(1).Suspect(proc(3)) // node 1 proposes without 3
			c.g(2).Suspect(proc(1)) // node 2 sees 1 suspected: it proposes too
			c.pump()
			c.tick(50)

			ballots := map[Ballot]bool{}
			for _, m := range c.sentOf(MsgPrepare) {
				ballots[m.Ballot] = true
			}
			if len(ballots) < 2 {
				t.Fatalf("only ballots %v: the proposals did not compete", ballots)
			}
			checkConverged(t, c, 2, 1, 2, 3)
		})
	}
}

// checkConverged asserts that the nodes that installed view id agree on it,
// that they are a majority of the nodes, that the others were excluded,
// and that all of them delivered the same in the view before.
func checkConverged(t *testing.T, c *cluster, id ViewID, nodes ...NodeID) {
	t.Helper()
	var want *View
	var in, out []NodeID
	for _, n := range nodes {
		i := c.eventIndex(n, isInstall(id))
		if i < 0 {
			out = append(out, n)
			continue
		}
		in = append(in, n)
		v := c.events[n][i].View
		if want == nil {
			want = &v
		} else if !reflect.DeepEqual(v, *want) {
			t.Errorf("node %d installed %v, node %d installed %v", n, v, in[0], *want)
		}
	}
	if len(in) <= len(nodes)/2 {
		t.Fatalf("only %v installed view %d", in, id)
	}
	for _, n := range out {
		if want.Contains(proc(n)) {
			t.Errorf("node %d is in %v but did not install it", n, *want)
		}
		if c.eventIndex(n, isType(EventExcluded)) < 0 && !c.down[n] {
			t.Errorf("node %d neither installed view %d nor was excluded: %v", n, id, c.events[n])
		}
	}
	ref := c.delivered(in[0], id-1)
	assertSameDeliveries(t, c, id-1, ref, append(in, out...)...)
}

// A proposer whose decision was accepted by one member dies; the member
// that takes over must propose that same decision (it may have been
// chosen), not one of its own.
func TestTakeoverReproposesAcceptedDecision(t *testing.T) {
	c := newCluster(t, Config{}, procs(5)...)
	c.crash(5)
	// Only node 2 gets the Accept, and its AcceptOK is lost.
	c.drop = func(m Message) bool {
		return (m.Type == MsgAccept && m.To.Node != 2) || (m.Type == MsgAcceptOK && m.To.Node == 1)
	}
	c.g(1).Suspect(proc(5))
	c.pump()
	accepted := c.g(2).Info().Candidates
	want := View{ID: 2, Members: procs(4)}
	if len(accepted) != 1 || !reflect.DeepEqual(accepted[0], want) {
		t.Fatalf("node 2 candidates %v, want [%v]", accepted, want)
	}
	c.crash(1)
	c.drop = nil
	// Node 2 now proposes at once. Left to itself it would drop 1 and 5,
	// but node 2's own accepted decision has the highest ballot.
	for n := NodeID(2); n <= 4; n++ {
		c.g(n).Suspect(proc(1))
	}
	c.pump()
	assertLastView(t, c, want, 2, 3, 4)

	// View 2 still holds the dead 1; the next view change removes it.
	for n := NodeID(2); n <= 4; n++ {
		c.g(n).Suspect(proc(1))
	}
	c.pump()
	assertLastView(t, c, View{ID: 3, Members: []Process{proc(2), proc(3), proc(4)}}, 2, 3, 4)
}

// A member that proposes after ViewChangeTicks·(1+rank) of waiting takes
// over from a proposer that never finishes.
func TestStalledProposalIsTakenOverByTimer(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	// Node 1 suspects 3 and proposes: its Prepare arrives, so 2 and 3
	// promise and flush, but its Accept never does, and it crashes. No
	// detector reports 1 here (suspicions expire unless re-reported), so
	// only the view-change timer can end the stalled flush.
	c.drop = func(m Message) bool {
		return m.From.Node == 1 && (m.Type == MsgAccept || m.Type == MsgCommit)
	}
	c.g(1).Suspect(proc(3))
	c.pump()
	c.crash(1)
	c.drop = nil
	if got := c.g(2).Info(); got.Status != StatusFlushing || len(got.Candidates) != 0 {
		t.Fatalf("node 2 is %+v before the timer, want Flushing with nothing accepted", got)
	}
	wait := c.g(2).cfg.ViewChangeTicks * 2 // rank 1
	c.tick(wait)
	if got := c.installed(2); len(got) != 1 {
		t.Fatalf("node 2 installed %v before waiting %d ticks", got, wait)
	}
	c.tick(wait)
	// 2 and 3 answer; 1 is silent and left out.
	assertLastView(t, c, View{ID: 2, Members: []Process{proc(2), proc(3)}}, 2, 3)
}

// The members of badInputCluster. Node 2 runs incarnation 2, so a message
// to 2.1 is addressed to an older incarnation.
var (
	bp1 = proc(1)
	bp2 = Process{Node: 2, Inc: 2}
	bp3 = proc(3)
)

// badInputCluster is a running 3-member group in view 1 that delivered
// seqs 1 and 2 everywhere.
func badInputCluster(t *testing.T) *cluster {
	c := newCluster(t, Config{}, bp1, bp2, bp3)
	c.multicast(2, "a")
	c.multicast(3, "b")
	c.pump()
	return c
}

func TestStepRejectsBadInput(t *testing.T) {
	p1, p2, p3 := bp1, bp2, bp3
	msg := func(typ MsgType, from, to Process) Message {
		return Message{Type: typ, Group: testGroup, From: from, To: to, View: 1}
	}
	entry := func(seq uint64, sender Process, fifo uint64) Entry {
		return Entry{Seq: seq, ID: MsgID{Sender: sender, View: 1, Seq: fifo}, Payload: []byte("z")}
	}
	v2 := View{ID: 2, Members: []Process{p1, p2}}
	with := func(m Message, f func(*Message)) Message { f(&m); return m }

	cases := []struct {
		name string
		m    Message
		want error
	}{
		{"wrong group", with(msg(MsgOrder, p1, p2), func(m *Message) { m.Group = "h/other" }), ErrWrongGroup},
		{"wrong node", msg(MsgOrder, p1, p3), ErrWrongNode},
		{"older incarnation", msg(MsgOrder, p1, proc(2)), ErrStaleIncarnation},
		{"newer incarnation", msg(MsgOrder, p1, Process{Node: 2, Inc: 3}), ErrStaleIncarnation},
		{"zero From", msg(MsgOrder, Process{}, p2), ErrMalformed},
		{"From without incarnation", msg(MsgOrder, Process{Node: 1}, p2), ErrMalformed},
		{"type zero", msg(0, p1, p2), ErrMalformed},
		{"unknown type", msg(MsgStale+1, p1, p2), ErrMalformed},
		{"no destination incarnation", msg(MsgOrder, p1, Process{Node: 2}), ErrMalformed},
		{"unknown sender", msg(MsgOrder, proc(9), p2), ErrUnknownSender},
		{"unknown sender prepare", with(msg(MsgPrepare, proc(9), p2), func(m *Message) { m.Ballot = Ballot{Round: 9, Node: 9} }), ErrUnknownSender},
		{"order from non-coordinator", with(msg(MsgOrder, p3, p2), func(m *Message) {
			m.Seq, m.Entries = 2, []Entry{entry(3, p3, 2)}
		}), ErrForged},
		{"order not contiguous", with(msg(MsgOrder, p1, p2), func(m *Message) {
			m.Seq, m.Entries = 2, []Entry{entry(3, p1, 1), entry(5, p1, 2)}
		}), ErrMalformed},
		{"order entry of another view", with(msg(MsgOrder, p1, p2), func(m *Message) {
			e := entry(3, p1, 1)
			e.ID.View = 7
			m.Seq, m.Entries = 2, []Entry{e}
		}), ErrMalformed},
		{"order commit beyond entries", with(msg(MsgOrder, p1, p2), func(m *Message) {
			m.Seq, m.Entries, m.Commit = 2, []Entry{entry(3, p1, 1)}, 9
		}), ErrForged},
		{"decision skips a view", with(msg(MsgCommit, p1, p2), func(m *Message) {
			m.Decision = &Decision{Prev: 1, Next: View{ID: 3, Members: v2.Members}}
		}), ErrMalformed},
		{"decision tail does not end at Last", with(msg(MsgCommit, p1, p2), func(m *Message) {
			m.Decision = &Decision{Prev: 1, Last: 5, Final: []Entry{entry(3, p1, 1), entry(4, p1, 2)}, Next: v2}
		}), ErrMalformed},
		{"decision tail not contiguous", with(msg(MsgCommit, p1, p2), func(m *Message) {
			m.Decision = &Decision{Prev: 1, Last: 4, Final: []Entry{entry(2, p1, 1), entry(4, p1, 2)}, Next: v2}
		}), ErrMalformed},
		{"decision joiner not in next view", with(msg(MsgCommit, p1, p2), func(m *Message) {
			m.Decision = &Decision{Prev: 1, Last: 2, Next: v2, Joined: []Process{proc(9)}}
		}), ErrMalformed},
		{"decision repeats a node", with(msg(MsgCommit, p1, p2), func(m *Message) {
			m.Decision = &Decision{Prev: 1, Last: 2, Next: View{ID: 2, Members: []Process{p1, p2, {Node: 1, Inc: 2}}}}
		}), ErrMalformed},
		{"accepted decision in flush state", with(msg(MsgPrepareOK, p1, p2), func(m *Message) {
			m.State = &FlushState{Decision: &Decision{Prev: 1, Next: View{ID: 5, Members: v2.Members}}}
		}), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assertRejected(t, badInputCluster(t).g(2), tc.m, tc.want)
		})
	}

	// Rules only the coordinator can check.
	coordCases := []struct {
		name string
		m    Message
	}{
		{"forward of another sender's message", with(msg(MsgForward, p2, p1), func(m *Message) {
			m.Entries = []Entry{{ID: MsgID{Sender: p3, View: 1, Seq: 2}}}
		})},
		{"forward of an already sequenced entry", with(msg(MsgForward, p2, p1), func(m *Message) {
			m.Entries = []Entry{{Seq: 7, ID: MsgID{Sender: p2, View: 1, Seq: 2}}}
		})},
		{"forward for another view", with(msg(MsgForward, p2, p1), func(m *Message) {
			m.Entries = []Entry{{ID: MsgID{Sender: p2, View: 3, Seq: 2}}}
		})},
		{"forged entry after a valid one", with(msg(MsgForward, p2, p1), func(m *Message) {
			m.Entries = []Entry{{ID: MsgID{Sender: p2, View: 1, Seq: 2}}, {ID: MsgID{Sender: p3, View: 1, Seq: 2}}}
		})},
		{"ack beyond sequenced", with(msg(MsgAck, p2, p1), func(m *Message) { m.Seq, m.Commit = 3, 2 })},
		{"ack beyond commit", with(msg(MsgAck, p2, p1), func(m *Message) { m.Seq, m.Commit = 2, 3 })},
	}
	for _, tc := range coordCases {
		t.Run(tc.name, func(t *testing.T) {
			assertRejected(t, badInputCluster(t).g(1), tc.m, ErrForged)
		})
	}
}

// Known bugs in Step's "reject and change nothing" contract.

// A Commit is handled before the sender is checked against the view, so
// any process can end a member's view with a decision of its choosing.
func TestStepRejectsCommitFromNonMember(t *testing.T) {
	// 9.1 is in neither the view the decision ends nor the one it
	// installs. (A member of the next view, even a joiner, may legitimately
	// resend the decision to a laggard.)
	m := Message{Type: MsgCommit, Group: testGroup, From: proc(9), To: bp2, View: 1,
		Decision: &Decision{Prev: 1, Last: 2, Next: View{ID: 2, Members: []Process{bp2}}}}
	assertRejected(t, badInputCluster(t).g(2), m, ErrUnknownSender)
}

// A decision whose tail starts above what the member holds panics in
// applyDecision instead of being rejected.
func TestStepRejectsCommitWithTailBeyondHeld(t *testing.T) {
	c := badInputCluster(t) // node 2 holds seqs 1..2; nobody sequenced 3
	m := Message{Type: MsgCommit, Group: testGroup, From: bp1, To: bp2, View: 1,
		Decision: &Decision{Prev: 1, Last: 4,
			Final: []Entry{{Seq: 4, ID: MsgID{Sender: bp1, View: 1, Seq: 1}}},
			Next:  View{ID: 2, Members: []Process{bp1, bp2}}}}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Step panicked: %v", r)
		}
	}()
	assertRejected(t, c.g(2), m, ErrMalformed)
}

// A message from a newer incarnation of a member is rejected as from an
// unknown sender, yet Step has already suspected the member (state and
// Suspicion messages) before returning the error.
func TestStepRejectsNewerIncarnationWithoutSideEffects(t *testing.T) {
	m := Message{Type: MsgOrder, Group: testGroup, From: Process{Node: 3, Inc: 2}, To: bp2, View: 1}
	assertRejected(t, badInputCluster(t).g(2), m, ErrUnknownSender)
}

// assertRejected steps m into g and checks that it fails with want and
// changes nothing observable.
func assertRejected(t *testing.T, g *Group, m Message, want error) {
	t.Helper()
	if rd := g.Ready(); !rd.Empty() {
		t.Fatalf("Ready not drained before the test: %+v", rd)
	}
	before := g.Info()
	err := g.Step(m)
	if !errors.Is(err, want) {
		t.Errorf("Step = %v, want %v", err, want)
	}
	if after := g.Info(); !reflect.DeepEqual(before, after) {
		t.Errorf("state changed: %+v → %+v", before, after)
	}
	if rd := g.Ready(); !rd.Empty() {
		t.Errorf("rejected input produced %+v", rd)
	}
}

// After rejecting bad input the group still works.
func TestBadInputLeavesGroupWorking(t *testing.T) {
	c := badInputCluster(t)
	p1, p2, p3 := bp1, bp2, bp3
	bad := []Message{
		{Type: MsgOrder, Group: testGroup, From: p3, To: p2, View: 1, Seq: 2, Entries: []Entry{{Seq: 3, ID: MsgID{Sender: p3, View: 1, Seq: 2}}}},
		{Type: MsgAck, Group: testGroup, From: p2, To: p1, View: 1, Seq: 99},
		{Type: MsgForward, Group: testGroup, From: p2, To: p1, View: 1, Entries: []Entry{{ID: MsgID{Sender: p3, View: 1, Seq: 2}}}},
	}
	for _, m := range bad {
		if err := c.g(m.To.Node).Step(m); err == nil {
			t.Fatalf("Step(%+v) accepted", m)
		}
	}
	c.multicast(3, "c")
	c.pump()
	assertSameDeliveries(t, c, 1, []string{"a", "b", "c"}, 1, 2, 3)
}

// A message of a view the receiver has left behind is dropped silently.
func TestStaleViewMessageIgnored(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	c.multicast(2, "a")
	c.pump()
	c.suspect(proc(3))
	c.pump()
	assertLastView(t, c, View{ID: 2, Members: []Process{proc(1), proc(2)}}, 1, 2)

	stale := []Message{
		{Type: MsgOrder, From: proc(1), Seq: 1, Commit: 2, Entries: []Entry{{Seq: 2, ID: MsgID{Sender: proc(1), View: 1, Seq: 1}, Payload: []byte("late")}}},
		{Type: MsgForward, From: proc(3), Entries: []Entry{{ID: MsgID{Sender: proc(3), View: 1, Seq: 1}, Payload: []byte("late")}}},
		{Type: MsgPrepare, From: proc(3), Ballot: Ballot{Round: 50, Node: 3}},
	}
	for _, m := range stale {
		m.Group, m.To, m.View = testGroup, proc(2), 1
		before := c.g(2).Info()
		if err := c.g(2).Step(m); err != nil {
			t.Errorf("Step(stale %v) = %v, want nil", m.Type, err)
		}
		if after := c.g(2).Info(); !reflect.DeepEqual(before, after) {
			t.Errorf("stale %v changed state: %+v → %+v", m.Type, before, after)
		}
		// It may answer the laggard with the decision, never deliver.
		for _, e := range c.g(2).Ready().Events {
			t.Errorf("stale %v produced event %+v", m.Type, e)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{Self: proc(1)},
		{Group: testGroup},
		{Group: testGroup, Self: Process{Node: 1}},
		{Group: testGroup, Self: Process{Inc: 1}},
	} {
		if g, err := New(cfg); !errors.Is(err, ErrInvalidConfig) || g != nil {
			t.Errorf("New(%+v) = %v, %v; want nil, ErrInvalidConfig", cfg, g, err)
		}
	}

	newGroup := func() *Group {
		g, err := New(Config{Group: testGroup, Self: proc(1)})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	g := newGroup()
	if err := g.Multicast([]byte("x")); !errors.Is(err, ErrNotMember) {
		t.Errorf("Multicast before joining = %v, want ErrNotMember", err)
	}
	if err := g.Leave(); !errors.Is(err, ErrNotMember) {
		t.Errorf("Leave before joining = %v, want ErrNotMember", err)
	}
	for _, members := range [][]Process{
		{proc(2), proc(3)},                    // without self
		{proc(1), proc(2), {Node: 2, Inc: 2}}, // a node twice
		{proc(1), {Node: 2}},                  // no incarnation
	} {
		if err := g.Bootstrap(members); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Bootstrap(%v) = %v, want ErrInvalidConfig", members, err)
		}
		if st := g.Info().Status; st != StatusIdle {
			t.Errorf("failed Bootstrap left status %v", st)
		}
	}
	if err := g.Bootstrap([]Process{proc(1)}); err != nil {
		t.Fatal(err)
	}
	if err := g.Bootstrap([]Process{proc(1)}); !errors.Is(err, ErrAlreadyMember) {
		t.Errorf("second Bootstrap = %v, want ErrAlreadyMember", err)
	}
	if err := g.Join([]NodeID{2}); !errors.Is(err, ErrAlreadyMember) {
		t.Errorf("Join as a member = %v, want ErrAlreadyMember", err)
	}
}

// scenario drives a cluster through multicasts, a join, a crash and view
// changes, with reordering, and returns every Ready in order.
func scenario(t *testing.T, reuse bool) []readyOf {
	c := newCluster(t, Config{}, procs(3)...)
	c.reuse = reuse
	c.rng = rand.New(rand.NewPCG(7, 7))
	for i := range 5 {
		c.multicast(NodeID(1+i%3), fmt.Sprint("m", i))
	}
	c.pump()
	if err := c.add(proc(4)).Join([]NodeID{3}); err != nil {
		t.Fatal(err)
	}
	c.multicast(2, "during")
	c.pump()
	c.crash(1)
	c.suspect(proc(1))
	c.multicast(4, "after")
	c.tick(30)
	return c.readies
}

func TestDeterminism(t *testing.T) {
	a, b := scenario(t, false), scenario(t, false)
	if len(a) < 20 {
		t.Fatalf("scenario produced only %d Ready values", len(a))
	}
	if !reflect.DeepEqual(a, b) {
		for i := range min(len(a), len(b)) {
			if !reflect.DeepEqual(a[i], b[i]) {
				t.Fatalf("runs diverge at Ready %d:\n%+v\n%+v", i, a[i], b[i])
			}
		}
		t.Fatalf("runs differ in length: %d vs %d", len(a), len(b))
	}
}

// TestReadyReuseMatchesReady: taking events after every input and the rest
// through ReadyReuse, as the node runtime does, yields exactly what Ready
// yields, although the group refills the slices it handed out before.
func TestReadyReuseMatchesReady(t *testing.T) {
	a, b := scenario(t, false), scenario(t, true)
	if !reflect.DeepEqual(a, b) {
		for i := range min(len(a), len(b)) {
			if !reflect.DeepEqual(a[i], b[i]) {
				t.Fatalf("Ready and ReadyReuse diverge at %d:\n%+v\n%+v", i, a[i], b[i])
			}
		}
		t.Fatalf("Ready and ReadyReuse differ in length: %d vs %d", len(a), len(b))
	}
}

// TestMulticastInEarlierMembershipRefused: a multicast made for a view of
// an earlier membership (its maker had not seen the exclusion yet) is not
// sent in the membership that followed.
func TestMulticastInEarlierMembershipRefused(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	if err := c.g(3).MulticastIn(1, []byte("in view 1")); err != nil {
		t.Fatalf("a multicast in the current membership: %v", err)
	}
	c.pump()
	c.suspect(proc(3))
	c.pump()
	if err := c.g(3).Join([]NodeID{1, 2}); err != nil {
		t.Fatal(err)
	}
	c.pump()
	assertLastView(t, c, View{ID: 3, Members: procs(3)}, 1, 2, 3)
	if err := c.g(3).MulticastIn(1, []byte("late")); !errors.Is(err, ErrNotMember) {
		t.Errorf("a multicast made in view 1 after a rejoin in view 3: %v, want ErrNotMember", err)
	}
	if err := c.g(3).MulticastIn(3, []byte("now")); err != nil {
		t.Fatalf("a multicast made in view 3: %v", err)
	}
	c.pump()
	for n := NodeID(1); n <= 3; n++ {
		if got := c.delivered(n, 3); !slices.Equal(got, []string{"now"}) {
			t.Errorf("node %d delivered %q in view 3, want only \"now\"", n, got)
		}
	}
	if got := c.delivered(1, 1); !slices.Equal(got, []string{"in view 1"}) {
		t.Errorf("node 1 delivered %q in view 1", got)
	}
}
