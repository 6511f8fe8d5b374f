package proptest

import (
	"container/heap"
	"math/rand/v2"

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
	// direct is a point-to-point payload of an upper layer (state
	// transfer) from from, for incarnation inc of the addressee.
	direct []byte
	// local is a hop inside node to (LWGOptions.Async), for incarnation
	// inc: one of the local kinds.
	local uint8
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

// links is the fault model of every link: loss, duplication and widely
// varying delays (reordering), on until the heal. It counts what it did.
type links struct {
	drop, dup           float64
	reorder             bool
	healed              bool
	dropped, duplicated int
}

// send schedules a copy of it for node to, a delay after now, unless the
// link loses it; it may schedule two. A cut link loses what is sent on it.
// All randomness comes from rng, in a fixed order.
func (n *network) send(rng *rand.Rand, l *links, now uint64, from, to hwg.NodeID, it *item) {
	copies := 1
	if !l.healed {
		if l.drop > 0 && rng.Float64() < l.drop {
			l.dropped++
			return
		}
		if l.dup > 0 && rng.Float64() < l.dup {
			l.duplicated++
			copies = 2
		}
	}
	for range copies {
		c := *it
		c.to = to
		c.at = now + l.delay(rng)
		if n.linkCut(from, to) {
			continue
		}
		n.schedule(&c)
	}
}

func (l *links) delay(rng *rand.Rand) uint64 {
	if l.reorder && !l.healed {
		return 1 + rng.Uint64N(6*tickUnits)
	}
	return 1 + rng.Uint64N(4)
}

// partition cuts every link from the nodes in side to the others, and back
// unless oneWay, replacing any earlier partition.
func (n *network) partition(nodes []hwg.NodeID, side map[hwg.NodeID]bool, oneWay bool) {
	clear(n.cut)
	for _, a := range nodes {
		for _, b := range nodes {
			if side[a] && !side[b] {
				n.cut[[2]hwg.NodeID{a, b}] = true
				if !oneWay {
					n.cut[[2]hwg.NodeID{b, a}] = true
				}
			}
		}
	}
}

// keepsQuorum reports whether every view in views keeps a majority of
// members that are up (as live says) without the victim.
func keepsQuorum(views []hwg.View, live func(hwg.Process) bool) bool {
	for _, v := range views {
		k := 0
		for _, m := range v.Members {
			if live(m) {
				k++
			}
		}
		if k < v.Quorum() {
			return false
		}
	}
	return true
}

// viewsAtStake returns the views a member's group may still need a quorum
// of: its current view (if it has one), the candidates it saw proposed and
// the one it knows was decided. A member behind the others still needs a
// quorum of its own view to learn the decision that ended it.
func viewsAtStake(in hwg.Info) []hwg.View {
	var views []hwg.View
	if in.Status == hwg.StatusNormal || in.Status == hwg.StatusFlushing {
		views = append(views, in.View)
	}
	views = append(views, in.Candidates...)
	if in.Decided.ID > 0 {
		views = append(views, in.Decided)
	}
	return views
}

// probeRepeats is how many heartbeats after a peer's epoch changed this
// node keeps probing it, so a lost probe or answer is retried.
const probeRepeats = 8

// probes tracks, per peer, the membership epoch its heartbeats carry and
// how many more of its heartbeats to answer with a probe of every group.
type probes struct {
	epoch map[hwg.NodeID]uint64
	left  map[hwg.NodeID]int
}

func newProbes() probes {
	return probes{epoch: map[hwg.NodeID]uint64{}, left: map[hwg.NodeID]int{}}
}

// heard records a heartbeat of peer carrying epoch and reports whether to
// probe peer now.
func (p probes) heard(peer hwg.NodeID, epoch uint64) bool {
	if p.epoch[peer] != epoch {
		p.epoch[peer], p.left[peer] = epoch, probeRepeats
	}
	if p.left[peer] == 0 {
		return false
	}
	p.left[peer]--
	return true
}
