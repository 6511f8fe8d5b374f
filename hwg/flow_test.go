package hwg

import (
	"errors"
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
