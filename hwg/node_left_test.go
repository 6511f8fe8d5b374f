package hwg

import (
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// leftNode is a Node with only what its bookkeeping of left groups uses;
// no loop runs.
func leftNode() *Node {
	return &Node{
		groups:    map[GroupID]*Group{},
		left:      map[GroupID]leftGroup{},
		installed: map[GroupID]ViewID{},
	}
}

// leaveGroup makes a Group for id that installed view v, with a decision
// whose tail holds payload bytes, and hands it to n as a group it left.
func leaveGroup(t *testing.T, n *Node, id GroupID, v ViewID, payload int) *Group {
	t.Helper()
	g, err := New(Config{Group: id, Self: proc(1)})
	if err != nil {
		t.Fatal(err)
	}
	g.lastView = v
	g.decision = &Decision{Prev: v, Final: []Entry{{Seq: 1, Payload: make([]byte, payload)}}}
	n.groups[id] = g
	delete(n.groups, id) // as EventLeft does
	n.retain(id, g)
	return g
}

// checkLeft is the consistency check of n's left groups: every kept group
// has its entry in leftFIFO, and leftBytes is what they hold.
func checkLeft(t *testing.T, n *Node) {
	t.Helper()
	live, bytes := 0, 0
	for _, e := range n.leftFIFO {
		if l, ok := n.left[e.id]; ok && l.seq == e.seq {
			live++
		}
	}
	for id, l := range n.left {
		if l.bytes != l.g.keptBytes() {
			t.Errorf("%s counted at %d bytes, holds %d", id, l.bytes, l.g.keptBytes())
		}
		bytes += l.bytes
	}
	if live != len(n.left) {
		t.Errorf("%d kept groups, %d of them in leftFIFO", len(n.left), live)
	}
	if bytes != n.leftBytes {
		t.Errorf("leftBytes %d, the kept groups hold %d", n.leftBytes, bytes)
	}
}

// TestLeftGroupsJoinedAgainDoNotCount: a group left and joined again over
// and over must not push the other kept left groups out. Before, every
// leave took a place in leftFIFO, taken up or not, so 4,096 leaves of one
// group dropped every other group the node kept.
func TestLeftGroupsJoinedAgainDoNotCount(t *testing.T) {
	n := leftNode()
	for i := range 10 {
		leaveGroup(t, n, GroupID(fmt.Sprintf("h/kept-%d", i)), 3, 10)
	}
	for range 3 * leftKeep {
		leaveGroup(t, n, "h/busy", 5, 10)
		if _, err := n.newGroup("h/busy", true); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if _, ok := n.left[GroupID(fmt.Sprintf("h/kept-%d", i))]; !ok {
			t.Errorf("h/kept-%d dropped by leaves of a group joined again", i)
		}
	}
	if len(n.leftFIFO) > 2*len(n.left)+64 {
		t.Errorf("leftFIFO holds %d entries for %d kept groups", len(n.leftFIFO), len(n.left))
	}
	checkLeft(t, n)
}

// TestLeftGroupsBoundedByBytes: the tails the kept groups hold are bounded
// (leftKeepBytes); the oldest go first, noting the views they installed,
// and the newest is kept whatever it holds.
func TestLeftGroupsBoundedByBytes(t *testing.T) {
	n := leftNode()
	const tail = 8 << 20
	for i := range 12 {
		leaveGroup(t, n, GroupID(fmt.Sprintf("h/big-%d", i)), ViewID(i+1), tail)
		checkLeft(t, n)
		if n.leftBytes > leftKeepBytes {
			t.Fatalf("after %d leaves the kept groups hold %d bytes, over %d", i+1, n.leftBytes, leftKeepBytes)
		}
	}
	if _, ok := n.left["h/big-11"]; !ok {
		t.Error("the newest left group was dropped")
	}
	if _, ok := n.left["h/big-0"]; ok {
		t.Error("the oldest left group was kept past the byte bound")
	}
	if got := n.installed["h/big-0"]; got != 1 {
		t.Errorf("dropped h/big-0: noted view %d, want 1", got)
	}
	// One group over the bound alone is still kept.
	leaveGroup(t, n, "h/huge", 1, leftKeepBytes+1)
	if _, ok := n.left["h/huge"]; !ok || len(n.left) != 1 {
		t.Errorf("a group over the bound: kept %v, %d kept in all; want it alone", ok, len(n.left))
	}
	checkLeft(t, n)
}

// TestLeftGroupReplacedKeepsItsViews: a group left, bootstrapped again
// (a new Group, from view 1) and left again replaces the kept one; the
// views the first installed must still bar a later join from installing
// them (Config.Installed).
func TestLeftGroupReplacedKeepsItsViews(t *testing.T) {
	n := leftNode()
	leaveGroup(t, n, "h/x", 7, 10)
	leaveGroup(t, n, "h/x", 1, 10)
	if got := n.installed["h/x"]; got != 7 {
		t.Errorf("noted view %d for h/x, want 7", got)
	}
	g, err := n.newGroup("h/x", true)
	if err != nil {
		t.Fatal(err)
	}
	if g.lastView != 7 {
		t.Fatalf("took up a Group whose last view is %d, want 7", g.lastView)
	}
	checkLeft(t, n)
}

// TestLeftGroupGrowingIsBounded: a kept left group that takes a decision
// after it was counted (an acceptor of the view it was excluded from) is
// counted again, and the oldest kept groups go if that puts the node over
// leftKeepBytes. Before, stepLeft counted the growth but dropped nothing
// until the next leave.
func TestLeftGroupGrowingIsBounded(t *testing.T) {
	n := leftNode()
	n.log = hclog.NewNullLogger()
	n.outbox = map[NodeID][]Message{}
	for i := range 4 {
		leaveGroup(t, n, GroupID(fmt.Sprintf("h/old-%d", i)), 3, leftKeepBytes/8)
	}
	g := leaveGroup(t, n, "h/grows", 3, 10)
	// The decision it took meanwhile holds most of the bound.
	g.decision = &Decision{Prev: 3, Final: []Entry{{Seq: 1, Payload: make([]byte, leftKeepBytes*3/4)}}}
	n.stepLeft(Message{Group: "h/grows", From: proc(2), Type: MsgJoin})
	if n.leftBytes > leftKeepBytes {
		t.Fatalf("the kept groups hold %d bytes after one grew, over %d", n.leftBytes, leftKeepBytes)
	}
	if _, ok := n.left["h/grows"]; !ok {
		t.Fatal("the group that grew, the newest, was dropped")
	}
	if _, ok := n.left["h/old-0"]; ok {
		t.Fatal("the oldest kept group stayed over the bound")
	}
	checkLeft(t, n)
}
