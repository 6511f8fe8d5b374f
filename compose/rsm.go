package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/rsm"
)

// OriginOf returns the rsm.OriginID of a routed delivery: its end-to-end
// id (origin process, the group it was sent through, its sequence number
// there). One origin's sequence numbers increase along its FIFO order,
// as ProposeFrom needs.
func OriginOf(d Delivery) rsm.OriginID {
	return rsm.OriginID{Source: fmt.Sprintf("compose/%d.%d/%s", d.Origin.Node, d.Origin.Inc, d.Src), Seq: d.Seq}
}

// ObjectOf returns the rsm object whose group is g, if g is one.
func ObjectOf(g lwg.ID) (rsm.ObjectID, bool) {
	id, ok := strings.CutPrefix(string(g), "l/")
	return rsm.ObjectID(id), ok && id != ""
}

// ObjectsConfig configures Objects.
type ObjectsConfig struct {
	// Router configures the routing core. The topology's groups are
	// objects' groups (rsm.ObjectID.LWG: "l/" + the id).
	Router Config
	// TickInterval: see NodeConfig. Default 50ms.
	TickInterval time.Duration
	// Attempt bounds one ProposeFrom of a routed command; a proposal whose
	// outcome is unknown is proposed again (it is applied once). Default 5s.
	Attempt time.Duration
	// Applied, if set, is called with the result of each routed command
	// this node proposed (err is Apply's error), or that another replica
	// applied first (ErrDuplicate: result nil). It runs on the object's
	// proposer goroutine.
	Applied func(target rsm.ObjectID, d Delivery, result []byte, err error)
	// Check, if set, vets a routed command before this replica proposes
	// it (that it is meant for target, say, when placements could differ
	// between nodes). A command it refuses is not proposed here, and a
	// Call gets the error back (ErrCallFailed). It runs on the object's
	// proposer goroutine.
	Check func(target rsm.ObjectID, cmd []byte) error

	// Test hooks (export_test.go), given a routed call's command and
	// whether the delivery is a retry: skipCall drops the delivery here
	// unproposed (as if every replica that delivered it crashed), and
	// dropReply loses the reply of one proposal.
	skipCall, dropReply func(cmd []byte, retry bool) bool
}

// Objects routes commands between replicated objects: an object (any
// process hosting a replica of it) sends a command to an object it holds
// no replica of with Send, through the routers of the topology, and the
// target's replicas apply it exactly once.
//
// It shares the objects' groups with rsm: set rsm.Config.Tap to Tap
// before rsm.New, then call Attach with the Node. Every replica of the
// target that delivers a routed command proposes it with ProposeFrom
// under its OriginOf id, one at a time per object in the group's order,
// again after an unknown outcome: the command is applied once as long as
// one replica that delivered it stays, in the order of its origin.
type Objects struct {
	// node is not embedded: its raw SendTo, SendAll and Deliveries would
	// bypass the kind byte every routed payload here starts with.
	node *Node
	cfg  ObjectsConfig

	mu       sync.Mutex
	rn       *rsm.Node
	pending  []Delivery // delivered before Attach
	queues   map[rsm.ObjectID]*proposer
	stopping bool
	wg       sync.WaitGroup
	// calls waits for replies, by the call's id (see Call).
	calls   map[callKey]chan reply
	retries atomic.Uint64
}

type proposer struct {
	mu   sync.Mutex
	q    []Delivery
	wake chan struct{}
}

// NewObjects starts the routing of commands between objects.
func NewObjects(cfg ObjectsConfig) (*Objects, error) {
	if cfg.Attempt <= 0 {
		cfg.Attempt = 5 * time.Second
	}
	o := &Objects{cfg: cfg, queues: map[rsm.ObjectID]*proposer{}, calls: map[callKey]chan reply{}}
	n, err := NewNode(NodeConfig{Router: cfg.Router, TickInterval: cfg.TickInterval, Multicast: o.multicast})
	if err != nil {
		return nil, err
	}
	o.node = n
	o.wg.Add(1)
	go o.consume()
	return o, nil
}

// Tap is the rsm.Config.Tap of the Node hosting the objects: it hands the
// Router the views of every object and the routing payloads (rsm's own
// commands are not its business).
func (o *Objects) Tap(id rsm.ObjectID, e lwg.Event) {
	if e.Type == lwg.EventDeliver && !bytes.HasPrefix(e.Payload, magic) {
		return
	}
	o.node.Event(e)
}

// Attach gives Objects the rsm Node whose Tap it is.
func (o *Objects) Attach(rn *rsm.Node) {
	o.mu.Lock()
	o.rn = rn
	ds := o.pending
	o.pending = nil
	o.mu.Unlock()
	for _, d := range ds {
		o.enqueue(d)
	}
}

func (o *Objects) multicast(ctx context.Context, g lwg.ID, payload []byte) error {
	o.mu.Lock()
	rn := o.rn
	o.mu.Unlock()
	id, ok := ObjectOf(g)
	if rn == nil || !ok {
		return rsm.ErrNotOpen
	}
	return rn.Multicast(ctx, id, payload)
}

// Send sends cmd to object target, which need not be open here: it goes
// through an object open here and the routers of the topology. It returns
// the command's sequence number among this node's sends through that
// object's group.
func (o *Objects) Send(ctx context.Context, target rsm.ObjectID, cmd []byte) (uint64, error) {
	return o.node.SendTo(ctx, target.LWG(), append([]byte{kindSend}, cmd...))
}

// Close stops routing and proposing (not the rsm Node).
func (o *Objects) Close() error {
	o.mu.Lock()
	o.stopping = true
	o.mu.Unlock()
	err := o.node.Close() // closes Deliveries: consume ends
	o.wg.Wait()
	return err
}

func (o *Objects) consume() {
	defer o.wg.Done()
	for d := range o.node.Deliveries() {
		if !d.Routed || len(d.Payload) == 0 {
			continue
		}
		if d.Payload[0] == kindReply {
			o.replied(d)
			continue
		}
		o.mu.Lock()
		if o.rn == nil {
			o.pending = append(o.pending, d)
			o.mu.Unlock()
			continue
		}
		o.mu.Unlock()
		o.enqueue(d)
	}
	o.mu.Lock()
	for _, p := range o.queues {
		close(p.wake)
	}
	o.queues = map[rsm.ObjectID]*proposer{}
	o.mu.Unlock()
}

func (o *Objects) enqueue(d Delivery) {
	id, ok := ObjectOf(d.Group)
	if !ok {
		return
	}
	o.mu.Lock()
	if o.stopping {
		o.mu.Unlock()
		return
	}
	p := o.queues[id]
	if p == nil {
		p = &proposer{wake: make(chan struct{}, 1)}
		o.queues[id] = p
		o.wg.Add(1)
		go o.propose(id, p)
	}
	o.mu.Unlock()
	p.mu.Lock()
	p.q = append(p.q, d)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// propose applies object id's routed commands one at a time, in order.
func (o *Objects) propose(id rsm.ObjectID, p *proposer) {
	defer o.wg.Done()
	for {
		p.mu.Lock()
		batch := p.q
		p.q = nil
		p.mu.Unlock()
		for _, d := range batch {
			if !o.proposeOne(id, d) {
				return
			}
		}
		if len(batch) == 0 {
			if _, ok := <-p.wake; !ok {
				return
			}
		}
	}
}

// proposeOne proposes one delivery until its outcome is known; false
// when the object or the Node is gone.
func (o *Objects) proposeOne(id rsm.ObjectID, d Delivery) bool {
	origin := OriginOf(d)
	var call *callMsg
	switch d.Payload[0] {
	case kindSend:
		d.Payload = d.Payload[1:]
	case kindCall:
		var err error
		if call, err = decodeCall(d.Payload[1:]); err != nil {
			return true
		}
		origin = call.origin(d)
		d.Payload = call.Cmd
	default:
		return true // not a command
	}
	if call != nil && o.cfg.skipCall != nil && o.cfg.skipCall(call.Cmd, call.Seq != 0) {
		return true
	}
	if o.cfg.Check != nil {
		if err := o.cfg.Check(id, d.Payload); err != nil {
			if call != nil {
				o.reply(d, call, nil, err)
			}
			return true
		}
	}
	for {
		o.mu.Lock()
		rn, stopping := o.rn, o.stopping
		o.mu.Unlock()
		if stopping {
			return false
		}
		obj, ok := rn.Object(id)
		if !ok {
			return true // not a replica (any more): nothing to apply here
		}
		ctx, cancel := context.WithTimeout(context.Background(), o.cfg.Attempt)
		res, err := obj.ProposeFrom(ctx, origin, d.Payload)
		cancel()
		switch {
		case errors.Is(err, rsm.ErrBusy):
			// The object has its fill of requests in flight here: try
			// again once some have ended, not at once (a spin).
			time.Sleep(busyBackoff)
			continue
		case errors.Is(err, rsm.ErrUnknown), errors.Is(err, rsm.ErrNotApplied),
			errors.Is(err, context.DeadlineExceeded):
			continue // applied once however often proposed
		case errors.Is(err, rsm.ErrClosed), errors.Is(err, rsm.ErrNotOpen):
			return true // the object (or the Node) closed here: not this replica's to apply
		}
		if o.cfg.Applied != nil {
			o.cfg.Applied(id, d, res, err)
		}
		if call != nil && (o.cfg.dropReply == nil || !o.cfg.dropReply(call.Cmd, call.Seq != 0)) {
			o.reply(d, call, res, err)
		}
		return true
	}
}

// busyBackoff is how long a routed command waits before it is proposed
// again to an object that answered rsm.ErrBusy.
const busyBackoff = 5 * time.Millisecond

// Through returns the local group a send to dests would go through now
// (see Node.Through).
func (o *Objects) Through(ctx context.Context, dests []lwg.ID) (lwg.ID, error) {
	return o.node.Through(ctx, dests)
}

// HasState reports whether this node holds group g's routing state (see
// Node.HasState).
func (o *Objects) HasState(ctx context.Context, g lwg.ID) (bool, error) {
	return o.node.HasState(ctx, g)
}

// RouterFor returns this node's opinion of who routes from a to b (see
// Node.RouterFor).
func (o *Objects) RouterFor(ctx context.Context, a, b lwg.ID) (hwg.Process, bool, error) {
	return o.node.RouterFor(ctx, a, b)
}

// Stats returns the routing counters (see Node.Stats).
func (o *Objects) Stats() Stats { return o.node.Stats() }

// Dropped returns how many of the Router's multicasts the LWG layer
// refused (see Node.Dropped).
func (o *Objects) Dropped() uint64 { return o.node.Dropped() }

// Excluded returns how often this node was excluded from a group of the
// topology, and how often it joined one again (see Node.Excluded).
func (o *Objects) Excluded() (excluded, rejoined uint64) { return o.node.Excluded() }
