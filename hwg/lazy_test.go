package hwg

import (
	"fmt"
	"slices"
	"testing"
)

// acksFrom returns the Acks node n sent, in order.
func acksFrom(c *cluster, n NodeID) []Message {
	return slices.DeleteFunc(c.sentOf(MsgAck), func(m Message) bool { return m.From.Node != n })
}

// With LazyAcks an Order that brings a member nothing to hold (the commit
// announcement) is acknowledged at the member's next tick, while the
// Order that brings an entry is acknowledged at once; without it, both at
// once.
func TestLazyAcksWaitForTheTick(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		t.Run(fmt.Sprint("lazy=", lazy), func(t *testing.T) {
			c := newCluster(t, Config{LazyAcks: lazy, RetransmitTicks: 1000}, procs(3)...)
			c.multicast(1, "a")
			c.pump()
			if got := c.delivered(3, 1); !slices.Equal(got, []string{"a"}) {
				t.Fatalf("node 3 delivered %q, want [a]", got)
			}
			acks := acksFrom(c, 3)
			want := 2 // the entry's, then the commit announcement's
			if lazy {
				want = 1
			}
			if len(acks) != want || acks[0].Seq != 1 {
				t.Fatalf("node 3 acked %v before any tick, want %d acks, the first of seq 1", acks, want)
			}
			if lazy {
				if got := c.g(1).co.knows[proc(3)]; got != 0 {
					t.Fatalf("the coordinator thinks node 3 knows commit %d before its tick, want 0", got)
				}
			}
			c.tick(1)
			acks = acksFrom(c, 3)
			if last := acks[len(acks)-1]; last.Commit != 1 || len(acks) != 2 {
				t.Fatalf("after a tick node 3 acked %v, want 2 acks, the last with commit 1", acks)
			}
			if got := c.g(1).co.knows[proc(3)]; got != 1 {
				t.Fatalf("the coordinator thinks node 3 knows commit %d, want 1", got)
			}
			c.tick(3)
			if got := len(acksFrom(c, 3)); got != 2 {
				t.Fatalf("an idle group went on acking: %d acks, want 2", got)
			}
		})
	}
}

// An ack owed for a commit announcement rides on the next ack of an
// entry: no separate frame is left for the tick.
func TestLazyAckRidesOnTheNext(t *testing.T) {
	c := newCluster(t, Config{LazyAcks: true, RetransmitTicks: 1000}, procs(3)...)
	c.multicast(1, "a")
	c.pump()
	c.multicast(1, "b")
	c.pump()
	c.tick(1)
	acks := acksFrom(c, 3)
	// a's ack, b's ack (carrying commit 1), then at the tick the owed one
	// for b's commit announcement.
	if len(acks) != 3 || acks[1].Seq != 2 || acks[1].Commit != 1 || acks[2].Commit != 2 {
		t.Fatalf("node 3 acked %v", acks)
	}
	if got := c.delivered(3, 1); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("node 3 delivered %q, want [a b]", got)
	}
}

// With LazyRetransmit a retransmission tick leaves alone what was sent
// since the previous one (it may be in flight), and resends what a member
// still lacks of what was sent before it.
func TestLazyRetransmitSkipsWhatIsInFlight(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		t.Run(fmt.Sprint("lazy=", lazy), func(t *testing.T) {
			c := newCluster(t, Config{LazyAcks: true, LazyRetransmit: lazy, RetransmitTicks: 1}, procs(3)...)
			// Node 3 hears nothing: its Orders are in flight (or lost)
			// as far as the coordinator can tell.
			c.drop = func(m Message) bool { return m.To.Node == 3 }
			c.multicast(1, "a")
			c.pump()
			orders := func() int {
				return len(slices.DeleteFunc(c.sentOf(MsgOrder), func(m Message) bool { return m.To.Node != 3 || len(m.Entries) == 0 }))
			}
			sent := orders()
			c.tick(1)
			resent := orders() - sent
			if lazy && resent != 0 {
				t.Fatalf("the first tick after sending resent %d Orders with entries to node 3, want 0", resent)
			}
			if !lazy && resent != 1 {
				t.Fatalf("the first tick after sending resent %d Orders with entries to node 3, want 1", resent)
			}
			c.drop = nil
			c.tick(1)
			if got := c.delivered(3, 1); !slices.Equal(got, []string{"a"}) {
				t.Fatalf("node 3 delivered %q by the second tick, want [a]", got)
			}
		})
	}
}

// A member that holds everything sent before the last retransmission tick
// and lacks only the commit point (its ack of a commit-only Order was
// lost, or waits for its tick) is sent the commit point, not the entries
// sent since, which may still be in flight; those are resent at the next
// tick if they were lost.
func TestLazyRetransmitSendsOnlyTheCommit(t *testing.T) {
	c := newCluster(t, Config{LazyAcks: true, LazyRetransmit: true, RetransmitTicks: 1}, procs(3)...)
	c.multicast(1, "a")
	c.pump() // node 3 holds a and has acked it; it owes the ack of a's commit
	c.drop = func(m Message) bool { return m.To.Node == 3 || m.From.Node == 3 }
	c.tick(1) // marks a as sent; node 3's owed ack is lost
	c.multicast(1, "b")
	c.pump() // b's Order to node 3 is in flight
	withEntries := func() int {
		return len(slices.DeleteFunc(c.sentOf(MsgOrder), func(m Message) bool { return m.To.Node != 3 || len(m.Entries) == 0 }))
	}
	orders, before := len(c.sentOf(MsgOrder)), withEntries()
	c.tick(1)
	if n := withEntries() - before; n != 0 {
		t.Fatalf("the tick resent %d Orders with entries to node 3, which lacked only a's commit point", n)
	}
	if len(c.sentOf(MsgOrder)) == orders {
		t.Fatal("the tick did not tell node 3 the commit point")
	}
	c.drop = nil
	c.tick(1)
	if got := c.delivered(3, 1); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("node 3 delivered %q once b's Order could reach it, want [a b]", got)
	}
}

// The fast retransmit still works with both: the Orders that show a
// member a gap are acknowledged at once.
func TestLazyFastRetransmit(t *testing.T) {
	c := newCluster(t, Config{LazyAcks: true, LazyRetransmit: true, RetransmitTicks: 1000}, procs(3)...)
	lost := false
	c.drop = func(m Message) bool {
		if !lost && m.Type == MsgOrder && m.To.Node == 3 && len(m.Entries) > 0 {
			lost = true
			return true
		}
		return false
	}
	for _, p := range []string{"first", "second", "third"} {
		c.multicast(1, p)
		c.pump()
	}
	if got := c.delivered(3, 1); len(got) != 3 {
		t.Fatalf("node 3 delivered %v without any tick, want all three", got)
	}
}
