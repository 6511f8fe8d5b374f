package transport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TCP is the Transport over TCP. Between two nodes it keeps at most one
// connection, which carries frames both ways and is shared by every group.
//
// A connection opens with a handshake in each direction (see Handshake).
// The dialer sends first; the acceptor checks it, decides whether to keep
// the connection and only then answers, so a dialer whose connection is
// refused sees it closed during the handshake rather than after.
//
// When both nodes dial each other at once, the connection dialed by the
// lower NodeID survives on both sides; between two connections dialed by
// the same node the newer survives, and a higher incarnation always
// replaces a lower one. Every side applies the same rule to the same
// pair, so they agree without another message. A connection replaced by
// one to the same incarnation is wound down rather than cut: each side
// stops writing to it and half-closes it, and reads it to the end before
// reading its successor, so the swap neither reorders nor usually loses
// frames. Frames can still be lost when connections race, never
// duplicated or reordered.
//
// Frames for a node wait in a bounded queue (TCPConfig.SendQueue, oldest
// dropped first) drained by the connection's writer goroutine, which
// writes everything queued with one flush. Connections are dialed on
// demand: a Send to a node with a known address and no connection starts
// a dial. A failed dial discards the frames queued for that node and
// delays the next attempt with exponential backoff; the layer above
// retransmits.
//
// Each connection has one reader goroutine that pushes to the Inbound
// channel. If the consumer falls behind, the channel fills, readers block
// and TCP flow control pushes back on the senders.
//
// Every method is safe for concurrent use.
type TCP struct {
	cfg     TCPConfig
	log     hclog.Logger
	ln      net.Listener
	addr    string // actual listen address
	hello   []byte // our handshake frame, length prefix included
	inbound chan Inbound
	stats   counters

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the transport starts

	closeOnce sync.Once
	closeErr  error

	mu     sync.RWMutex
	closed bool
	peers  map[uint64]*remote
	conns  map[*conn]struct{} // open connections, handshaking ones included
	// dialsTo holds the dial in progress of each address, if any; its
	// channel is closed when it ends. Dials of one address take turns
	// (see dial), and a node whose address is being dialed gets no
	// dialLoop of its own until that dial ends (see dialEnded): a second
	// connection racing the first made three where two were meant, and
	// frames were lost in the swaps.
	dialsTo map[string]chan struct{}
	// dialWaits counts the dials waiting for another of their address
	// (for tests: a wait is otherwise invisible).
	dialWaits atomic.Int32
}

var _ Transport = (*TCP)(nil)

// keepAlive is the TCP keep-alive of every connection. Heartbeats from
// the layer above usually reveal a dead connection first (a write to a
// peer that forgot the connection draws a reset), but a side with nothing
// to send relies on keep-alive to notice a peer that vanished, and until
// it does, that peer's new connections can lose the tie-break to the dead
// one. These settings bound that to about 30 seconds.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}

// NewTCP listens on cfg.Listen, starts dialing cfg.Seeds in the background
// and returns the running transport. Close releases it.
func NewTCP(cfg TCPConfig) (*TCP, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{KeepAliveConfig: keepAlive}
	ln, err := lc.Listen(context.Background(), "tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("transport: listen on %s: %w", cfg.Listen, err)
	}
	addr := ln.Addr().String()
	if cfg.Advertise == "" {
		cfg.Advertise = addr
	}
	body, err := EncodeHandshake(Handshake{
		Magic:     Magic,
		Version:   Version,
		Cluster:   cfg.Cluster,
		Node:      cfg.Self.Node,
		Inc:       cfg.Self.Inc,
		Advertise: cfg.Advertise,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &TCP{
		cfg:     cfg,
		log:     cfg.Logger.With("node", cfg.Self.Node),
		ln:      ln,
		addr:    addr,
		hello:   appendFrame(nil, body),
		inbound: make(chan Inbound, cfg.InboundBuffer),
		ctx:     ctx,
		cancel:  cancel,
		peers:   make(map[uint64]*remote),
		conns:   make(map[*conn]struct{}),
		dialsTo: make(map[string]chan struct{}),
	}
	t.wg.Add(1 + len(cfg.Seeds))
	go t.acceptLoop()
	for _, s := range cfg.Seeds {
		go t.seedLoop(s)
	}
	t.log.Debug("listening", "addr", addr, "advertise", cfg.Advertise)
	return t, nil
}

// Addr returns the address the transport listens on.
func (t *TCP) Addr() string { return t.addr }

// Self returns this node's identity.
func (t *TCP) Self() Peer { return t.cfg.Self }

// Inbound returns the channel of received frames; see Transport.
func (t *TCP) Inbound() <-chan Inbound { return t.inbound }

// Stats returns the traffic counters so far. Handshakes are not counted:
// the counters cover the frames given to Send and delivered by Inbound.
func (t *TCP) Stats() Stats { return t.stats.snapshot() }

// Dropped returns the number of frames discarded before they were written:
// pushed out of a full send queue, or queued for a node that could not be
// dialed.
func (t *TCP) Dropped() uint64 { return t.stats.dropped.Load() }

// Send queues frame for node to; see Transport. A frame longer than
// MaxFrame is refused with ErrFrameTooLarge. A node with neither a live
// connection nor a known address (this node included) is refused with
// ErrUnknownPeer. Otherwise the frame is queued, and a dial is started if
// the node has no connection. The transport owns frame after the call.
func (t *TCP) Send(to uint64, frame []byte) error {
	if len(frame) > t.cfg.MaxFrame {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, len(frame), t.cfg.MaxFrame)
	}
	return t.queue(to, outFrame{b: frame})
}

var _ PartsSender = (*TCP)(nil)

// SendParts implements PartsSender.
func (t *TCP) SendParts(to uint64, head []byte, body [][]byte, release func()) error {
	f := outFrame{b: head, body: body, release: release}
	if body == nil {
		f.body = [][]byte{} // a frame in parts, even with no body
	}
	if n := partsLen(head, body); n > t.cfg.MaxFrame {
		f.discard()
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, t.cfg.MaxFrame)
	}
	return t.queue(to, f)
}

// queue queues f for node to; a frame it refuses is discarded.
func (t *TCP) queue(to uint64, frame outFrame) (err error) {
	defer func() {
		if err != nil {
			frame.discard()
		}
	}()
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return ErrClosed
	}
	r := t.peers[to]
	if r == nil {
		return fmt.Errorf("%w: node %d", ErrUnknownPeer, to)
	}
	r.mu.Lock()
	c := r.conn
	if c == nil && r.addr == "" {
		r.mu.Unlock()
		return fmt.Errorf("%w: node %d", ErrUnknownPeer, to)
	}
	if readTracing {
		r.traceQ = append(r.traceQ, time.Now())
	}
	if r.q.push(frame) {
		t.stats.dropped.Add(1)
		if readTracing {
			r.traceQ = r.traceQ[1:]
		}
	}
	dial := c == nil && !r.dialing && t.dialsTo[r.addr] == nil
	if dial {
		r.dialing = true
		t.wg.Add(1) // under t.mu with t.closed false: before Close's Wait
	}
	r.mu.Unlock()
	if c != nil {
		c.wake()
	}
	if dial {
		go t.dialLoop(r)
	}
	return nil
}

// AddPeer records addr as the address of node n, replacing any address
// learned before; a later handshake with n replaces it in turn (with the
// address dialed, or the one n advertises when it dials us). It does not
// dial: the first Send to n does. Entries for node 0, this node or an
// empty address are ignored.
func (t *TCP) AddPeer(n uint64, addr string) {
	if n == 0 || n == t.cfg.Self.Node || addr == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	r := t.remoteLocked(n)
	r.mu.Lock()
	r.addr = addr
	r.mu.Unlock()
}

// Dial connects to addr, performs the handshake and keeps the connection
// (unless a connection to the same node that wins the tie-break already
// exists, which Dial then reports as success). It returns the node found
// at addr. Dials of one address take turns: Dial first waits for one
// under way (the node's own, or another Dial). Dial blocks until the
// handshake ends, ctx is done, the transport closes or a timeout expires.
func (t *TCP) Dial(ctx context.Context, addr string) (Peer, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()
	return t.dial(ctx, addr)
}

// ConnCount returns the number of live connections, one per connected
// node.
func (t *TCP) ConnCount() int { return len(t.Peers()) }

// Peers returns the nodes this transport has a live connection to, in
// NodeID order.
func (t *TCP) Peers() []Peer {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var ps []Peer
	for _, r := range t.peers {
		r.mu.Lock()
		if r.conn != nil {
			ps = append(ps, r.conn.peer)
		}
		r.mu.Unlock()
	}
	slices.SortFunc(ps, func(a, b Peer) int { return cmp.Compare(a.Node, b.Node) })
	return ps
}

// Close stops the listener and every goroutine, closes every connection
// and then the Inbound channel. Frames still queued are discarded. Close
// is idempotent; every call returns once the transport has stopped.
func (t *TCP) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		conns := make([]*conn, 0, len(t.conns))
		for c := range t.conns {
			conns = append(conns, c)
		}
		t.mu.Unlock()

		t.cancel()
		if err := t.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			t.closeErr = fmt.Errorf("transport: closing listener: %w", err)
		}
		for _, c := range conns {
			c.close()
		}
		t.wg.Wait()
		// What is still queued will not be written: release the bodies
		// of frames in parts.
		t.mu.RLock()
		for _, r := range t.peers {
			r.mu.Lock()
			r.q.clear()
			r.mu.Unlock()
		}
		t.mu.RUnlock()
		close(t.inbound)
		if readTracing {
			writeReadTrace()
		}
		t.log.Debug("closed")
	})
	return t.closeErr
}

// acceptLoop accepts connections until the listener closes, handing each
// to its own goroutine for the handshake.
func (t *TCP) acceptLoop() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		nc, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http
			// does rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("accept failed", "error", err, "retry_in", delay)
			if !sleepCtx(t.ctx, delay) {
				return
			}
			continue
		}
		delay = 0
		t.wg.Add(1) // this goroutine is counted: Wait cannot have returned
		go t.serveConn(nc)
	}
}

// serveConn runs the acceptor's side of the handshake and, if the
// connection is kept, starts its reader and writer.
func (t *TCP) serveConn(nc net.Conn) {
	defer t.wg.Done()
	c, err := t.newConn(nc, false, nc.RemoteAddr().String())
	if err != nil {
		nc.Close()
		return
	}
	if err := c.accept(); err != nil {
		c.abandon()
		t.logRejected(c, err)
		return
	}
	if err := t.start(c); err != nil {
		c.abandon()
	}
}

// dial connects to addr and runs the dialer's side of the handshake,
// once any dial of addr already under way has ended. On success the
// connection is kept and running; a duplicate that loses the tie-break to
// an existing connection is closed, and dial still reports the node as
// reached.
func (t *TCP) dial(ctx context.Context, addr string) (Peer, error) {
	return t.dialAfter(ctx, addr, false)
}

// errWaited: dialAfter waited for another dial of the address and, as
// asked, did not dial.
var errWaited = errors.New("transport: waited for another dial of the address")

// dialAfter is dial, after any dial of addr already under way has ended:
// a Dial made while the node's own dialLoop was in its handshake raced
// it, as a dialLoop started during a Dial did. recheck: if it had to
// wait, return errWaited instead of dialing, so that the caller checks
// whether it still needs to (a dialLoop whose node the other dial
// connected).
func (t *TCP) dialAfter(ctx context.Context, addr string, recheck bool) (Peer, error) {
	t.mu.Lock()
	for t.dialsTo[addr] != nil {
		ended := t.dialsTo[addr]
		t.mu.Unlock()
		t.dialWaits.Add(1)
		select {
		case <-ended:
		case <-ctx.Done():
			t.dialWaits.Add(-1)
			return Peer{}, fmt.Errorf("transport: dial %s: waiting for the dial under way: %w", addr, ctx.Err())
		}
		t.dialWaits.Add(-1)
		if recheck {
			return Peer{}, errWaited
		}
		t.mu.Lock()
	}
	t.dialsTo[addr] = make(chan struct{})
	t.mu.Unlock()
	defer t.dialEnded(addr)
	d := net.Dialer{Timeout: t.cfg.DialTimeout, KeepAliveConfig: keepAlive}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Peer{}, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	c, err := t.newConn(nc, true, addr)
	if err != nil {
		nc.Close()
		return Peer{}, err
	}
	err = c.initiate(ctx)
	if err == nil {
		err = t.adopt(c)
	}
	if err != nil {
		c.abandon()
		t.logRejected(c, err)
		if errors.Is(err, errDuplicate) {
			return c.peer, nil
		}
		return c.peer, err
	}
	if err := t.start(c); err != nil {
		c.abandon()
		return c.peer, err
	}
	return c.peer, nil
}

// dialEnded ends the dial of addr and lets the next dial of addr begin; a
// node that still has frames queued and no connection, and whose address
// is not being dialed (the dial failed or found another node, or the
// node's address changed meanwhile), gets the dialLoop it was held back
// from.
func (t *TCP) dialEnded(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	close(t.dialsTo[addr])
	delete(t.dialsTo, addr)
	if t.closed {
		return
	}
	for _, r := range t.peers {
		r.mu.Lock()
		if r.addr != "" && t.dialsTo[r.addr] == nil && r.conn == nil && !r.dialing && r.q.len() > 0 {
			r.dialing = true
			t.wg.Add(1) // under t.mu with t.closed false: before Close's Wait
			go t.dialLoop(r)
		}
		r.mu.Unlock()
	}
}

// seedLoop dials a seed address until it answers, so that the node there
// becomes known. Errors that retrying cannot fix end the loop.
func (t *TCP) seedLoop(addr string) {
	defer t.wg.Done()
	var b backoff
	for {
		p, err := t.dial(t.ctx, addr)
		switch {
		case err == nil:
			t.log.Debug("seed reached", "addr", addr, "peer", p)
			return
		case t.ctx.Err() != nil:
			return
		case errors.Is(err, errSelf):
			t.log.Debug("seed is this node", "addr", addr)
			return
		case permanent(err):
			t.log.Warn("giving up on seed", "addr", addr, "error", err)
			return
		}
		wait := b.next(t.cfg.BackoffMin, t.cfg.BackoffMax)
		t.log.Debug("seed unreachable", "addr", addr, "error", err, "retry_in", wait)
		if !sleepCtx(t.ctx, wait) {
			return
		}
	}
}

// permanent reports whether a dial error will not go away by retrying.
func permanent(err error) bool {
	return errors.Is(err, ErrWrongCluster) || errors.Is(err, ErrBadHandshake) ||
		errors.Is(err, ErrStalePeer) || errors.Is(err, ErrFrameTooLarge) ||
		errors.Is(err, ErrClosed)
}

// remoteLocked returns the state of node n, creating it. t.mu must be
// held for writing.
func (t *TCP) remoteLocked(n uint64) *remote {
	r := t.peers[n]
	if r == nil {
		r = &remote{node: n, q: newFrameQueue(t.cfg.SendQueue)}
		t.peers[n] = r
	}
	return r
}

// newConn wraps nc and tracks it so that Close can reach it.
func (t *TCP) newConn(nc net.Conn, dialed bool, addr string) (*conn, error) {
	c := &conn{
		t:        t,
		nc:       nc,
		dialed:   dialed,
		addr:     addr,
		wakeCh:   make(chan struct{}, 1),
		done:     make(chan struct{}),
		readDone: make(chan struct{}),
	}
	c.halves.Store(2)
	c.wakeCh <- struct{}{} // the writer's first pass drains what is queued
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	t.conns[c] = struct{}{}
	return c, nil
}

// vet checks a peer's decoded handshake against this transport: same
// cluster, not ourselves, not older than an incarnation already seen.
func (t *TCP) vet(h Handshake) error {
	if h.Cluster != t.cfg.Cluster {
		return fmt.Errorf("%w: %q, want %q", ErrWrongCluster, h.Cluster, t.cfg.Cluster)
	}
	if h.Node == t.cfg.Self.Node {
		if h.Inc == t.cfg.Self.Inc {
			return errSelf
		}
		return fmt.Errorf("%w: incarnation %d", errSameNode, h.Inc)
	}
	t.mu.RLock()
	r := t.peers[h.Node]
	t.mu.RUnlock()
	if r != nil {
		r.mu.Lock()
		seen := r.inc
		r.mu.Unlock()
		if h.Inc < seen {
			return fmt.Errorf("%w: node %d incarnation %d, seen %d", ErrStalePeer, h.Node, h.Inc, seen)
		}
	}
	return nil
}

// errSelf is a connection to ourselves, typically a seed list that names
// this node: not worth a warning.
var errSelf = fmt.Errorf("%w: connected to ourselves", ErrBadHandshake)

// errSameNode is a peer claiming our NodeID with another incarnation.
var errSameNode = fmt.Errorf("%w: peer claims our NodeID", ErrBadHandshake)

// symmetric reports whether a handshake was refused for a reason the
// other end will find as well once it reads our handshake: the acceptor
// then answers before closing, so the dialer learns why instead of seeing
// the connection drop (and a seed naming this node, or another cluster,
// is not retried forever).
func symmetric(err error) bool {
	return errors.Is(err, ErrWrongCluster) || errors.Is(err, errSelf) || errors.Is(err, errSameNode)
}

// errDuplicate is a second connection to a node that loses the tie-break
// against the one already kept.
var errDuplicate = errors.New("transport: duplicate connection")

// adopt makes c, whose handshake has been checked, the connection to its
// node, closing the connection it replaces; or rejects it as stale or
// as a duplicate that loses the tie-break.
func (t *TCP) adopt(c *conn) error {
	// t.mu is held throughout so that Close, which takes it before
	// closing connections, sees c.r.
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrClosed
	}
	r := t.remoteLocked(c.peer.Node)
	r.mu.Lock()
	old := r.conn
	switch {
	case c.peer.Inc < r.inc:
		r.mu.Unlock()
		t.mu.Unlock()
		return fmt.Errorf("%w: node %d incarnation %d, seen %d", ErrStalePeer, c.peer.Node, c.peer.Inc, r.inc)
	case c.peer.Inc == r.inc && old != nil && !c.supersedes(old):
		r.mu.Unlock()
		t.mu.Unlock()
		return fmt.Errorf("%w to node %d: keeping the one dialed by node %d", errDuplicate, c.peer.Node, old.dialer())
	}
	sameInc := old != nil && c.peer.Inc == r.inc
	r.inc = c.peer.Inc
	r.conn = c
	c.r = r
	if sameInc {
		c.prevRead = old.readDone
	}
	if c.dialed {
		r.addr = c.addr // known to work
	} else if c.advertise != "" {
		r.addr = c.advertise
	}
	r.backoff = backoff{}
	r.nextDial = time.Time{}
	r.mu.Unlock()
	t.mu.Unlock()

	switch {
	case sameInc:
		old.retire()
		t.log.Debug("connection replaced", "peer", c.peer, "dialed_by", c.dialer())
	case old != nil:
		// The old incarnation restarted: nothing it sends matters now.
		old.close()
		t.log.Debug("connection replaced by a new incarnation", "peer", c.peer, "old_peer", old.peer)
	}
	t.log.Debug("connected", "peer", c.peer, "addr", c.addr, "dialed", c.dialed)
	return nil
}

// start runs c's reader and writer.
func (t *TCP) start(c *conn) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return ErrClosed
	}
	t.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	return nil
}

// untrack stops tracking c for Close.
func (t *TCP) untrack(c *conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// detach ends c's term as its node's connection, if it is that. Frames
// still queued for the node stay queued and get a new dial.
func (t *TCP) detach(c *conn) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	r := c.r
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != c {
		return
	}
	r.conn = nil
	if r.q.len() == 0 || r.dialing || t.closed || t.dialsTo[r.addr] != nil {
		return
	}
	if r.addr == "" {
		t.stats.dropped.Add(uint64(r.q.clear()))
		return
	}
	r.dialing = true
	t.wg.Add(1) // under t.mu with t.closed false: before Close's Wait
	go t.dialLoop(r)
}

// logRejected logs why a connection was refused or failed during the
// handshake, at Warn for anything a peer should not do and at Debug for
// the ordinary cases.
func (t *TCP) logRejected(c *conn, err error) {
	args := []any{"addr", c.addr, "dialed", c.dialed, "error", err}
	if c.peer.Node != 0 {
		args = append(args, "peer", c.peer)
	}
	switch {
	case t.ctx.Err() != nil, errors.Is(err, ErrClosed):
	case errors.Is(err, errSelf), errors.Is(err, errDuplicate):
		t.log.Debug("closing connection", args...)
	case errors.Is(err, ErrWrongCluster):
		t.log.Warn("rejecting connection: peer belongs to another cluster", args...)
	case errors.Is(err, ErrStalePeer):
		t.log.Warn("rejecting connection: stale peer incarnation", args...)
	case errors.Is(err, ErrBadHandshake):
		t.log.Warn("rejecting connection: bad handshake", args...)
	case errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrBadFrame):
		t.log.Warn("rejecting connection: malformed handshake frame", args...)
	case errors.Is(err, errHandshakeTimeout):
		t.log.Warn("rejecting connection: handshake timed out", args...)
	default:
		t.log.Debug("connection failed during handshake", args...)
	}
}

// sleepCtx waits for d or until ctx is done, reporting whether the full
// delay elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
