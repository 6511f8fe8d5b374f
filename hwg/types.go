package hwg

import (
	"fmt"
	"slices"
)

// NodeID is a node's stable identity, independent of its network address.
// Zero is not a valid NodeID.
type NodeID uint64

// Process is one incarnation of a node. A node that restarts gets a higher
// incarnation and is a new member: a view never holds two incarnations of one
// node, and messages addressed to an older incarnation are ignored.
type Process struct {
	Node NodeID `msgpack:"n"`
	Inc  uint64 `msgpack:"i"`
}

func (p Process) String() string { return fmt.Sprintf("%d.%d", p.Node, p.Inc) }

// IsZeroProcess reports whether p is the zero Process.
func (p Process) IsZeroProcess() bool { return p == Process{} }

// GroupID names a heavy-weight group. By convention HWG ids begin with "h/".
type GroupID string

// ViewID numbers the views of one group. The first view is 1 and every view
// change installs exactly ID+1.
type ViewID uint64

// View is an installed view: its id and its ordered members. Members[0] is
// the coordinator and sequencer.
type View struct {
	ID      ViewID    `msgpack:"id"`
	Members []Process `msgpack:"m"`
}

// Coordinator returns the view's first member.
func (v View) Coordinator() Process {
	if len(v.Members) == 0 {
		return Process{}
	}
	return v.Members[0]
}

// Contains reports whether p (same node and incarnation) is a member.
func (v View) Contains(p Process) bool { return v.Rank(p) >= 0 }

// Rank is p's position in the member list, or -1.
func (v View) Rank(p Process) int {
	for i, m := range v.Members {
		if m == p {
			return i
		}
	}
	return -1
}

// HasNode reports whether any incarnation of n is a member, and which.
func (v View) HasNode(n NodeID) (Process, bool) {
	for _, m := range v.Members {
		if m.Node == n {
			return m, true
		}
	}
	return Process{}, false
}

// Quorum is the size of a majority of the view.
func (v View) Quorum() int { return len(v.Members)/2 + 1 }

// Clone returns a deep copy.
func (v View) Clone() View {
	return View{ID: v.ID, Members: slices.Clone(v.Members)}
}

func (v View) String() string { return fmt.Sprintf("v%d%v", v.ID, v.Members) }

// MsgID identifies a multicast uniquely: the sender process, the view it was
// sent in, and the sender's FIFO number in that view (1, 2, ...).
type MsgID struct {
	Sender Process `msgpack:"s"`
	View   ViewID  `msgpack:"v"`
	Seq    uint64  `msgpack:"q"`
}

func (id MsgID) String() string {
	return fmt.Sprintf("%d.%d.%d.%d", id.Sender.Node, id.Sender.Inc, id.View, id.Seq)
}

// Ballot orders competing view-change proposals for one view. Higher Round
// wins; ties break on Node so two proposers never share a ballot.
type Ballot struct {
	Round uint64 `msgpack:"r"`
	Node  NodeID `msgpack:"n"`
}

// Less reports whether b orders before o.
func (b Ballot) Less(o Ballot) bool {
	if b.Round != o.Round {
		return b.Round < o.Round
	}
	return b.Node < o.Node
}

// IsZero reports whether b is the zero ballot (nothing promised or accepted).
func (b Ballot) IsZero() bool { return b == Ballot{} }
