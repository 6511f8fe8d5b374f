package rsm

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// host is what a replica needs from its node. The runtime Node and the
// simulator each provide one. Methods are called from the replica's worker.
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
	mail      []item
	scheduled bool
	waiters   map[uint64]waiter
	closed    bool

	seq       atomic.Uint64
	readyCh   chan struct{}
	readyOnce sync.Once
	pubReady  atomic.Bool
	pubStale  atomic.Bool // a local snapshot was restored at open
	pubIndex  atomic.Uint64
	pubView   atomic.Pointer[lwg.View]
	serving   atomic.Bool // this replica is the donor of a joiner
	malformed atomic.Uint64
	received  atomic.Uint64

	// smMu serialises the state machine: the worker holds it while it
	// processes, StaleRead while it queries.
	smMu sync.RWMutex
	sm   StateMachine

	// Owned by the worker processing the object (one at a time).
	ready    bool
	index    uint64
	applied  point // the state's point
	recv     point // the last stream entry received
	first    point // a joiner's first usable point (its join install)
	view     lwg.View
	latest   lwg.View // the last view received (ahead of view while queueing)
	table    table
	queue    []queued
	fetch    *fetch
	wantIdle int

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
	once     map[string]onceRecord
}

// submitter sends an ordered message for a caller (Propose, Read): the
// runtime hands it to the LWG service.
type submitter interface {
	submit(ctx context.Context, o *Object, payload []byte) error
}

type waiter struct {
	// The result goes to ch, or to done if ch is nil (the simulator);
	// exactly once, from the worker or failAll.
	ch    chan result
	done  func(val []byte, err error)
	query []byte
	read  bool
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
var resultChans = make(chan chan result, 1024)

func getResultChan() chan result {
	select {
	case ch := <-resultChans:
		return ch
	default:
		return make(chan result, 1)
	}
}

func putResultChan(ch chan result) {
	select {
	case resultChans <- ch:
	default:
	}
}

type result struct {
	val []byte
	err error
}

func newObject(id ObjectID, self hwg.Process, cfg *Config, h host, sub submitter, sm StateMachine) *Object {
	f := fnv.New32a()
	f.Write([]byte(id))
	o := &Object{id: id, lwg: id.LWG(), self: self, cfg: cfg, host: h, sub: sub, sm: sm,
		waiters: map[uint64]waiter{}, readyCh: make(chan struct{}), spread: f.Sum32()}
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
// never sent and ErrUnknown when it was (it may yet be applied); if this
// node leaves the group first, ErrUnknown (or ErrClosed after Close).
// Proposals made during a flush wait for the next view, and those made
// while this node is out of the group (excluded, joining again) wait for
// its new membership.
func (o *Object) Propose(ctx context.Context, cmd []byte) ([]byte, error) {
	if len(cmd) > o.cfg.MaxCommandBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(cmd), o.cfg.MaxCommandBytes)
	}
	seq, ch, err := o.register(waiter{})
	if err != nil {
		return nil, err
	}
	return o.await(ctx, seq, ch, encodePropose(o.self, seq, cmd))
}

// ProposeFrom is Propose for a command named by id: every replica applies
// it at most once, however often and from whichever nodes it is proposed.
// Proposing the last id of a source again returns the result it had;
// an older one returns ErrDuplicate.
func (o *Object) ProposeFrom(ctx context.Context, id OriginID, cmd []byte) ([]byte, error) {
	if len(cmd)+len(id.Source) > o.cfg.MaxCommandBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(cmd)+len(id.Source), o.cfg.MaxCommandBytes)
	}
	seq, ch, err := o.register(waiter{})
	if err != nil {
		return nil, err
	}
	return o.await(ctx, seq, ch, encodeOnce(o.self, seq, id, cmd))
}

// Read answers q with Querier.Query at a point of the object's total order
// after every command applied anywhere before Read was called:
// linearizable. It costs one ordered message and no state change.
func (o *Object) Read(ctx context.Context, q []byte) ([]byte, error) {
	if _, ok := o.sm.(Querier); !ok {
		return nil, ErrNoQuery
	}
	if len(q) > o.cfg.MaxCommandBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(q), o.cfg.MaxCommandBytes)
	}
	seq, ch, err := o.register(waiter{query: q, read: true})
	if err != nil {
		return nil, err
	}
	return o.await(ctx, seq, ch, encodeRead(o.self, seq))
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

func (o *Object) register(w waiter) (uint64, chan result, error) {
	if w.done == nil {
		w.ch = getResultChan()
	}
	ch := w.ch
	seq := o.seq.Add(1)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, nil, fmt.Errorf("%w: %s", ErrClosed, o.id)
	}
	o.waiters[seq] = w
	return seq, ch, nil
}

func (o *Object) forget(seq uint64) {
	o.mu.Lock()
	delete(o.waiters, seq)
	o.mu.Unlock()
}

func (o *Object) await(ctx context.Context, seq uint64, ch chan result, payload []byte) ([]byte, error) {
	err := ctx.Err()
	for err == nil {
		err = o.sub.submit(ctx, o, payload)
		if !errors.Is(err, lwg.ErrNotMember) {
			break
		}
		// This node is not in the object's group right now: it was
		// excluded and joins again by itself. Nothing was sent, so wait
		// for the new membership, until ctx ends or the object closes.
		o.mu.Lock()
		closed := o.closed
		o.mu.Unlock()
		if closed {
			err = ErrClosed
			break
		}
		t := time.NewTimer(o.cfg.TickInterval)
		select {
		case <-ctx.Done():
			err = errors.Join(err, ctx.Err())
		case <-t.C:
			err = nil
		}
		t.Stop()
	}
	if err != nil {
		o.forget(seq)
		return nil, fmt.Errorf("%w: %s: %w", ErrNotApplied, o.id, err)
	}
	select {
	case r := <-ch:
		putResultChan(ch)
		return r.val, r.err
	case <-ctx.Done():
		o.forget(seq)
		return nil, fmt.Errorf("%w: %s: %w", ErrUnknown, o.id, ctx.Err())
	}
}

// resolve hands a local proposal its result.
func (o *Object) resolve(seq uint64, val []byte, err error) {
	o.mu.Lock()
	w, ok := o.waiters[seq]
	delete(o.waiters, seq)
	o.mu.Unlock()
	if ok {
		w.finish(val, err)
	}
}

// answer runs a local Read's query at this point of the stream.
func (o *Object) answer(seq uint64) {
	o.mu.Lock()
	w, ok := o.waiters[seq]
	delete(o.waiters, seq)
	o.mu.Unlock()
	if !ok {
		return
	}
	val, err := o.sm.(Querier).Query(w.query)
	w.finish(val, err)
}

// failAll ends every waiting Propose and Read with err.
func (o *Object) failAll(err error) {
	o.mu.Lock()
	ws := o.waiters
	o.waiters = map[uint64]waiter{}
	o.mu.Unlock()
	for _, w := range ws {
		w.finish(nil, err)
	}
}
