package hwg

import (
	"fmt"
	"time"
)

// EventType is the kind of an Event.
type EventType uint8

// Events a Group hands to the layer above, in the order they happened.
const (
	// EventInstall: View is the newly installed view. Every delivery that
	// follows belongs to it until the next EventInstall.
	EventInstall EventType = iota + 1
	// EventDeliver: Msg with Payload, in total order, in the current view.
	EventDeliver
	// EventBlock: Hold.up. A view change has begun; the application should
	// stop sending and answer with Group.BlockOK(View.ID) (only with
	// Config.ManualBlockOK). Multicasts made after BlockOK are sent in the
	// next view.
	EventBlock
	// EventSend: Msg left this member in View.ID (a queued multicast leaves
	// when the next view is installed). For tracing.
	EventSend
	// EventLeft: this member left the group as it asked. Terminal until Join.
	EventLeft
	// EventExcluded: the group went on without this member (it was
	// suspected or partitioned away). Terminal until Join, which rejoins as
	// a new member with no state from before.
	EventExcluded
)

var eventNames = [...]string{"", "Install", "Deliver", "Block", "Send", "Left", "Excluded"}

func (t EventType) String() string {
	if int(t) < len(eventNames) && t != 0 {
		return eventNames[t]
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is one upcall. View is the installed view for EventInstall and the
// current view otherwise (only View.ID is meaningful then).
type Event struct {
	Type    EventType
	Group   GroupID
	View    View
	Msg     MsgID
	Payload []byte
	// EventInstall only: members of View not in the previous view, and
	// members of the previous view that left voluntarily. A joining
	// process sees itself in Joined.
	Joined, Left []Process
	// At is when a Node emitted the event (before any frame it caused left
	// the node), for merging traces of several processes. The pure core
	// leaves it zero.
	At time.Time
}

// Ready is what a Group asks its caller to do: send Messages (in any order,
// over any transport; loss, duplication and reordering are tolerated) and
// hand Events to the application in order. The caller owns both slices;
// payloads are shared and must not be modified.
type Ready struct {
	Messages []Message
	Events   []Event
}

// Empty reports whether there is nothing to do.
func (r Ready) Empty() bool { return len(r.Messages) == 0 && len(r.Events) == 0 }
