package rsm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/lwgkit/lwgkit/rsm/rsmtest"
)

// TestSnapshotOnInterval: an object that applied a command and then
// nothing more is snapshotted by time (Config.SnapshotInterval) at every
// replica, once: an idle object is not snapshotted again. The ticks that
// drive it look only at the objects due (Node.dueAt).
func TestSnapshotOnInterval(t *testing.T) {
	ctx := ctxT(t)
	const objects = 8
	// Ticks are 10 ms (startNode): a snapshot is due 10-19 ticks after
	// the command, spread by object.
	nodes := startCluster(t, transport.NewMemNetwork(), 3, rsm.Config{SnapshotInterval: 100 * time.Millisecond})
	var ids []rsm.ObjectID
	for i := range objects {
		id := rsm.ObjectID(fmt.Sprintf("obj%d", i))
		ids = append(ids, id)
		objs := openAll(t, ctx, nodes, id)
		if _, err := objs[0].Propose(ctx, rsmtest.Add(1)); err != nil {
			t.Fatal(err)
		}
		converge(t, ctx, objs, 1)
	}
	byInterval := func(n *testNode) map[rsm.ObjectID]int {
		got := map[rsm.ObjectID]int{}
		for _, e := range n.seen(rsm.EventSnapshotTaken) {
			if e.Index == 1 {
				got[e.Object]++
			}
		}
		return got
	}
	for i, n := range nodes {
		for len(byInterval(n)) < objects {
			select {
			case <-ctx.Done():
				t.Fatalf("node %d: snapshots by time of %v, want all %d objects", i+1, byInterval(n), objects)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	time.Sleep(500 * time.Millisecond) // five more intervals, nothing applied
	for i, n := range nodes {
		for _, id := range ids {
			if k := byInterval(n)[id]; k != 1 {
				t.Fatalf("node %d: %s snapshotted %d times at index 1, want once", i+1, id, k)
			}
		}
	}
}
