package kvexample

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/lwgkit/lwgkit/compose"
	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/rsm"
)

// ComposeTopology returns the group-composition topology of the shards
// (package compose): a tree over every shard's group, rooted at shard 0's
// (the hub), whose links join groups that share replica nodes (the
// routers between them).
//
// A link is cut while no node it shares is up, so the tree is built to
// survive failures before it is built to be short: shards with equal
// replica sets form a class, and each class hangs below the class that
// gives it the fewest weak links (sharing a single node) on its path to
// the hub, then the fewest links. With 3 replicas every link then shares
// two nodes where the placement allows it, and no single node's failure
// cuts a shard off; with 5 nodes a request crosses at most four links
// (up to the hub and down again), against two in a star around the hub,
// whose links to shards that shared one node with it each failed with
// that node. Every shard of a class links to the first shard of its
// parent class (to the hub for the hub's class), so a class costs no
// extra hop. A shard sharing no node with any reachable one is left out
// (requests for it are forwarded over RESP).
//
// The tree is a pure function of the placement: every node computes the
// same one, as compose requires. Past placing the shards it costs about
// Replicas² index entries per class, with no pairwise comparison of
// classes. Changing how it is built changes the topology, so every node
// of a cluster must run the same version of it.
func (p *Placement) ComposeTopology() (*compose.Topology, error) {
	groups := make([]lwg.ID, p.Shards)
	for s := range p.Shards {
		groups[s] = ObjectID(s).LWG()
	}
	parent := p.classTree()
	var links []compose.Link
	for s := 1; s < p.Shards; s++ {
		if a, ok := parent[s]; ok {
			links = append(links, compose.Link{A: groups[a], B: groups[s]})
		}
	}
	return compose.NewTopology(groups, links)
}

// weakCost is the cost of a link sharing one node: more than any path of
// links sharing two or more, so the search minimises weak links first.
const weakCost = 1 << 40

// classTree returns, for every shard but 0 that the tree reaches, the
// shard it links to (see ComposeTopology). It is Dijkstra over the classes
// of equal replica sets, with cost 1 per link sharing two or more nodes
// and weakCost per link sharing one, ties broken by class order (the
// first shard of each). A class's neighbours are found through indexes
// by node pair (strong) and by node (weak) rather than by comparing
// classes: once a class at distance d relaxes through an index entry, a
// later class (distance ≥ d) cannot do better through it, so each entry
// is used once.
func (p *Placement) classTree() map[int]int {
	type class struct {
		first int // its first shard: where the classes below it link
		set   []hwg.NodeID
		dist  int64
		up    int // parent class, -1 for the root
		done  bool
	}
	var classes []*class
	byKey := map[string]int{}
	of := make([]int, p.Shards)
	for s := range p.Shards {
		set := p.MemberSet(s)
		key := fmt.Sprint(set)
		c, ok := byKey[key]
		if !ok {
			c = len(classes)
			byKey[key] = c
			classes = append(classes, &class{first: s, set: set, dist: -1, up: -1})
		}
		of[s] = c
	}
	type pair struct{ a, b hwg.NodeID }
	byPair := map[pair][]int{}
	byNode := map[hwg.NodeID][]int{}
	for i, c := range classes {
		for x, a := range c.set {
			byNode[a] = append(byNode[a], i)
			for _, b := range c.set[x+1:] {
				byPair[pair{a, b}] = append(byPair[pair{a, b}], i)
			}
		}
	}
	frontier := &classHeap{}
	relax := func(from int, to []int, cost int64) {
		for _, i := range to {
			c := classes[i]
			d := classes[from].dist + cost
			if c.done || c.dist >= 0 && c.dist <= d {
				continue
			}
			c.dist, c.up = d, from
			heap.Push(frontier, classAt{d, i}) // an older entry is skipped when popped
		}
	}
	classes[0].dist = 0 // shard 0's class is the root
	heap.Push(frontier, classAt{0, 0})
	for frontier.Len() > 0 {
		x := heap.Pop(frontier).(classAt).class
		c := classes[x]
		if c.done {
			continue
		}
		c.done = true
		for y, a := range c.set {
			for _, b := range c.set[y+1:] {
				relax(x, byPair[pair{a, b}], 1)
				delete(byPair, pair{a, b})
			}
		}
		for _, a := range c.set {
			relax(x, byNode[a], weakCost)
			delete(byNode, a)
		}
	}
	parent := map[int]int{}
	for s := 1; s < p.Shards; s++ {
		c := classes[of[s]]
		switch {
		case !c.done:
			// Unreachable: no link.
		case c.up < 0:
			parent[s] = 0
		default:
			parent[s] = classes[c.up].first
		}
	}
	return parent
}

// classAt is a class in classTree's frontier at a distance.
type classAt struct {
	dist  int64
	class int
}

// classHeap orders the frontier by distance, then class (container/heap).
type classHeap []classAt

func (h classHeap) Len() int { return len(h) }
func (h classHeap) Less(i, j int) bool {
	return h[i].dist < h[j].dist || h[i].dist == h[j].dist && h[i].class < h[j].class
}
func (h classHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *classHeap) Push(x any)   { *h = append(*h, x.(classAt)) }
func (h *classHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// tapRelay hands rsm's object events to the compose.Objects created once
// the rsm node runs (its process is known then); events before that wait.
// After that it costs an atomic load per event (rsm calls it for every
// delivery, from its event reader).
type tapRelay struct {
	objs atomic.Pointer[compose.Objects]
	mu   sync.Mutex
	buf  []tapEvent
}

type tapEvent struct {
	id rsm.ObjectID
	e  lwg.Event
}

func (t *tapRelay) event(id rsm.ObjectID, e lwg.Event) {
	if o := t.objs.Load(); o != nil {
		o.Tap(id, e)
		return
	}
	t.mu.Lock()
	if o := t.objs.Load(); o != nil { // attached meanwhile, buffer flushed
		t.mu.Unlock()
		o.Tap(id, e)
		return
	}
	t.buf = append(t.buf, tapEvent{id, e})
	t.mu.Unlock()
}

func (t *tapRelay) attach(o *compose.Objects) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, te := range t.buf {
		o.Tap(te.id, te.e)
	}
	t.buf = nil
	t.objs.Store(o)
}

// composeCall runs an encoded command on a shard this node holds no
// ready replica of, through group composition: compose.Objects.Call sends
// it through a shard group of this node and the routers to the shard's
// group, whose replicas apply it once (by the request's origin id) and
// send the result back. ErrNoRoute: nothing was sent (this node is in no
// shard group yet, or the shard is unreachable); the store forwards over
// RESP then. A read that failed had no effect: rsm.ErrNotApplied.
func (n *Node) composeCall(ctx context.Context, shard int, cmd []byte, read bool) ([]byte, error) {
	res, err := n.objs.Call(ctx, ObjectID(shard), cmd)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, compose.ErrNoLocalGroup), errors.Is(err, compose.ErrUnreachable):
		return nil, fmt.Errorf("%w: shard %d: %w", ErrNoRoute, shard, err)
	case read:
		// %v, not %w: a read has no effect, so whatever err says (even
		// ErrUnknown) it was not applied, and callers test for ErrUnknown.
		return nil, fmt.Errorf("%w: read of shard %d: %v", rsm.ErrNotApplied, shard, err)
	}
	return nil, err
}

// checkRouted vets a command that reached shard object target through
// composition, as ExecLocal vets one forwarded over RESP: its keys must
// belong to the shard here too.
func checkRouted(p *Placement, target rsm.ObjectID, cmd []byte) error {
	shard, ok := ShardOfObject(target)
	if !ok {
		return fmt.Errorf("%w: %q is not a shard", ErrMalformed, target)
	}
	c, err := DecodeCommand(cmd)
	if err != nil {
		return err
	}
	return checkShard(p, c, shard)
}
