package rsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cespare/xxhash/v2"
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
// covers and applies the rest, then multicasts RESTORED. The three overlap
// for a large state: the donor serves the chunks it has written (SNAP),
// and a joiner without a state restores them as they arrive (stream.go),
// checking the checksum at the end. If the donor
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
	// frame, for a chunk, holds d's data: the worker releases it once the
	// replica is done with the chunk, which it never keeps (onChunk
	// copies or restores it).
	frame *hwg.Direct
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
	size      uint64         // 0 until known: the donor still writes the snapshot
	avail     uint64         // bytes the donor can serve (size, once known)
	sum       uint64         // the snapshot's checksum, once size is known
	next      uint64         // bytes received
	requested uint64         // bytes asked for
	idle      int            // ticks without a chunk or news of the snapshot
	hash      *xxhash.Digest // checksum of the bytes received
	// The received bytes go either to the store, restored from there at
	// the end (w: a replica that holds a state it must not lose if the
	// transfer fails), or straight into the state machine as they arrive
	// (st: a replica without a state).
	w  snapWriter
	st *streamRestore
	// head gathers the first bytes for w until they hold the header, whose
	// format checkHead checks before anything is committed; headDone
	// once it did.
	head     []byte
	headDone bool
}

// checkHead takes the next bytes received for the store (w) and, once
// they hold the snapshot's whole header, refuses one that restoreSM would
// refuse: in a format this build cannot read (ErrSnapshotFormat), with a
// header it cannot decode, or of another object (errMalformed).
// Committed, it would become the replica's current snapshot in place of
// its own, which no restart of this build could read.
func (f *fetch) checkHead(b []byte, id ObjectID) error {
	if f.headDone {
		return nil
	}
	f.head = append(f.head, b...)
	n, k := binary.Uvarint(f.head)
	switch {
	case k == 0 && len(f.head) < binary.MaxVarintLen64:
		return nil // the length is still incomplete
	case k <= 0 || n > maxHeader:
		f.head, f.headDone = nil, true
		return fmt.Errorf("%w: snapshot header length", errMalformed)
	case uint64(len(f.head)-k) < n:
		return nil
	}
	h, err := decodeHeader(f.head[k : k+int(n)])
	f.head, f.headDone = nil, true
	if err != nil {
		return err
	}
	if h.Object != id {
		return fmt.Errorf("%w: snapshot of %q for %q", errMalformed, h.Object, id)
	}
	return nil
}

// limit is how far the joiner may fetch now.
func (f *fetch) limit() uint64 {
	if f.size != 0 {
		return f.size
	}
	return f.avail
}

// learn takes in what a SNAP says of the snapshot being fetched.
func (f *fetch) learn(d direct) {
	f.idle = 0
	f.avail = max(f.avail, d.avail)
	if d.size != 0 && f.size == 0 {
		f.size, f.avail = d.size, d.size
		f.sum = binary.BigEndian.Uint64(d.sum)
	}
}

// Ticks (of Config.TickInterval) of the transfer's timeouts.
const (
	retryTicks   = 10 // ask again for what did not come (offer or chunks)
	abandonTicks = 50 // give up a donor that sends nothing
)

// onEvent steps one LWG event of the object. Neither it nor step, apply
// and unreadyStep keep e or a pointer into it past the call (what they
// keep, they copy): the router passes events in place in the batch it
// releases after its turns.
func (o *Object) onEvent(e *lwg.Event) {
	switch e.Type {
	case lwg.EventInstall:
		o.recv = point{View: e.View.ID}
		v := e.View.Clone()
		o.latest = v
		o.pubView.Store(&v) // its own copy: View reads it from other goroutines
		if slices.Contains(e.Joined, o.self) {
			o.joined(*e)
			return
		}
		o.step(o.recv, e)
	case lwg.EventDeliver:
		o.recv.Seq++
		o.step(o.recv, e)
	case lwg.EventLeft, lwg.EventExcluded:
		o.membershipEnded(e.Type)
	}
}

// step applies the stream entry e at point at, or queues it (a copy)
// while the state is missing.
func (o *Object) step(at point, e *lwg.Event) {
	switch {
	case !o.ready:
		o.queue = append(o.queue, queued{at: at, ev: *e})
		o.unreadyStep(e)
	case !o.applied.less(at):
		// Covered by the snapshot this replica restored.
	default:
		o.apply(at, e)
	}
}

// joined handles the install that admits this replica.
func (o *Object) joined(e lwg.Event) {
	o.abortFetch()
	o.queue, o.first, o.wantIdle, o.waiting, o.refused = nil, o.recv, 0, 0, hwg.Process{}
	prev := o.view // the last view it applied, if it held the state
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
	away := newAway(e)
	if o.round != nil {
		// It was a member before without ever getting the state (it
		// left, or was excluded): what it learned then of who may hold
		// the state still holds (RSM seed 448: a lone rejoiner forgot
		// the holder it had seen, and started over while that holder
		// was partitioned away).
		away.merge(o.round.away)
	}
	o.round = &claimRound{away: away}
	if o.hasState {
		// It held the state before (it was excluded, or left): the
		// members of its last view may hold a later state.
		for _, p := range prev.Members {
			if p != o.self {
				o.round.away.mayHold(p)
			}
		}
	}
	if len(e.Joined) == len(e.View.Members) {
		// Nobody in this view held the state before it: no donor will
		// come. The members choose a seed among themselves (claim).
		o.startRound()
	}
	if e := o.early; e != nil {
		o.early = nil
		o.onDirect(e.from, e.d)
	}
}

// earlyOffer is an offer that arrived before the install admitting this
// replica.
type earlyOffer struct {
	from hwg.Process
	d    direct
}

// apply steps the entry e at point at on a ready replica.
func (o *Object) apply(at point, e *lwg.Event) {
	o.applied = at
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
	case kindPropose, kindOnce, kindRead:
		before := o.index
		o.applyEntry(m)
		o.afterApply(before)
	case kindBatch:
		// Each entry as if delivered alone, but the batch is one point of
		// the stream: a snapshot comes after the whole of it.
		before := o.index
		br := m.batch()
		for {
			e, ok := br.next()
			if !ok {
				break
			}
			o.applyEntry(e)
		}
		o.afterApply(before)
	case kindRestored:
		if o.view.Contains(e.From) {
			serve := o.table.restoredIn(o.view, e.From, o.self)
			o.trimInline()
			if len(serve) > 0 && !o.replay {
				o.donate(serve)
			}
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

// applyEntry applies a proposal or answers a read, and hands the result
// to its caller if it is local.
func (o *Object) applyEntry(m ordered) {
	switch m.kind {
	case kindPropose:
		res, err := o.sm.Apply(m.cmd)
		o.index++
		o.pubIndex.Store(o.index)
		o.host.applied(o)
		if m.origin == o.self {
			stageApplied(o, m.seq)
			o.resolve(m.seq, res, err)
		}
	case kindOnce:
		var rec *onceRecord
		if r, seen := o.once[m.once.Source]; seen {
			rec = &r
		}
		verdict, res, err := rec.check(m.once.Source, m.once.Seq)
		if verdict == onceApply {
			res, err = o.sm.Apply(m.cmd)
			o.index++
			o.pubIndex.Store(o.index)
			o.host.applied(o)
			if o.once == nil {
				o.once = map[string]onceRecord{}
			}
			o.once[m.once.Source] = *rec.record(m.once.Seq, res, err)
		}
		if m.origin == o.self {
			o.resolve(m.seq, res, err)
		}
	case kindRead:
		if m.origin == o.self {
			o.answer(m.seq)
		}
	}
}

// afterApply takes the scheduled snapshot when it is due, after a
// delivery that moved the index from before.
func (o *Object) afterApply(before uint64) {
	if o.index == before {
		return
	}
	// snapIndex above index: the local snapshot is of another state (a
	// donor's empty one replaced a reopened one, see restoredFrom): write
	// this one now.
	if o.cfg.SnapshotEvery > 0 && (o.snapIndex > o.index || o.index-o.snapIndex >= o.cfg.SnapshotEvery) {
		o.takeSnapshot()
	} else if before == o.snapIndex {
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
//
// A larger state is written to the store, and the joiners hear of it while
// it is written (SNAP with the bytes readable so far), so they fetch it as
// it is written; a last SNAP, once committed, gives its size and checksum.
func (o *Object) donate(to []hwg.Process) {
	o.serving.Store(true)
	at := o.applied
	sw := &spillWriter{limit: o.cfg.ChunkSize, store: o.host.store(), obj: o.id,
		onProgress: func(gen uint64, avail int64) {
			for _, j := range to {
				o.host.send(j, direct{kind: kindSnap, object: o.id, gen: gen, at: at, avail: uint64(avail)})
			}
		}}
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

// offerLatest offers a joiner the latest snapshot this replica took. It
// reports false if that snapshot is no longer in the store.
func (o *Object) offerLatest(to hwg.Process) bool {
	if o.inline != nil && !o.inlineAt.less(o.snapAt) {
		o.host.send(to, direct{kind: kindOffer, object: o.id, at: o.inlineAt, size: uint64(len(o.inline)), data: o.inline})
		o.observe(Event{Type: EventSnapshotSent, Peer: to, Index: o.index, Bytes: int64(len(o.inline))})
		return true
	}
	r, err := o.host.store().open(o.id, o.snapGen)
	if err != nil {
		o.host.logger().Debug("offering a snapshot", "object", o.id, "gen", o.snapGen, "error", err)
		return false
	}
	o.host.send(to, direct{kind: kindSnap, object: o.id, gen: o.snapGen, at: o.snapAt,
		avail: uint64(o.snapSize), size: uint64(o.snapSize), sum: binary.BigEndian.AppendUint64(nil, r.Sum())})
	return true
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
	// onProgress, if set, hears of the bytes of the stored snapshot that
	// can be read before its commit, as they grow.
	onProgress func(gen uint64, readable int64)
	told       int64
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
	n, err := s.w.Write(p)
	if s.onProgress != nil {
		if gen, r := s.w.progress(); r > s.told {
			s.told = r
			s.onProgress(gen, r)
		}
	}
	return n, err
}

func (s *spillWriter) commit() (snapInfo, error) {
	if s.w != nil {
		return s.w.commit()
	}
	return snapInfo{Size: int64(len(s.buf))}, nil
}

func (s *spillWriter) progress() (uint64, int64) {
	if s.w != nil {
		return s.w.progress()
	}
	return 0, 0
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
	case kindSnap:
		o.onSnap(from, d)
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

// acceptsOffer says whether a joiner takes an offer of a snapshot (OFFER
// or SNAP) now. An offer that overtook the install admitting this replica
// is kept for then (the install comes on another path).
func (o *Object) acceptsOffer(from hwg.Process, d direct) bool {
	if !o.ready && o.first == (point{}) {
		o.early = &earlyOffer{from: from, d: d}
		return false
	}
	// In a claim round this replica has told the group it holds no state
	// from this view: taking one now would break the round's choice.
	// So is one whose claim is still out (it counts in the view it is
	// delivered in).
	return !o.ready && !d.at.less(o.first) && (o.round == nil || !o.round.claimed && o.round.out == 0) &&
		from != o.refused
}

// transferAlive says whether the transfer under way, if any, still looks
// alive: an offer from another donor does not replace it.
func (o *Object) transferAlive() bool {
	f := o.fetch
	return f != nil && o.latest.Contains(f.donor) && f.idle < retryTicks
}

// onOffer takes a small snapshot sent whole inside the offer.
func (o *Object) onOffer(from hwg.Process, d direct) {
	if !o.acceptsOffer(from, d) || d.data == nil || uint64(len(d.data)) != d.size || o.transferAlive() {
		return
	}
	o.abortFetch()
	o.restored(from, bytesReader(d.data), 0, int64(d.size))
}

// onSnap takes news of a stored snapshot: a new one to fetch, or more of
// the one being fetched readable at its donor (or its size and sum).
func (o *Object) onSnap(from hwg.Process, d direct) {
	if !o.acceptsOffer(from, d) {
		return
	}
	if f := o.fetch; f != nil && f.donor == from && f.gen == d.gen {
		f.learn(d)
		o.request()
		o.finishFetch()
		return
	}
	if o.transferAlive() {
		return
	}
	o.abortFetch()
	f := &fetch{donor: from, gen: d.gen, at: d.at, hash: xxhash.New()}
	f.learn(d)
	if !o.hasState {
		// Nothing to lose: restore while the bytes arrive. The local
		// snapshot is taken later (the time-based one).
		f.st = o.startStream(f)
	}
	if f.st == nil {
		w, err := o.host.store().create(o.id)
		if err != nil {
			o.host.logger().Error("creating snapshot for a transfer", "object", o.id, "error", err)
			return
		}
		f.w = w
	}
	o.fetch = f
	o.waiting = 0
	o.request()
}

// request keeps a window of chunk requests outstanding, within what the
// donor can serve.
func (o *Object) request() {
	f := o.fetch
	for lim := f.limit(); f.requested < lim && f.requested-f.next < uint64(o.cfg.TransferWindow); {
		n := min(uint64(o.cfg.ChunkSize), lim-f.requested)
		o.host.send(f.donor, direct{kind: kindFetch, object: o.id, gen: f.gen, offset: f.requested, n: n})
		f.requested += n
	}
}

// onChunk takes the next bytes of the snapshot being fetched; chunks out
// of order are dropped (asked for again after retryTicks).
func (o *Object) onChunk(from hwg.Process, d direct) {
	f := o.fetch
	if o.ready || f == nil || from != f.donor || d.gen != f.gen || d.offset != f.next || len(d.data) == 0 ||
		f.next+uint64(len(d.data)) > f.limit() {
		return
	}
	f.next += uint64(len(d.data))
	f.idle = 0
	o.received.Add(uint64(len(d.data)))
	// Ask for more before handling these: a write can wait for a disk
	// sync, a restore for the state machine, and the window must not
	// stall behind either.
	o.request()
	f.hash.Write(d.data)
	if f.st != nil {
		if err := f.st.feed(d.data); err != nil {
			o.host.logger().Error("restoring a snapshot as it arrives", "object", o.id, "donor", from, "error", err)
			o.abortFetch()
			o.wantAgain(from, err)
			return
		}
	} else if err := f.checkHead(d.data, o.id); err != nil {
		o.host.logger().Error("a received snapshot", "object", o.id, "donor", from, "error", err)
		o.abortFetch()
		o.wantAgain(from, err)
		return
	} else if _, err := f.w.Write(d.data); err != nil {
		o.host.logger().Error("writing a received snapshot", "object", o.id, "error", err)
		o.abortFetch()
		return
	}
	o.finishFetch()
}

// finishFetch completes the transfer once every byte has arrived: it
// checks the snapshot's checksum against the donor's, and either ends the
// restore under way or restores what was stored.
func (o *Object) finishFetch() {
	f := o.fetch
	if f == nil || f.size == 0 || f.next < f.size {
		return
	}
	if r := o.round; r != nil && (r.claimed || r.out > 0) {
		// Its claim (in this round, or still out and to count in the
		// view it is delivered in, whatever the transfer's point) says it
		// holds nothing, and the others may decide on it: keep the state
		// until the round ends. A decision drops it (a seed's state
		// supersedes it); a round that ends without one, or the claim's
		// delivery after a HOLD, finishes it. onTick leaves a held
		// transfer alone.
		return
	}
	o.fetch = nil
	// INVARIANT: a replica takes no state from before its first usable
	// point (a claim round moves it on, aborting older transfers).
	if f.at.less(o.first) {
		o.host.logger().Error("a finished transfer is from before the first usable point", "object", o.id, "at", f.at, "first", o.first)
		o.discard(f)
		o.sendWant()
		return
	}
	if got := f.hash.Sum64(); got != f.sum {
		o.host.logger().Error("a received snapshot does not match its sum", "object", o.id, "donor", f.donor,
			"gen", f.gen, "xxh64", fmt.Sprintf("%016x", got), "want", fmt.Sprintf("%016x", f.sum))
		o.discard(f)
		o.sendWant()
		return
	}
	if f.st != nil {
		h, err := f.st.finish()
		if err == nil && h.Object != o.id {
			err = fmt.Errorf("%w: snapshot of %q for %q", errMalformed, h.Object, o.id)
		}
		if err != nil {
			o.host.logger().Error("restoring a received snapshot", "object", o.id, "donor", f.donor, "error", err)
			o.resetState(f.st.pristine)
			o.wantAgain(f.donor, err)
			return
		}
		o.adopt(h, 0, int64(f.size))
		o.restoredFrom(f.donor, 0, int64(f.size))
		return
	}
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
	o.restored(f.donor, r, info.Gen, info.Size)
}

// restored restores a donor's snapshot, applies what the joiner queued
// after it, and tells the group.
func (o *Object) restored(donor hwg.Process, r io.Reader, gen uint64, size int64) {
	if err := o.restore(r, gen, size); err != nil {
		o.host.logger().Error("restoring a received snapshot", "object", o.id, "donor", donor, "error", err)
		o.wantAgain(donor, err)
		return
	}
	o.restoredFrom(donor, gen, size)
}

// restoredFrom follows a restore from a donor's snapshot: it applies what
// the joiner queued after it and tells the group.
func (o *Object) restoredFrom(donor hwg.Process, gen uint64, size int64) {
	// The local snapshot is of another state (one reopened from it, at
	// a higher index): write this one at once, or a restart would reopen
	// the superseded one.
	stale := gen == 0 && o.snapIndex > o.index
	if gen == 0 && o.index > 0 {
		// Not on disk yet: let the time-based snapshot write it.
		o.snapIndex = min(o.snapIndex, o.index-1)
	}
	o.observe(Event{Type: EventSnapshotReceived, Peer: donor, Index: o.index, Bytes: size})
	o.host.multicast(o, encodeRestored())
	o.becomeReady()
	if stale {
		o.takeSnapshot()
	}
	q := o.queue
	o.queue = nil
	for i := range q {
		o.step(q[i].at, &q[i].ev)
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
	h, err := restoreSM(o.sm, o.id, r)
	if err != nil {
		return err
	}
	o.adopt(h, gen, size)
	return nil
}

// restoreSM reads a snapshot's header from r and restores sm from the
// rest.
func restoreSM(sm StateMachine, id ObjectID, r io.Reader) (header, error) {
	// A small state (most objects') must not cost a 64 KiB buffer each.
	size := 64 << 10
	switch sr := r.(type) {
	case interface{ Len() int }:
		size = min(size, sr.Len())
	case interface{ Size() int64 }:
		size = int(min(int64(size), sr.Size()))
	}
	br := bufio.NewReaderSize(r, size)
	h, err := readHeader(br)
	if err != nil {
		return header{}, err
	}
	if h.Object != id {
		return header{}, fmt.Errorf("%w: snapshot of %q for %q", errMalformed, h.Object, id)
	}
	if err := sm.Restore(br); err != nil {
		return header{}, fmt.Errorf("rsm: restoring %s: %w", id, err)
	}
	return h, nil
}

// adopt takes the replica's place in the stream from the header of a
// snapshot just restored (stored as gen, or 0).
func (o *Object) adopt(h header, gen uint64, size int64) {
	o.index, o.applied, o.view, o.table, o.lineage, o.once = h.Index, h.At, h.View, h.Table, h.Lineage, h.Once
	o.hasState = true
	o.pubIndex.Store(o.index)
	o.inline = nil
	if gen != 0 {
		o.snapIndex, o.snapAt, o.snapGen, o.snapSize, o.snapIdle = h.Index, h.At, gen, size, 0
	}
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
	if at, ok := o.latestAt(); ok && !at.less(d.at) && o.offerLatest(from) {
		return
	}
	o.donate([]hwg.Process{from})
}

// wantAgain asks for the state again after donor's snapshot failed to
// restore with err: at once, unless a newer build wrote it
// (ErrSnapshotFormat). Then the joiner asks after retryTicks, as when
// nothing comes, and until then takes no offer from that donor (the other
// SNAPs of the same donation would each start the transfer again):
// asking at once would repeat it as fast as the donor can start it.
func (o *Object) wantAgain(donor hwg.Process, err error) {
	if errors.Is(err, ErrSnapshotFormat) {
		o.wantIdle = 0
		o.refused = donor
		return
	}
	o.sendWant()
}

func (o *Object) sendWant() {
	o.refused = hwg.Process{}
	o.wantIdle = 0
	for _, m := range o.latest.Members {
		if m != o.self {
			o.host.send(m, direct{kind: kindWant, object: o.id, at: o.first})
		}
	}
}

func (o *Object) abortFetch() {
	if f := o.fetch; f != nil {
		o.fetch = nil
		o.discard(f)
	}
}

// discard drops what a transfer that did not complete left: the stored
// bytes, or the state half restored (the state machine is put back as it
// was before, without a state).
func (o *Object) discard(f *fetch) {
	if f.w != nil {
		f.w.abort()
	}
	if f.st != nil {
		f.st.abort()
		o.resetState(f.st.pristine)
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
		if f.size > 0 && f.next >= f.size {
			return // complete, held for a claim round (see finishFetch)
		}
		f.idle++
		switch {
		case f.idle >= abandonTicks || !o.latest.Contains(f.donor):
			o.abortFetch()
			o.sendWant()
		case f.idle%retryTicks == 0:
			f.requested = f.next // ask again from the first missing byte
			o.request()
			if f.size == 0 {
				// The SNAP that ends the snapshot may be lost: the
				// donor offers it again.
				o.host.send(f.donor, direct{kind: kindWant, object: o.id, at: o.first})
			}
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
	o.failInTurn(fmt.Errorf("%w: %s left its group (%v)", err, o.id, t))
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
// A round decides nothing while a member that may hold the state is
// away and may come back with it (see mayHold): an excluded holder, cut
// off by a partition, finds the group waiting for it, and its claim
// wins. Commands only departed holders applied are lost when those
// holders crashed or left: the state goes on from the best one left, as
// a new lineage. If nobody has any state, a round decides nothing until
// some member has seen emptyRounds such rounds (a holder this replica
// does not know of may be away); then the object starts over from
// nothing, which is the price of liveness when the last holder crashed
// for good.

// claimRound is a round of claims in one view (view 0: none started
// since the last one ended), and what the replica learned since it joined
// (or in earlier memberships without the state) of the members that may
// hold the state (away), which outlives rounds.
type claimRound struct {
	view      uint64
	claimed   bool // this replica's claim is out: it takes no offer in this view
	cancelled bool // a holder answered: no choice in this view
	claims    map[hwg.Process]claim
	away      *mayHold
	// out: this replica's claims multicast in this membership and not
	// yet delivered back. A claim made while the LWG holds for a view
	// change is sent in the next view, so it can outlive the round it
	// was made for (it counts in the view it is delivered in, as
	// waiting: see the decision in unreadyStep); a replica keeps at most
	// one out (see startRound).
	out int
}

// mayHold tracks, for a replica without the state, the members that may
// hold it: those already in the view that admitted this replica, those of
// the last view it held the state in (if it kept one), and those seen
// holding it since (RESTORED, HOLD, a claim with a state). A
// round decides only once each of them is in the round's view (so its
// claim counts), or will not come back with its state: it left
// voluntarily, or a later incarnation of its node was seen (it crashed;
// a restarted node claims with its local snapshot as a new member).
type mayHold struct {
	procs map[hwg.Process]bool
	incs  map[hwg.NodeID]uint64 // the latest incarnation seen of each node
	left  map[hwg.Process]bool  // voluntary leavers
}

func newAway(e lwg.Event) *mayHold {
	a := &mayHold{procs: map[hwg.Process]bool{}, incs: map[hwg.NodeID]uint64{}, left: map[hwg.Process]bool{}}
	for _, p := range e.View.Members {
		if !slices.Contains(e.Joined, p) {
			a.procs[p] = true
		}
	}
	// A view whose members are all new, after every member of the one
	// before vanished (excluded, not left): those held the state, if
	// anyone did, and may come back with it (RSM seed 628: a lone joiner
	// started over, and a partitioned holder's state was dropped when it
	// returned).
	for _, p := range e.Vanished {
		a.procs[p] = true
	}
	a.install(e)
	return a
}

func (a *mayHold) mayHold(p hwg.Process) { a.procs[p] = true }

// merge adds what b knows.
func (a *mayHold) merge(b *mayHold) {
	for p := range b.procs {
		a.procs[p] = true
	}
	for n, inc := range b.incs {
		a.incs[n] = max(a.incs[n], inc)
	}
	for p := range b.left {
		a.left[p] = true
	}
}

// install notes the incarnations and voluntary leavers of an install.
func (a *mayHold) install(e lwg.Event) {
	for _, p := range e.View.Members {
		a.incs[p.Node] = max(a.incs[p.Node], p.Inc)
	}
	for _, p := range e.Left {
		a.left[p] = true
	}
}

// waits says whether a member that may hold the state is away from v:
// not in it, and may come back with the state.
func (a *mayHold) waits(v lwg.View) bool {
	for p := range a.procs {
		if !v.Contains(p) && !a.left[p] && a.incs[p.Node] <= p.Inc {
			return true
		}
	}
	return false
}

// startRound opens a round in the latest view with this replica's claim.
// If a claim of its is still out (made for an earlier round, and sent in
// this view because the LWG held for the view change), that one is its
// claim here: a second would outlive this round, and a claim delivered
// after its sender seeded from this round would tell a later view that a
// holder holds nothing (RSM seeds 448 and 662: two states in one view).
func (o *Object) startRound() {
	away, out := newAway(lwg.Event{}), 0
	if o.round != nil {
		away, out = o.round.away, o.round.out
	}
	o.round = &claimRound{view: o.latest.ID, claimed: true, claims: map[hwg.Process]claim{}, away: away, out: out}
	if out > 0 {
		return
	}
	o.round.out++
	c := claim{has: o.hasState, lineage: o.lineage, index: o.index, empty: o.empty, waits: away.waits(o.latest), view: o.latest.ID}
	if o.forgotView == o.latest.ID && o.forgotView != 0 {
		c.waits, c.empty, c.forgot = false, max(c.empty, emptyRounds), true // ForgetAbsent
	}
	o.host.multicast(o, encodeClaim(c))
}

// unreadyStep looks at a stream entry a replica without the state has
// queued, for the claim rounds.
func (o *Object) unreadyStep(e *lwg.Event) {
	if o.round == nil {
		o.round = &claimRound{away: newAway(lwg.Event{})}
	}
	if e.Type == lwg.EventInstall {
		o.round.away.install(*e)
		if o.round.view != 0 && !o.round.cancelled {
			o.startRound() // a round is per view
		}
		return
	}
	m, err := decodeOrdered(e.Payload)
	if err != nil || !o.latest.Contains(e.From) {
		return
	}
	if m.kind == kindRestored || m.kind == kindHold || m.kind == kindClaim && m.claim.has {
		o.round.away.mayHold(e.From)
	}
	if m.kind == kindForget {
		// An operator gave up on the absent holders: this replica's
		// claims in this view neither wait for them nor for more empty
		// rounds, so the view's next complete round picks the best state
		// present, or starts over. Scoped to the view: it changes nothing
		// in a later one (a holder there is not the one given up on),
		// and a replica that gets the state forgets it with the view.
		o.forgotView = o.latest.ID
		return
	}
	if m.kind != kindClaim && m.kind != kindHold {
		return
	}
	if m.kind == kindClaim && e.From == o.self && o.round.out > 0 {
		// Its own claim, delivered in a view where no round has started
		// yet: that round starts with it as this replica's claim, and
		// no second one (startRound sees it out). Counting it down first
		// sent a second claim (found in review; see startRound).
		if o.round.view != o.latest.ID {
			o.startRound()
		}
		o.round.out--
		defer o.finishFetch() // one held back while the claim was out
	}
	if m.kind == kindHold {
		// Someone holds the state in this view: no round here, and
		// offers are welcome again.
		if o.round.view != o.latest.ID {
			o.round = &claimRound{view: o.latest.ID, away: o.round.away, out: o.round.out}
		}
		o.round.cancelled, o.round.claimed = true, false
		o.finishFetch() // one held back for the round
		return
	}
	if o.round.view != o.latest.ID {
		o.startRound()
	}
	r := o.round
	if r.cancelled {
		return
	}
	r.claims[e.From] = m.claim
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
	o.round = &claimRound{away: r.away, out: r.out}
	for _, p := range o.latest.Members {
		c := r.claims[p]
		// A claim made for an earlier view (it was out when the view
		// changed, so it counts here) waits: its waits and empty say what
		// its sender knew there, and a view change since may have dropped
		// a member that may hold the state (found in review: a rejoiner's
		// claim, made while the holder of a later state was in the view,
		// decided the next view, whose install named that holder
		// vanished, and the rejoiner seeded its older state). The same
		// for a claim that a FORGET overrode in an earlier view: here
		// nobody gave up on anyone. Unless this view's FORGET gives up on
		// whoever is absent: then a claim counts as it says. Every member
		// that claims here took the view's FORGET, if any, so all read it
		// alike; the sender's next claim, made here, says what it knows.
		stale := c.forgot || c.view != 0 && c.view != o.latest.ID
		if c.waits || stale && o.forgotView != o.latest.ID {
			// A member knows of one that may hold a better state than
			// any claim here, was excluded and may come back with it
			// (it did not crash: no later incarnation of its node was
			// seen, nor leave): going on without it would drop the
			// commands only it applied. Wait for it; a later round
			// decides. The knowledge travels in the claims, so every
			// member decides alike.
			o.host.logger().Debug("claim round waits for a member that may hold the state", "object", o.id, "claimant", p)
			o.finishFetch() // one held back for the round
			return
		}
	}
	best := r.claims[seed]
	if !best.has {
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
			o.finishFetch() // one held back for the round
			return
		}
	}
	// The seed holds the state from here on, even when it starts over
	// from nothing (its claim said it had none, so nothing else notes
	// it): a later round waits for it if it is dropped before this
	// replica gets its state (found in review: the others started over
	// again in the next view, whose install named the seed vanished,
	// and dropped the commands it had applied).
	o.round.away.mayHold(seed)
	o.first = point{View: o.latest.ID} // only a state from this view on
	if seed != o.self {
		if o.fetch != nil {
			// A transfer begun before the round decided brings a state
			// the round did not choose: finished, it would stand beside
			// the seed's (a holder excluded mid-transfer still serves
			// from its store).
			o.abortFetch()
		}
		o.sendWant()
		return
	}
	// This replica seeds: its own state, then everything it queued since
	// it joined (commands no holder may have applied), then it serves
	// the others from the point reached. A transfer left over from a
	// departed donor ends first (a state half restored is undone).
	o.abortFetch()
	o.lineage = o.latest.ID
	o.table = table{Restored: []hwg.Process{o.self}}
	o.applied = point{}
	queue := o.queue
	o.queue = nil
	if !best.has {
		// The object starts over from nothing: what was delivered
		// before this view belongs to the state that was lost (its
		// holders applied it, if anyone did). Applied to the empty
		// state it would make a state no order of commands gives.
		queue = slices.DeleteFunc(queue, func(q queued) bool { return q.at.View != o.latest.ID })
	}
	o.replay = true
	o.becomeReady()
	for i := range queue {
		o.step(queue[i].at, &queue[i].ev)
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
	seeded := Event{Type: EventSeeded, Index: o.index}
	if !best.has {
		seeded.Err = ErrStartedOver
	}
	o.observe(seeded)
	o.observe(Event{Type: EventView, View: o.view})
	if len(serve) > 0 {
		o.donate(serve)
	}
}
