package rsm

import (
	"errors"
	"io"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// StateMachine is one replicated object's state. The Node calls its
// methods from one goroutine at a time per object (never two at once for
// one object), in the object's total order: a worker of its pool, or,
// for commands an idle object receives, the goroutine that routes the
// node's deliveries. So a slow Apply or Query holds up the deliveries of
// the node's other objects while it runs, once: an object whose turn
// there took over a millisecond is left to the workers from then on.
// Apply and Query must therefore never wait for this node's deliveries
// (a Propose or Read on one of its objects, say, or its own object's
// Close, which waits for the turn under way): that wait would never end.
// Snapshot and Restore never run on the router.
//
// Apply must be deterministic: the same commands in the same order from
// the same state give the same results and state on every replica. An
// error from Apply is the command's result (returned to the proposer); it
// must not leave the state half changed.
//
// Snapshot writes the whole state to w; Restore replaces the state with
// one read from r. Both stream: state larger than memory passes through
// in chunks. While Snapshot runs the object applies nothing.
type StateMachine interface {
	Apply(cmd []byte) ([]byte, error)
	Snapshot(w io.Writer) error
	Restore(r io.Reader) error
}

// Querier is implemented by state machines that answer Read and
// StaleRead. Query must not change the state.
type Querier interface {
	Query(q []byte) ([]byte, error)
}

// ObjectID names a replicated object. Its LWG is "l/" + the id.
type ObjectID string

// LWG returns the id of the object's light-weight group.
func (id ObjectID) LWG() lwg.ID { return lwg.ID("l/" + string(id)) }

// OriginID names a command that may be proposed more than once (by
// several nodes, or again after ErrUnknown) but must be applied once:
// Source names the sender (a router, a client, another object), Seq
// numbers its commands and must increase (several may be in flight at
// once, and arrive in any order). Every replica keeps, for each Source,
// the highest Seq applied and the Seqs applied in the 64 below it, with
// their results, in its snapshots too (see ProposeFrom).
type OriginID struct {
	Source string
	Seq    uint64
}

// Factory makes the empty state machine of a newly opened object.
type Factory func(id ObjectID) (StateMachine, error)

// EventType is the kind of an Event.
type EventType uint8

// What a Node reports to its observers.
const (
	// EventOpened: the object is open here and its state is ready (it was
	// created, restored from a donor's snapshot, or found current).
	EventOpened EventType = iota + 1
	// EventView: the object installed View, with Joined and Left.
	EventView
	// EventSnapshotTaken: a snapshot at Index was written (Bytes long).
	EventSnapshotTaken
	// EventSnapshotSent: Bytes of a snapshot were streamed to Peer.
	EventSnapshotSent
	// EventSnapshotReceived: the object restored from Peer's snapshot at
	// Index (Bytes long).
	EventSnapshotReceived
	// EventClosed: the object was closed here (Object.Close). A node
	// excluded from an object's group does not close it: it joins again
	// (EventView follows, and EventSnapshotReceived once restored).
	EventClosed
	// EventSeeded: no member of the object's view held its state, and a
	// claim round went on from the best state a member had kept: this
	// one's, at Index. Commands that only departed members applied are
	// lost (see the claim rounds in ARCHITECTURE). Err is ErrStartedOver
	// if no member had any state and the object started over empty.
	// Reported by the member that seeds, so once per round.
	EventSeeded
)

var eventNames = [...]string{"", "Opened", "View", "SnapshotTaken", "SnapshotSent",
	"SnapshotReceived", "Closed", "Seeded"}

func (t EventType) String() string {
	if int(t) < len(eventNames) && t != 0 {
		return eventNames[t]
	}
	return "EventType(?)"
}

// Event is one observable change of one object.
type Event struct {
	Type         EventType
	Object       ObjectID
	View         lwg.View
	Joined, Left []hwg.Process
	Peer         hwg.Process
	Index        uint64 // applied commands
	Bytes        int64
	Err          error
}

// Errors. Propose and Read wrap them with %w.
var (
	// ErrClosed: the Node or the object is closed.
	ErrClosed = errors.New("rsm: closed")
	// ErrNotApplied: the command was never sent, so it was not and will
	// not be applied (the context ended while it waited to be sent).
	ErrNotApplied = errors.New("rsm: command not applied")
	// ErrStartedOver, in an EventSeeded: nobody had any state of the
	// object, which started over empty.
	ErrStartedOver = errors.New("rsm: object started over from an empty state")
	// ErrUnknown: the command was sent but its outcome is unknown (the
	// context ended, or this node left the group, before it was applied
	// here): it may have been applied or not.
	ErrUnknown = errors.New("rsm: outcome unknown")
	// ErrNotOpen: the object is not open on this node.
	ErrNotOpen = errors.New("rsm: object not open here")
	// ErrNoQuery: the state machine does not implement Querier.
	ErrNoQuery = errors.New("rsm: state machine answers no queries")
	// ErrNotReady: the object's state has not arrived yet (StaleRead on a
	// joiner before its snapshot is restored).
	ErrNotReady = errors.New("rsm: state not ready")
	// ErrTooLarge: a command or query over Config.MaxCommandBytes.
	ErrTooLarge = errors.New("rsm: command too large")
	// ErrDuplicate: ProposeFrom of an OriginID refused without applying
	// it: either its Seq is 64 or more below the highest applied from its
	// Source (it may or may not have been applied: the window no longer
	// tells), or it was applied and its result is no longer kept.
	ErrDuplicate = errors.New("rsm: command already applied or too old")
	// ErrBusy: the object already has Config.MaxInFlight calls (or
	// MaxInFlightBytes of them) awaiting their outcome on this node. The
	// call was not queued: the error also wraps ErrNotApplied.
	ErrBusy = errors.New("rsm: too many calls in flight")
	// ErrInvalidConfig: a Config field is out of range.
	ErrInvalidConfig = errors.New("rsm: invalid config")
	// ErrSnapshotFormat: a snapshot, local or from a donor, was written
	// by a newer build in a layout this one cannot read. Nothing is
	// changed: Open returns it for a local snapshot, and a joiner logs it,
	// drops the transfer before storing anything (its own snapshot stays
	// current), and asks for the state again after a pause (ten ticks of
	// Config.TickInterval), as long as it waits. Run the newer build.
	ErrSnapshotFormat = errors.New("rsm: snapshot in a newer format")
)
