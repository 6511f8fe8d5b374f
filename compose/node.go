package compose

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// NodeConfig configures a Node, the runtime around a Router.
type NodeConfig struct {
	// Router configures the routing core (Self and Topology are required).
	Router Config
	// Service, if set, is this node's LWG layer: the Node reads all of
	// Service.Events (nothing else may; the application gets ordinary
	// deliveries back as Deliveries that are not Routed) and multicasts
	// with Service.Multicast. Join and leave groups with the Service.
	Service *lwg.Service
	// Multicast, used when Service is nil, multicasts a payload in a local
	// LWG in total order (for rsm: rsm.Node.Multicast of the group's
	// object). The caller then feeds every event of every local LWG of
	// the topology, in order, to Node.Event (for rsm: from Config.Tap).
	Multicast func(ctx context.Context, g lwg.ID, payload []byte) error
	// TickInterval drives the routers' acknowledgements. Default 50ms.
	TickInterval time.Duration
	// NoRejoin: with Service, a group of the topology this node is
	// excluded from (it was suspected or cut off while the group went
	// on) is not joined again. By default the Node joins it again
	// through the Service, as a new member: it gets the group's routing
	// state from a member holding it (or, if every holder left at once,
	// from a claim round; see Router), and its own kept state counts.
	NoRejoin bool
}

// Node runs a Router over live LWGs: one goroutine owns the Router, takes
// the LWG events (from the Service, or from Event) and the application's
// sends in one order, carries out the Router's multicasts in order, and
// hands deliveries to the application through Deliveries. It is the
// runtime counterpart of what proptest.RunCompose does in virtual time.
//
// All methods are safe for concurrent use.
type Node struct {
	cfg    NodeConfig
	router *Router
	mcast  func(ctx context.Context, g lwg.ID, payload []byte) error

	mu     sync.Mutex
	inbox  []input
	outbox []Delivery
	stats  Stats
	closed bool
	wake   chan struct{} // the loop has input
	owake  chan struct{} // the output pump has deliveries

	out  chan Delivery
	stop chan struct{}
	ctx  context.Context
	cncl context.CancelFunc
	wg   sync.WaitGroup
	// dropped counts the Router's multicasts the LWG layer refused (this
	// node had just left or been excluded from the group).
	dropped uint64
	// excluded counts EventExcluded of the topology's groups: this node
	// lost a group without asking; rejoined counts the joins again that
	// succeeded.
	excluded, rejoined uint64
}

// input is one thing for the loop: an LWG event, or a call to run on the
// Router.
type input struct {
	ev   *lwg.Event
	call func(r *Router)
}

// ErrNodeClosed: the Node is closed.
var ErrNodeClosed = errors.New("compose: node closed")

// NewNode starts a Node. Close stops it (not the Service).
func NewNode(cfg NodeConfig) (*Node, error) {
	r, err := NewRouter(cfg.Router)
	if err != nil {
		return nil, err
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 50 * time.Millisecond
	}
	n := &Node{cfg: cfg, router: r, wake: make(chan struct{}, 1), owake: make(chan struct{}, 1),
		out: make(chan Delivery, 64), stop: make(chan struct{})}
	switch {
	case cfg.Service != nil:
		n.mcast = cfg.Service.Multicast
	case cfg.Multicast != nil:
		n.mcast = cfg.Multicast
	default:
		return nil, fmt.Errorf("compose: NodeConfig needs Service or Multicast")
	}
	n.ctx, n.cncl = context.WithCancel(context.Background())
	n.wg.Add(2)
	go n.loop()
	go n.deliver()
	if cfg.Service != nil {
		n.wg.Add(1)
		if cfg.Service.Batches() != nil {
			go n.readBatches(cfg.Service)
		} else {
			go n.read(cfg.Service.Events())
		}
	}
	return n, nil
}

// readBatches forwards the events of a Service with
// lwg.ServiceConfig.EventBatches to the loop.
func (n *Node) readBatches(svc *lwg.Service) {
	defer n.wg.Done()
	bs := svc.Batches()
	for {
		select {
		case <-n.stop:
			return
		case b, ok := <-bs:
			if !ok {
				return
			}
			for i := range b {
				n.Event(b[i])
			}
			svc.Release(b)
		}
	}
}

// read forwards the Service's events to the loop.
func (n *Node) read(evs <-chan lwg.Event) {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case e, ok := <-evs:
			if !ok {
				return
			}
			n.Event(e)
		}
	}
}

// Event hands the Node one event of a local LWG. Events must come in the
// order the LWG layer raised them. It never blocks (rsm.Config.Tap may
// call it).
func (n *Node) Event(e lwg.Event) {
	n.push(input{ev: &e})
}

func (n *Node) push(in input) bool {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return false
	}
	n.inbox = append(n.inbox, in)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
	return true
}

// do runs f on the loop and waits for it.
func (n *Node) do(ctx context.Context, f func(r *Router)) error {
	done := make(chan struct{})
	if !n.push(input{call: func(r *Router) { f(r); close(done) }}) {
		return ErrNodeClosed
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stop:
		return ErrNodeClosed
	}
}

// SendTo sends payload to every member of group dst, which need not be a
// group this node is a member of (see Router.SendTo). It returns the
// message's sequence number among this node's sends through its local
// group once the multicast is queued there; like an LWG multicast, a
// message whose sender crashes or leaves before it is ordered in the local
// group is not delivered anywhere, and one that is ordered there reaches
// every destination (unless every process holding the latest routing
// state of a group on its way crashes; see docs/COMPOSITION.md).
func (n *Node) SendTo(ctx context.Context, dst lwg.ID, payload []byte) (uint64, error) {
	var seq uint64
	var err error
	if e := n.do(ctx, func(r *Router) { seq, err = r.SendTo(dst, payload) }); e != nil {
		return 0, e
	}
	return seq, err
}

// SendAll sends payload to every group reachable from this node's group.
func (n *Node) SendAll(ctx context.Context, payload []byte) (uint64, error) {
	var seq uint64
	var err error
	if e := n.do(ctx, func(r *Router) { seq, err = r.SendAll(payload) }); e != nil {
		return 0, e
	}
	return seq, err
}

// Through returns the local group a send to dests would go through now.
func (n *Node) Through(ctx context.Context, dests []lwg.ID) (lwg.ID, error) {
	var g lwg.ID
	var err error
	if e := n.do(ctx, func(r *Router) { g, err = r.Through(dests) }); e != nil {
		return "", e
	}
	return g, err
}

// HasState reports whether this node holds group g's routing state.
func (n *Node) HasState(ctx context.Context, g lwg.ID) (bool, error) {
	var ok bool
	err := n.do(ctx, func(r *Router) { ok = r.HasState(g) })
	return ok, err
}

// Deliveries returns the channel of this node's deliveries, routed and
// ordinary, in each group's total order. The application must read it:
// deliveries queue without bound behind it. Closed by Close.
func (n *Node) Deliveries() <-chan Delivery { return n.out }

// Dropped returns how many of the Router's multicasts the LWG layer
// refused (this node had just left the group, or was closing).
func (n *Node) Dropped() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dropped
}

// Excluded returns how many times this node was excluded from a group of
// the topology (lwg.EventExcluded) without asking to leave; Rejoined how
// many times it joined such a group again (NodeConfig.NoRejoin).
func (n *Node) Excluded() (excluded, rejoined uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.excluded, n.rejoined
}

// rejoin joins group g again after an exclusion, retrying with backoff
// until it is a member or the Node closes.
func (n *Node) rejoin(g lwg.ID) {
	defer n.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		err := n.cfg.Service.Join(ctx, g)
		cancel()
		if err == nil || errors.Is(err, lwg.ErrAlreadyMember) {
			if err == nil {
				n.mu.Lock()
				n.rejoined++
				n.mu.Unlock()
			}
			return
		}
		select {
		case <-n.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// RouterFor returns this node's opinion of who routes from a to b (see
// Router.RouterFor).
func (n *Node) RouterFor(ctx context.Context, a, b lwg.ID) (hwg.Process, bool, error) {
	var p hwg.Process
	var ok bool
	err := n.do(ctx, func(r *Router) { p, ok = r.RouterFor(a, b) })
	return p, ok, err
}

// Stats returns the Router's counters as of its last step.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Close stops the Node. Deliveries is closed once its goroutines end.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	close(n.stop)
	n.cncl()
	n.wg.Wait()
	close(n.out)
	return nil
}

func (n *Node) loop() {
	defer n.wg.Done()
	tk := time.NewTicker(n.cfg.TickInterval)
	defer tk.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tk.C:
			n.router.Tick()
		case <-n.wake:
			n.mu.Lock()
			batch := n.inbox
			n.inbox = nil
			n.mu.Unlock()
			for _, in := range batch {
				if in.ev != nil {
					if in.ev.Type == lwg.EventExcluded && n.router.topo.Has(in.ev.LWG) {
						n.mu.Lock()
						n.excluded++
						n.mu.Unlock()
						if n.cfg.Service != nil && !n.cfg.NoRejoin {
							n.wg.Add(1)
							go n.rejoin(in.ev.LWG)
						}
					}
					n.router.LWGEvent(*in.ev)
				} else {
					in.call(n.router)
				}
				n.carryOut()
			}
		}
		n.carryOut()
	}
}

// carryOut does what the Router asks: its multicasts in order, then its
// deliveries to the output queue.
func (n *Node) carryOut() {
	rd := n.router.Ready()
	for _, s := range rd.Sends {
		if err := n.mcast(n.ctx, s.Group, s.Payload); err != nil {
			// Not a member any more (or closing): the Router learns it
			// from the events that follow; its state is replicated.
			n.mu.Lock()
			n.dropped++
			n.mu.Unlock()
		}
	}
	n.mu.Lock()
	n.stats = n.router.Stats()
	if len(rd.Deliveries) > 0 {
		n.outbox = append(n.outbox, rd.Deliveries...)
	}
	n.mu.Unlock()
	if len(rd.Deliveries) > 0 {
		select {
		case n.owake <- struct{}{}:
		default:
		}
	}
}

// deliver moves queued deliveries to the application's channel.
func (n *Node) deliver() {
	defer n.wg.Done()
	for {
		n.mu.Lock()
		batch := n.outbox
		n.outbox = nil
		n.mu.Unlock()
		for _, d := range batch {
			select {
			case n.out <- d:
			case <-n.stop:
				return
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-n.owake:
		case <-n.stop:
			return
		}
	}
}
