package kvexample

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/lwgkit/lwgkit/compose"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/rsm"
)

// ComposeTopology returns the group-composition topology of the shards
// (package compose): every shard's group is a group of it, and each
// shard is linked to shard 0's group (the hub) if they share a replica
// node, which is a router between them; a shard that shares none with
// the hub is linked to the first shard before it that it shares one
// with (none: it is unreachable, and requests for it are forwarded over
// RESP). With up to 2·Replicas−1 nodes every pair of shards shares a
// node, so the topology is a star: a request from a node that holds no
// replica of its shard crosses at most two routers (its own shard's
// group, the hub, the target).
func (p *Placement) ComposeTopology() (*compose.Topology, error) {
	groups := make([]lwg.ID, p.Shards)
	for s := range p.Shards {
		groups[s] = ObjectID(s).LWG()
	}
	var links []compose.Link
	shares := func(a, b int) bool {
		for _, n := range p.ReplicasOf(a) {
			if p.IsReplica(b, n) {
				return true
			}
		}
		return false
	}
	linked := []int{0}
	for s := 1; s < p.Shards; s++ {
		i := slices.IndexFunc(linked, func(t int) bool { return shares(s, t) })
		if i < 0 {
			continue
		}
		links = append(links, compose.Link{A: groups[linked[i]], B: groups[s]})
		linked = append(linked, s)
	}
	return compose.NewTopology(groups, links)
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
