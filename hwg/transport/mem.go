package transport

import (
	"fmt"
	"sync"
)

// memQueueLimit bounds the frames waiting for one in-memory endpoint; past
// it the oldest are dropped, as TCPConfig.SendQueue does.
const memQueueLimit = 1 << 16

// MemNetwork is an in-memory network for tests: its endpoints find each
// other by NodeID, frames arrive in order per sender, and tests can cut
// links (Partition) or drop frames (SetDrop). It is safe for concurrent
// use.
type MemNetwork struct {
	mu        sync.RWMutex
	endpoints map[uint64]*memEndpoint // open endpoints by node
	known     map[uint64]bool         // nodes that ever had an endpoint
	cuts      map[[2]uint64]bool      // partitioned pairs, lower node first

	dropMu sync.Mutex
	drop   func(from, to uint64) bool
}

// NewMemNetwork returns an empty network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{
		endpoints: make(map[uint64]*memEndpoint),
		known:     make(map[uint64]bool),
		cuts:      make(map[[2]uint64]bool),
	}
}

// Endpoint attaches node self to the network and returns its transport.
// If the node already has an open endpoint, that one is closed first, as
// if the node had restarted. The Transport behaves like TCP: Send returns
// at once, frames from one sender arrive in order, Send to a node that
// never had an endpoint returns ErrUnknownPeer, frames to a node whose
// endpoint is closed are lost, and Stats count each frame as if framed
// (a 4-byte header, one write per Send). Frames sent are counted when
// Send accepts them, even if a fault then drops them. AddPeer does
// nothing.
func (n *MemNetwork) Endpoint(self Peer) Transport {
	e := &memEndpoint{
		net:     n,
		self:    self,
		inbound: make(chan Inbound, DefaultInboundBuffer),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	n.mu.Lock()
	old := n.endpoints[self.Node]
	n.endpoints[self.Node] = e
	n.known[self.Node] = true
	n.mu.Unlock()
	if old != nil {
		old.Close()
	}
	e.wg.Add(1)
	go e.deliverLoop()
	return e
}

// Partition cuts (cut true) or restores (cut false) the link between
// nodes a and b, in both directions. Frames already on their way across a
// link when it is cut are lost.
func (n *MemNetwork) Partition(a, b uint64, cut bool) {
	k := pairKey(a, b)
	n.mu.Lock()
	defer n.mu.Unlock()
	if cut {
		n.cuts[k] = true
	} else {
		delete(n.cuts, k)
	}
}

// Heal restores every link cut by Partition.
func (n *MemNetwork) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cuts)
}

// SetDrop installs f, which decides for each frame sent whether it is
// lost; nil drops nothing. f is called from Send, one call at a time, so
// it may use state (a seeded rand.Rand, a counter) without locking.
func (n *MemNetwork) SetDrop(f func(from, to uint64) bool) {
	n.dropMu.Lock()
	defer n.dropMu.Unlock()
	n.drop = f
}

func pairKey(a, b uint64) [2]uint64 {
	if a > b {
		a, b = b, a
	}
	return [2]uint64{a, b}
}

// route returns the endpoint frames from -> to should go to, or nil if
// they are lost; known reports whether node to ever existed.
func (n *MemNetwork) route(from, to uint64) (dst *memEndpoint, known bool) {
	n.mu.RLock()
	dst, known = n.endpoints[to], n.known[to]
	cut := n.cuts[pairKey(from, to)]
	n.mu.RUnlock()
	if !known || dst == nil || cut {
		return nil, known
	}
	n.dropMu.Lock()
	lost := n.drop != nil && n.drop(from, to)
	n.dropMu.Unlock()
	if lost {
		return nil, true
	}
	return dst, true
}

// linked reports whether a frame from src may still reach dst: both
// endpoints open and attached, and the link not cut.
func (n *MemNetwork) linked(src, dst *memEndpoint) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.endpoints[src.self.Node] == src && n.endpoints[dst.self.Node] == dst &&
		!n.cuts[pairKey(src.self.Node, dst.self.Node)]
}

// memEndpoint is one node's Transport on a MemNetwork. A goroutine per
// endpoint moves frames from its queue to its Inbound channel, so a Send
// never blocks on a slow receiver.
type memEndpoint struct {
	net     *MemNetwork
	self    Peer
	inbound chan Inbound
	stats   counters

	mu     sync.Mutex
	queue  []memFrame // waiting for deliverLoop, oldest first
	closed bool

	wake      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

type memFrame struct {
	from  *memEndpoint
	frame []byte
}

var _ Transport = (*memEndpoint)(nil)

func (e *memEndpoint) Send(to uint64, frame []byte) error {
	if len(frame) > DefaultMaxFrame {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, len(frame), DefaultMaxFrame)
	}
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if to == e.self.Node {
		return fmt.Errorf("%w: node %d", ErrUnknownPeer, to)
	}
	dst, known := e.net.route(e.self.Node, to)
	if !known {
		return fmt.Errorf("%w: node %d", ErrUnknownPeer, to)
	}
	e.stats.sent(1, uint64(HeaderSize+len(frame)))
	e.stats.writes.Add(1)
	if dst != nil {
		dst.enqueue(memFrame{from: e, frame: frame})
	}
	return nil
}

var _ PartsSender = (*memEndpoint)(nil)

// SendParts implements PartsSender: the in-memory transport copies the
// parts into one frame and releases the body at once.
func (e *memEndpoint) SendParts(to uint64, head []byte, body [][]byte, release func()) error {
	frame := GetBuffer(partsLen(head, body))
	frame = append(frame, head...)
	for _, p := range body {
		frame = append(frame, p...)
	}
	release()
	return e.Send(to, frame)
}

// enqueue adds f to e's queue, dropping the oldest frame if it is full.
func (e *memEndpoint) enqueue(f memFrame) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	if len(e.queue) >= memQueueLimit {
		e.queue[0] = memFrame{}
		e.queue = e.queue[1:]
		e.stats.dropped.Add(1)
	}
	e.queue = append(e.queue, f)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// deliverLoop moves queued frames to the Inbound channel, skipping those
// whose link was cut or whose sender closed since they were sent.
func (e *memEndpoint) deliverLoop() {
	defer e.wg.Done()
	var batch []memFrame
	for {
		select {
		case <-e.wake:
		case <-e.done:
			return
		}
		e.mu.Lock()
		batch = append(batch[:0], e.queue...)
		clear(e.queue)
		e.queue = e.queue[:0]
		e.mu.Unlock()
		for i, f := range batch {
			batch[i] = memFrame{}
			if !e.net.linked(f.from, e) {
				continue
			}
			select {
			case e.inbound <- Inbound{From: f.from.self, Frame: f.frame}:
				e.stats.received(len(f.frame))
			case <-e.done:
				return
			}
		}
	}
}

func (e *memEndpoint) Inbound() <-chan Inbound { return e.inbound }

// AddPeer does nothing: endpoints find each other by NodeID.
func (e *memEndpoint) AddPeer(uint64, string) {}

func (e *memEndpoint) Stats() Stats { return e.stats.snapshot() }

// Close detaches the endpoint: nothing more is delivered to or from it.
func (e *memEndpoint) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		e.queue = nil
		e.mu.Unlock()
		e.net.mu.Lock()
		if e.net.endpoints[e.self.Node] == e {
			delete(e.net.endpoints, e.self.Node)
		}
		e.net.mu.Unlock()
		close(e.done)
		e.wg.Wait()
		close(e.inbound)
	})
	return nil
}
