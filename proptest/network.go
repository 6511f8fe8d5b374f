package proptest

import (
	"container/heap"

	"github.com/lwgkit/lwgkit/hwg"
)

// item is something scheduled at a virtual time: a message arriving or a
// node's tick.
type item struct {
	at    uint64
	seq   uint64 // ties break on scheduling order, so runs are reproducible
	to    hwg.NodeID
	inc   uint64 // the incarnation a tick belongs to
	tick  bool
	hb    bool        // a heartbeat from From
	from  hwg.Process // heartbeat sender
	epoch uint64      // heartbeat: the sender's membership epoch
	msg   hwg.Message
}

type queue []*item

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*item)) }
func (q *queue) Pop() any {
	old := *q
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return it
}

// network holds messages in flight and the links currently cut.
type network struct {
	q   queue
	seq uint64
	cut map[[2]hwg.NodeID]bool // from→to links that lose everything
}

func (n *network) schedule(it *item) {
	n.seq++
	it.seq = n.seq
	heap.Push(&n.q, it)
}

func (n *network) next() *item {
	if len(n.q) == 0 {
		return nil
	}
	return heap.Pop(&n.q).(*item)
}

func (n *network) linkCut(from, to hwg.NodeID) bool { return n.cut[[2]hwg.NodeID{from, to}] }
