package transport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// remote is what a TCP transport knows about one node: its address, the
// highest incarnation seen, the live connection and the frames waiting
// for it. The queue belongs to the node, not to a connection, so frames
// survive a connection being replaced.
type remote struct {
	node uint64

	mu       sync.Mutex
	addr     string      // where to dial; "" if unknown
	inc      uint64      // highest incarnation seen in a kept connection
	conn     *conn       // live connection, or nil
	q        frameQueue  // frames for the node, drained by conn's writer
	dialing  bool        // a dialLoop runs for this node
	backoff  backoff     // delay after the last failed dial
	nextDial time.Time   // no dial before this
	traceQ   []time.Time // for readtrace: when each queued frame was queued
}

// take moves every queued frame to dst for c's writer. It reports false if
// c is no longer the node's connection, in which case the writer stops
// and the frames stay queued for the next connection.
func (r *remote) take(c *conn, dst []outFrame) ([]outFrame, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != c {
		return dst, false
	}
	if readTracing {
		traceTaken(r, r.q.len())
	}
	return r.q.drainTo(dst), true
}

// dialLoop dials r until it has a connection or nothing to send. Only one
// runs per node (r.dialing). A failed attempt discards the queued frames
// (they would be stale by the time a dead node returns, and the layer
// above retransmits) and sets the earliest time of the next attempt,
// which the next Send then waits for.
func (t *TCP) dialLoop(r *remote) {
	defer t.wg.Done()
	for {
		r.mu.Lock()
		if r.conn != nil || r.q.len() == 0 || r.addr == "" || t.ctx.Err() != nil {
			if r.conn == nil {
				t.stats.dropped.Add(uint64(r.q.clear()))
			}
			r.dialing = false
			r.mu.Unlock()
			return
		}
		addr, wait := r.addr, time.Until(r.nextDial)
		r.mu.Unlock()

		if wait > 0 {
			sleepCtx(t.ctx, wait)
			continue // check again: the node may have dialed us meanwhile
		}
		p, err := t.dialAfter(t.ctx, addr, true)
		if errors.Is(err, errWaited) || (err == nil && p.Node == r.node) {
			continue // another dial ended, or connected: check again
		}
		if err == nil {
			// The connection was kept, but for another node: the address
			// has changed hands.
			err = fmt.Errorf("transport: %s is node %d, not node %d", addr, p.Node, r.node)
		}

		r.mu.Lock()
		if r.conn != nil {
			r.mu.Unlock()
			continue // the node dialed us meanwhile
		}
		delay := r.backoff.next(t.cfg.BackoffMin, t.cfg.BackoffMax)
		r.nextDial = time.Now().Add(delay)
		dropped := r.q.clear()
		r.mu.Unlock()
		t.stats.dropped.Add(uint64(dropped))
		t.log.Debug("dial failed", "peer_node", r.node, "addr", addr, "error", err,
			"dropped_frames", dropped, "retry_after", delay)
	}
}

// backoff is an exponential delay with jitter. The zero value starts at
// the minimum.
type backoff struct{ cur time.Duration }

// next doubles the delay within [lo, hi] and returns it with jitter: a
// uniform pick in its upper half, so peers that failed together do not
// retry together.
func (b *backoff) next(lo, hi time.Duration) time.Duration {
	b.cur = min(max(2*b.cur, lo), hi)
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}
