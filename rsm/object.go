package rsm

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// host is what a replica needs from its node. The runtime Node and the
// simulator each provide one. Methods are called from whichever goroutine
// processes the replica's turn (a worker, or the router for commands).
type host interface {
	// multicast sends an ordered message in o's group, in call order.
	multicast(o *Object, payload []byte)
	// send sends a transfer message (best effort).
	send(to hwg.Process, d direct)
	store() snapStore
	logger() hclog.Logger
	observe(e Event)
	// watch asks for ticks for o (on) or stops them (off).
	watch(o *Object, on bool)
	// applied counts one applied command.
	applied(o *Object)
	// ended reports that o's membership ended (Left or Excluded).
	ended(o *Object, t lwg.EventType)
}

// Object is one replicated object open on this node. Its methods are safe
// for concurrent use.
type Object struct {
	id     ObjectID
	lwg    lwg.ID
	self   hwg.Process
	spread uint32 // a hash of id, to spread per-object timers
	cfg    *Config
	host   host
	sub    submitter

	// Guarded by mu.
	mu        sync.Mutex
	mail      *mailbox
	scheduled bool
	waiters   waiterSet
	closed    bool
	// stopped: the host Node stopped (stopNode): no sender or router
	// is left, so a request queued now would never get its outcome.
	stopped bool
	// deferDone: outcomes for ProposeAsync found in a turn wait in doneq
	// until the turn released smMu (the Node's objects; the simulator
	// calls them at once). Set at creation.
	deferDone bool
	// doneq is owned by the turn in progress (scheduled): the runtime
	// runs it after the turn (runDone), so that a callback may use the
	// object (StaleRead takes smMu) without deadlocking the goroutine
	// that applied its command.
	doneq []doneCall
	// Proposals and reads not yet sent, in call order. While sending, the
	// object is on its host's send queue, or its sender is sending a
	// batch; what callers queue meanwhile goes in the next batch.
	outbox  []outgoing
	spare   []outgoing // the last batch's slice, for the next outbox
	sending bool
	// INVARIANT: waitBytes is the sum of the sizes of waiters (mu held).
	waitBytes int

	seq       atomic.Uint64
	readyCh   chan struct{}
	closedCh  chan struct{} // closed by Close: an Open waiting for the state gives up
	readyOnce sync.Once
	pubReady  atomic.Bool
	pubStale  atomic.Bool // a local snapshot was restored at open
	pubView   atomic.Pointer[lwg.View]
	serving   atomic.Bool // this replica is the donor of a joiner
	malformed atomic.Uint64
	received  atomic.Uint64

	// smMu serialises the state machine: the worker holds it while it
	// processes, StaleRead while it queries.
	smMu sync.RWMutex
	sm   StateMachine

	// Owned by routeEvents: this object's events in its current batch.
	routeN, routeOff int32
	// slow: a turn of plain commands took over inlineBudget, on the
	// router or a worker; the router leaves o to the workers until
	// slowPenalty worker turns in a row took under half the budget
	// (fastTurns counts them; runInline, Node.turn). The penalty
	// doubles at each marking, from slowFirstPenalty up to
	// slowMaxPenalty: one pause (the OS took the router's CPU, a
	// collection) does not leave o on the workers for good, and an Apply
	// that blocks now and then holds the router up less and less often.
	// fastTurns and slowPenalty are the turn holder's (scheduled).
	slow                   atomic.Bool
	fastTurns, slowPenalty uint32

	// recorded, if not nil, is closed once Open's record of the object
	// (snaps.register) is done, failed or not. Set before o is published.
	recorded chan struct{}

	// joinTurn (capacity 1) serialises the Joins of Opens of o; joinDone,
	// guarded by holding the turn, records that one succeeded.
	joinTurn chan struct{}
	joinDone bool

	// detached: Close took the object out of its node's objects (under
	// the node's mu); events tagged with it are looked up instead.
	detached bool

	// Owned by the worker processing the object (one at a time).
	ready bool
	index uint64
	// Written with index, so on its cache line; read by any goroutine.
	pubIndex atomic.Uint64
	// Commands applied here, for Stats: per object because a node-wide
	// counter, added to by every worker, cost 4% of the CPU at 10,000
	// objects (its cache line moving between cores).
	applies  atomic.Uint64
	applied  point // the state's point
	recv     point // the last stream entry received
	first    point // a joiner's first usable point (its join install)
	view     lwg.View
	latest   lwg.View // the last view received (ahead of view while queueing)
	table    table
	queue    []queued
	fetch    *fetch
	wantIdle int
	// refused: the donor whose snapshot was in a newer format, whose
	// offers are ignored until this replica asks again (wantAgain).
	refused hwg.Process

	snapIndex uint64 // index of the latest local snapshot
	snapAt    point
	snapGen   uint64
	snapSize  int64
	snapIdle  int // ticks since index passed snapIndex

	inline   []byte // the last small snapshot donated from memory, while a joiner may need it
	inlineAt point
	early    *earlyOffer

	lineage  uint64 // see header.Lineage
	hasState bool   // the state machine holds a state of this object (see claim)
	round    *claimRound
	holdSent uint64 // the view in which this holder answered a claim
	empty    uint64 // complete claim rounds seen in which nobody had a state
	waiting  int    // ticks without a state or a transfer under way
	replay   bool   // a seed replays its queue: no donations until done
	// The view in which this replica, without the state, took a
	// ForgetAbsent (0: none): its claims there do not wait.
	forgotView uint64
	once       map[string]onceRecord
}

// submitter sends ordered messages for callers (Propose, Read).
type submitter interface {
	// kick asks for o.flush to be called soon, not from the caller's
	// goroutine (the runtime's sender; the simulator flushes itself).
	kick(o *Object)
	// submit hands a message to the LWG service: it returns once the
	// message is queued there, or lwg.ErrNotMember when this node is out
	// of the group (nothing sent), or another error when it never will be.
	submit(o *Object, payload []byte, proposals, reads int) error
	// forget sends FORGET (ForgetAbsent) in o's group: it returns once
	// queued there, or ctx's error if it ends first.
	forget(ctx context.Context, o *Object) error
}

type waiter struct {
	// The result goes to ch, or to done if ch is nil (ProposeAsync, the
	// simulator); exactly once, from the worker or failAll.
	ch    chan result
	done  func(val []byte, err error)
	query []byte
	read  bool
	size  int // the bytes it counts against Config.MaxInFlightBytes
}

// doneCall is an outcome waiting in doneq.
type doneCall struct {
	done func(val []byte, err error)
	val  []byte
	err  error
}

// finishInTurn hands w its result from inside a turn (smMu held): a
// ProposeAsync callback of a Node's object waits for runDone.
func (o *Object) finishInTurn(w waiter, val []byte, err error) {
	if w.ch == nil && o.deferDone {
		o.doneq = append(o.doneq, doneCall{w.done, val, err})
		return
	}
	w.finish(val, err)
}

// runDone runs the callbacks a turn deferred; the runtime calls it after
// the turn released smMu, before the turn ends (o still scheduled).
func (o *Object) runDone() {
	for i, d := range o.doneq {
		o.doneq[i] = doneCall{}
		d.done(d.val, d.err)
	}
	o.doneq = o.doneq[:0]
}

// finish hands the waiter its result.
func (w waiter) finish(val []byte, err error) {
	if w.ch != nil {
		w.ch <- result{val: val, err: err}
		return
	}
	w.done(val, err)
}

// resultChans recycles the channels Propose and Read wait on: one a call
// otherwise. A channel goes back only once its one result was received.
// (A sync.Pool: a shared channel of channels serialised every call on its
// lock.)
var resultChans = sync.Pool{New: func() any { return make(chan result, 1) }}

func getResultChan() chan result { return resultChans.Get().(chan result) }

func putResultChan(ch chan result) { resultChans.Put(ch) }

type result struct {
	val []byte
	err error
}

func newObject(id ObjectID, self hwg.Process, cfg *Config, h host, sub submitter, sm StateMachine) *Object {
	f := fnv.New32a()
	f.Write([]byte(id))
	o := &Object{id: id, lwg: id.LWG(), self: self, cfg: cfg, host: h, sub: sub, sm: sm,
		readyCh: make(chan struct{}), closedCh: make(chan struct{}), joinTurn: make(chan struct{}, 1), spread: f.Sum32()}
	o.pubView.Store(&lwg.View{})
	return o
}

// ID returns the object's id.
func (o *Object) ID() ObjectID { return o.id }

// View returns the object's latest view known here.
func (o *Object) View() lwg.View { return o.pubView.Load().Clone() }

// Applied returns how many commands this replica has applied.
func (o *Object) Applied() uint64 { return o.pubIndex.Load() }

// Ready reports whether this replica holds the object's state.
func (o *Object) Ready() bool { return o.pubReady.Load() }

// Propose sends cmd in the object's total order and returns Apply's result
// on this replica once it is applied here. An error from Apply is returned
// as is. If ctx ends first, the error wraps ErrNotApplied when cmd was
// never sent and ErrUnknown when it was or was being sent (it may yet be
// applied); if this
// node leaves the group first, ErrUnknown (or ErrClosed after Close). With
// Config.MaxInFlight calls of the object (or MaxInFlightBytes of their
// commands and queries) already in flight here it returns ErrBusy (which
// wraps ErrNotApplied) at once, without queuing cmd.
// Proposals made during a flush wait for the next view, and those made
// while this node is out of the group (excluded, joining again) wait for
// its new membership.
func (o *Object) Propose(ctx context.Context, cmd []byte) ([]byte, error) {
	if len(cmd) > o.cfg.MaxCommandBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(cmd), o.cfg.MaxCommandBytes)
	}
	return o.call(ctx, waiter{}, outgoing{kind: kindPropose, cmd: cmd})
}

// ProposeAsync is Propose without the wait: it queues cmd and returns, and
// done receives what Propose would have returned (never a context error:
// there is no deadline, the outcome always comes). done is called exactly
// once, on one of the node's goroutines (the one that applied cmd, or the
// one that found it will never be applied), after the turn that applied
// it let go of the object's state: it may call the object's StaleRead and
// ProposeAsync. It must not block, since other objects' commands may wait
// behind it: not Propose, Read or Close, which wait for that goroutine to
// apply something. A nil done discards the outcome. ProposeAsync itself
// returns ErrTooLarge, ErrClosed (the object or its Node closed) or
// ErrBusy (Config.MaxInFlight or MaxInFlightBytes reached) without
// calling done. It never blocks. It lets a client keep many proposals in
// flight without a goroutine parked on each (as hashicorp/raft's
// ApplyFuture and Dragonboat's RequestState do).
func (o *Object) ProposeAsync(cmd []byte, done func(result []byte, err error)) error {
	if len(cmd) > o.cfg.MaxCommandBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(cmd), o.cfg.MaxCommandBytes)
	}
	if done == nil {
		done = func([]byte, error) {}
	}
	_, _, send, err := o.enqueueCall(waiter{done: done}, outgoing{kind: kindPropose, cmd: cmd})
	if err != nil {
		return err
	}
	if send {
		o.sub.kick(o)
	}
	return nil
}

// ProposeFrom is Propose for a command named by id: every replica applies
// it at most once, however often and from whichever nodes it is proposed.
// A source's ids may be applied out of order within a window of 64 Seqs
// below the highest applied from it: an id applied before returns the
// result it had (not applied again), one in the window not applied yet is
// applied, and one below the window returns ErrDuplicate: it may or may
// not have been applied, so the caller cannot tell. ErrDuplicate also
// answers an applied id whose result was dropped: results of ids below
// the highest are kept up to 64 KiB per source, newest first. Its other
// errors are Propose's (ErrBusy included).
func (o *Object) ProposeFrom(ctx context.Context, id OriginID, cmd []byte) ([]byte, error) {
	if len(cmd)+len(id.Source) > o.cfg.MaxCommandBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(cmd)+len(id.Source), o.cfg.MaxCommandBytes)
	}
	return o.call(ctx, waiter{}, outgoing{kind: kindOnce, once: id, cmd: cmd})
}

// Read answers q with Querier.Query at a point of the object's total order
// after every command applied anywhere before Read was called:
// linearizable. It costs one ordered message and no state change. Its
// errors are Propose's (ErrBusy included), except that a read never ends
// with ErrUnknown: it changes nothing, so a read without an answer (its
// context ended after it was sent, or this node was excluded) wraps
// ErrNotApplied, and retrying it is always safe.
func (o *Object) Read(ctx context.Context, q []byte) ([]byte, error) {
	if _, ok := o.sm.(Querier); !ok {
		return nil, ErrNoQuery
	}
	if len(q) > o.cfg.MaxCommandBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(q), o.cfg.MaxCommandBytes)
	}
	res, err := o.call(ctx, waiter{query: q, read: true}, outgoing{kind: kindRead})
	if errors.Is(err, ErrUnknown) {
		// %v: the cause stays readable, ErrUnknown's identity goes.
		return nil, fmt.Errorf("%w: read without an answer: %v", ErrNotApplied, err)
	}
	return res, err
}

// ForgetAbsent tells the object's group to stop waiting for the members
// that may hold its state and are absent from its current view: they are
// gone for good (their nodes were lost, or will never reach the group
// again). Without the state and without a member that holds it, the group
// waits for such a member forever rather than drop the commands only it
// applied (see EventSeeded). After ForgetAbsent the members present pick
// the best state among themselves (a node's local snapshot, say) or, if
// none has any, start the object over from nothing (EventSeeded with
// ErrStartedOver): the commands only the absent members applied are
// lost. It holds for the view in which it is delivered: if the view
// changes first (an absent member comes back, say), it has no effect, and
// the operator may call it again. It has no effect on a group that holds
// the state.
//
// It returns once the request is queued in the group's order; the choice
// follows within one or two claim rounds (a round starts after 150 ticks
// without a transfer: 15 s at the default TickInterval). Call it on any
// member; it is an operator's decision, never the library's.
func (o *Object) ForgetAbsent(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o.mu.Lock()
	closed := o.closed
	o.mu.Unlock()
	if closed {
		return fmt.Errorf("%w: %s", ErrClosed, o.id)
	}
	return o.sub.forget(ctx, o)
}

// StaleRead answers q from this replica's state as it is: it may lag the
// group. Before the state has arrived it returns ErrNotReady, unless the
// object was reopened from a local snapshot (then it reads that).
func (o *Object) StaleRead(q []byte) ([]byte, error) {
	qr, ok := o.sm.(Querier)
	if !ok {
		return nil, ErrNoQuery
	}
	if !o.pubReady.Load() && !o.pubStale.Load() {
		return nil, fmt.Errorf("%w: %s", ErrNotReady, o.id)
	}
	o.smMu.RLock()
	defer o.smMu.RUnlock()
	return qr.Query(q)
}

// call queues out in the object's outbox, which its host's sender
// sends, and waits for its result.
func (o *Object) call(ctx context.Context, w waiter, out outgoing) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotApplied, o.id, err)
	}
	seq, ch, send, err := o.enqueueCall(w, out)
	if err != nil {
		return nil, err
	}
	if send {
		o.sub.kick(o)
	}
	if ctx.Done() == nil {
		r := <-ch
		stageReturned(o, seq)
		putResultChan(ch)
		return r.val, r.err
	}
	select {
	case r := <-ch:
		stageReturned(o, seq)
		putResultChan(ch)
		return r.val, r.err
	case <-ctx.Done():
		switch o.withdraw(seq) {
		case fateUnsent:
			return nil, fmt.Errorf("%w: %s: %w", ErrNotApplied, o.id, ctx.Err())
		case fatePending:
			return nil, fmt.Errorf("%w: %s: %w", ErrUnknown, o.id, ctx.Err())
		}
		r := <-ch
		putResultChan(ch)
		return r.val, r.err
	}
}

// register records a waiter for a request the caller sends itself (the
// simulator).
func (o *Object) register(w waiter) (uint64, chan result, error) {
	if w.done == nil {
		w.ch = getResultChan()
	}
	seq := o.seq.Add(1)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.stopped {
		return 0, nil, fmt.Errorf("%w: %s", ErrClosed, o.id)
	}
	o.addWaiter(seq, w)
	return seq, w.ch, nil
}

// enqueueCall registers w and puts out in the outbox. send: the object
// was not sending, and the caller must kick its sender.
func (o *Object) enqueueCall(w waiter, out outgoing) (seq uint64, ch chan result, send bool, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.stopped {
		return 0, nil, false, fmt.Errorf("%w: %s", ErrClosed, o.id)
	}
	w.size = len(out.cmd) + len(w.query) + len(out.once.Source)
	if err := o.admit(w.size); err != nil {
		return 0, nil, false, err
	}
	if w.done == nil {
		w.ch = getResultChan()
	}
	// Numbered under mu, so the outbox is in seq order.
	out.seq = o.seq.Add(1)
	o.addWaiter(out.seq, w)
	o.outbox = append(o.outbox, out)
	stageQueued(o, out.seq)
	send = !o.sending
	o.sending = true
	return out.seq, w.ch, send, nil
}

// admit refuses a call of size bytes if the object's calls in flight are
// at Config.MaxInFlight or would pass MaxInFlightBytes (mu held). A call
// is always admitted when none is in flight.
func (o *Object) admit(size int) error {
	n := o.waiters.len()
	if n == 0 {
		return nil
	}
	if max := o.cfg.MaxInFlight; max >= 0 && n >= max {
		return fmt.Errorf("%w: %w: %s: %d calls in flight, limit %d", ErrBusy, ErrNotApplied, o.id, n, max)
	}
	if max := o.cfg.MaxInFlightBytes; max >= 0 && o.waitBytes+size > max {
		return fmt.Errorf("%w: %w: %s: %d bytes in flight and %d more, limit %d", ErrBusy, ErrNotApplied, o.id, o.waitBytes, size, max)
	}
	return nil
}

// addWaiter records w for request seq (mu held).
func (o *Object) addWaiter(seq uint64, w waiter) {
	o.waiters.add(seq, w)
	o.waitBytes += w.size
}

// takeWaiter removes and returns the waiter of request seq (mu held).
func (o *Object) takeWaiter(seq uint64) (waiter, bool) {
	w, ok := o.waiters.take(seq)
	if ok {
		o.waitBytes -= w.size
	}
	return w, ok
}

// maxBatchBytes bounds a batch's commands (one entry always goes,
// however large).
const maxBatchBytes = 64 << 10

// flush sends a batch from the outbox and reports whether more waits (the
// caller calls it again, after other objects' turns). Only the sender
// calls it, and one at a time per object.
func (o *Object) flush() (more bool) {
	b, ok := o.takeBatch()
	if !ok {
		return false
	}
	return o.sent(b, o.sub.submit(o, b.payload, b.proposals, b.reads))
}

// outBatch is a batch taken from the outbox, encoded, on its way to the
// LWG service.
type outBatch struct {
	outs             []outgoing
	payload          []byte
	proposals, reads int
}

// takeBatch takes the next batch from the outbox (false: nothing to send,
// and the object stops sending). The caller hands its payload to the LWG
// service and then calls sent; only the sender does, one batch at a time
// per object.
func (o *Object) takeBatch() (outBatch, bool) {
	o.mu.Lock()
	if len(o.outbox) == 0 || o.closed {
		o.sending = false
		o.mu.Unlock()
		return outBatch{}, false
	}
	batch, size := o.outbox, 0
	for i, out := range o.outbox {
		if size += out.size(); i > 0 && size > maxBatchBytes {
			batch = o.outbox[:i]
			break
		}
	}
	rest := o.outbox[len(batch):]
	o.outbox = append(o.spare[:0], rest...)
	o.spare = nil
	clear(rest)
	o.mu.Unlock()

	stageBatch(o, batch, false)
	reads := 0
	for _, out := range batch {
		if out.kind == kindRead {
			reads++
		}
	}
	return outBatch{outs: batch, payload: encodeOutgoing(o.self, batch), proposals: len(batch) - reads, reads: reads}, true
}

// sent finishes b after the LWG service took it (err nil) or refused it,
// and reports whether more waits in the outbox.
func (o *Object) sent(b outBatch, err error) (more bool) {
	batch := b.outs
	stageBatch(o, batch, true)
	o.mu.Lock()
	var failed []waiter
	switch {
	case errors.Is(err, lwg.ErrNotMember):
		// This node is out of the object's group (excluded; it joins
		// again by itself): nothing was sent. Try again in a tick,
		// still sending, so the order stays; but not the requests whose
		// callers are gone (their context ended while this was sent, or
		// failAll ended them): nobody waits for them, and a caller told
		// ErrUnknown may have retried already.
		live := batch[:0]
		for _, out := range batch {
			if o.waiters.has(out.seq) {
				live = append(live, out)
			}
		}
		clear(batch[len(live):])
		o.outbox = append(live, o.outbox...)
		if len(o.outbox) == 0 {
			o.sending = false
			o.mu.Unlock()
			return false
		}
		o.mu.Unlock()
		time.AfterFunc(o.cfg.TickInterval, func() { o.sub.kick(o) })
		return false
	case err != nil:
		for _, out := range batch {
			if w, ok := o.takeWaiter(out.seq); ok {
				failed = append(failed, w)
			}
		}
	}
	clear(batch)
	o.spare = batch[:0]
	more = len(o.outbox) > 0
	o.sending = more
	o.mu.Unlock()
	for _, w := range failed {
		w.finish(nil, fmt.Errorf("%w: %s: %w", ErrNotApplied, o.id, err))
	}
	return more
}

// What became of a request whose caller's context ended.
type fate uint8

const (
	fateUnsent   fate = iota // withdrawn from the outbox: it will never be sent
	fatePending              // sent, no result yet: forgotten here
	fateAnswered             // its result is on its way to the caller's channel
)

// withdraw ends the wait for request seq of a caller whose context ended.
// A request being sent is pending: the send may block (a full LWG queue)
// long after the caller's deadline, which must not wait for it; if the
// send is refused, the request is dropped then (see flush).
func (o *Object) withdraw(seq uint64) fate {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.takeWaiter(seq); !ok {
		return fateAnswered
	}
	if i := slices.IndexFunc(o.outbox, func(out outgoing) bool { return out.seq == seq }); i >= 0 {
		o.outbox = slices.Delete(o.outbox, i, i+1)
		return fateUnsent
	}
	return fatePending
}

// resolve hands a local proposal its result.
func (o *Object) resolve(seq uint64, val []byte, err error) {
	o.mu.Lock()
	w, ok := o.takeWaiter(seq)
	o.mu.Unlock()
	if ok {
		o.finishInTurn(w, val, err)
	}
}

// answer runs a local Read's query at this point of the stream.
func (o *Object) answer(seq uint64) {
	o.mu.Lock()
	w, ok := o.takeWaiter(seq)
	o.mu.Unlock()
	if !ok {
		return
	}
	val, err := o.sm.(Querier).Query(w.query)
	o.finishInTurn(w, val, err)
}

// failAll ends every waiting Propose and Read with err. Not in a turn;
// failInTurn is for one.
func (o *Object) failAll(err error) { o.endAll(err, false, false) }

// failInTurn is failAll inside a turn (smMu held).
func (o *Object) failInTurn(err error) { o.endAll(err, false, true) }

// endAll is failAll; stop: the host Node stopped, and later requests are
// refused (ErrClosed) rather than queued for a sender that is gone (a
// ProposeAsync would never get its outcome, nor a Propose without a
// deadline).
func (o *Object) endAll(err error, stop, inTurn bool) {
	o.mu.Lock()
	o.stopped = o.stopped || stop
	ws := o.waiters
	o.waiters, o.waitBytes = waiterSet{}, 0
	clear(o.outbox)
	o.outbox = o.outbox[:0]
	o.mu.Unlock()
	ws.each(func(w waiter) {
		if inTurn {
			o.finishInTurn(w, nil, err)
		} else {
			w.finish(nil, err)
		}
	})
}
