package hwg

import (
	"errors"
	"slices"
	"time"

	"github.com/lwgkit/lwgkit/hwg/transport"
)

// probeRepeats is how many heartbeats after a peer's membership epoch
// changed this node probes it in every shared group, so a lost probe or
// answer is retried.
const probeRepeats = 8

// drainBatch bounds how many inputs one loop iteration takes before it
// flushes: larger batches mean fewer, bigger frames under load.
const drainBatch = 256

// drainEntries bounds the multicasts (taken from senders or arriving in
// Orders and Forwards) one loop iteration takes before it flushes. A member
// that fell behind can find dozens of large frames waiting; taking them all
// at once would turn them into tens of thousands of events in one Ready,
// which costs more to collect and hand over than a few smaller flushes.
const drainEntries = 2048

func (n *Node) run() {
	defer close(n.done)
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	inbound := n.tr.Inbound()
	for {
		// Hand queued events to the reader without ever blocking on it:
		// as many as the channel takes now, then wait for room in the
		// select below with the rest.
		n.pumpEvents()
		var out chan Event
		var next Event
		if n.queue.len() > 0 {
			out, next = n.events, n.queue.peek()
		}
		mcast := n.mcast
		if n.backlogSize >= multicastQueue {
			mcast = nil // full: let senders block
		}
		select {
		case <-n.stop:
			n.shutdown()
			return
		case out <- next:
			if hopTracing {
				traceHanded(n, &next)
			}
			n.queue.pop()
			continue
		case <-ticker.C:
			n.tick()
		case in, ok := <-inbound:
			if !ok {
				inbound = nil // transport closed: keep serving requests
				continue
			}
			if hopTracing {
				transport.TraceTaken(in.Frame)
			}
			n.work = n.receive(in)
		case f := <-n.reqs:
			f()
			n.allStepped = true
		case m := <-mcast:
			n.multicast(m)
			n.work = 1
		}
		var t0 time.Time
		if hopTracing {
			t0 = time.Now()
		}
		// Take whatever else is ready before flushing, so bursts share
		// frames.
	drain:
		for range drainBatch {
			if n.work >= drainEntries {
				break
			}
			if n.backlogSize < multicastQueue {
				// Multicasts first, each with a plain receive: a select over
				// every input cost more per multicast than the multicast.
				select {
				case m := <-n.mcast:
					n.multicast(m)
					n.work++
					continue
				default:
				}
			}
			// Then frames and requests, each with a plain receive too: a
			// select over all three locked every channel each time.
			if inbound != nil {
				select {
				case in, ok := <-inbound:
					if !ok {
						inbound = nil
						break drain
					}
					if hopTracing {
						transport.TraceTaken(in.Frame)
					}
					n.work += n.receive(in)
					continue
				default:
				}
			}
			select {
			case f := <-n.reqs:
				f()
				n.allStepped = true
				continue
			default:
			}
			break
		}
		n.work = 0
		var t1 time.Time
		if hopTracing {
			t1 = time.Now()
		}
		n.retryBacklog()
		n.flush()
		if hopTracing && t0.UnixNano()%8 == 0 {
			t2 := time.Now()
			transport.TraceSample("turn", t2.Sub(t0))
			transport.TraceSample("turnIn", t1.Sub(t0))
			transport.TraceSample("turnFl", t2.Sub(t1))
		}
	}
}

func (n *Node) shutdown() {
	for g, ws := range n.waiters {
		for _, w := range ws {
			w.ch <- ErrNodeClosed
		}
		delete(n.waiters, g)
	}
	close(n.events)
}

func (n *Node) multicast(m multicastReq) {
	g := n.groups[m.group]
	if g == nil {
		n.log.Warn("dropping multicast to a group this node left", "group", m.group)
		return
	}
	if len(n.backlog[m.group]) == 0 {
		err := n.hand(g, m)
		if err == nil {
			if hopTracing {
				traceTake(n, m.group, g, m)
			}
			return // its EventSend leaves with the flush
		}
		if !errors.Is(err, ErrBusy) {
			n.log.Warn("dropping multicast", "group", m.group, "error", err)
			return
		}
	}
	// Behind earlier ones the group could not take yet (a BlockOK too:
	// it must not overtake them).
	n.backlog[m.group] = append(n.backlog[m.group], m)
	n.backlogSize++
}

// dropBacklog drops what waited behind group id's membership that ended.
func (n *Node) dropBacklog(id GroupID) {
	n.backlogSize -= len(n.backlog[id])
	delete(n.backlog, id)
}

// hand gives the group one multicast, or the BlockOK queued in its place.
func (n *Node) hand(g *Group, m multicastReq) error {
	n.step(m.group, g)
	if m.blockOK {
		g.BlockOK(m.view)
		return nil
	}
	if m.view != 0 {
		return g.MulticastIn(m.view, m.payload)
	}
	return g.Multicast(m.payload)
}

// retryBacklog hands busy groups what they could not take before, in
// order, as far as they take it now.
func (n *Node) retryBacklog() {
	for id, b := range n.backlog {
		g := n.groups[id]
		k := 0
		for ; g != nil && k < len(b); k++ {
			if err := n.hand(g, b[k]); errors.Is(err, ErrBusy) {
				break
			} else if err != nil {
				n.log.Warn("dropping multicast", "group", id, "error", err)
			}
		}
		if g == nil {
			k = len(b) // the group is gone
		}
		n.backlogSize -= k
		if k == len(b) {
			delete(n.backlog, id)
		} else {
			n.backlog[id] = b[k:]
		}
	}
}

func (n *Node) newGroup(id GroupID, join bool) (*Group, error) {
	if g := n.groups[id]; g != nil {
		if g.Info().Status != StatusIdle {
			return nil, ErrAlreadyMember
		}
		return g, nil
	}
	if l, ok := n.left[id]; ok && join {
		g := l.g
		// The group left here is joined again: it remembers the views
		// its memberships installed, which the new one must not install
		// again (Config.Installed).
		n.forgetLeft(id, l)
		// (A Group bootstrapped again under the name may have replaced
		// one that installed later views: the note has them.)
		g.lastView = max(g.lastView, n.installed[id])
		if m, ok := n.manual[id]; ok {
			g.setManualBlockOK(m)
		}
		n.groups[id] = g
		n.known.Store(id, struct{}{})
		return g, nil
	}
	cfg := n.cfg.Group
	cfg.Group, cfg.Self = id, n.cfg.Self
	if m, ok := n.manual[id]; ok {
		cfg.ManualBlockOK = m
	}
	if join {
		// (The note stays: the new Group remembers at least as much, and
		// a later drop keeps the higher of the two.)
		cfg.Installed = n.installed[id]
	}
	g, err := New(cfg)
	if err != nil {
		return nil, err
	}
	n.groups[id] = g
	n.known.Store(id, struct{}{})
	return g, nil
}

func (n *Node) tick() {
	n.ticks++
	heartbeats := n.det.Tick()
	suspected := n.det.Suspected()
	n.allStepped = true
	for _, g := range n.groups {
		for _, p := range suspected {
			g.Suspect(p)
		}
		g.Tick()
	}
	// Every frame is a heartbeat, yet a bare one goes to every watched peer
	// even if a frame just went: probes of lagging members ride on bare
	// heartbeats only (see receive), so they cannot be skipped under load.
	n.retryBacklog()
	n.flush()
	for _, to := range heartbeats {
		n.send(to, nil)
	}
}

// A member that leaves a group ends its membership at the Commit of the
// view change that removes it, and the other members may not have that
// Commit yet (a frame lost when a connection was replaced). The Group
// keeps what they then need from it: the decision (helpLaggard) and its
// acceptor state for the old view (it counts in that view's quorum: in a
// group of two, nobody else can answer). So the node keeps the Group
// after EventLeft (see retain) and steps the group's later messages into it,
// sending what it answers. Dropping it at once (as before) left such a
// member in a view with the leaver for good: its view changes could not
// reach a quorum (switching.TestRebalancerConvergesLive, a CI run: two
// carriers kept a member that had left them, and every switch to them
// was abandoned). The LWG simulator keeps left Groups as the node does.

// leftGroup is an entry of the Node's left groups, oldest first.
type leftGroup struct {
	id    GroupID
	g     *Group
	seq   uint64 // tells a later leave of the same Group from this one
	at    uint64 // the node's tick the Group's clock was last brought to
	bytes int    // g.keptBytes() when last counted in Node.leftBytes
}

// leftCatchUp bounds the ticks a kept left Group's clock catches up at
// once: it takes no ticks, but rate-limits its answers to each laggard
// by its clock (helpLaggard), so without them it answered each only once,
// and a lost answer was never sent again. An idle Group's tick only moves
// its clock, and a few retransmission periods are all the limit reads.
const leftCatchUp = 64

// leftKeep and leftKeepBytes bound the left groups a node keeps, in
// number and in what they hold (mostly the tail of the decision that
// removed this node: up to MaxUnstableBytes under load, a few hundred
// bytes when idle); the oldest go first. The newest is always kept.
const (
	leftKeep      = 4096
	leftKeepBytes = 64 << 20
)

// retain keeps g, which just left id, until leftKeep later leaves push it
// out, and sends what it still has to send: the step that ended its
// membership may have made messages too (a leaver that proposed its own
// removal commits it to the others in the same step), and flush, which
// sends them for the groups in n.groups, no longer sees it. It is kept
// by count, not for a time: a member that missed the decision removing
// this node may be cut off from it for any time, and in a group of two
// this node's Group is then the only one that can tell it (it stayed in
// its view change for good when the Group was dropped after 20 view-change
// rounds). A kept Group takes no ticks: messages alone step it, its
// clock caught up first (see leftCatchUp).
func (n *Node) retain(id GroupID, g *Group) {
	if n.cfg.loseFinal {
		g.readyMessages()
	}
	n.sendLeft(g)
	n.leftSeq++
	g.shed()
	e := leftGroup{id: id, g: g, seq: n.leftSeq, at: n.ticks, bytes: g.keptBytes()}
	if old, ok := n.left[id]; ok {
		// A Bootstrap made a new Group meanwhile; a later join must not
		// install a view the old one installed.
		n.forgetLeft(id, old)
		n.noteInstalled(id, old.g.lastView)
	}
	n.left[id] = e
	n.leftBytes += e.bytes
	n.leftFIFO = append(n.leftFIFO, e)
	n.trimLeft()
	// Stale entries (groups joined again) count for nothing but take
	// room: drop them once they are half the FIFO.
	if len(n.leftFIFO) > 2*len(n.left)+64 {
		n.leftFIFO = slices.DeleteFunc(n.leftFIFO, func(e leftGroup) bool {
			l, ok := n.left[e.id]
			return !ok || l.seq != e.seq
		})
	}
}

// trimLeft drops the oldest kept left groups while they are over the
// bounds, keeping at least one.
func (n *Node) trimLeft() {
	for len(n.left) > 1 && (len(n.left) > leftKeep || n.leftBytes > leftKeepBytes) {
		n.dropLeft(n.leftFIFO[0])
		n.leftFIFO[0] = leftGroup{}
		n.leftFIFO = n.leftFIFO[1:]
	}
}

// dropLeft stops keeping the group of leftFIFO's entry e, unless e is
// stale, and notes the last view it installed.
func (n *Node) dropLeft(e leftGroup) {
	if l, ok := n.left[e.id]; ok && l.seq == e.seq {
		n.forgetLeft(e.id, l)
		n.noteInstalled(e.id, l.g.lastView)
	}
}

// forgetLeft stops keeping l, the kept left group id (joined again, or
// pushed out by later leaves).
func (n *Node) forgetLeft(id GroupID, l leftGroup) {
	delete(n.left, id)
	n.leftBytes -= l.bytes
}

// installedKeep bounds the groups whose last installed view a node keeps
// after it stopped keeping the groups themselves (about 50 bytes each).
const installedKeep = 1 << 16

// noteInstalled keeps v, the last view a dropped left group installed, for
// a later membership of id (Config.Installed); the oldest notes go first.
func (n *Node) noteInstalled(id GroupID, v ViewID) {
	if v == 0 {
		return
	}
	old, ok := n.installed[id]
	if !ok {
		n.installedFIFO = append(n.installedFIFO, id)
	}
	n.installed[id] = max(old, v)
	for len(n.installedFIFO) > installedKeep {
		delete(n.installed, n.installedFIFO[0])
		n.installedFIFO = n.installedFIFO[1:]
	}
}

// stepLeft steps m into the group this node left, if it still keeps it,
// and sends what the group answers (a Commit or Sync for a laggard, its
// vote for the old view). Its events, if any, are nobody's any more.
func (n *Node) stepLeft(m Message) {
	l, ok := n.left[m.Group]
	if !ok {
		return
	}
	g := l.g
	for range min(n.ticks-l.at, leftCatchUp) {
		g.Tick() // idle: only its clock moves
	}
	l.at = n.ticks
	if err := g.Step(m); err != nil {
		n.log.Debug("message to a left group rejected", "group", m.Group, "from", m.From, "type", m.Type, "error", err)
	}
	n.sendLeft(g)
	g.takeOutputs()
	// As an acceptor of a view it was excluded from, it may have taken
	// a decision since it was counted.
	b := g.keptBytes()
	n.leftBytes += b - l.bytes
	l.bytes = b
	n.left[m.Group] = l
	n.trimLeft()
}

// sendLeft queues a left group's messages for the next flush.
func (n *Node) sendLeft(g *Group) {
	if !g.HasReady() {
		return
	}
	for _, out := range g.readyMessages() {
		n.outbox[out.To.Node] = append(n.outbox[out.To.Node], out)
	}
}

// receive steps the messages of one frame and returns how many entries
// they carried.
func (n *Node) receive(in transport.Inbound) (entries int) {
	from := Process{Node: NodeID(in.From.Node), Inc: in.From.Inc}
	n.det.Heard(from)
	if n.receiveDirect(from, in.Frame) {
		return 0
	}
	f, err := decodeFrameReuse(in.Frame, &n.dec)
	// Nothing decoded refers to the frame (payloads are copied out).
	transport.PutBuffer(in.Frame)
	if err != nil {
		n.log.Warn("dropping frame", "from", from, "error", err)
		return 0
	}
	if hopTracing {
		traceRecv(n, from, f.Msgs)
	}
	if f.Epoch != n.peerEpoch[from.Node] {
		n.peerEpoch[from.Node], n.reprobe[from.Node] = f.Epoch, probeRepeats
	}
	if len(f.Msgs) == 0 && n.reprobe[from.Node] > 0 {
		// The peer's memberships changed: a member of ours stuck in an old
		// view would otherwise hear nothing (idle groups send nothing).
		n.reprobe[from.Node]--
		n.allStepped = true
		for _, g := range n.groups {
			g.Probe(from.Node)
		}
	}
	for _, m := range f.Msgs {
		if m.From != from {
			n.log.Warn("dropping message from another process than the connection's", "conn", from, "from", m.From, "type", m.Type)
			continue
		}
		g := n.groups[m.Group]
		if g == nil {
			n.stepLeft(m) // a group this node left, or was never in
			continue
		}
		entries += len(m.Entries)
		n.step(m.Group, g)
		if err := g.Step(m); err != nil {
			n.log.Debug("message rejected", "group", m.Group, "from", m.From, "type", m.Type, "error", err)
		}
		n.takeEvents(m.Group, g)
	}
	return entries
}

// takeEvents hands g's events to the reader at once rather than at the
// next flush: a Step can deliver thousands, and collecting them in the
// group until the flush costs more than passing them on.
func (n *Node) takeEvents(id GroupID, g *Group) {
	n.outputs(id, g, g.takeOutputs())
}

// outputs handles events that one input caused, stamped with one clock
// reading taken after that input arrived: a delivery must not look older
// than the send it delivers, even across processes. Runs of deliveries go
// to the reader as they are, sharing the group's log: they ask nothing of
// the node.
func (n *Node) outputs(id GroupID, g *Group, outs []output) {
	if len(outs) == 0 {
		return
	}
	now := time.Now()
	for i := range outs {
		o := &outs[i]
		o.ev.At = now
		if o.run == nil {
			n.event(id, g, &o.ev)
		} else {
			if hopTracing {
				traceDeliver(n, id, o.run)
			}
			n.pushRun(o)
		}
	}
}

// flush carries out what every group asks for: events to the reader and
// messages out, one frame per destination node.
func (n *Node) flush() {
	if n.allStepped {
		n.allStepped = false
		n.stepped = keepStepped(n.stepped)
		for id, g := range n.groups {
			n.flushGroup(id, g)
		}
	} else {
		// Outputs may step a group again (a rejoin): that one waits for
		// the next flush, as it did when the flush walked every group.
		stepped := n.stepped
		n.stepped = n.spareStepped[:0]
		for _, s := range stepped {
			if n.groups[s.id] == s.g { // not left meanwhile
				n.flushGroup(s.id, s.g)
			}
		}
		n.spareStepped = keepStepped(stepped)
	}
	for to, msgs := range n.outbox {
		if len(msgs) == 0 {
			continue
		}
		// Messages of many groups share a frame; split it so none exceeds
		// the budget (each message alone fits: see Config.MaxPendingBytes).
		start, size := 0, 0
		for i := range msgs {
			m := messageSize(&msgs[i])
			if size+m > frameTarget && i > start {
				n.send(to, msgs[start:i])
				start, size = i, 0
			}
			size += m
		}
		n.send(to, msgs[start:])
		// Keep the array for the next flush to this node (a new one per
		// flush was a tenth of what the node allocated under load), but
		// not what the messages point to, nor one a burst made large.
		clear(msgs)
		if cap(msgs) > outboxKeep {
			delete(n.outbox, to)
		} else {
			n.outbox[to] = msgs[:0]
		}
	}
}

// flushGroup queues g's messages for the outbox and hands out its events.
func (n *Node) flushGroup(id GroupID, g *Group) {
	if !g.HasReady() {
		return
	}
	// Done with the messages before the next flush: they are copied into
	// the outbox and encoded below.
	for _, m := range g.readyMessages() {
		n.outbox[m.To.Node] = append(n.outbox[m.To.Node], m)
	}
	n.outputs(id, g, g.takeOutputs())
}

// steppedKeep bounds the stepped list an emptied array is kept for: it
// may hold an entry per message, and one turn may take thousands.
const steppedKeep = 1024

// keepStepped empties s for reuse, or drops it if a burst made it large.
func keepStepped(s []steppedGroup) []steppedGroup {
	if cap(s) > steppedKeep {
		return nil
	}
	clear(s)
	return s[:0]
}

// steppedGroup is a group given input since the last flush.
type steppedGroup struct {
	id GroupID
	g  *Group
}

// step notes that g is given input: the next flush looks at it. A group
// stepped by several messages in a row is listed once; one stepped
// between others' is listed again, and the flush finds it ready once.
func (n *Node) step(id GroupID, g *Group) {
	if k := len(n.stepped); !n.allStepped && (k == 0 || n.stepped[k-1].g != g) {
		n.stepped = append(n.stepped, steppedGroup{id, g})
	}
}

// outboxKeep bounds the messages an outbox array kept between flushes
// holds.
const outboxKeep = 256

// frameTarget is the most a frame of batched messages carries (a message
// larger than that goes in a frame of its own): about the size the
// transport reads into pooled buffers, and well under its default 16 MiB
// limit. Many groups' messages still share a frame.
const frameTarget = 64 << 10

// messageSize estimates m's encoded size.
func messageSize(m *Message) int {
	size := 96
	for _, e := range m.Entries {
		size += len(e.Payload) + 40
	}
	if m.State != nil {
		for _, e := range m.State.Log {
			size += len(e.Payload) + 40
		}
		for _, e := range m.State.Pending {
			size += len(e.Payload) + 40
		}
	}
	if m.Decision != nil {
		for _, e := range m.Decision.Final {
			size += len(e.Payload) + 40
		}
	}
	return size
}

func (n *Node) send(to NodeID, msgs []Message) {
	if hopTracing {
		traceSend(n, to, msgs)
	}
	b, err := encodeFrame(&frame{Epoch: n.epoch, Msgs: msgs})
	if err != nil {
		n.log.Error("encoding frame", "to", to, "error", err)
		return
	}
	switch err := n.tr.Send(uint64(to), b); {
	case errors.Is(err, transport.ErrFrameTooLarge):
		n.log.Error("frame over the transport's limit: raise it or lower MaxUnstableBytes/MaxPendingBytes", "to", to, "bytes", len(b))
	case err != nil:
		n.log.Debug("send failed", "to", to, "error", err)
	}
}

// event carries out what e asks of the node and hands it to the reader.
func (n *Node) event(id GroupID, g *Group, e *Event) {
	switch e.Type {
	case EventInstall:
		n.epoch++
		var others []NodeID
		for _, m := range e.View.Members {
			if m.Node != n.cfg.Self.Node {
				others = append(others, m.Node)
			}
		}
		n.contacts[id] = others
		n.rewatch(id)
		n.complete(id, EventInstall, nil)
	case EventExcluded:
		n.epoch++
		// What waited for the ended membership is not handed to the next
		// one: its multicasts were asked in a view this member no longer
		// has. Dropped, as at a leave. (A BlockOK names the view whose
		// Block it answers, so one still on its way is ignored too.)
		n.dropBacklog(id)
		// Excluded members rejoin as new members, through the last view.
		if g.Info().Status == StatusIdle {
			n.step(id, g)
			if err := g.Join(n.contacts[id]); err != nil {
				n.log.Error("rejoining", "group", id, "error", err)
			}
		}
	case EventLeft:
		n.epoch++
		delete(n.groups, id)
		n.retain(id, g)
		n.known.Delete(id)
		delete(n.contacts, id)
		n.dropBacklog(id) // the group is gone
		n.rewatch(id)
		n.complete(id, EventLeft, nil)
		// A Join still waiting (Leave undid it) ends too.
		n.complete(id, EventInstall, ErrNotMember)
	case EventSend:
		if n.cfg.NoSendEvents {
			return
		}
	}
	n.pushEvent(e)
}

// pushEvent hands e to the reader, or queues it behind those it has not
// taken yet; the loop never blocks on the reader.
func (n *Node) pushEvent(e *Event) {
	if n.queue.len() == 0 {
		select {
		case n.events <- *e:
			return
		default:
		}
	}
	n.queue.push(output{ev: *e})
}

// pushRun hands the reader a run of deliveries, queueing what the channel
// does not take now.
func (n *Node) pushRun(o *output) {
	i := 0
	if n.queue.len() == 0 {
	send:
		for ; i < len(o.run); i++ {
			select {
			case n.events <- o.deliver(i):
				if hopTracing {
					e := o.deliver(i)
					traceHanded(n, &e)
				}
			default:
				break send
			}
		}
	}
	if i < len(o.run) {
		n.queue.push(output{ev: o.ev, run: o.run[i:]})
	}
}

// pumpEvents hands the reader queued events while the channel has room,
// without blocking: a plain send per event is far cheaper than a pass
// through the loop's select for each.
func (n *Node) pumpEvents() {
	for n.queue.len() > 0 {
		select {
		case n.events <- n.queue.peek():
			if hopTracing {
				e := n.queue.peek()
				traceHanded(n, &e)
			}
			n.queue.pop()
		default:
			return
		}
	}
}

// eventQueue is a FIFO of events in fixed-size chunks: an event is copied
// once in and once out, never moved as the backlog grows. A run of
// deliveries is one item, expanded into events one at a time as the
// reader takes them.
type eventQueue struct {
	chunks [][]output
	head   int        // next item in chunks[0]
	sub    int        // next delivery of that item, if it is a run
	n      int        // events queued
	free   [][]output // emptied chunks, reused by pushes that need one
}

// eventFree bounds the emptied chunks an eventQueue keeps: a backlog that
// comes and goes under load reuses its memory rather than allocating new
// chunks each time.
const eventFree = 8

const eventChunk = 256

func (q *eventQueue) len() int { return q.n }

func (q *eventQueue) push(o output) {
	if len(q.chunks) == 0 || len(q.chunks[len(q.chunks)-1]) == eventChunk {
		var c []output
		if k := len(q.free); k > 0 {
			c, q.free[k-1] = q.free[k-1], nil
			q.free = q.free[:k-1]
		} else {
			c = make([]output, 0, eventChunk)
		}
		q.chunks = append(q.chunks, c)
	}
	last := &q.chunks[len(q.chunks)-1]
	*last = append(*last, o)
	q.n += o.events()
}

func (q *eventQueue) peek() Event {
	o := &q.chunks[0][q.head]
	if o.run == nil {
		return o.ev
	}
	return o.deliver(q.sub)
}

func (q *eventQueue) pop() {
	q.n--
	o := &q.chunks[0][q.head]
	if o.run != nil {
		if q.sub++; q.sub < len(o.run) {
			return
		}
		q.sub = 0
	}
	*o = output{}
	q.head++
	if q.head == len(q.chunks[0]) && (len(q.chunks) > 1 || q.head == eventChunk) {
		if len(q.free) < eventFree {
			q.free = append(q.free, q.chunks[0][:0]) // pop cleared every item in it
		}
		q.chunks[0] = nil
		q.chunks = q.chunks[1:]
		q.head = 0
	} else if q.n == 0 {
		q.chunks[0], q.head = q.chunks[0][:0], 0
	}
}

func (n *Node) complete(id GroupID, t EventType, err error) {
	ws := n.waiters[id]
	keep := ws[:0]
	for _, w := range ws {
		if w.until == t {
			w.ch <- err
		} else {
			keep = append(keep, w)
		}
	}
	if len(keep) == 0 {
		delete(n.waiters, id)
	} else {
		n.waiters[id] = keep
	}
}

// rewatch makes the detector watch exactly the nodes this node shares a
// group with: one heartbeat stream per pair of nodes, however many groups
// they share. Called when group id installed a view or left n.groups, it
// moves only id's share of the reference counts in n.watched, so an
// install costs O(members), not O(groups): recomputing the union over
// every group at every install made a burst of n joins O(n²) (1,000 HWG
// joins at once: 15% of the CPU of the burst).
//
// INVARIANT: n.counted[id] is n.contacts[id] as of id's last rewatch, only
// for groups in n.groups; n.watched[c] is the number of listings of c in
// n.counted, and the detector watches exactly its keys
// (CheckWatchedForTest).
func (n *Node) rewatch(id GroupID) {
	var cur []NodeID
	if _, ok := n.groups[id]; ok {
		cur = n.contacts[id]
	}
	old := n.counted[id]
	if cur == nil {
		delete(n.counted, id)
	} else {
		n.counted[id] = cur
	}
	// Count the new list before the old one goes, so a node in both is
	// never unwatched and watched again.
	for _, c := range cur {
		if n.watched[c]++; n.watched[c] == 1 {
			n.det.Watch(c)
		}
	}
	for _, c := range old {
		if n.watched[c]--; n.watched[c] == 0 {
			delete(n.watched, c)
			n.det.Unwatch(c)
		}
	}
}
