package lwg

import (
	"fmt"
	"slices"

	"github.com/lwgkit/lwgkit/hwg"
)

// ID names a light-weight group. By convention LWG ids begin with "l/".
type ID string

// View is an installed LWG view. Members[0] is the LWG's coordinator: it
// starts switches and announces the LWG on a new carrier.
//
// View ids strictly increase per LWG but are not consecutive: the high 32
// bits are the directory version of the LWG's life (a new life begins when
// an LWG whose carrier died is created again), the low 32 bits count views
// within the life.
type View struct {
	ID      uint64        `msgpack:"id"`
	Members []hwg.Process `msgpack:"m"`
}

// Contains reports whether p is a member.
func (v View) Contains(p hwg.Process) bool { return slices.Contains(v.Members, p) }

// Coordinator returns Members[0], or the zero Process for an empty view.
func (v View) Coordinator() hwg.Process {
	if len(v.Members) == 0 {
		return hwg.Process{}
	}
	return v.Members[0]
}

// Clone returns a deep copy.
func (v View) Clone() View { return View{ID: v.ID, Members: slices.Clone(v.Members)} }

func (v View) String() string { return fmt.Sprintf("v%d.%d%v", v.ID>>32, uint32(v.ID), v.Members) }

// firstViewID is the first view id of an LWG life bound at directory
// version ver.
func firstViewID(ver uint64) uint64 { return ver<<32 | 1 }

// EventType is the kind of an Event.
type EventType uint8

// Events the Core hands to the application, per LWG, in order.
const (
	// EventInstall: View is the newly installed view of LWG; deliveries
	// that follow belong to it. HWG and HWGView name the carrier and its
	// view at this point. Joined and Left list the changes (a joining
	// process sees itself in Joined); members that vanished with a carrier
	// view change are in neither.
	EventInstall EventType = iota + 1
	// EventDeliver: Payload from From, in the LWG's total order.
	EventDeliver
	// EventBlock: Hold.up. The LWG is flushing (a join, leave, switch, or a
	// view change of its carrier); the application should stop sending and
	// answer with HoldOK (only with Config.ManualHoldOK). Multicasts after
	// HoldOK wait for the next view.
	EventBlock
	// EventSend: a multicast left this member in View (ID only). Payload
	// is the application's payload. For tracing.
	EventSend
	// EventLeft: this member left the LWG as it asked.
	EventLeft
	// EventExcluded: this node lost its carrier membership (it was
	// suspected, partitioned or left the HWG); the LWG went on without it.
	// A Join starts again as a new member.
	EventExcluded
)

var eventNames = [...]string{"", "Install", "Deliver", "Block", "Send", "Left", "Excluded"}

func (t EventType) String() string {
	if int(t) < len(eventNames) && t != 0 {
		return eventNames[t]
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is one upcall for one LWG.
type Event struct {
	Type    EventType
	LWG     ID
	View    View
	From    hwg.Process // EventDeliver: the sender
	Payload []byte      // EventDeliver, EventSend
	// EventInstall only.
	Joined, Left []hwg.Process
	// Vanished: the members of the view before that a carrier view
	// change dropped (they did not leave; failure multiplexing), or, in
	// the first install after the LWG ended on its carrier that way (its
	// view ids go on), the members of its last view; in the first install
	// on a switch's new carrier, the members that moved and are not in
	// it (they crashed or were cut off during the switch: the announced
	// ones missing, or, when none made it and a joiner starts the LWG
	// there, all of them). A layer that keeps
	// state learns who may hold it, behind a partition or crashed, even
	// when no member of the new view saw them (rsm's claim rounds wait
	// for them).
	Vanished []hwg.Process
	HWG      hwg.GroupID
	HWGView  hwg.ViewID
	// Tag: EventDeliver only, what the application attached to the LWG
	// at this node with SetTag, or nil.
	Tag any
}

// ActionType is the kind of an Action.
type ActionType uint8

// What the Core asks of the HWG layer on its node.
const (
	// ActBootstrap: create Group with view 1 = Members (this node alone).
	ActBootstrap ActionType = iota + 1
	// ActJoin: join Group through Contacts.
	ActJoin
	// ActLeave: leave Group (or stop joining it).
	ActLeave
	// ActMulticast: multicast Payload in Group. Multicasts to one group
	// must keep their order, and must stay ordered with ActBlockOK.
	ActMulticast
	// ActBlockOK: answer the Group's EventBlock. The groups must run with
	// hwg.Config.ManualBlockOK: the Core answers once every LWG on the
	// carrier has answered Hold.up.
	ActBlockOK
)

var actionNames = [...]string{"", "Bootstrap", "Join", "Leave", "Multicast", "BlockOK"}

func (t ActionType) String() string {
	if int(t) < len(actionNames) && t != 0 {
		return actionNames[t]
	}
	return fmt.Sprintf("ActionType(%d)", uint8(t))
}

// Action is one request to the HWG layer.
type Action struct {
	Type     ActionType
	Group    hwg.GroupID
	Members  []hwg.Process // ActBootstrap
	Contacts []hwg.NodeID  // ActJoin
	Payload  []byte        // ActMulticast
	// View: ActBlockOK, the view of Group whose Block it answers (see
	// hwg.Group.BlockOK); ActMulticast, if not zero, the view of Group
	// the payload was made in: it must not be sent in a later membership
	// (hwg.Node.MulticastIn).
	View hwg.ViewID
}

// Ready is what the Core asks its caller to do: carry out Actions in order
// and hand Events to the application in order.
type Ready struct {
	Actions []Action
	Events  []Event

	// switchEnds are the switch requests that ended without moving their
	// LWG, for the Service to answer the Switch calls waiting on them (see
	// Core.endSwitch). A driver that makes no Switch calls can ignore them.
	switchEnds []switchEnd
}

// Empty reports whether there is nothing to do.
func (r Ready) Empty() bool { return len(r.Actions) == 0 && len(r.Events) == 0 }

// Stats counts what a Core saw. Interference is the cost of sharing a
// carrier: data messages delivered to this node for LWGs it has no
// endpoint for.
type Stats struct {
	Interference uint64 // data messages dropped for lack of an endpoint
	Stale        uint64 // data messages from a non-member or of an old view
	Malformed    uint64 // payloads that failed to decode
	Delivered    uint64 // data messages delivered to local endpoints
	// Batched counts the data messages this node sent together with
	// others of the same carrier in one HWG message (tagBatch).
	Batched uint64
	// LateRestores counts the directory's and carrier tables' states this
	// node took from a snapshot of an earlier view, or from a state a
	// member kept when it was cut off (see Core's replicas): what it would
	// have waited for in vain had the members that owed it a snapshot
	// been cut off first.
	LateRestores uint64
}
