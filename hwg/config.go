package hwg

import "fmt"

// Config parameterises one Group. Durations are in ticks: the caller decides
// how long a tick is (the runtime uses Config.TickInterval of the node; the
// simulator uses virtual time). Zero fields take the documented default.
type Config struct {
	// Group is the group's id ("h/..." by convention).
	Group GroupID
	// Self is this process. Self.Node must be non-zero and Self.Inc ≥ 1.
	Self Process
	// Installed is the highest view of the group that an earlier
	// membership of this process installed, in a Group no longer kept
	// (0: none). The Group installs no view up to it again: a lagging
	// member may resend the old decision that admitted this process
	// before, which a new Group would otherwise take for its admission
	// (a Group kept across memberships remembers it itself).
	Installed ViewID

	// RetransmitTicks is how often unacknowledged protocol messages
	// (forwards, orders, prepares, accepts, joins, leaves) are sent again.
	// Default 2. Lower recovers faster from loss at the cost of duplicates.
	RetransmitTicks int
	// ViewChangeTicks bounds how long a view change may take before a member
	// takes it over with a higher ballot. A member of rank r waits
	// ViewChangeTicks·(1+r), so members do not duel. Default 10; keep it
	// several times the round-trip time in ticks.
	ViewChangeTicks int
	// FlushWaitTicks is how long a proposer that already has a majority
	// waits for the remaining unsuspected members before excluding them.
	// Default 4; it must be below ViewChangeTicks.
	FlushWaitTicks int
	// JoinRetryTicks is how often a joiner asks its contacts again.
	// Default 4.
	JoinRetryTicks int
	// MaxBatch caps the entries in one Order or Forward. Default 256.
	MaxBatch int
	// MaxUnstable caps sequenced-but-not-stable messages: the coordinator
	// stops sequencing (senders keep retrying) until slow members catch up,
	// bounding every member's log. Default 8192.
	MaxUnstable uint64
	// MaxUnstableBytes caps the payload bytes of those messages. Default
	// 4 MiB. A view change ships a member's unstable log and pending
	// multicasts in one message, so MaxUnstableBytes plus members times
	// MaxPendingBytes must stay below the transport's frame limit.
	MaxUnstableBytes int
	// MaxPendingBytes caps the payload bytes of this member's multicasts
	// that wait to be sequenced (or for the next view); beyond it Multicast
	// returns ErrBusy. It is also the largest payload (ErrTooLarge).
	// Default 1 MiB.
	MaxPendingBytes int
	// ManualBlockOK makes the application answer every Block event with
	// BlockOK (Hold.up / HoldOK.down). When false the group answers for it
	// at once. A member that never answers is excluded by the view change
	// after FlushWaitTicks.
	ManualBlockOK bool
	// LazyAcks delays a member's ack of an Order that brought it nothing
	// to hold (typically only a new commit point) to its next tick, or to
	// its next ack, whichever comes first. Every ack of an entry, and of an
	// Order that shows a gap, still leaves at once. Under load the commit
	// announcements otherwise draw one frame per member each, which change
	// nothing but the coordinator's idea of the commit point a member
	// knows, and their acks, not advancing, trigger spurious fast
	// retransmits. hwg.Node sets it.
	LazyAcks bool
	// LazyRetransmit makes a retransmission tick resend to a member only
	// if it lacks entries or a commit point sent before the previous
	// retransmission tick: what was sent since may be in flight, not lost.
	// A lost Order is then resent after one to two RetransmitTicks instead
	// of up to one. Without it, under load every tick resent each member
	// the whole window in flight. hwg.Node sets it.
	//
	// Both default to off in the pure core so that the simulator's seeded
	// schedules (and the fixed-seed tests built on them) stay as they
	// were; TestSimulationsLazy runs the simulator with both on.
	LazyRetransmit bool

	// brokenFlush is a mutation for tests only (set through export_test.go):
	// the member on this node skips the entries of a decision's tail that
	// it did not hold itself, breaking virtual synchrony. It proves the
	// simulator and checkers catch a broken flush.
	brokenFlush NodeID
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.Group == "" {
		return out, fmt.Errorf("%w: empty Group", ErrInvalidConfig)
	}
	if out.Self.Node == 0 || out.Self.Inc == 0 {
		return out, fmt.Errorf("%w: Self must have a non-zero Node and Inc, got %v", ErrInvalidConfig, out.Self)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&out.RetransmitTicks, 2)
	def(&out.ViewChangeTicks, 10)
	def(&out.FlushWaitTicks, 4)
	def(&out.JoinRetryTicks, 4)
	if out.FlushWaitTicks >= out.ViewChangeTicks {
		// The proposer would still be waiting for the stragglers when the
		// others' view-change timeout fires and a higher ballot restarts
		// the flush: forever, if a member never answers.
		return out, fmt.Errorf("%w: FlushWaitTicks (%d) must be below ViewChangeTicks (%d)",
			ErrInvalidConfig, out.FlushWaitTicks, out.ViewChangeTicks)
	}
	def(&out.MaxBatch, 256)
	if out.MaxUnstable == 0 {
		out.MaxUnstable = 8192
	}
	def(&out.MaxUnstableBytes, 4<<20)
	def(&out.MaxPendingBytes, 1<<20)
	return out, nil
}
