package rsm

import (
	"bytes"
	"sync"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// TestRouterLeavesDueSnapshotToWorker (found in review): a replica
// reopened from a local snapshot at index 500 joins a group whose donor
// sends an empty state at index 0. It writes that state's snapshot at
// once (before, the reopened one stayed the durable one until a command
// came, and a restart reopened it). And a local snapshot above the
// index makes the router hand commands to a worker: the first apply
// takes a snapshot, which would stall every object's deliveries.
func TestRouterLeavesDueSnapshotToWorker(t *testing.T) {
	n := newTransferNet(t, Config{})
	n.add(pA, nil)
	j := n.add(pJ, nil)
	j.index, j.snapIndex, j.hasState = 500, 500, true
	n.install(1<<32|1, []hwg.Process{pA}, []hwg.Process{pA})
	n.install(1<<32|2, []hwg.Process{pA, pJ}, []hwg.Process{pJ})
	n.run(nil)
	if !j.ready || j.index != 0 || j.snapIndex != 0 {
		t.Fatalf("after the empty state: J ready %v index %d snapIndex %d, want its snapshot at 0", j.ready, j.index, j.snapIndex)
	}
	j.snapIndex = 500 // as before that fix
	node := &Node{cfg: n.cfg}
	node.wake = sync.NewCond(&node.mu)
	ev := lwg.Event{Type: lwg.EventDeliver, LWG: xferObject.LWG(), From: pA, Payload: encodePropose(pA, 0, bytes.Repeat([]byte("x"), 600))}
	if !node.runInline(j, []item{{kind: itemEvent, ev: ev}}) {
		t.Fatal("runInline refused a plain command")
	}
	if got := node.inlined.n.Load(); got != 0 || len(node.runq) != 1 || j.mail == nil || len(j.mail.items) != 1 {
		t.Fatalf("applied on the router (%d turns), run queue %d: want it handed to a worker", got, len(node.runq))
	}
	taken := len(n.events[pJ])
	j.process(j.mail.items[0]) // the worker's turn
	if j.index != 1 || j.snapIndex != 1 {
		t.Fatalf("after the worker's turn: index %d snapIndex %d, want a snapshot at 1 (events %v)", j.index, j.snapIndex, n.events[pJ][taken:])
	}
}
