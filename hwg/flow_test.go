package hwg

import (
	"errors"
	"fmt"
	"testing"
)

// A member's waiting multicasts are bounded in bytes: beyond
// MaxPendingBytes, Multicast says ErrBusy and takes nothing; once the
// coordinator sequences them there is room again.
func TestMulticastBusyBeyondPendingBytes(t *testing.T) {
	c := newCluster(t, Config{MaxPendingBytes: 10}, procs(3)...)
	g := c.g(2)
	c.drop = func(m Message) bool { return m.Type == MsgForward } // nothing reaches the sequencer
	if err := g.Multicast(make([]byte, 6)); err != nil {
		t.Fatal(err)
	}
	if err := g.Multicast(make([]byte, 6)); !errors.Is(err, ErrBusy) {
		t.Fatalf("second multicast over the limit: %v, want ErrBusy", err)
	}
	c.drop = nil
	c.tick(g.cfg.RetransmitTicks) // the forward is retransmitted and sequenced
	if err := g.Multicast(make([]byte, 6)); err != nil {
		t.Fatalf("after the first was sequenced: %v", err)
	}
	c.tick(10)
	if got := len(c.delivered(1, 1)); got != 2 {
		t.Fatalf("delivered %d, want the 2 multicasts that were taken", got)
	}
}

// The unstable window is bounded in bytes; forwards that arrive while it is
// full are parked and sequenced as soon as acks open it, without waiting
// for the senders to retransmit.
func TestParkedForwardsSequencedWhenWindowOpens(t *testing.T) {
	c := newCluster(t, Config{MaxUnstableBytes: 4, RetransmitTicks: 1000}, procs(3)...)
	// Hold the members' acks so the window stays full.
	var held []Message
	c.drop = func(m Message) bool {
		if m.Type == MsgAck {
			held = append(held, m)
			return true
		}
		return false
	}
	c.multicast(2, "aaaa") // fills the window
	c.pump()
	c.multicast(3, "bbbb")
	c.multicast(3, "cccc")
	c.pump()
	if got := c.g(1).Info().Held; got != 1 {
		t.Fatalf("sequenced %d with the window full, want 1", got)
	}
	if parked := len(c.g(1).co.parked); parked != 2 {
		t.Fatalf("parked %d forwards, want 2", parked)
	}
	c.drop = nil
	c.queue = append(c.queue, held...)
	c.pump() // no tick: acks alone must drain the parked forwards
	if got := c.g(1).Info().Held; got != 3 {
		t.Fatalf("sequenced %d after the window opened, want 3", got)
	}
}

// Two acks that do not advance while a member is behind what was sent mean
// a lost Order: the coordinator resends at once instead of at the next
// retransmission tick.
func TestFastRetransmitOnDuplicateAcks(t *testing.T) {
	c := newCluster(t, Config{RetransmitTicks: 1000}, procs(3)...)
	lost := false
	c.drop = func(m Message) bool {
		// Lose the first Order to node 3 that carries entries.
		if !lost && m.Type == MsgOrder && m.To.Node == 3 && len(m.Entries) > 0 {
			lost = true
			return true
		}
		return false
	}
	c.multicast(1, "first")
	c.pump()
	c.multicast(1, "second")
	c.pump()
	c.multicast(1, "third")
	c.pump()
	if got := c.delivered(3, 1); len(got) != 3 {
		t.Fatalf("node 3 delivered %v without any tick, want all three", got)
	}
}

// No single payload may exceed MaxPendingBytes: a flush ships pending
// multicasts in one message, which must fit in a frame.
func TestMulticastTooLarge(t *testing.T) {
	c := newCluster(t, Config{MaxPendingBytes: 10}, procs(3)...)
	if err := c.g(2).Multicast(make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("11 bytes with a 10-byte limit: %v, want ErrTooLarge", err)
	}
	c.multicast(2, "0123456789") // exactly the limit is fine
	c.tick(5)
	if got := c.delivered(1, 1); len(got) != 1 {
		t.Fatalf("delivered %v, want the one that was taken", got)
	}
}

// Fast retransmit happens once per loss: the acks that resent Orders draw
// must not trigger further resends until the member advances, or resends
// and acks feed each other in a storm (found under load: gigabytes of
// Orders).
func TestFastRetransmitOncePerLoss(t *testing.T) {
	c := newCluster(t, Config{RetransmitTicks: 1000}, procs(3)...)
	c.drop = func(m Message) bool { return m.Type == MsgOrder && m.To.Node == 3 } // node 3 stays behind
	for i := range 3 {
		c.multicast(1, fmt.Sprint("m", i))
		c.pump()
	}
	before := len(c.sentOf(MsgOrder))
	for range 10 { // node 3 keeps acking seq 0
		if err := c.g(1).Step(Message{Type: MsgAck, Group: testGroup, From: proc(3), To: proc(1), View: 1}); err != nil {
			t.Fatal(err)
		}
		c.collect()
	}
	// Three entries fit one batch, so one episode is exactly one Order.
	if resent := len(c.sentOf(MsgOrder)) - before; resent != 1 {
		t.Fatalf("ten duplicate acks caused %d resent Orders, want 1 (one episode)", resent)
	}
}
