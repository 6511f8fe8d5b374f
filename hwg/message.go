package hwg

import "fmt"

// MsgType is the kind of a protocol message.
type MsgType uint8

// Protocol messages. Normal case: Forward, Order, Ack. View change (the
// flush): Prepare, PrepareOK, Accept, AcceptOK, Commit. Membership requests:
// Join, Leave, Suspicion. Catch-up: Sync, Stale.
const (
	MsgForward   MsgType = iota + 1 // sender → coordinator: a multicast to sequence
	MsgOrder                        // coordinator → member: sequenced entries + commit point
	MsgAck                          // member → coordinator: highest contiguous seq held
	MsgPrepare                      // proposer → old members: stop, report what you hold (Hold.up)
	MsgPrepareOK                    // member → proposer: promise + flush state
	MsgAccept                       // proposer → old members: accept this decision
	MsgAcceptOK                     // member → proposer: accepted
	MsgCommit                       // proposer → old and new members: the decision is chosen
	MsgJoin                         // joiner → member: add me
	MsgLeave                        // member → coordinator: remove me
	MsgSuspicion                    // member → proposer: I suspect Suspect
	MsgSync                         // lagging member → peer: send me what ended my view
	MsgStale                        // peer → lagging process: the group went on without you
)

var msgTypeNames = [...]string{"", "Forward", "Order", "Ack", "Prepare", "PrepareOK", "Accept",
	"AcceptOK", "Commit", "Join", "Leave", "Suspicion", "Sync", "Stale"}

func (t MsgType) String() string {
	if int(t) < len(msgTypeNames) && t != 0 {
		return msgTypeNames[t]
	}
	return fmt.Sprintf("MsgType(%d)", uint8(t))
}

// Message is the single wire type of the HWG protocol. Which fields are set
// depends on Type; unused fields are zero and omitted on the wire.
//
// From and To carry incarnations: a receiver drops a message addressed to
// another incarnation of itself, and members ignore senders that are not in
// their view (except where a message type says otherwise).
type Message struct {
	Type  MsgType `msgpack:"t"`
	Group GroupID `msgpack:"g"`
	From  Process `msgpack:"f"`
	To    Process `msgpack:"o"`
	// View is the sender's current view id (for Join, zero).
	View ViewID `msgpack:"v,omitempty"`

	// Forward: the multicast. Order: entries starting right after Prev.
	Entries []Entry `msgpack:"e,omitempty"`
	// Order: sequence number just before Entries[0] (or the coordinator's
	// last seq when Entries is empty). Ack: highest contiguous seq held.
	Seq uint64 `msgpack:"q,omitempty"`
	// Order: commit point (delivered once a majority holds). Ack: the
	// commit point the member knows.
	Commit uint64 `msgpack:"c,omitempty"`
	// Order: seq held by every member (may be garbage collected).
	Stable uint64 `msgpack:"s,omitempty"`

	// View change.
	Ballot   Ballot      `msgpack:"b,omitempty"`
	State    *FlushState `msgpack:"fs,omitempty"`
	Decision *Decision   `msgpack:"d,omitempty"`

	// Suspicion: the suspected process. Join: the contacted member may relay
	// the request on behalf of Subject.
	Subject Process `msgpack:"x,omitempty"`
}

// Entry is one multicast, sequenced (Seq > 0) or not yet (Seq == 0).
type Entry struct {
	Seq     uint64 `msgpack:"q,omitempty"`
	ID      MsgID  `msgpack:"i"`
	Payload []byte `msgpack:"p"`
}

// FlushState is what a member reports when it promises a ballot: everything
// of the old view it holds that may not be stable, its own multicasts not
// yet seen sequenced, and the proposal it accepted last, if any.
type FlushState struct {
	Held     uint64    `msgpack:"h"`            // highest contiguous seq held
	Log      []Entry   `msgpack:"l,omitempty"`  // sequenced entries held above the GC point
	Pending  []Entry   `msgpack:"p,omitempty"`  // own unsequenced multicasts, FIFO
	Accepted Ballot    `msgpack:"ab,omitempty"` // ballot of Decision
	Decision *Decision `msgpack:"ad,omitempty"` // last accepted, nil if none
	Leaving  bool      `msgpack:"lv,omitempty"` // the member asked to leave
	Holding  bool      `msgpack:"hd,omitempty"` // kept despite leaving: must not leave the group empty
}

// Decision ends view Prev: the complete tail of Prev's message sequence and
// the next view. Every member of Prev that installs Next delivers exactly
// Final (minus what it delivered already) first.
type Decision struct {
	Prev ViewID `msgpack:"pv"`
	// Last is the seq of the old view's last message. Final may start
	// above a member's delivered point (entries every member holds are
	// garbage collected) and may be empty; each member delivers up to Last.
	Last  uint64    `msgpack:"ls,omitempty"`
	Final []Entry   `msgpack:"f,omitempty"` // contiguous sequenced entries ending at Last
	Next  View      `msgpack:"n"`
	Left  []Process `msgpack:"l,omitempty"` // members of Prev that left voluntarily
	// Joined are the members of Next that were not in Prev. A joining
	// process installs only a decision that lists it here: being in Next
	// as a continuing member belongs to an earlier membership of its own.
	Joined []Process `msgpack:"j,omitempty"`
}

// Size is a rough byte count used for batching and memory accounting.
func (e Entry) Size() int { return len(e.Payload) + 48 }
