package hwg

import (
	"reflect"
	"slices"
	"testing"
)

// Focused tests of the membership rules of the view change. Each is built
// so that removing the rule changes what it asserts.

// stepInto hands m to g as if from the network (filling Group, and To when
// unset) and returns what g does in answer. A rejected m fails the test.
func stepInto(t *testing.T, g *Group, m Message) Ready {
	t.Helper()
	m.Group = testGroup
	if m.To == (Process{}) {
		m.To = g.Self()
	}
	if err := g.Step(m); err != nil {
		t.Fatalf("%v: Step(%v from %v, v%d): %v", g.Self(), m.Type, m.From, m.View, err)
	}
	return g.Ready()
}

// onlyAnswer returns the single message of rd, which must be a typ to to.
func onlyAnswer(t *testing.T, rd Ready, typ MsgType, to Process) Message {
	t.Helper()
	if len(rd.Messages) != 1 || rd.Messages[0].Type != typ || rd.Messages[0].To != to {
		t.Fatalf("answered %+v, want one %v to %v", rd.Messages, typ, to)
	}
	return rd.Messages[0]
}

// blockOKAll answers every pending Block (Config.ManualBlockOK) and pumps.
func blockOKAll(c *cluster) {
	c.t.Helper()
	for _, n := range c.nodes {
		if !c.down[n] {
			c.g(n).BlockOK(c.g(n).view.ID)
		}
	}
	c.pump()
}

// tickBlockOK ticks n times, answering every Block after each tick.
func tickBlockOK(c *cluster, n int) {
	c.t.Helper()
	for range n {
		c.tick(1)
		blockOKAll(c)
	}
}

// decisionFor returns the decision that ended view prev, taken from the
// Commits handed out so far (dropped or not), or nil.
func decisionFor(c *cluster, prev ViewID) *Decision {
	for _, m := range c.sentOf(MsgCommit) {
		if m.Decision.Prev == prev {
			return m.Decision
		}
	}
	return nil
}

// thirdJoined makes a cluster of nodes 1 and 2 that node 3 joins, and
// returns it with the decision that added node 3 in view 2.
func thirdJoined(t *testing.T) (*cluster, *Decision) {
	t.Helper()
	c := newCluster(t, Config{}, procs(2)...)
	if err := c.add(proc(3)).Join([]NodeID{1}); err != nil {
		t.Fatal(err)
	}
	c.pump()
	return c, decisionFor(c, 1)
}

// installOf returns node n's EventInstall of view id.
func installOf(t *testing.T, c *cluster, n NodeID, id ViewID) Event {
	t.Helper()
	i := c.eventIndex(n, isInstall(id))
	if i < 0 {
		t.Fatalf("node %d did not install view %d; installed %v", n, id, c.installed(n))
	}
	return c.events[n][i]
}

// cutOff drops every message to or from node n.
func cutOff(n NodeID) func(Message) bool {
	return func(m Message) bool { return m.To.Node == n || m.From.Node == n }
}

// Rule 1. A process excluded by Stale keeps its acceptor state for the view
// it was excluded from: the group went on, so a decision was chosen, and
// its accepted copy may be the only one a laggard's quorum can reach.
func TestRetiredAcceptorAnswersForItsOldView(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	c.multicast(2, "a")
	c.pump()
	// Node 3 accepts the decision that excludes it, but the Commit is lost.
	c.drop = func(m Message) bool { return m.Type == MsgCommit && m.To.Node == 3 }
	c.g(1).Suspect(proc(3))
	c.pump()
	c.drop = nil
	dec, accepts := decisionFor(c, 1), c.sentOf(MsgAccept)
	if dec == nil || len(accepts) == 0 {
		t.Fatalf("no decision for view 1: accepts %v", accepts)
	}
	accepted := accepts[0].Ballot
	g := c.g(3)
	if in := g.Info(); in.Status != StatusFlushing || len(in.Candidates) != 1 || !reflect.DeepEqual(in.Candidates[0], dec.Next) {
		t.Fatalf("node 3 is %+v, want Flushing with candidate %v", in, dec.Next)
	}

	// The group went past view 2 without it.
	rd := stepInto(t, g, Message{Type: MsgStale, From: proc(1), View: 3})
	if len(rd.Events) != 1 || rd.Events[0].Type != EventExcluded || g.Info().Status != StatusIdle {
		t.Fatalf("after Stale: events %+v, status %v; want EventExcluded and Idle", rd.Events, g.Info().Status)
	}

	// A higher ballot from a member of view 1: the promise reports what
	// node 3 accepted and held.
	b1 := Ballot{Round: accepted.Round + 1, Node: 2}
	ok := onlyAnswer(t, stepInto(t, g, Message{Type: MsgPrepare, From: proc(2), View: 1, Ballot: b1}), MsgPrepareOK, proc(2))
	if ok.View != 1 || ok.Ballot != b1 || ok.State == nil {
		t.Fatalf("PrepareOK %+v, want view 1, ballot %v and a state", ok, b1)
	}
	if !reflect.DeepEqual(ok.State.Decision, dec) || ok.State.Accepted != accepted {
		t.Errorf("PrepareOK reports %v accepted at %v, want %+v at %v", ok.State.Decision, ok.State.Accepted, dec, accepted)
	}
	if ok.State.Held != 1 {
		t.Errorf("PrepareOK state holds %d, want 1", ok.State.Held)
	}

	// Still an acceptor while joining again.
	if err := g.Join([]NodeID{1}); err != nil {
		t.Fatal(err)
	}
	g.Ready()
	b2 := Ballot{Round: accepted.Round + 2, Node: 1}
	ack := onlyAnswer(t, stepInto(t, g, Message{Type: MsgAccept, From: proc(1), View: 1, Ballot: b2, Decision: dec}), MsgAcceptOK, proc(1))
	if ack.View != 1 || ack.Ballot != b2 {
		t.Errorf("AcceptOK %+v, want view 1 and ballot %v", ack, b2)
	}
	// Below the promise, or from outside view 1: no answer.
	if rd := stepInto(t, g, Message{Type: MsgPrepare, From: proc(2), View: 1, Ballot: b1}); len(rd.Messages) != 0 {
		t.Errorf("Prepare below the promise answered %+v", rd.Messages)
	}
	if rd := stepInto(t, g, Message{Type: MsgPrepare, From: proc(9), View: 1, Ballot: Ballot{Round: 99, Node: 9}}); len(rd.Messages) != 0 {
		t.Errorf("Prepare from a non-member of view 1 answered %+v", rd.Messages)
	}
	// The Accept made while joining is what it reports next.
	b3 := Ballot{Round: accepted.Round + 3, Node: 2}
	ok = onlyAnswer(t, stepInto(t, g, Message{Type: MsgPrepare, From: proc(2), View: 1, Ballot: b3}), MsgPrepareOK, proc(2))
	if ok.State == nil || ok.State.Accepted != b2 {
		t.Errorf("PrepareOK state %+v, want accepted at %v", ok.State, b2)
	}
	if in := g.Info(); in.Status != StatusJoining || in.View.ID != 0 {
		t.Errorf("retired acceptor is %v in %v, want Joining outside any view", in.Status, in.View)
	}
}

// Rule 2. A member excluded by a decision may be the only live witness that
// it was chosen: it answers the old view's Prepare and Sync with it, even
// after asking to join again.
func TestExcludedMemberWitnessesDecision(t *testing.T) {
	for _, via := range []string{"prepare", "sync"} {
		t.Run(via, func(t *testing.T) {
			c := newCluster(t, Config{}, procs(3)...)
			c.multicast(2, "a")
			c.pump()
			// Node 2 accepts the decision excluding 3 but misses the
			// Commit; the proposer then dies. Only 3 knows it was chosen.
			c.drop = func(m Message) bool { return m.Type == MsgCommit && m.To.Node == 2 }
			c.g(1).Suspect(proc(3))
			c.pump()
			c.crash(1)
			c.drop = nil
			dec := decisionFor(c, 1)
			if dec == nil || c.g(3).Info().Status != StatusIdle || c.g(2).Info().Status != StatusFlushing {
				t.Fatalf("setup: decision %v, node 2 %v, node 3 %v", dec, c.g(2).Info().Status, c.g(3).Info().Status)
			}
			if err := c.g(3).Join([]NodeID{2}); err != nil {
				t.Fatal(err)
			}
			c.pump()

			if via == "prepare" {
				// Node 2 (rank 1) takes over after 2·ViewChangeTicks; its
				// Prepare reaches only node 3.
				c.tick(2*c.g(2).cfg.ViewChangeTicks + 2)
			} else {
				c.g(2).Probe(3)
				c.pump()
			}
			witnessed := slices.ContainsFunc(c.sentOf(MsgCommit), func(m Message) bool {
				return m.From == proc(3) && m.To == proc(2) && reflect.DeepEqual(m.Decision, dec)
			})
			if !witnessed {
				t.Errorf("node 3 sent no Commit of %+v to node 2", dec)
			}
			assertLastView(t, c, dec.Next, 2)
			assertSameDeliveries(t, c, 1, []string{"a"}, 2, 3)
			if st := c.g(3).Info().Status; st != StatusJoining {
				t.Errorf("witness is %v, want still Joining", st)
			}
		})
	}
}

// Rule 3. A joiner asks again every JoinRetryTicks until it is in, so a
// request not repeated for more than 3·JoinRetryTicks is no evidence that
// it is alive: it expires, and no view change happens for it.
func TestJoinRequestExpires(t *testing.T) {
	const retry = 4
	v2 := View{ID: 2, Members: []Process{proc(1), proc(3)}}
	cases := []struct {
		name     string
		retrying bool // the joiner stays up and keeps asking
		hold     int  // ticks the request waits behind another view change
		want     View // node 1's last view
	}{
		// Without expiry, the dead joiner's request would start view
		// change after view change.
		{"expired", false, 3*retry + 1, v2},
		// Still fresh: one view change happens for it, but a dead joiner
		// never answers its Prepare and does not enter.
		{"fresh at the limit", false, 3 * retry, View{ID: 3, Members: v2.Members}},
		{"retrying", true, 5 * retry, View{ID: 3, Members: []Process{proc(1), proc(3), proc(4)}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// No takeover or restart while the view change is held.
			c := newCluster(t, Config{JoinRetryTicks: retry, ViewChangeTicks: 1000}, procs(3)...)
			// Node 2's leave is held in phase 2: the join arrives too late
			// for its decision and waits for the next view change.
			var held []Message
			c.drop = func(m Message) bool {
				if m.Type == MsgAcceptOK {
					held = append(held, m)
					return true
				}
				return false
			}
			if err := c.g(2).Leave(); err != nil {
				t.Fatal(err)
			}
			c.pump()
			if err := c.add(proc(4)).Join([]NodeID{1}); err != nil {
				t.Fatal(err)
			}
			c.pump()
			if !tc.retrying {
				c.crash(4)
			}
			c.tick(tc.hold)
			if len(held) == 0 || len(c.installed(1)) != 1 {
				t.Fatalf("view change not held: held %v, node 1 installed %v", held, c.installed(1))
			}
			c.drop = nil
			c.queue = append(c.queue, held...)
			c.pump()
			c.tick(4 * retry)

			if got := installOf(t, c, 1, 2).View; !reflect.DeepEqual(got, v2) {
				t.Fatalf("node 1 installed %v, want %v", got, v2)
			}
			assertLastView(t, c, tc.want, 1, 3)
			if tc.retrying {
				assertLastView(t, c, tc.want, 4)
			}
		})
	}
}

// Rule 4. A suspected joiner is dropped from the pending requests: a dead
// joiner would take a place in the next view. If alive it asks again.
func TestSuspectedJoinerIsDropped(t *testing.T) {
	// Inc 0 is how the detector reports a node it never heard from.
	for _, suspect := range []Process{proc(4), {Node: 4}} {
		t.Run(suspect.String(), func(t *testing.T) {
			c := newCluster(t, Config{ManualBlockOK: true}, procs(3)...)
			if err := c.add(proc(4)).Join([]NodeID{1}); err != nil {
				t.Fatal(err)
			}
			c.pump() // node 1 proposes for 4; nobody has answered Block
			if st := c.g(1).Info().Status; st != StatusFlushing {
				t.Fatalf("node 1 is %v, want Flushing", st)
			}
			c.g(1).Suspect(suspect)
			blockOKAll(c)
			if got, want := installOf(t, c, 1, 2), (View{ID: 2, Members: procs(3)}); !reflect.DeepEqual(got.View, want) || got.Joined != nil {
				t.Errorf("node 1 installed %v joining %v, want %v joining nobody", got.View, got.Joined, want)
			}
			if st := c.g(4).Info().Status; st != StatusJoining || len(c.installed(4)) != 0 {
				t.Errorf("suspected joiner is %v and installed %v, want Joining and nothing", st, c.installed(4))
			}
			// It is alive and asks again.
			tickBlockOK(c, c.g(4).cfg.JoinRetryTicks)
			assertLastView(t, c, View{ID: 3, Members: procs(4)}, 1, 2, 3, 4)
		})
	}
}

// Rule 5. Only processes that answered the proposal enter the next view:
// joiners too must answer its Prepare, so one that asked and then died or
// cannot be reached cannot cost the next view its majority. (This replaced
// "answered members stay a majority on their own" in 3100ed1.)
func TestOnlyAnsweringJoinersEnter(t *testing.T) {
	t.Run("two of three answer", func(t *testing.T) {
		c := newCluster(t, Config{}, procs(3)...)
		// 3 is cut off; joiners 4 and 5 can ask but cannot be reached.
		c.drop = func(m Message) bool { return m.To.Node == 3 || m.From.Node == 3 || m.To.Node == 4 || m.To.Node == 5 }
		for n := NodeID(4); n <= 6; n++ {
			if err := c.add(proc(n)).Join([]NodeID{1}); err != nil {
				t.Fatal(err)
			}
		}
		c.pump()
		c.tick(c.g(1).cfg.FlushWaitTicks)
		// The old answered-majority rule took 4, first in order, reachable or not.
		e := installOf(t, c, 1, 2)
		if want := []Process{proc(1), proc(2), proc(6)}; !slices.Equal(e.View.Members, want) || !slices.Equal(e.Joined, []Process{proc(6)}) {
			t.Errorf("view 2 is %v joining %v, want %v joining [%v]", e.View, e.Joined, want, proc(6))
		}
		if got := installOf(t, c, 6, 2).View; !reflect.DeepEqual(got, e.View) {
			t.Errorf("joiner 6 installed %v, want %v", got, e.View)
		}
	})
	t.Run("group of one", func(t *testing.T) {
		c := newCluster(t, Config{}, proc(1))
		c.drop = func(m Message) bool { return m.To.Node == 3 } // 3 asks but cannot be reached
		for _, n := range []NodeID{2, 3} {
			if err := c.add(proc(n)).Join([]NodeID{1}); err != nil {
				t.Fatal(err)
			}
		}
		c.pump()
		c.tick(c.g(1).cfg.FlushWaitTicks)
		// It grows (not zero joiners), and only by the one that answered.
		e := installOf(t, c, 1, 2)
		if want := []Process{proc(1), proc(2)}; !slices.Equal(e.View.Members, want) || !slices.Equal(e.Joined, []Process{proc(2)}) {
			t.Errorf("view 2 is %v joining %v, want %v joining [%v]", e.View, e.Joined, want, proc(2))
		}
	})
	t.Run("live joiners enter together", func(t *testing.T) {
		c := newCluster(t, Config{}, proc(1))
		for _, n := range []NodeID{2, 3} {
			if err := c.add(proc(n)).Join([]NodeID{1}); err != nil {
				t.Fatal(err)
			}
		}
		c.pump()
		c.tick(c.g(1).cfg.FlushWaitTicks)
		assertLastView(t, c, View{ID: 2, Members: procs(3)}, 1, 2, 3)
	})
}

// Rule 6. Leavers that alone answer a flush must not end the group behind
// a member that did not answer: one leaver stays, and no unproven joiner
// takes the leavers' place.
func TestLeaversKeepOneMemberWhileOneIsUnreachable(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	// 3 is cut off; joiner 4 asks during the flush but cannot be reached,
	// so it stays unproven.
	c.drop = func(m Message) bool { return m.To.Node == 3 || m.From.Node == 3 || m.To.Node == 4 }
	for _, n := range []NodeID{1, 2} {
		if err := c.g(n).Leave(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.add(proc(4)).Join([]NodeID{1}); err != nil {
		t.Fatal(err)
	}
	c.pump()
	c.tick(c.g(1).cfg.FlushWaitTicks)

	dec := decisionFor(c, 1)
	if dec == nil {
		t.Fatal("no decision for view 1")
	}
	var kept []Process
	for _, p := range dec.Next.Members {
		if p == proc(1) || p == proc(2) {
			kept = append(kept, p)
		} else {
			t.Errorf("view 2 %v holds %v, which did not answer the flush", dec.Next, p)
		}
	}
	if len(kept) != 1 || len(dec.Left) != 1 || dec.Left[0] == kept[0] {
		t.Fatalf("view 2 %v, left %v; want exactly one leaver kept and the other gone", dec.Next, dec.Left)
	}
	stay, gone := kept[0].Node, dec.Left[0].Node
	if !reflect.DeepEqual(installOf(t, c, stay, 2).View, dec.Next) {
		t.Errorf("kept leaver %d did not install %v", stay, dec.Next)
	}
	if c.count(gone, EventLeft) != 1 || len(c.installed(gone)) != 1 {
		t.Errorf("leaver %d: events %v, want EventLeft in view 1", gone, c.events[gone])
	}
}

// Rule 6, continued. The leaver kept above must not then end the group on
// its own while the unreachable member is still cut off; once that member
// is back, the leaver does leave and the group goes on with it. Fails at
// b91e937: the kept leaver asks again on install and, alone in view 2,
// decides an empty view 3 at once.
func TestKeptLeaverWaitsForUnreachableMember(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	c.drop = cutOff(3)
	for _, n := range []NodeID{1, 2} {
		if err := c.g(n).Leave(); err != nil {
			t.Fatal(err)
		}
	}
	c.pump()
	c.tick(c.g(1).cfg.FlushWaitTicks + 20)
	if len(c.installed(1)) < 2 {
		t.Fatalf("node 1 installed %v, want a view that keeps it", c.installed(1))
	}
	if c.count(1, EventLeft) != 0 {
		t.Errorf("node 1 left while node 3 was cut off: %v", c.events[1])
	}
	if d := c.g(1).Info().Decided; d.ID != 0 && len(d.Members) == 0 {
		t.Errorf("group dissolved behind node 3: view %d is empty", d.ID)
	}

	c.drop = nil
	c.g(3).Probe(1) // the runtime probes when node 1's epoch changes
	c.pump()
	if c.g(3).Info().Status == StatusIdle {
		if err := c.g(3).Join([]NodeID{1}); err != nil {
			t.Fatal(err)
		}
	}
	c.tick(50)
	if c.count(1, EventLeft) != 1 {
		t.Errorf("node 1 never left: %v", c.events[1])
	}
	if in := c.g(3).Info(); in.Status != StatusNormal || !slices.Equal(in.View.Members, []Process{proc(3)}) {
		t.Errorf("node 3 is %v in %v, want Normal in a view of its own", in.Status, in.View)
	}
}

// Rule 6, unanimous. When every member leaves, the group dissolves: no
// member is kept for another view.
func TestUnanimousLeaveDissolvesGroup(t *testing.T) {
	c := newCluster(t, Config{}, procs(2)...)
	for _, n := range []NodeID{1, 2} {
		if err := c.g(n).Leave(); err != nil {
			t.Fatal(err)
		}
	}
	c.pump()
	if dec := decisionFor(c, 1); dec == nil || len(dec.Next.Members) != 0 || len(dec.Left) != 2 {
		t.Errorf("decision %+v, want an empty view 2 with both left", dec)
	}
	for _, n := range []NodeID{1, 2} {
		if c.count(n, EventLeft) != 1 || c.count(n, EventExcluded) != 0 || len(c.installed(n)) != 1 {
			t.Errorf("node %d events %v, want EventLeft straight from view 1", n, c.events[n])
		}
		if st := c.g(n).Info().Status; st != StatusIdle {
			t.Errorf("node %d is %v, want Idle", n, st)
		}
	}
}

// Rule 7. A suspected member that answers the flush is alive: it is dropped
// only while the next view keeps a majority of the old one.
func TestDoubtfulMemberKeptForMajority(t *testing.T) {
	t.Run("needed for the majority", func(t *testing.T) {
		c := newCluster(t, Config{}, procs(3)...)
		// Node 3 suspects 2 and is then cut off: 1 and 2 alone answer.
		c.g(3).Suspect(proc(2))
		c.collect()
		c.drop = cutOff(3)
		c.pump()
		c.tick(c.g(1).cfg.FlushWaitTicks)
		// Without 2, view 2 would hold 1 of 3.
		assertLastView(t, c, View{ID: 2, Members: []Process{proc(1), proc(2)}}, 1, 2)
	})
	t.Run("dropped while the majority holds", func(t *testing.T) {
		c := newCluster(t, Config{}, procs(5)...)
		c.drop = cutOff(5)
		c.g(2).Suspect(proc(3))
		c.g(2).Suspect(proc(4))
		c.pump()
		c.tick(c.g(1).cfg.FlushWaitTicks)
		// Dropping 4 leaves 3 of 5; dropping 3 as well would leave 2.
		assertLastView(t, c, View{ID: 2, Members: procs(3)}, 1, 2, 3)
		if c.count(4, EventExcluded) != 1 {
			t.Errorf("node 4 events %v, want EventExcluded", c.events[4])
		}
	})
}

// Rule 8. A joining process installs only a decision that lists it in
// Joined: being in Next as a continuing member, or in a view it installed
// before, belongs to an earlier membership of its own.
func TestJoinerInstallsOnlyDecisionThatAddsIt(t *testing.T) {
	t.Run("not in Joined", func(t *testing.T) {
		c := newCluster(t, Config{}, procs(3)...)
		g := c.add(proc(4))
		if err := g.Join([]NodeID{1}); err != nil {
			t.Fatal(err)
		}
		g.Ready()
		next := View{ID: 2, Members: procs(4)}
		rd := stepInto(t, g, Message{Type: MsgCommit, From: proc(1), View: 1, Decision: &Decision{Prev: 1, Next: next}})
		if len(rd.Events) != 0 || g.Info().Status != StatusJoining {
			t.Errorf("a decision not naming it in Joined gave %+v, status %v", rd.Events, g.Info().Status)
		}
		// The control: naming it in Joined installs.
		rd = stepInto(t, g, Message{Type: MsgCommit, From: proc(1), View: 1,
			Decision: &Decision{Prev: 1, Next: next, Joined: []Process{proc(4)}}})
		if len(rd.Events) != 1 || rd.Events[0].Type != EventInstall || !reflect.DeepEqual(rd.Events[0].View, next) {
			t.Errorf("a decision naming it in Joined gave %+v, want the install of %v", rd.Events, next)
		}
	})
	t.Run("view installed before", func(t *testing.T) {
		c, added := thirdJoined(t)
		assertLastView(t, c, View{ID: 2, Members: procs(3)}, 1, 2, 3)
		c.suspect(proc(3))
		c.pump()
		assertLastView(t, c, View{ID: 3, Members: procs(2)}, 1, 2)
		if c.count(3, EventExcluded) != 1 {
			t.Fatalf("node 3 events %v, want EventExcluded", c.events[3])
		}

		g := c.g(3)
		if err := g.Join([]NodeID{1}); err != nil {
			t.Fatal(err)
		}
		c.collect()
		// A laggard resends the decision that added 3 to view 2.
		rd := stepInto(t, g, Message{Type: MsgCommit, From: proc(2), View: 1, Decision: added})
		if len(rd.Events) != 0 || g.Info().Status != StatusJoining {
			t.Errorf("an old decision gave %+v, status %v; want nothing", rd.Events, g.Info().Status)
		}
		c.pump()
		assertLastView(t, c, View{ID: 4, Members: procs(3)}, 1, 2, 3)
	})
	// A new Group for a later membership (hwg.Node makes one once it no
	// longer keeps the one it left) knows the views installed before only
	// through Config.Installed; without it, it took the old decision.
	t.Run("view installed by a Group no longer kept", func(t *testing.T) {
		_, added := thirdJoined(t)
		for _, tc := range []struct {
			installed ViewID
			install   bool
		}{{installed: 2}, {installed: 0, install: true}} {
			g, err := New(Config{Group: "h/test", Self: proc(3), Installed: tc.installed})
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Join([]NodeID{1}); err != nil {
				t.Fatal(err)
			}
			g.Ready()
			rd := stepInto(t, g, Message{Type: MsgCommit, From: proc(2), View: 1, Decision: added})
			if got := len(rd.Events) == 1 && rd.Events[0].Type == EventInstall; got != tc.install {
				t.Errorf("Installed %d: the old decision gave %+v, want an install: %v", tc.installed, rd.Events, tc.install)
			}
		}
	})
}

// Rule 9. Info().Decided is a chosen view this process is not part of: set
// once a decision excludes it, zero for a member of the decided view.
func TestInfoDecided(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	c.suspect(proc(3))
	c.pump()
	v2 := View{ID: 2, Members: procs(2)}
	assertLastView(t, c, v2, 1, 2)
	if in := c.g(3).Info(); in.Status != StatusIdle || !reflect.DeepEqual(in.Decided, v2) {
		t.Errorf("excluded node 3 is %v with Decided %v, want Idle with %v", in.Status, in.Decided, v2)
	}
	for _, n := range []NodeID{1, 2} {
		if d := c.g(n).Info().Decided; !reflect.DeepEqual(d, View{}) {
			t.Errorf("member %d has Decided %v, want zero", n, d)
		}
	}
	// Back in the group, nothing is decided beyond its view.
	if err := c.g(3).Join([]NodeID{1}); err != nil {
		t.Fatal(err)
	}
	c.pump()
	assertLastView(t, c, View{ID: 3, Members: procs(3)}, 1, 2, 3)
	if d := c.g(3).Info().Decided; !reflect.DeepEqual(d, View{}) {
		t.Errorf("rejoined node 3 has Decided %v, want zero", d)
	}
}

// Rule 10. A member stuck in an old view that probes a member that moved
// on learns where it stands: the decision that ended its view if the peer
// has it, Stale if the group is further on without it.
func TestProbeFromOldView(t *testing.T) {
	t.Run("one view behind, in the decision", func(t *testing.T) {
		c := newCluster(t, Config{}, procs(3)...)
		c.multicast(2, "a")
		c.drop = func(m Message) bool { return m.Type == MsgCommit && m.To.Node == 3 }
		if err := c.add(proc(4)).Join([]NodeID{1}); err != nil {
			t.Fatal(err)
		}
		c.pump()
		c.drop = nil
		if in := c.g(3).Info(); in.Status != StatusFlushing || in.View.ID != 1 {
			t.Fatalf("node 3 is %v in %v, want Flushing in view 1", in.Status, in.View)
		}
		c.g(3).Probe(2)
		c.pump()
		assertAnswered(t, c, MsgCommit, proc(2), proc(3))
		assertLastView(t, c, View{ID: 2, Members: procs(4)}, 1, 2, 3, 4)
		assertSameDeliveries(t, c, 1, []string{"a"}, 1, 2, 3)
	})
	t.Run("one view behind, not in the decision", func(t *testing.T) {
		c := newCluster(t, Config{}, procs(3)...)
		c.drop = cutOff(3)
		c.g(1).Suspect(proc(3))
		c.pump()
		c.drop = nil
		v2 := View{ID: 2, Members: procs(2)}
		assertLastView(t, c, v2, 1, 2)
		c.g(3).Probe(1)
		c.pump()
		assertAnswered(t, c, MsgCommit, proc(1), proc(3))
		if in := c.g(3).Info(); in.Status != StatusIdle || c.count(3, EventExcluded) != 1 || !reflect.DeepEqual(in.Decided, v2) {
			t.Errorf("node 3 is %v with Decided %v, events %v; want Idle, excluded by %v", in.Status, in.Decided, c.events[3], v2)
		}
	})
	t.Run("two views behind", func(t *testing.T) {
		c := newCluster(t, Config{}, procs(3)...)
		c.drop = cutOff(3)
		c.g(1).Suspect(proc(3))
		c.pump()
		if err := c.add(proc(4)).Join([]NodeID{1}); err != nil {
			t.Fatal(err)
		}
		c.pump()
		c.drop = nil
		assertLastView(t, c, View{ID: 3, Members: []Process{proc(1), proc(2), proc(4)}}, 1, 2, 4)
		c.g(3).Probe(1)
		c.pump()
		assertAnswered(t, c, MsgStale, proc(1), proc(3))
		if in := c.g(3).Info(); in.Status != StatusIdle || c.count(3, EventExcluded) != 1 || in.View.ID != 0 {
			t.Errorf("node 3 is %v in %v, events %v; want Idle and excluded", in.Status, in.View, c.events[3])
		}
	})
}

// assertAnswered fails unless from sent to a message of type typ.
func assertAnswered(t *testing.T, c *cluster, typ MsgType, from, to Process) {
	t.Helper()
	if !slices.ContainsFunc(c.sentOf(typ), func(m Message) bool { return m.From == from && m.To == to }) {
		t.Errorf("%v sent no %v to %v", from, typ, to)
	}
}

// A member partitioned away while the rest of the group moved on and then
// all left learns from any of them, now outside the group, that it was
// excluded: otherwise it would wait in its old view forever, as nobody
// holding a later view is left in the group to tell it.
func TestFormerMemberTellsStrandedMember(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	c.drop = func(m Message) bool { return m.To.Node == 3 || m.From.Node == 3 }
	c.g(1).Suspect(proc(3))
	c.g(2).Suspect(proc(3))
	c.pump()
	if v := c.g(1).Info().View; !slices.Equal(v.Members, []Process{proc(1), proc(2)}) {
		t.Fatalf("setup: nodes 1 and 2 are in %v", v)
	}
	for _, n := range []NodeID{2, 1} {
		if err := c.g(n).Leave(); err != nil {
			t.Fatal(err)
		}
		c.pump()
		c.tick(3 * c.g(1).cfg.ViewChangeTicks)
	}
	if s1, s2 := c.g(1).Info().Status, c.g(2).Info().Status; s1 != StatusIdle || s2 != StatusIdle {
		t.Fatalf("setup: nodes 1 and 2 are %v and %v, want both out", s1, s2)
	}
	if in := c.g(3).Info(); in.Status == StatusIdle || in.View.ID != 1 {
		t.Fatalf("setup: node 3 is %v in %v, want still in view 1", in.Status, in.View)
	}
	// The partition heals; node 3 suspects the others and runs a view
	// change for view 1, which nobody left in the group can answer.
	c.drop = nil
	c.g(3).Suspect(proc(1))
	c.tick(4 * c.g(3).cfg.ViewChangeTicks)
	if st := c.g(3).Info().Status; st != StatusIdle {
		t.Fatalf("node 3 is %v, want excluded (Idle)", st)
	}
	if !slices.ContainsFunc(c.events[3], func(e Event) bool { return e.Type == EventExcluded }) {
		t.Fatal("node 3 had no EventExcluded")
	}
}
