package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ioBufferSize is the size of each connection's read and write buffers.
const ioBufferSize = 64 << 10

// errHandshakeTimeout marks a handshake that did not finish within
// TCPConfig.HandshakeTimeout.
var errHandshakeTimeout = errors.New("handshake timed out")

// conn is one TCP connection of a TCP transport. After the handshake it
// runs two goroutines: readLoop pushes frames to the transport's Inbound
// channel and writeLoop drains the node's queue. Either one failing
// closes the connection, which stops both.
type conn struct {
	t         *TCP
	nc        net.Conn
	dialed    bool   // this side dialed
	addr      string // the address dialed, or the remote address if accepted
	peer      Peer   // the remote node, set by the handshake
	advertise string // the remote's advertised address, from the handshake

	// Set by adopt under r.mu before the goroutines start; read-only after.
	r        *remote
	prevRead <-chan struct{} // readDone of the connection this one replaced

	wakeCh   chan struct{} // capacity 1: frames were queued
	done     chan struct{} // closed by close
	readDone chan struct{} // closed when readLoop can no longer deliver

	// halves counts the directions still open: the writer half-closes
	// when it is done (closeWrite), the reader when it meets the peer's
	// half-close (EOF). The last one closes the connection.
	halves atomic.Int32

	// The reader's progress, read by the grace timer (see graceExpired):
	// frames it has handed on, whether it is blocked on something other
	// than the socket (its predecessor's reader, or a full Inbound
	// channel), and whether it was since the timer's last check.
	framesRead  atomic.Uint64
	readBlocked atomic.Bool
	wasBlocked  atomic.Bool

	closeOnce sync.Once
	mu        sync.Mutex
	grace     *time.Timer // closes a retired connection that lingers
	graceSeen uint64      // framesRead at the grace timer's last check
	// graceChecks counts the grace timer's checks (for tests).
	graceChecks atomic.Int32
}

// dialer returns the NodeID of the node that dialed c.
func (c *conn) dialer() uint64 {
	if c.dialed {
		return c.t.cfg.Self.Node
	}
	return c.peer.Node
}

// supersedes reports whether c should replace old, a live connection to
// the same incarnation of the same node: the connection dialed by the
// lower NodeID wins; between two dialed by the same node, the newer (c)
// wins, since that node only dials again when it lost the old one. Both
// ends compute the same answer.
func (c *conn) supersedes(old *conn) bool {
	return c.dialer() <= old.dialer()
}

// wake tells the writer that frames are queued.
func (c *conn) wake() {
	select {
	case c.wakeCh <- struct{}{}:
	default:
	}
}

// close closes the connection once and detaches it from the transport.
// Safe to call from any goroutine, any number of times.
// abandon closes a connection whose reader never started, and marks that
// reader finished: a connection adopted in its place waits for it (see
// readLoop), and would otherwise wait forever.
func (c *conn) abandon() {
	c.close()
	close(c.readDone)
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.nc.Close()
		c.mu.Lock()
		if c.grace != nil {
			c.grace.Stop()
		}
		c.mu.Unlock()
		c.t.untrack(c)
		c.t.detach(c)
	})
}

// halfDone records that one direction of c is finished, closing c once
// both are.
func (c *conn) halfDone() {
	if c.halves.Add(-1) == 0 {
		c.close()
	}
}

// retire winds c down after another connection to the same incarnation
// replaced it, without dropping what is in flight. The writer stops
// taking frames (they are the successor's now), finishes its batch and
// half-closes; the reader keeps delivering until the peer, which replaces
// c by the same rule, half-closes too. The successor's reader waits for
// this one, so frames stay in order across the swap. A peer that does not
// follow within HandshakeTimeout gets c closed (see graceExpired).
func (c *conn) retire() {
	c.mu.Lock()
	if c.grace == nil && !c.closing() {
		c.graceSeen = c.framesRead.Load()
		c.grace = time.AfterFunc(c.t.cfg.HandshakeTimeout, c.graceExpired)
	}
	c.mu.Unlock()
	c.wake()
}

// graceExpired closes c, retired HandshakeTimeout ago, unless its reader
// is still blocked, waiting for its predecessor's or for a slow consumer,
// or was blocked since the last check and has read frames since (it is
// catching up). Such a reader gets another HandshakeTimeout: closing c
// then discarded what the peer had sent on it before the swap, unread in
// the socket, while the successor went on with later frames (lost frames
// in TestTCPReplacementKeepsOrder under load). A reader that was never
// held up is closed on time as before, whether or not frames still
// arrive on c.
func (c *conn) graceExpired() {
	c.graceChecks.Add(1)
	c.mu.Lock()
	n := c.framesRead.Load()
	catchingUp := c.wasBlocked.Swap(false) && n != c.graceSeen
	if !c.closing() && (c.readBlocked.Load() || catchingUp) {
		c.graceSeen = n
		c.grace.Reset(c.t.cfg.HandshakeTimeout)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.close()
}

// closeWrite half-closes c once its writer is done with it, or closes it
// if the connection cannot be half-closed.
func (c *conn) closeWrite() {
	if hc, ok := c.nc.(interface{ CloseWrite() error }); ok && hc.CloseWrite() == nil {
		c.halfDone()
		return
	}
	c.close()
}

// closing reports whether close has been called.
func (c *conn) closing() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// initiate runs the dialer's side of the handshake: send ours, read and
// check theirs. The acceptor answers only if it keeps the connection, so
// a connection closed during the wait means we were refused.
func (c *conn) initiate(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.nc.SetDeadline(time.Now().Add(c.t.cfg.HandshakeTimeout))
	if _, err := c.nc.Write(c.t.hello); err != nil {
		return c.handshakeErr(ctx, "sending handshake", err)
	}
	if err := c.readHandshake(); err != nil {
		return c.handshakeErr(ctx, "reading handshake", err)
	}
	if !stop() {
		return fmt.Errorf("transport: handshake with %s: %w", c.addr, ctx.Err())
	}
	return c.nc.SetDeadline(time.Time{})
}

// accept runs the acceptor's side of the handshake: read and check the
// dialer's, adopt the connection, then answer. A refused connection is
// closed by the caller without an answer, unless the dialer would refuse
// us for the same reason (see symmetric).
func (c *conn) accept() error {
	c.nc.SetDeadline(time.Now().Add(c.t.cfg.HandshakeTimeout))
	if err := c.readHandshake(); err != nil {
		if symmetric(err) {
			c.nc.Write(c.t.hello) // best effort: we are closing anyway
		}
		return c.handshakeErr(context.Background(), "reading handshake", err)
	}
	if err := c.t.adopt(c); err != nil {
		return err
	}
	if _, err := c.nc.Write(c.t.hello); err != nil {
		return c.handshakeErr(context.Background(), "sending handshake", err)
	}
	return c.nc.SetDeadline(time.Time{})
}

// readHandshake reads, decodes and vets the peer's handshake, setting
// c.peer and c.advertise.
func (c *conn) readHandshake() error {
	b, err := ReadFrame(c.nc, MaxHandshakeSize)
	if err != nil {
		return err
	}
	h, err := DecodeHandshake(b)
	if err != nil {
		return err
	}
	c.peer, c.advertise = h.Peer(), h.Advertise
	return c.t.vet(h)
}

// handshakeErr gives context to an I/O error met during the handshake;
// the package's own errors are returned as they are.
func (c *conn) handshakeErr(ctx context.Context, op string, err error) error {
	switch {
	case errors.Is(err, ErrBadHandshake), errors.Is(err, ErrWrongCluster), errors.Is(err, ErrStalePeer),
		errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrBadFrame):
		return err
	case ctx.Err() != nil:
		err = ctx.Err()
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = errHandshakeTimeout
	case errors.Is(err, io.EOF) && c.dialed:
		err = fmt.Errorf("closed by peer before answering (refused?): %w", err)
	}
	return fmt.Errorf("transport: %s with %s: %w", op, c.addr, err)
}

// readLoop reads frames until the connection fails, pushing each to the
// transport's Inbound channel; when the channel is full it blocks, which
// stops reading from the socket and lets TCP flow control slow the
// sender.
//
// Stall detection: between frames the connection may stay idle for any
// time, so no deadline is set while waiting for the first byte of a
// frame. Once it arrives, every read from the socket until the frame is
// complete must return within IdleReadTimeout, or the connection is
// closed as stalled.
func (c *conn) readLoop() {
	defer c.t.wg.Done()
	defer close(c.readDone)

	if c.prevRead != nil {
		// Deliver nothing before the reader of the connection this one
		// replaced has finished, so frames stay in order across the swap.
		c.readBlocked.Store(true)
		c.wasBlocked.Store(true)
		select {
		case <-c.prevRead:
		case <-c.done: // this connection was closed meanwhile
			return
		case <-c.t.ctx.Done():
			c.close()
			return
		}
		c.readBlocked.Store(false)
	}
	sr := &stallReader{c: c, nc: c.nc, timeout: c.t.cfg.IdleReadTimeout}
	br := bufio.NewReaderSize(sr, ioBufferSize)
	for {
		if br.Buffered() == 0 {
			sr.disarm()
			sr.waited = readTracing
			if _, err := br.Peek(1); err != nil {
				if errors.Is(err, io.EOF) && !c.closing() {
					c.readEOF()
					return
				}
				c.readFailed(err)
				return
			}
		}
		sr.arm()
		frame, err := ReadFrame(br, c.t.cfg.MaxFrame)
		if err != nil {
			c.readFailed(err)
			return
		}
		c.t.stats.received(len(frame))
		if readTracing {
			traceFrameRead(frame)
		}
		select {
		case c.t.inbound <- Inbound{From: c.peer, Frame: frame}:
		default:
			// The consumer is behind: wait for it (see graceExpired).
			c.readBlocked.Store(true)
			c.wasBlocked.Store(true)
			select {
			case c.t.inbound <- Inbound{From: c.peer, Frame: frame}:
			case <-c.t.ctx.Done():
				c.close()
				return
			}
			c.readBlocked.Store(false)
		}
		c.framesRead.Add(1)
	}
}

// readEOF handles the peer's half-close between frames: it will send no
// more, either because it replaced this connection (see retire) or
// because it is going away. The connection stops being the node's, so
// new frames wait for a successor, while the writer finishes what it has
// taken, which the peer still reads, and then half-closes in turn.
func (c *conn) readEOF() {
	c.t.log.Debug("connection closed by peer", "peer", c.peer, "addr", c.addr)
	c.t.detach(c)
	c.wake()
	c.halfDone()
}

// readFailed logs why reading stopped and closes the connection.
func (c *conn) readFailed(err error) {
	defer c.close()
	args := []any{"peer", c.peer, "addr", c.addr, "error", err}
	switch {
	case c.closing() || c.t.ctx.Err() != nil:
		// We closed it: replaced, writer failed, or shutting down.
	case errors.Is(err, ErrFrameTooLarge):
		c.t.log.Warn("closing connection: peer sent a frame over MaxFrame", args...)
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.t.log.Warn("closing connection: peer stalled mid-frame", append(args, "idle_read_timeout", c.t.cfg.IdleReadTimeout)...)
	case errors.Is(err, ErrBadFrame):
		c.t.log.Warn("closing connection: malformed frame", args...)
	default:
		c.t.log.Debug("connection failed", args...)
	}
}

// writeLoop waits for frames queued for the node and writes them in
// batches, until the connection fails or stops being the node's
// connection. Each batch is everything queued, plus whatever senders add
// while the writer yields once before flushing: under load that turns
// many small frames into one write system call.
func (c *conn) writeLoop() {
	defer c.t.wg.Done()
	w := batchWriter{
		bw: bufio.NewWriterSize(&deadlineWriter{
			c:       c,
			nc:      c.nc,
			timeout: c.t.cfg.WriteTimeout,
			writes:  &c.t.stats.writes,
		}, ioBufferSize),
		stats: &c.t.stats,
	}
	var batch []outFrame
	for {
		select {
		case <-c.wakeCh:
		case <-c.done:
			return
		}
		for {
			var ok bool
			batch, ok = c.r.take(c, batch[:0])
			if ok && len(batch) > 0 {
				w.add(batch)
				runtime.Gosched() // let senders add to this write
				batch, ok = c.r.take(c, batch[:0])
				w.add(batch)
			}
			if err := w.flush(); err != nil {
				if !c.closing() && c.t.ctx.Err() == nil {
					c.t.log.Debug("write failed; closing connection", "peer", c.peer, "addr", c.addr, "error", err)
				}
				c.close()
				return
			}
			if !ok {
				// Replaced (see retire) or detached: what is queued is
				// the successor's.
				c.closeWrite()
				return
			}
			if len(batch) == 0 {
				break
			}
		}
	}
}

// batchWriter buffers frames for one flush and counts them once written.
// It belongs to one writer goroutine.
type batchWriter struct {
	bw     *bufio.Writer
	stats  *counters
	frames int
	bytes  uint64
	err    error // first write error; the connection is done after it
}

// add buffers frames (the bufio.Writer writes through when it fills) and
// clears batch; the transport owns its frames, which are garbage once
// copied, so they go back to the buffer pool, and the body of a frame in
// parts is released (once written: into the socket, or copied into the
// bufio.Writer; or at once after a write error).
func (w *batchWriter) add(batch []outFrame) {
	for i, f := range batch {
		if w.err == nil {
			n := len(f.b)
			if f.body == nil {
				w.err = WriteFrame(w.bw, f.b)
			} else {
				n, w.err = writeParts(w.bw, f.b, f.body)
			}
			w.frames++
			w.bytes += uint64(HeaderSize + n)
		}
		PutBuffer(f.b)
		if f.release != nil {
			f.release()
		}
		batch[i] = outFrame{}
	}
}

// flush writes what is buffered and counts the frames as sent.
func (w *batchWriter) flush() error {
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	if w.err != nil {
		return w.err
	}
	w.stats.sent(w.frames, w.bytes)
	w.frames, w.bytes = 0, 0
	return nil
}

// stallReader sets a read deadline before every read from the socket
// while armed, and clears it when disarmed. It belongs to one reader
// goroutine.
type stallReader struct {
	c       *conn
	nc      net.Conn
	timeout time.Duration
	armed   bool // inside a frame
	set     bool // a deadline is in force
	waited  bool // readtrace: the first read after the buffer ran dry
}

func (s *stallReader) Read(p []byte) (int, error) {
	if s.armed {
		s.nc.SetReadDeadline(time.Now().Add(s.timeout))
		s.set = true
	}
	n, err := s.nc.Read(p)
	if readTracing {
		traceRead(s.c, n, s.waited)
		s.waited = false
	}
	return n, err
}

func (s *stallReader) arm() { s.armed = true }

func (s *stallReader) disarm() {
	s.armed = false
	if s.set {
		s.nc.SetReadDeadline(time.Time{})
		s.set = false
	}
}

// deadlineWriter sets a write deadline before every write to the socket
// and counts the writes. It belongs to one writer goroutine.
type deadlineWriter struct {
	c       *conn
	nc      net.Conn
	timeout time.Duration
	writes  *atomic.Uint64
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.writes.Add(1)
	w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
	n, err := w.nc.Write(p)
	if readTracing {
		traceWrote(w.c, n)
	}
	return n, err
}
