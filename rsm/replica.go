package rsm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// This file is the replica logic of one object: what its events, the
// state-transfer messages and ticks do to its state. It runs on one worker
// at a time per object (see sched.go) and is deterministic given its
// inputs, so the simulator drives it the same way.
//
// State transfer. A replica is ready once it holds the object's state.
// Every ready replica keeps the same table of who holds the state and who
// waits for it (see table). At the install that adds a joiner, the first
// member of the view that holds the state is its donor: the donor takes a
// snapshot at exactly that point of the delivery stream and offers it. The
// joiner queues every install and delivery from its own join on, fetches
// the snapshot in chunks, restores it, drops what the snapshot already
// covers and applies the rest, then multicasts RESTORED. If the donor
// leaves first, the next install names another donor, which snapshots
// there; the joiner can use any snapshot taken at or after its join,
// because it queued everything since. Lost offers and chunks are asked for
// again on ticks.

// itemKind is the kind of an input to a replica.
type itemKind uint8

const (
	itemEvent  itemKind = iota + 1 // an LWG event of the object
	itemDirect                     // a transfer message
	itemTick                       // a tick (only replicas that asked for ticks)
)

type item struct {
	kind  itemKind
	ticks int // itemTick: how many ticks it stands for
	ev    lwg.Event
	from  hwg.Process
	d     direct
}

// queued is a delivery-stream entry, numbered by its point.
type queued struct {
	at point
	ev lwg.Event
}

// fetch is a snapshot being fetched by a joiner.
type fetch struct {
	donor     hwg.Process
	gen       uint64
	at        point
	size      uint64
	next      uint64 // bytes received and written
	requested uint64 // bytes asked for
	idle      int    // ticks without a chunk
	w         snapWriter
}

// Ticks (of Config.TickInterval) of the transfer's timeouts.
const (
	retryTicks   = 10 // ask again for what did not come (offer or chunks)
	abandonTicks = 50 // give up a donor that sends nothing
)

// onEvent steps one LWG event of the object.
func (o *Object) onEvent(e lwg.Event) {
	switch e.Type {
	case lwg.EventInstall:
		o.recv = point{View: e.View.ID}
		v := e.View.Clone()
		o.latest = v
		o.pubView.Store(&v) // its own copy: View reads it from other goroutines
		if slices.Contains(e.Joined, o.self) {
			o.joined(e)
			return
		}
		o.step(queued{at: o.recv, ev: e})
	case lwg.EventDeliver:
		o.recv.Seq++
		o.step(queued{at: o.recv, ev: e})
	case lwg.EventLeft, lwg.EventExcluded:
		o.membershipEnded(e.Type)
	}
}

// step applies a stream entry, or queues it while the state is missing.
func (o *Object) step(q queued) {
	switch {
	case !o.ready:
		o.queue = append(o.queue, q)
		o.unreadyStep(q)
	case !o.applied.less(q.at):
		// Covered by the snapshot this replica restored.
	default:
		o.apply(q)
	}
}

// joined handles the install that admits this replica.
func (o *Object) joined(e lwg.Event) {
	o.abortFetch()
	o.queue, o.first, o.wantIdle, o.waiting = nil, o.recv, 0, 0
	o.view = e.View.Clone()
	// A life of an LWG begins at view 1 of its directory version (see
	// lwg.View). Every member of a later view can be new too (all that
	// held the state left at once); that is not a new life, and a claim
	// round picks the state to go on from (see claimRound).
	newLife := uint32(e.View.ID) == 1 && len(e.Joined) == len(e.View.Members)
	if newLife && e.View.Coordinator() == o.self {
		// A new group (or a new life of one whose members all failed):
		// its first member's state, local or empty, is the state.
		o.table = table{Restored: []hwg.Process{o.self}}
		serve := o.table.install(e.View, e.View.Members[1:], o.self)
		o.applied = o.recv
		o.lineage = e.View.ID
		o.becomeReady()
		o.observe(Event{Type: EventView, View: o.view, Joined: e.Joined, Left: e.Left})
		if len(serve) > 0 {
			o.donate(serve)
		}
		return
	}
	o.ready = false
	o.pubReady.Store(false)
	o.table = table{}
	o.host.watch(o, true)
	o.round = nil
	if len(e.Joined) == len(e.View.Members) {
		// Nobody in this view held the state before it: no donor will
		// come. The members choose a seed among themselves (claim).
		o.startRound()
	}
	if e := o.early; e != nil {
		o.early = nil
		o.onOffer(e.from, e.d)
	}
}

// earlyOffer is an offer that arrived before the install admitting this
// replica.
type earlyOffer struct {
	from hwg.Process
	d    direct
}

// apply steps an entry on a ready replica.
func (o *Object) apply(q queued) {
	o.applied = q.at
	e := q.ev
	if e.Type == lwg.EventInstall {
		o.view = e.View.Clone()
		serve := o.table.install(e.View, e.Joined, o.self)
		o.trimInline()
		o.observe(Event{Type: EventView, View: o.view, Joined: e.Joined, Left: e.Left})
		if len(serve) > 0 && !o.replay {
			o.donate(serve)
		}
		return
	}
	m, err := decodeOrdered(e.Payload)
	if err != nil {
		if len(e.Payload) == 0 || e.Payload[0] < foreignKinds {
			o.malformed.Add(1)
		}
		return
	}
	switch m.kind {
	case kindPropose:
		res, err := o.sm.Apply(m.cmd)
		o.index++
		o.pubIndex.Store(o.index)
		o.host.applied(o)
		if m.origin == o.self {
			o.resolve(m.seq, res, err)
		}
		o.afterApply()
	case kindOnce:
		rec, seen := o.once[m.once.Source]
		var res []byte
		var err error
		switch {
		case seen && m.once.Seq < rec.Seq:
			err = fmt.Errorf("%w: %s seq %d (last %d)", ErrDuplicate, m.once.Source, m.once.Seq, rec.Seq)
		case seen && m.once.Seq == rec.Seq:
			res = rec.Result
			if rec.Err != "" {
				err = errors.New(rec.Err)
			}
		default:
			res, err = o.sm.Apply(m.cmd)
			o.index++
			o.pubIndex.Store(o.index)
			o.host.applied(o)
			rec = onceRecord{Seq: m.once.Seq, Result: res}
			if err != nil {
				rec.Err = err.Error()
			}
			if o.once == nil {
				o.once = map[string]onceRecord{}
			}
			o.once[m.once.Source] = rec
			o.afterApply()
		}
		if m.origin == o.self {
			o.resolve(m.seq, res, err)
		}
	case kindRead:
		if m.origin == o.self {
			o.answer(m.seq)
		}
	case kindRestored:
		if o.view.Contains(e.From) {
			o.table.restoredBy(e.From)
			o.trimInline()
		}
	case kindClaim:
		// A member thinks nobody holds the state: say that this one
		// does, which ends the round (see claimRound).
		if o.holdSent != o.view.ID && !o.replay {
			o.holdSent = o.view.ID
			o.host.multicast(o, encodeHold())
		}
	}
}

// afterApply takes the scheduled snapshot when it is due.
func (o *Object) afterApply() {
	if o.cfg.SnapshotEvery > 0 && o.index-o.snapIndex >= o.cfg.SnapshotEvery {
		o.takeSnapshot()
	} else if o.index == o.snapIndex+1 {
		o.host.watch(o, true) // for the time-based snapshot
	}
}

// becomeReady marks the state present.
func (o *Object) becomeReady() {
	o.ready, o.hasState, o.round = true, true, nil
	o.pubReady.Store(true)
	o.host.watch(o, o.index > o.snapIndex)
	o.readyOnce.Do(func() { close(o.readyCh) })
	o.observe(Event{Type: EventOpened, View: o.view, Index: o.index})
}

// takeSnapshot writes the state at the current point to the store: the
// local snapshot a restart reads.
func (o *Object) takeSnapshot() (snapInfo, bool) {
	w, err := o.host.store().create(o.id)
	if err != nil {
		o.host.logger().Error("creating snapshot", "object", o.id, "error", err)
		return snapInfo{}, false
	}
	info, ok := o.writeTo(w, w)
	if ok {
		o.stored(info)
	}
	return info, ok
}

// writeTo writes the state at the current point to w and commits it
// through c.
func (o *Object) writeTo(w io.Writer, c snapWriter) (snapInfo, bool) {
	h := header{Object: o.id, At: o.applied, Index: o.index, View: o.view, Table: o.table.clone(), Taker: o.self, Lineage: o.lineage, Once: o.once}
	if err := writeSnapshot(w, &h, o.sm); err != nil {
		c.abort()
		o.host.logger().Error("writing snapshot", "object", o.id, "error", err)
		return snapInfo{}, false
	}
	info, err := c.commit()
	if err != nil {
		o.host.logger().Error("committing snapshot", "object", o.id, "error", err)
		return snapInfo{}, false
	}
	return info, true
}

// stored records a snapshot committed to the store at the current point.
func (o *Object) stored(info snapInfo) {
	o.snapIndex, o.snapAt, o.snapGen, o.snapSize, o.snapIdle = o.index, o.applied, info.Gen, info.Size, 0
	o.host.watch(o, false)
	o.observe(Event{Type: EventSnapshotTaken, Index: o.index, Bytes: info.Size})
}

// donate snapshots here and offers it to the joiners this replica serves.
// A state that fits in one chunk travels inside the offer and is not
// written to the store: joins of many small objects then cost a message
// each, not a disk write on both sides.
func (o *Object) donate(to []hwg.Process) {
	o.serving.Store(true)
	sw := &spillWriter{limit: o.cfg.ChunkSize, store: o.host.store(), obj: o.id}
	info, ok := o.writeTo(sw, sw)
	if !ok {
		return // the joiner asks again (want), which retries
	}
	if sw.w != nil {
		o.stored(info)
		o.inline = nil
	} else {
		o.inline, o.inlineAt = sw.buf, o.applied
		o.observe(Event{Type: EventSnapshotTaken, Index: o.index, Bytes: info.Size})
	}
	for _, j := range to {
		o.offerLatest(j)
	}
}

// trimInline drops the in-memory snapshot once no joiner it serves waits.
// It also publishes whether this replica serves a joiner (see Close).
func (o *Object) trimInline() {
	serving := false
	for _, p := range o.table.Pending {
		if p.Donor == o.self {
			serving = true
		}
	}
	o.serving.Store(serving)
	if !serving {
		o.inline = nil
	}
}

// offerLatest offers a joiner the latest snapshot this replica took.
func (o *Object) offerLatest(to hwg.Process) {
	if o.inline != nil && !o.inlineAt.less(o.snapAt) {
		o.host.send(to, direct{kind: kindOffer, object: o.id, at: o.inlineAt, size: uint64(len(o.inline)), data: o.inline})
		o.observe(Event{Type: EventSnapshotSent, Peer: to, Index: o.index, Bytes: int64(len(o.inline))})
		return
	}
	o.host.send(to, direct{kind: kindOffer, object: o.id, gen: o.snapGen, at: o.snapAt, size: uint64(o.snapSize)})
}

// latestAt is the point of the latest snapshot this replica can offer.
func (o *Object) latestAt() (point, bool) {
	switch {
	case o.inline != nil && !o.inlineAt.less(o.snapAt):
		return o.inlineAt, true
	case o.snapGen != 0:
		return o.snapAt, true
	}
	return point{}, false
}

// spillWriter keeps a snapshot in memory up to limit bytes, and moves it
// to the store beyond.
type spillWriter struct {
	limit int
	store snapStore
	obj   ObjectID
	buf   []byte
	w     snapWriter
}

func (s *spillWriter) Write(p []byte) (int, error) {
	if s.w == nil && len(s.buf)+len(p) <= s.limit {
		s.buf = append(s.buf, p...)
		return len(p), nil
	}
	if s.w == nil {
		w, err := s.store.create(s.obj)
		if err != nil {
			return 0, err
		}
		s.w = w
		if _, err := w.Write(s.buf); err != nil {
			return 0, err
		}
		s.buf = nil
	}
	return s.w.Write(p)
}

func (s *spillWriter) commit() (snapInfo, error) {
	if s.w != nil {
		return s.w.commit()
	}
	return snapInfo{Size: int64(len(s.buf))}, nil
}

func (s *spillWriter) abort() error {
	s.buf = nil
	if s.w != nil {
		return s.w.abort()
	}
	return nil
}

// onDirect steps a transfer message.
func (o *Object) onDirect(from hwg.Process, d direct) {
	switch d.kind {
	case kindOffer:
		o.onOffer(from, d)
	case kindChunk:
		o.onChunk(from, d)
	case kindWant:
		o.onWant(from, d)
	case kindGone:
		if f := o.fetch; f != nil && f.donor == from && f.gen == d.gen {
			o.abortFetch()
			o.sendWant()
		}
	}
}

func (o *Object) onOffer(from hwg.Process, d direct) {
	if !o.ready && o.first == (point{}) {
		// The offer overtook the install that admits this replica: keep
		// it for then (the install comes on another path).
		o.early = &earlyOffer{from: from, d: d}
		return
	}
	if o.ready || d.at.less(o.first) || d.size == 0 || o.round != nil && o.round.claimed {
		// In a claim round this replica has told the group it holds
		// no state from this view: taking one now would break the
		// round's choice.
		return
	}
	if f := o.fetch; f != nil && o.latest.Contains(f.donor) && f.idle < retryTicks {
		return // the transfer under way is alive
	}
	o.abortFetch()
	if d.data != nil {
		if uint64(len(d.data)) != d.size {
			return
		}
		o.restored(from, bytesReader(d.data), 0, int64(d.size))
		return
	}
	w, err := o.host.store().create(o.id)
	if err != nil {
		o.host.logger().Error("creating snapshot for a transfer", "object", o.id, "error", err)
		return
	}
	o.fetch = &fetch{donor: from, gen: d.gen, at: d.at, size: d.size, w: w}
	o.waiting = 0
	o.request()
}

// request keeps a window of chunk requests outstanding.
func (o *Object) request() {
	f := o.fetch
	for f.requested < f.size && f.requested-f.next < uint64(o.cfg.TransferWindow) {
		n := min(uint64(o.cfg.ChunkSize), f.size-f.requested)
		o.host.send(f.donor, direct{kind: kindFetch, object: o.id, gen: f.gen, offset: f.requested, n: n})
		f.requested += n
	}
}

func (o *Object) onChunk(from hwg.Process, d direct) {
	f := o.fetch
	if f == nil || from != f.donor || d.gen != f.gen || d.offset != f.next || len(d.data) == 0 ||
		f.next+uint64(len(d.data)) > f.size {
		return
	}
	f.next += uint64(len(d.data))
	f.idle = 0
	o.received.Add(uint64(len(d.data)))
	if f.next < f.size {
		// Ask for more before the write: a write can wait for a disk
		// sync, and the window must not stall behind it.
		o.request()
	}
	if _, err := f.w.Write(d.data); err != nil {
		o.host.logger().Error("writing a received snapshot", "object", o.id, "error", err)
		o.abortFetch()
		return
	}
	if f.next < f.size {
		return
	}
	o.fetch = nil
	info, err := f.w.commit()
	if err != nil {
		o.host.logger().Error("committing a received snapshot", "object", o.id, "error", err)
		return
	}
	r, err := o.host.store().open(o.id, info.Gen)
	if err != nil {
		o.host.logger().Error("reading a received snapshot", "object", o.id, "error", err)
		o.sendWant()
		return
	}
	o.restored(from, r, info.Gen, info.Size)
}

// restored restores a donor's snapshot, applies what the joiner queued
// after it, and tells the group.
func (o *Object) restored(donor hwg.Process, r io.Reader, gen uint64, size int64) {
	if err := o.restore(r, gen, size); err != nil {
		o.host.logger().Error("restoring a received snapshot", "object", o.id, "donor", donor, "error", err)
		o.sendWant()
		return
	}
	if gen == 0 {
		// Not on disk yet: let the time-based snapshot write it.
		o.snapIndex = min(o.snapIndex, o.index-1)
	}
	o.observe(Event{Type: EventSnapshotReceived, Peer: donor, Index: o.index, Bytes: size})
	o.host.multicast(o, encodeRestored())
	o.becomeReady()
	q := o.queue
	o.queue = nil
	for _, e := range q {
		o.step(e)
	}
}

// restoreFrom replaces the state with the stored snapshot gen.
func (o *Object) restoreFrom(gen uint64) error {
	r, err := o.host.store().open(o.id, gen)
	if err != nil {
		return err
	}
	return o.restore(r, gen, r.Size())
}

// restore replaces the state with the snapshot read from r (stored as gen,
// or 0 if it is not in the store).
func (o *Object) restore(r io.Reader, gen uint64, size int64) error {
	br := bufio.NewReaderSize(r, 64<<10)
	h, err := readHeader(br)
	if err != nil {
		return err
	}
	if h.Object != o.id {
		return fmt.Errorf("%w: snapshot of %q for %q", errMalformed, h.Object, o.id)
	}
	if err := o.sm.Restore(br); err != nil {
		return fmt.Errorf("rsm: restoring %s: %w", o.id, err)
	}
	o.index, o.applied, o.view, o.table, o.lineage, o.once = h.Index, h.At, h.View, h.Table, h.Lineage, h.Once
	o.hasState = true
	o.pubIndex.Store(o.index)
	o.inline = nil
	if gen != 0 {
		o.snapIndex, o.snapAt, o.snapGen, o.snapSize, o.snapIdle = h.Index, h.At, gen, size, 0
	}
	return nil
}

// onWant answers a joiner that still waits: its donor offers again, the
// snapshot it has if that is recent enough, else a new one.
func (o *Object) onWant(from hwg.Process, d direct) {
	if !o.ready || !o.view.Contains(from) {
		return
	}
	if donor, ok := o.table.donorOf(from); !ok || donor != o.self {
		return
	}
	if at, ok := o.latestAt(); ok && !at.less(d.at) {
		o.offerLatest(from)
		return
	}
	o.donate([]hwg.Process{from})
}

func (o *Object) sendWant() {
	o.wantIdle = 0
	for _, m := range o.latest.Members {
		if m != o.self {
			o.host.send(m, direct{kind: kindWant, object: o.id, at: o.first})
		}
	}
}

func (o *Object) abortFetch() {
	if o.fetch != nil {
		o.fetch.w.abort()
		o.fetch = nil
	}
}

// onTick drives the transfer's timeouts (a replica without its state
// gets every tick) and the time-based snapshot (a ready one gets ticks in
// bulk).
func (o *Object) onTick(ticks int) {
	if o.ready {
		if o.index > o.snapIndex {
			o.snapIdle += ticks
			if o.snapIdle >= o.cfg.snapshotTicks {
				o.takeSnapshot()
			}
		} else {
			o.host.watch(o, false)
		}
		return
	}
	if o.first == (point{}) {
		return // not joined yet
	}
	if f := o.fetch; f != nil {
		f.idle++
		switch {
		case f.idle >= abandonTicks || !o.latest.Contains(f.donor):
			o.abortFetch()
			o.sendWant()
		case f.idle%retryTicks == 0:
			f.requested = f.next // ask again from the first missing byte
			o.request()
		}
		return
	}
	o.wantIdle++
	if o.wantIdle >= retryTicks {
		o.sendWant()
	}
	// Nothing comes: perhaps nobody holds the state any more. A round
	// finds out (a holder answers HOLD) and, if so, picks a seed.
	if o.waiting++; o.waiting >= claimTicks && (o.round == nil || o.round.view != o.latest.ID) {
		o.waiting = 0
		o.startRound()
	}
}

// emptyRounds is how many complete rounds without any state a member
// must have seen before a round starts the object over from nothing.
const emptyRounds = 2

// claimTicks is how long a replica without its state and without a
// transfer under way waits before it starts a claim round.
const claimTicks = 3 * abandonTicks

// membershipEnded handles the end of this node's membership: Left after
// Close, or Excluded, after which the node joins again as a new member.
func (o *Object) membershipEnded(t lwg.EventType) {
	o.abortFetch()
	o.ready, o.first, o.queue = false, point{}, nil
	o.pubReady.Store(false)
	o.host.watch(o, false)
	err := ErrUnknown
	if t == lwg.EventLeft {
		err = ErrClosed
	}
	o.failAll(fmt.Errorf("%w: %s left its group (%v)", err, o.id, t))
	o.host.ended(o, t)
}

func (o *Object) observe(e Event) {
	e.Object = o.id
	o.host.observe(e)
}

// Claim rounds. When no member of a view holds the object's state, no
// donor will ever offer it (a lone holder was excluded while its joiners
// fetched, or a chain of exclusions removed every holder). A replica
// without the state starts a round when its join view is all new, or when
// it has waited claimTicks with no transfer under way: it multicasts CLAIM
// with the state it has (from before it was excluded, or a local
// snapshot, or none), and every replica without the state that sees a
// claim in its view claims too. A holder that sees a claim answers HOLD,
// which cancels the round in that view (offers are welcome again). Once
// the claims of every member are delivered in the view with no HOLD, none
// holds the state (holders never claim), and all pick the same best
// claim; its sender seeds: its state, then everything it queued since it
// joined, then it serves the others from there. A new install restarts an
// open round.
//
// Commands delivered only to members that all left are lost: the state
// goes on from the best one left, as a new lineage. If nobody has any
// state, a round decides nothing until some member has seen emptyRounds
// such rounds (a holder partitioned away may come back with its state);
// then the object starts over from nothing, which is the price of
// liveness when the last holder crashed for good.

// claimRound is a round of claims in one view.
type claimRound struct {
	view      uint64
	claimed   bool // this replica's claim is out: it takes no offer in this view
	cancelled bool // a holder answered: no choice in this view
	claims    map[hwg.Process]claim
}

func (o *Object) startRound() {
	o.round = &claimRound{view: o.latest.ID, claimed: true, claims: map[hwg.Process]claim{}}
	o.host.multicast(o, encodeClaim(claim{has: o.hasState, lineage: o.lineage, index: o.index, empty: o.empty}))
}

// unreadyStep looks at a stream entry a replica without the state has
// queued, for the claim rounds.
func (o *Object) unreadyStep(q queued) {
	if q.ev.Type == lwg.EventInstall {
		if o.round != nil && !o.round.cancelled {
			o.startRound() // a round is per view
		}
		return
	}
	m, err := decodeOrdered(q.ev.Payload)
	if err != nil || m.kind != kindClaim && m.kind != kindHold || !o.latest.Contains(q.ev.From) {
		return
	}
	if m.kind == kindHold {
		// Someone holds the state in this view: no round here, and
		// offers are welcome again.
		if o.round == nil || o.round.view != o.latest.ID {
			o.round = &claimRound{view: o.latest.ID}
		}
		o.round.cancelled, o.round.claimed = true, false
		return
	}
	if o.round == nil || o.round.view != o.latest.ID {
		o.startRound()
	}
	r := o.round
	if r.cancelled {
		return
	}
	r.claims[q.ev.From] = m.claim
	for _, p := range o.latest.Members {
		if _, ok := r.claims[p]; !ok {
			return
		}
	}
	// Every member claimed, so none holds the state (a holder never
	// claims): the first best claim in view order seeds.
	seed := o.latest.Members[0]
	for _, p := range o.latest.Members[1:] {
		if r.claims[p].better(r.claims[seed]) {
			seed = p
		}
	}
	o.round = nil
	if best := r.claims[seed]; !best.has {
		// Nobody here has any state. A holder may be away (partitioned)
		// and come back with it, so start over from nothing only once
		// some member has seen emptyRounds such rounds (the count
		// travels in the claims, so every member decides alike).
		var most uint64
		for _, c := range r.claims {
			most = max(most, c.empty)
		}
		if most < emptyRounds {
			o.empty++
			return
		}
	}
	o.first = point{View: o.latest.ID} // only a state from this view on
	if seed != o.self {
		o.sendWant()
		return
	}
	// This replica seeds: its own state, then everything it queued since
	// it joined (commands no holder may have applied), then it serves
	// the others from the point reached.
	o.lineage = o.latest.ID
	o.table = table{Restored: []hwg.Process{o.self}}
	o.applied = point{}
	queue := o.queue
	o.queue = nil
	o.replay = true
	o.becomeReady()
	for _, e := range queue {
		o.step(e)
	}
	o.replay = false
	o.view = o.latest.Clone()
	o.table = table{Restored: []hwg.Process{o.self}}
	var others []hwg.Process
	for _, p := range o.view.Members {
		if p != o.self {
			others = append(others, p)
		}
	}
	serve := o.table.install(o.view, others, o.self)
	o.observe(Event{Type: EventView, View: o.view})
	if len(serve) > 0 {
		o.donate(serve)
	}
}
