package hwg

import (
	"fmt"
	"slices"
)

// coordinator is the sequencer's state for one view.
type coordinator struct {
	next      map[Process]uint64 // next FIFO number expected from each sender
	acked     map[Process]uint64 // highest contiguous seq each member holds
	knows     map[Process]uint64 // commit point each member has acknowledged
	batchFrom uint64             // entries after this seq are not yet sent
	announced uint64             // commit point last sent to the members
	// parked holds forwarded entries that arrived while the unstable
	// window was full, in arrival order (FIFO per sender), sequenced as
	// soon as acks open the window rather than at the sender's next
	// retransmission. Bounded by MaxUnstable; beyond it senders retry.
	parked []Entry
	// dupAcks counts acks from a member that did not advance while it is
	// behind what was sent: two in a row mean a lost Order, resent at once
	// (fast retransmit) instead of at the next tick. recovering marks a
	// member resent to and not yet advanced: once per loss, as in TCP, or
	// the acks of the resent Orders would trigger resends in a storm.
	dupAcks    map[Process]int
	recovering map[Process]bool
	// sentMark and commitMark are what had been sent (entries, commit
	// point) at the last retransmission tick (see Config.LazyRetransmit).
	sentMark, commitMark uint64
}

func newCoordinator(v View) *coordinator {
	c := &coordinator{next: map[Process]uint64{}, acked: map[Process]uint64{}, knows: map[Process]uint64{},
		dupAcks: map[Process]int{}, recovering: map[Process]bool{}}
	for _, p := range v.Members {
		c.next[p] = 1
		c.acked[p] = 0
	}
	return c
}

// send multicasts payload in the current view.
func (g *Group) send(payload []byte) {
	g.lastSent++
	e := Entry{ID: MsgID{Sender: g.self, View: g.view.ID, Seq: g.lastSent}, Payload: payload}
	g.pending = append(g.pending, e)
	g.emit(Event{Type: EventSend, Msg: e.ID, Payload: payload})
	if g.co != nil && g.sequence(e) {
		g.advanceCommit() // a group of one commits at once
	}
}

// sequence assigns the next seq to e if it is the next of its sender in
// FIFO order and the unstable window has room. It reports whether it did.
func (g *Group) sequence(e Entry) bool {
	c := g.co
	if e.ID.Seq != c.next[e.ID.Sender] || g.windowFull() {
		return false
	}
	c.next[e.ID.Sender]++
	e.Seq = g.held + 1
	g.appendLog(e)
	g.unstable += len(e.Payload)
	c.acked[g.self] = g.held
	return true
}

// windowFull reports whether the coordinator must stop sequencing until
// slow members catch up.
func (g *Group) windowFull() bool {
	return g.held-g.stable >= g.cfg.MaxUnstable || (g.held > g.stable && g.unstable >= g.cfg.MaxUnstableBytes)
}

// appendLog adds the next sequenced entry and retires own pending sends it
// covers.
func (g *Group) appendLog(e Entry) {
	g.log.append(e)
	g.held = e.Seq
	if e.ID.Sender == g.self {
		// INVARIANT: a sender's entries are sequenced in FIFO order, so the
		// ones sequenced are a prefix of pending.
		n := 0
		for n < len(g.pending) && g.pending[n].ID.Seq <= e.ID.Seq {
			g.waiting -= len(g.pending[n].Payload)
			n++
		}
		g.pending = g.pending[n:]
		g.fwdFrom = max(0, g.fwdFrom-n)
	}
}

func (g *Group) onForward(m Message) error {
	if g.co == nil || g.st != StatusNormal {
		return nil // not the sequencer (any more); the sender will retry
	}
	for _, e := range m.Entries {
		if e.ID.Sender != m.From || e.ID.View != g.view.ID || e.Seq != 0 {
			return fmt.Errorf("%w: forward of %v from %v", ErrForged, e.ID, m.From)
		}
	}
	c := g.co
	for _, e := range m.Entries {
		if e.ID.Seq < c.next[m.From] {
			continue // duplicate
		}
		if len(c.parked) > 0 || g.windowFull() {
			g.park(e)
			continue
		}
		if !g.sequence(e) {
			break // a gap: the sender retransmits
		}
	}
	g.advanceCommit()
	return nil
}

// park keeps e for when the window opens, if it extends what its sender
// has sequenced or parked so far and there is room.
func (g *Group) park(e Entry) {
	c := g.co
	want := c.next[e.ID.Sender]
	for i := len(c.parked) - 1; i >= 0; i-- {
		if c.parked[i].ID.Sender == e.ID.Sender {
			want = c.parked[i].ID.Seq + 1
			break
		}
	}
	if e.ID.Seq == want && uint64(len(c.parked)) < g.cfg.MaxUnstable {
		c.parked = append(c.parked, e)
	}
}

// unpark sequences what waited for the window: parked forwards, then the
// coordinator's own multicasts.
func (g *Group) unpark() {
	c := g.co
	n := 0
	for n < len(c.parked) && g.sequence(c.parked[n]) {
		n++
	}
	c.parked = c.parked[n:]
	for len(c.parked) == 0 && len(g.pending) > 0 && g.sequence(g.pending[0]) {
	}
}

func (g *Group) onOrder(m Message) error {
	if m.From != g.view.Coordinator() {
		return fmt.Errorf("%w: order from %v, coordinator is %v", ErrForged, m.From, g.view.Coordinator())
	}
	for i, e := range m.Entries {
		if e.Seq != m.Seq+1+uint64(i) || e.ID.View != g.view.ID {
			return fmt.Errorf("%w: order entry %d has seq %d view %d", ErrMalformed, m.Seq+1+uint64(i), e.Seq, e.ID.View)
		}
	}
	if m.Commit > m.Seq+uint64(len(m.Entries)) && len(m.Entries) > 0 {
		return fmt.Errorf("%w: commit %d beyond the entries sent", ErrForged, m.Commit)
	}
	if g.st != StatusNormal || g.co != nil {
		return nil // frozen for the view change
	}
	before, gap := g.held, m.Seq > g.held
	for _, e := range m.Entries {
		if e.Seq == g.held+1 {
			g.appendLog(e)
		} else if e.Seq > g.held+1 {
			gap = true
			break // a gap: the coordinator resends from our ack
		}
	}
	g.commit = max(g.commit, min(m.Commit, g.held))
	g.stable = max(g.stable, min(m.Stable, g.held))
	if g.held > before || gap || !g.cfg.LazyAcks {
		// Acks at once: they commit entries, and a member behind what the
		// coordinator sent tells it so (see onAck's fast retransmit).
		g.ackOwed = false
		g.sendTo(m.From, Message{Type: MsgAck, Seq: g.held, Commit: g.commit})
	} else {
		// An Order that brought nothing to hold, typically only the
		// commit point: the ack (the commit point this member knows)
		// waits for the next tick, or rides on the next ack (see
		// Config.LazyAcks).
		g.ackOwed = true
	}
	g.deliverCommitted()
	return nil
}

// sendOwedAck sends the ack an Order that brought nothing to hold left
// owed (see onOrder). Called every tick.
func (g *Group) sendOwedAck() {
	if !g.ackOwed {
		return
	}
	g.ackOwed = false
	if g.st == StatusNormal && g.co == nil {
		g.sendTo(g.view.Coordinator(), Message{Type: MsgAck, Seq: g.held, Commit: g.commit})
	}
}

func (g *Group) onAck(m Message) error {
	if g.co == nil || g.st != StatusNormal {
		return nil
	}
	if m.Seq > g.held || m.Commit > g.commit {
		return fmt.Errorf("%w: ack of %d/%d, sequenced %d/%d", ErrForged, m.Seq, m.Commit, g.held, g.commit)
	}
	c := g.co
	switch {
	case m.Seq > c.acked[m.From]:
		c.acked[m.From], c.dupAcks[m.From], c.recovering[m.From] = m.Seq, 0, false
	case m.Seq < c.batchFrom && !c.recovering[m.From]:
		if c.dupAcks[m.From]++; c.dupAcks[m.From] >= 2 {
			c.dupAcks[m.From], c.recovering[m.From] = 0, true
			g.resend(m.From)
		}
	}
	c.knows[m.From] = max(c.knows[m.From], m.Commit)
	g.advanceCommit()
	return nil
}

// advanceCommit moves the commit point to the highest seq held by a
// majority and the stable point to the highest held by all.
func (g *Group) advanceCommit() {
	acks := make([]uint64, 0, len(g.view.Members))
	for _, p := range g.view.Members {
		acks = append(acks, g.co.acked[p])
	}
	slices.Sort(acks)
	// acks[len-q] is held by at least q members.
	g.commit = max(g.commit, acks[len(acks)-g.view.Quorum()])
	if acks[0] > g.stable {
		for s := g.stable + 1; s <= acks[0]; s++ {
			g.unstable -= len(g.log.at(s).Payload)
		}
		g.stable = acks[0]
		g.unpark() // the window opened
	}
	g.deliverCommitted()
}

// deliverCommitted delivers the log up to the commit point and drops what
// every member holds and this member has delivered.
func (g *Group) deliverCommitted() {
	for g.delivered < g.commit {
		run := g.log.segment(g.delivered, g.commit)
		g.emitRun(run)
		g.delivered += uint64(len(run))
	}
	if gc := min(g.stable, g.delivered); gc > g.logBase {
		// Drop whole chunks, never clear: messages handed out by Ready
		// share these entries.
		g.log.collect(gc)
		g.logBase = gc
	}
}

// batchPending reports whether the coordinator has something to announce.
func (g *Group) batchPending() bool {
	if g.co == nil {
		return g.fwdFrom < len(g.pending) && g.st == StatusNormal
	}
	return g.co.batchFrom < g.held || g.co.announced < g.commit
}

// flushBatches turns what accumulated since the last Ready into one Order
// per member (coordinator) or one Forward (sender).
func (g *Group) flushBatches() {
	if g.st != StatusNormal {
		return
	}
	if g.co == nil {
		if g.fwdFrom < len(g.pending) {
			g.forward(g.pending[g.fwdFrom:])
			g.fwdFrom = len(g.pending)
		}
		return
	}
	c := g.co
	// Entries below logBase are held by every member already (a group of
	// one collects them at once): nothing of them is left to send.
	c.batchFrom = max(c.batchFrom, g.logBase)
	for c.batchFrom < g.held || c.announced < g.commit {
		from := c.batchFrom
		to := min(g.held, from+uint64(g.cfg.MaxBatch))
		entries := g.log.slice(from, to)
		for _, p := range g.view.Members {
			if p != g.self {
				g.sendTo(p, Message{Type: MsgOrder, Seq: from, Entries: entries, Commit: min(g.commit, to), Stable: g.stable})
			}
		}
		c.batchFrom, c.announced = to, min(g.commit, to)
	}
}

func (g *Group) forward(entries []Entry) {
	for len(entries) > 0 {
		n := min(len(entries), g.cfg.MaxBatch)
		g.sendTo(g.view.Coordinator(), Message{Type: MsgForward, Entries: slices.Clone(entries[:n])})
		entries = entries[n:]
	}
}

func (g *Group) retransmitOrders() {
	c := g.co
	g.unpark()
	g.advanceCommit()
	sent, commit := g.held, g.commit
	if g.cfg.LazyRetransmit {
		// Entries and commit points sent after the last retransmission
		// tick may still be in flight: only what a member lacks of those
		// sent before it counts as lost.
		sent, commit = min(c.sentMark, sent), min(c.commitMark, commit)
		c.sentMark, c.commitMark = max(c.batchFrom, g.logBase), c.announced
	}
	for _, p := range g.view.Members {
		switch {
		case p == g.self:
		case c.acked[p] < sent:
			g.resend(p)
		case c.knows[p] < commit:
			// It holds what was sent before the mark and lacks only the
			// commit point (its ack of a commit-only Order waits for its
			// tick, LazyAcks): tell it that, not the entries still in
			// flight after its ack; if they were lost, the next tick
			// resends them.
			g.sendTo(p, Message{Type: MsgOrder, Seq: c.acked[p], Commit: g.commit, Stable: g.stable})
		}
	}
}

// resendBatches bounds one resend to a member: enough to refill a gap left
// by a lost frame quickly, without flooding a member that is merely slow.
const resendBatches = 16

// resend sends member p what it has not acknowledged, from its ack on, in
// up to resendBatches Orders (one empty Order if it only lacks the commit
// point).
func (g *Group) resend(p Process) {
	c := g.co
	from := c.acked[p]
	for i := 0; i < resendBatches; i++ {
		to := min(g.held, from+uint64(g.cfg.MaxBatch))
		var entries []Entry
		if to > from {
			entries = g.log.slice(from, to)
		}
		g.sendTo(p, Message{Type: MsgOrder, Seq: from, Entries: entries, Commit: min(g.commit, max(to, from)), Stable: g.stable})
		if to == g.held {
			break
		}
		from = to
	}
}

// logChunk is how many entries one chunk of a member's log holds.
const logChunk = 1024

// entryLog is a member's log of sequenced entries, in chunks of logChunk
// entries by seq: seq s is at chunks[(s-1)/logChunk - first]. Appending
// never moves an entry (a flat slice copied the whole unstable window at
// every growth), and chunks whose entries are all collected are dropped.
// Entries are never modified once appended: slices of a chunk handed out
// in Orders and delivery runs stay valid after the log moves on.
type entryLog struct {
	chunks [][]Entry
	first  uint64 // chunk number of chunks[0]
}

// append adds e, whose Seq must follow the last entry's (the first entry
// of a view has Seq 1).
func (l *entryLog) append(e Entry) {
	k := (e.Seq - 1) / logChunk
	if len(l.chunks) == 0 {
		l.first = k
	}
	if int(k-l.first) == len(l.chunks) {
		size := logChunk
		if k == 0 {
			size = 64 // a quiet group's only chunk starts small and grows
		}
		l.chunks = append(l.chunks, make([]Entry, 0, size))
	}
	c := &l.chunks[k-l.first]
	*c = append(*c, e)
}

// at returns the entry with seq s, which the log must hold.
func (l *entryLog) at(s uint64) *Entry {
	return &l.chunks[(s-1)/logChunk-l.first][(s-1)%logChunk]
}

// segment returns the entries from+1..to that lie in from+1's chunk: to
// itself, or the end of that chunk.
func (l *entryLog) segment(from, to uint64) []Entry {
	k := from / logChunk
	c := l.chunks[k-l.first]
	end := min(to, (k+1)*logChunk)
	return c[from%logChunk : end-k*logChunk : end-k*logChunk]
}

// slice returns the entries from+1..to: shared with the log when they lie
// in one chunk, else a copy.
func (l *entryLog) slice(from, to uint64) []Entry {
	if from >= to {
		return nil
	}
	if s := l.segment(from, to); uint64(len(s)) == to-from {
		return s
	}
	return l.clone(from, to)
}

// clone returns a copy of the entries from+1..to, nil if there are none.
func (l *entryLog) clone(from, to uint64) []Entry {
	var out []Entry
	for from < to {
		s := l.segment(from, to)
		out = append(out, s...)
		from += uint64(len(s))
	}
	return out
}

// collect drops the chunks that hold only entries at or below base.
func (l *entryLog) collect(base uint64) {
	n := 0
	for n < len(l.chunks) && (l.first+uint64(n)+1)*logChunk <= base {
		l.chunks[n] = nil
		n++
	}
	l.chunks = l.chunks[n:]
	l.first += uint64(n)
}
