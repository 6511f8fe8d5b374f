package lwg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lwgkit/lwgkit/hwg"
)

// ServiceConfig configures a Service.
type ServiceConfig struct {
	// Node runs this node's HWGs. Its groups must use
	// hwg.Config.ManualBlockOK: the Service answers a carrier's Block once
	// every LWG on it has answered Hold.up. (NewService turns it off for
	// the directory, whose Block the node answers itself.) The Service
	// reads Node.Events; nothing else may.
	Node *hwg.Node
	// Core configures the protocol core; Self is taken from Node.
	Core Config
	// DirectoryMembers, on the cluster's first start, are the initial
	// members of the directory HWG (every one of them passes the same
	// list). Otherwise Contacts are nodes to join the directory through.
	DirectoryMembers []hwg.Process
	Contacts         []hwg.NodeID
	// TickInterval is the length of a Core tick. Default 50ms.
	TickInterval time.Duration
	// Logger receives the Service's logs. Default: silent.
	Logger hclog.Logger
	// NoSendEvents drops EventSend (sent for tracing) instead of handing
	// it to the reader: set it unless the reader wants sends. The HWG
	// layer's own EventSend is not needed by the Service either; see
	// hwg.NodeConfig.NoSendEvents.
	NoSendEvents bool
	// MulticastQueue is how many multicasts may wait for the Service's
	// loop; Multicast blocks while it is full. MulticastBatch counts its
	// messages apart: it waits while the batches queued before it hold
	// MulticastQueue messages or more (a batch goes in whole, so they may
	// hold up to one batch more). Default 8192.
	MulticastQueue int
	// EventBatches hands the events to the reader on Batches, in the
	// batches the loop produced them in, instead of one at a time on
	// Events (which then stays silent until Close closes it). A reader
	// that takes thousands of deliveries a second saves a channel
	// operation and an Event copy per event, and the loop's event slices
	// come back through Release instead of being garbage.
	EventBatches bool
}

// ErrClosed is returned by calls on a closed Service.
var ErrClosed = errors.New("lwg: service closed")

// Service runs the LWG layer of one node: one goroutine feeds a Core with
// the node's HWG events, ticks and the application's requests, and carries
// out what it asks through the hwg.Node.
//
// All methods are safe for concurrent use. Blocking methods take a context;
// if it ends first they return its error and the request stays in effect
// (a Join goes on; call Leave to undo it).
//
// Events (views, deliveries, Block upcalls) of every local LWG arrive in
// order on Events. The Service never blocks on a slow reader: events wait
// in an unbounded queue.
type Service struct {
	cfg    ServiceConfig
	log    hclog.Logger
	node   *hwg.Node
	reqs   chan func()
	mcast  chan svcMulticast // bounded: backpressure for senders
	events chan Event
	// With EventBatches: batches carries the events instead, and
	// released brings their slices back (Release).
	batches  chan []Event
	released chan []Event
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	bg       context.Context
	cancel   context.CancelFunc

	// members holds the LWGs this node has an endpoint in, as of the
	// loop's last step: Multicast checks it without a trip to the loop.
	membersMu sync.RWMutex
	members   map[ID]*endpoint // read only by the loop: a hint for Core.multicastTo
	// batchQueued counts the messages of the batches in mcast;
	// MulticastBatch waits for room while it is at MulticastQueue. A
	// waiter registers room (roomWaiting set) and checks again; the loop
	// closes room once the count falls under the limit.
	batchQueued atomic.Int64
	roomWaiting atomic.Bool
	roomMu      sync.Mutex
	room        chan struct{}
	// dropped counts multicasts that passed that check but found no
	// endpoint when the loop took them (this node left or was excluded
	// in between).
	dropped atomic.Uint64

	// Owned by the loop goroutine.
	core    *Core
	queue   eventBatches
	waiters map[ID][]svcWaiter
	hwgm    *hwgMembership

	// waitingOn is the LWG each waiter in waiters waits on, by its
	// channel: a call whose context ended removes its waiter (unwait).
	// Owned by the loop goroutine.
	waitingOn map[chan error]ID
}

type svcMulticast struct {
	l       ID
	payload []byte
	ep      *endpoint // l's endpoint when Multicast was called
	// batch, if not nil, holds a MulticastBatch's multicasts instead (it
	// takes one place in the queue).
	batch *[]svcMulticast
}

// size is how many multicasts m carries.
func (m svcMulticast) size() int {
	if m.batch != nil {
		return len(*m.batch)
	}
	return 1
}

// mcastBatches recycles MulticastBatch's slices: the loop puts each back
// once it handed its multicasts to the Core.
var mcastBatches = sync.Pool{New: func() any { return new([]svcMulticast) }}

// svcWaiter is a blocking call (Join, Leave, Switch) waiting for its LWG's
// events. It is answered once, on ch (buffered: the loop never blocks), and
// then leaves waiters; so does one whose caller gave up (unwait).
type svcWaiter struct {
	until func(Event) (bool, error)
	ch    chan error
	// switching: a Switch, answered also when the Core ends the switch
	// without an event (Ready.switchEnds).
	switching bool
}

// NewService starts the Service's loop and its part in the directory.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Node == nil {
		return nil, fmt.Errorf("%w: no Node", ErrInvalidConfig)
	}
	cfg.Core.Self = cfg.Node.Self()
	cfg.Core.noSendEvents = cfg.NoSendEvents
	switch most := cfg.Node.MaxPayload(); {
	case cfg.Core.MaxMessageBytes == 0:
		cfg.Core.MaxMessageBytes = min(defaultMaxMessageBytes, most)
	case cfg.Core.MaxMessageBytes > most:
		return nil, fmt.Errorf("%w: Core.MaxMessageBytes %d is over the %d bytes the HWG takes in a message (hwg.Config.MaxPendingBytes)",
			ErrInvalidConfig, cfg.Core.MaxMessageBytes, most)
	}
	core, err := NewCore(cfg.Core)
	if err != nil {
		return nil, err
	}
	// The Core holds nothing at a Block of the directory: the node answers
	// it itself. Answered by the Core, a loop behind on events by
	// FlushWaitTicks got this node excluded from the directory's view
	// change; were every node's loop that far behind at once, each
	// directory member that held the directory's state was replaced by
	// one that did not, and every LWG stalled for good (found by the LWG
	// simulator with its layers wired as here and the Core slowed).
	if err := cfg.Node.SetManualBlockOK(context.Background(), core.cfg.Directory, false); err != nil {
		return nil, fmt.Errorf("lwg: directory %q: %w", core.cfg.Directory, err)
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 50 * time.Millisecond
	}
	if cfg.MulticastQueue <= 0 {
		cfg.MulticastQueue = 8192
	}
	if len(cfg.DirectoryMembers) > 0 {
		err = core.BootstrapDirectory(cfg.DirectoryMembers)
	} else {
		err = core.JoinDirectory(cfg.Contacts)
	}
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:     cfg,
		log:     cfg.Logger,
		node:    cfg.Node,
		reqs:    make(chan func()),
		mcast:   make(chan svcMulticast, cfg.MulticastQueue),
		members: map[ID]*endpoint{},
		events:  make(chan Event, 256),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		core:    core,
		waiters: map[ID][]svcWaiter{},
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	s.waitingOn = map[chan error]ID{}
	if cfg.EventBatches {
		s.batches = make(chan []Event, 64)
		s.released = make(chan []Event, 64)
	}
	s.hwgm = newHWGMembership(s.node, s.log, s.stop)
	s.bg, s.cancel = context.WithCancel(context.Background())
	go s.loop()
	return s, nil
}

func (s *Service) loop() {
	defer close(s.done)
	ticker := time.NewTicker(s.cfg.TickInterval)
	defer ticker.Stop()
	hwgEvents := s.node.Events()
	s.ready()
	for {
		// Hand queued events to the reader with plain sends while the
		// channel has room; wait for room in the select below with the
		// rest. A pass through the select per event cost more than the
		// event.
		s.pump()
		var (
			out   chan Event
			next  Event
			bout  chan []Event
			bnext []Event
		)
		if s.queue.len() > 0 {
			if s.cfg.EventBatches {
				bout, bnext = s.batches, s.queue.batches[0]
			} else {
				out, next = s.events, s.queue.peek()
			}
		}
		select {
		case <-s.stop:
			s.shutdown()
			return
		case out <- next:
			if done := s.queue.pop(); done != nil {
				s.core.Recycle(Ready{Events: done})
			}
			continue
		case bout <- bnext:
			s.queue.popBatch()
			continue
		case e, ok := <-hwgEvents:
			if !ok {
				hwgEvents = nil // the node closed: serve requests until Close
				continue
			}
			s.core.HWGEvent(e)
		case <-ticker.C:
			s.core.Tick()
		case f := <-s.reqs:
			s.request(f)
		case m := <-s.mcast:
			s.multicast(m)
		case g := <-s.hwgm.done:
			s.hwgm.resume(s.bg, g)
		}
		// Take whatever else is waiting before carrying out what the Core
		// asks: HWG events and multicasts in drained batches, each with a
		// plain receive, and requests, so the control messages of many
		// Joins ride in one message.
		hwgEvents = s.drain(hwgEvents)
		s.ready()
	}
}

// maxDrain bounds the requests the loop takes in one go: the control
// messages of many Joins then ride in one message.
const maxDrain = 4096

// maxDrainData bounds the HWG events and multicasts the loop takes before
// it carries out what they asked: everything waits for the end of the
// batch, so a large one is latency under load.
const maxDrainData = 128

// maxDrainEvents: the loop also stops taking HWG events once the Core
// holds this many events for the reader. One HWG event can bring
// thousands (a message of many LWGs' data), and 128 of them made batches
// of up to 10^5 events whose arrays grew by copying, and were then too
// large for the Core to keep (keepEventsCap).
const maxDrainEvents = keepEventsCap

// drain takes the inputs already waiting, up to those bounds, and returns
// the HWG event channel (nil once the node closed it).
func (s *Service) drain(hwgEvents <-chan hwg.Event) <-chan hwg.Event {
	s.takeReleased()
	data, reqs := 0, 0
	for data < maxDrainData || reqs < maxDrain {
		k := 0
		for data < maxDrainData {
			select {
			case m := <-s.mcast:
				// Counted before multicast, which gives a batch's
				// slice back to the pool: a MulticastBatch may be
				// filling it again by then.
				data += m.size()
				s.multicast(m)
				k++
				continue
			default:
			}
			if hwgEvents == nil || s.core.PendingEvents() >= maxDrainEvents {
				break
			}
			select {
			case e, ok := <-hwgEvents:
				if !ok {
					hwgEvents = nil
					break
				}
				s.core.HWGEvent(e)
				data++
				k++
				continue
			default:
			}
			break
		}
		if reqs < maxDrain {
			select {
			case f := <-s.reqs:
				s.request(f)
				reqs++
				k++
			default:
			}
		}
		if k == 0 {
			break
		}
	}
	return hwgEvents
}

// request runs f, a request from the application, on the loop. The
// multicasts queued before f was handed over are taken first, so that a
// goroutine's requests keep their order with its Multicasts (a HoldOK
// must not overtake the multicasts made before it).
func (s *Service) request(f func()) {
	for range len(s.mcast) {
		s.multicast(<-s.mcast)
	}
	f()
}

// multicast hands the Core one queued multicast, or a batch of them.
func (s *Service) multicast(m svcMulticast) {
	if m.batch != nil {
		b := *m.batch
		for i := range b {
			s.multicast(b[i])
		}
		s.batchTaken(len(b))
		clear(b) // pin no payload
		*m.batch = b[:0]
		mcastBatches.Put(m.batch)
		return
	}
	var err error
	if m.ep != nil && !m.ep.ended {
		err = s.core.multicastTo(m.ep, m.payload)
	} else {
		// It ended since (the node may have joined l again).
		err = s.core.Multicast(m.l, m.payload)
	}
	if err != nil {
		s.dropped.Add(1)
		s.log.Debug("dropping a multicast queued for an LWG this node is no longer in", "lwg", m.l, "error", err)
	}
}

// ready carries out what the Core asks, in order.
func (s *Service) ready() {
	rd := s.core.Ready()
	for _, a := range rd.Actions {
		s.act(a)
	}
	s.core.Recycle(Ready{Actions: rd.Actions})
	evs := rd.Events
	if len(evs) == 0 {
		s.switchesEnded(rd.switchEnds)
		return
	}
	s.track(evs)
	for i := range evs {
		if t := evs[i].Type; t != EventDeliver && t != EventSend && len(s.waiters) > 0 {
			s.wake(evs[i])
		}
	}
	s.switchesEnded(rd.switchEnds)
	s.push(evs)
}

// switchesEnded answers the Switch calls waiting on switches that the Core
// ended without moving their LWG (there already, or abandoned): no install
// on the new carrier will wake them.
func (s *Service) switchesEnded(ended []switchEnd) {
	for _, se := range ended {
		s.answerWhere(se.l, func(w svcWaiter) (bool, error) { return w.switching, se.err })
	}
}

// track updates the members Multicast checks from the endpoints that
// began or ended in evs, before anyone is woken or told of them.
func (s *Service) track(evs []Event) {
	locked := false
	for i := range evs {
		switch evs[i].Type {
		case EventInstall, EventLeft, EventExcluded:
		default:
			continue
		}
		if !locked {
			s.membersMu.Lock()
			locked = true
		}
		l := evs[i].LWG
		if ep := s.core.eps[l]; ep != nil {
			s.members[l] = ep
		} else {
			delete(s.members, l)
		}
	}
	if locked {
		s.membersMu.Unlock()
	}
}

// member returns this node's endpoint in l, nil if none. The caller
// only hands it to the loop (svcMulticast): only the loop reads it.
func (s *Service) member(l ID) *endpoint {
	s.membersMu.RLock()
	ep := s.members[l]
	s.membersMu.RUnlock()
	return ep
}

// push hands evs to the reader, or queues them behind those it has not
// taken yet; the loop never blocks on the reader.
func (s *Service) push(evs []Event) {
	if s.cfg.EventBatches {
		if s.queue.len() == 0 {
			select {
			case s.batches <- evs:
				return
			default:
			}
		}
		s.queue.push(evs)
		return
	}
	i := 0
	if s.queue.len() == 0 {
	send:
		for ; i < len(evs); i++ {
			select {
			case s.events <- evs[i]:
			default:
				break send
			}
		}
	}
	if i < len(evs) {
		// Queued whole, from the first event not taken: the batch goes
		// back to the Core with its full capacity once the reader has
		// the rest, so the next burst of Hold.ups or installs reuses it.
		s.queue.pushFrom(evs, i)
	} else {
		s.core.Recycle(Ready{Events: evs}) // the reader has copies of them all
	}
}

// pump hands the reader queued events while the channel has room.
func (s *Service) pump() {
	if s.cfg.EventBatches {
		for s.queue.len() > 0 {
			select {
			case s.batches <- s.queue.batches[0]:
				s.queue.popBatch()
			default:
				return
			}
		}
		return
	}
	for s.queue.len() > 0 {
		select {
		case s.events <- s.queue.peek():
			if done := s.queue.pop(); done != nil {
				// Taken whole: the Core reuses its array, as it does
				// for a batch the reader took at once (at 10,000
				// objects the channel is often full, and every batch
				// that went through the queue was garbage).
				s.core.Recycle(Ready{Events: done})
			}
		default:
			return
		}
	}
}

// eventBatches is a FIFO of events kept in the batches the Core returned
// them in: nothing is copied until the reader takes it.
type eventBatches struct {
	batches [][]Event
	head    int // next event in batches[0]
	n       int
}

func (q *eventBatches) len() int { return q.n }

func (q *eventBatches) push(evs []Event) {
	q.batches = append(q.batches, evs)
	q.n += len(evs)
}

// pushFrom queues evs from evs[i]; pop hands back the whole of evs. Only
// an empty queue takes a batch from i > 0 (its head is the queue's).
func (q *eventBatches) pushFrom(evs []Event, i int) {
	if i > 0 && q.n != 0 {
		panic("lwg: a part of a batch queued behind others")
	}
	q.push(evs)
	if i > 0 {
		clear(evs[:i]) // the reader has copies: let their payloads go
		q.head, q.n = i, q.n-i
	}
}

func (q *eventBatches) peek() Event { return q.batches[0][q.head] }

// popBatch drops the first batch, which the reader took whole (only with
// EventBatches: q.head stays 0).
func (q *eventBatches) popBatch() {
	q.n -= len(q.batches[0])
	q.batches[0] = nil
	q.batches = q.batches[1:]
	if len(q.batches) == 0 {
		q.batches = q.batches[:0:0]
	}
}

// pop drops the next event and returns its batch if that was its last.
func (q *eventBatches) pop() (done []Event) {
	q.batches[0][q.head] = Event{} // let the payload go
	q.n--
	if q.head++; q.head == len(q.batches[0]) {
		done = q.batches[0]
		q.batches[0] = nil
		q.batches = q.batches[1:]
		q.head = 0
		if len(q.batches) == 0 {
			q.batches = q.batches[:0:0]
		}
	}
	return done
}

func (s *Service) act(a Action) {
	ctx := s.bg
	var err error
	switch a.Type {
	case ActBootstrap:
		err = s.node.Bootstrap(ctx, a.Group, a.Members)
	case ActJoin, ActLeave:
		// These end when the view changes; the Core learns the outcome
		// from the group's events, so the loop does not wait.
		s.hwgm.do(ctx, a)
	case ActMulticast:
		if a.View != 0 {
			err = s.node.MulticastIn(ctx, a.Group, a.View, a.Payload)
		} else {
			err = s.node.Multicast(ctx, a.Group, a.Payload)
		}
	case ActBlockOK:
		err = s.node.BlockOK(ctx, a.Group, a.View)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("hwg request failed", "action", a.Type, "group", a.Group, "error", err)
	}
}

func (s *Service) wake(e Event) {
	s.answerWhere(e.LWG, func(w svcWaiter) (bool, error) { return w.until(e) })
}

// answerWhere answers the waiters of l for which done says so, with its
// error, and keeps the others.
func (s *Service) answerWhere(l ID, done func(svcWaiter) (bool, error)) {
	ws := s.waiters[l]
	kept := ws[:0]
	for _, w := range ws {
		if ok, err := done(w); ok {
			s.answer(w, err)
		} else {
			kept = append(kept, w)
		}
	}
	clear(ws[len(kept):]) // drop the answered waiters' closures
	if len(kept) == 0 {
		delete(s.waiters, l)
	} else {
		s.waiters[l] = kept
	}
}

func (s *Service) shutdown() {
	s.cancel()
	for l, ws := range s.waiters {
		for _, w := range ws {
			s.answer(w, ErrClosed)
		}
		delete(s.waiters, l)
	}
	close(s.events)
	if s.batches != nil {
		close(s.batches)
	}
}

// await registers w, answered on ch (do's), for l's events.
func (s *Service) await(l ID, ch chan error, w svcWaiter) {
	w.ch = ch
	s.waiters[l] = append(s.waiters[l], w)
	s.waitingOn[ch] = l
}

// answer answers w; the caller takes it out of waiters. Each waiter is
// answered once, on a channel with room for one: this never blocks.
func (s *Service) answer(w svcWaiter, err error) {
	delete(s.waitingOn, w.ch)
	w.ch <- err
}

// unwait removes the waiter answered on ch, if it is still waiting: its
// caller's context ended, and nothing would otherwise remove it before an
// event satisfied it (abandoned calls piled up on LWGs that never got
// there).
func (s *Service) unwait(ch chan error) {
	l, ok := s.waitingOn[ch]
	if !ok {
		return // answered already
	}
	delete(s.waitingOn, ch)
	ws := slices.DeleteFunc(s.waiters[l], func(w svcWaiter) bool { return w.ch == ch })
	if len(ws) == 0 {
		delete(s.waiters, l)
	} else {
		s.waiters[l] = ws
	}
}

// Close stops the Service. It does not close the Node.
func (s *Service) Close() error {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

// Events returns the channel of every local LWG's events, in order. It is
// closed by Close. With ServiceConfig.EventBatches it carries nothing.
func (s *Service) Events() <-chan Event { return s.events }

// Batches returns the channel of every local LWG's events, in order, in
// batches; nil without ServiceConfig.EventBatches. It is closed by Close.
// A batch belongs to the reader until it passes it to Release, if it
// does (at most once).
func (s *Service) Batches() <-chan []Event { return s.batches }

// Release hands back a batch taken from Batches, which the reader no
// longer uses (nor any slice of it: the events may be overwritten at
// once), so that the loop reuses its memory. It never blocks; a batch it
// cannot hand back at once is left to the collector.
func (s *Service) Release(evs []Event) {
	if s.released == nil || cap(evs) == 0 {
		return
	}
	select {
	case s.released <- evs:
	default:
	}
}

// takeReleased recycles the batches the reader released.
func (s *Service) takeReleased() {
	for range len(s.released) {
		s.core.Recycle(Ready{Events: <-s.released})
	}
}

// do runs f on the loop; f may register a waiter on ch (await) or answer
// at once (now). If ctx ends while the waiter waits, do removes it on the
// loop and returns ctx's error, unless the waiter was answered before it
// was removed: then that answer.
func (s *Service) do(ctx context.Context, f func(ch chan error) error) error {
	ch := make(chan error, 1)
	errc := make(chan error, 1)
	select {
	case s.reqs <- func() { errc <- f(ch) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrClosed
	}
	if err := <-errc; err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
	case <-s.done:
		return ErrClosed
	}
	// The loop runs a request as soon as it takes it, before it hands
	// out any more events: once it took this one, ch holds the answer if
	// there was one, and no answer comes after.
	select {
	case s.reqs <- func() { s.unwait(ch) }:
	case <-s.done: // shutdown answered every waiter
	}
	select {
	case err := <-ch:
		return err
	default:
		return ctx.Err()
	}
}

// now completes a request at once.
func now(ch chan error) { ch <- nil }

// Join makes this node a member of l (creating it if needed) and returns
// once a view that includes it is installed.
func (s *Service) Join(ctx context.Context, l ID) error {
	return s.do(ctx, func(ch chan error) error {
		if err := s.core.Join(l); err != nil {
			return err
		}
		self := s.node.Self()
		s.await(l, ch, svcWaiter{until: func(e Event) (bool, error) {
			switch {
			case e.Type == EventInstall && e.View.Contains(self):
				return true, nil
			case e.Type == EventExcluded:
				return true, fmt.Errorf("lwg: joining %s: excluded from its carrier", l)
			}
			return false, nil
		}})
		return nil
	})
}

// Leave removes this node from l and returns once it has left.
func (s *Service) Leave(ctx context.Context, l ID) error {
	return s.do(ctx, func(ch chan error) error {
		if err := s.core.Leave(l); err != nil {
			return err
		}
		if _, _, ok := s.core.View(l); !ok {
			now(ch) // it was only joining
			return nil
		}
		s.await(l, ch, svcWaiter{until: func(e Event) (bool, error) {
			return e.Type == EventLeft || e.Type == EventExcluded, nil
		}})
		return nil
	})
}

// Multicast sends payload to l in total order: at once in the current
// view, or after HoldOK in the next. The payload must not be modified
// afterwards.
//
// It queues the multicast for the Service's loop and returns without
// waiting for it: it blocks (until ctx ends) only while the queue is full
// (ServiceConfig.MulticastQueue). Multicasts from one goroutine keep their
// order, also with its later requests (a HoldOK after them does not
// overtake them). It returns ErrNotMember if this node has no endpoint in
// l as of the events the loop last handed out (after Join returned, and
// until EventLeft or EventExcluded); a multicast queued just as this node
// leaves or is excluded is dropped when the loop takes it, and counted
// (lwg_multicast_dropped_total). If ctx ends before the multicast is
// queued, it returns ctx's error and the multicast is never sent; a
// multicast queued as the Service closes is not sent either.
func (s *Service) Multicast(ctx context.Context, l ID, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.stop:
		return ErrClosed
	default:
	}
	ep := s.member(l)
	if ep == nil {
		return ErrNotMember
	}
	select {
	case s.mcast <- svcMulticast{l: l, payload: payload, ep: ep}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stop:
		return ErrClosed
	}
}

// Message is one multicast of a MulticastBatch.
type Message struct {
	LWG     ID
	Payload []byte
}

// MulticastBatch multicasts msgs as a Multicast of each would, in order,
// with one hand-off to the loop (and one place in the MulticastQueue)
// for them all: a sender of thousands of LWGs' messages a second saves a
// channel operation and a membership lock per message. errs must be at
// least as long as msgs: errs[i] is set to ErrNotMember, and msgs[i] not
// sent, if this node is not a member of msgs[i].LWG, and to nil
// otherwise. If ctx ends or the Service closes before the hand-off,
// MulticastBatch returns that error and sends none of them (errs then
// means nothing). It waits while earlier batches hold MulticastQueue
// messages (see ServiceConfig.MulticastQueue).
func (s *Service) MulticastBatch(ctx context.Context, msgs []Message, errs []error) error {
	if len(errs) < len(msgs) {
		return fmt.Errorf("lwg: MulticastBatch: %d errors for %d messages", len(errs), len(msgs))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.stop:
		return ErrClosed
	default:
	}
	bp := mcastBatches.Get().(*[]svcMulticast)
	b := (*bp)[:0]
	s.membersMu.RLock()
	for i, m := range msgs {
		ep := s.members[m.LWG]
		if ep == nil {
			errs[i] = ErrNotMember
			continue
		}
		errs[i] = nil
		b = append(b, svcMulticast{l: m.LWG, payload: m.Payload, ep: ep})
	}
	s.membersMu.RUnlock()
	*bp = b
	if len(b) == 0 {
		mcastBatches.Put(bp)
		return nil
	}
	if err := s.waitRoom(ctx); err != nil {
		return err
	}
	s.batchQueued.Add(int64(len(b)))
	select {
	case s.mcast <- svcMulticast{batch: bp}:
		return nil
	case <-ctx.Done():
		s.batchTaken(len(b))
		return ctx.Err()
	case <-s.stop:
		return ErrClosed
	}
}

// waitRoom waits until the batches queued hold fewer than MulticastQueue
// messages.
func (s *Service) waitRoom(ctx context.Context) error {
	limit := int64(s.cfg.MulticastQueue)
	for s.batchQueued.Load() >= limit {
		s.roomMu.Lock()
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room := s.room
		s.roomWaiting.Store(true)
		s.roomMu.Unlock()
		// Again, now that the loop will see a waiter: it may have
		// taken the batches before it could.
		if s.batchQueued.Load() < limit {
			return nil
		}
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
			return ErrClosed
		}
	}
	return nil
}

// batchTaken counts n messages of a batch out of the queue, and wakes the
// batches waiting for room if there is some now.
func (s *Service) batchTaken(n int) {
	if s.batchQueued.Add(-int64(n)) >= int64(s.cfg.MulticastQueue) || !s.roomWaiting.Load() {
		return
	}
	s.roomMu.Lock()
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
	s.roomWaiting.Store(false)
	s.roomMu.Unlock()
}

// SetTag attaches v to l at this node (nil removes it): from then on,
// every EventDeliver of l carries v in Event.Tag, including those of a
// later membership after a Leave or an exclusion. It lets a reader that
// keeps an object per LWG skip a lookup by ID per message. It returns
// once the loop has taken it, so deliveries handed out after it carry v.
func (s *Service) SetTag(ctx context.Context, l ID, v any) error {
	return s.do(ctx, func(ch chan error) error {
		s.core.SetTag(l, v)
		now(ch)
		return nil
	})
}

// HoldOK answers l's EventBlock (only with Config.ManualHoldOK).
func (s *Service) HoldOK(ctx context.Context, l ID) error {
	return s.do(ctx, func(ch chan error) error {
		if err := s.core.HoldOK(l); err != nil {
			return err
		}
		now(ch)
		return nil
	})
}

// Switch moves l to the carrier the directory resolves base to and returns
// once l installed a view there (at once if it is there already). This
// node must be a member of l. If the switch does not reach its switch
// point within Config.SwitchTimeoutTicks, the Core abandons it and Switch
// returns ErrSwitchTimeout (the LWG may still move, if its switch point
// came before the abort); if this node leaves l or is excluded meanwhile,
// Switch returns an error saying so, and if another member's switch moves
// l to another base first (which ends this one), an error naming where.
func (s *Service) Switch(ctx context.Context, l ID, base hwg.GroupID) error {
	return s.do(ctx, func(ch chan error) error {
		// The carrier l is on now. Installs of l on it (its carrier's
		// view changes, joins and leaves while the switch waits, or
		// a flush the switch waited for) are not the switch's end, even
		// if it is an older carrier of base: the directory resolves a
		// base to its newest carrier, and an older one can live on beside
		// it (CarrierObservation.Current).
		_, from, _ := s.core.View(l)
		if err := s.core.Switch(l, base); err != nil {
			return err
		}
		s.await(l, ch, svcWaiter{switching: true, until: func(e Event) (bool, error) {
			switch {
			case e.Type == EventInstall && e.HWG != from:
				// l installs views only on the carrier it is on, so it
				// moved, and the Core dropped the switch request at the
				// switch point (Core.moved), whichever switch it was. The
				// base from e.HWG's name, not the directory's record of
				// e.HWG: this node's copy may not have it yet (another
				// HWG, no order between them), and then the switch, done,
				// would wait for another install until its caller's
				// timeout. A switch the Core ends without moving l is
				// answered by switchesEnded instead.
				if carrierBase(e.HWG) == base {
					return true, nil
				}
				return true, fmt.Errorf("lwg: switching %s to %s: another switch moved it to %s first", l, base, e.HWG)
			case e.Type == EventLeft || e.Type == EventExcluded:
				return true, fmt.Errorf("lwg: switching %s: %v", l, e.Type)
			}
			return false, nil
		}})
		return nil
	})
}

// View returns this node's current view of l and its carrier.
func (s *Service) View(ctx context.Context, l ID) (View, hwg.GroupID, error) {
	var v View
	var h hwg.GroupID
	err := s.do(ctx, func(ch chan error) error {
		var ok bool
		if v, h, ok = s.core.View(l); !ok {
			return ErrNotMember
		}
		now(ch)
		return nil
	})
	return v, h, err
}

// Stats returns the Core's counters.
func (s *Service) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := s.do(ctx, func(ch chan error) error {
		st = s.core.Stats()
		now(ch)
		return nil
	})
	return st, err
}

// Lookup returns the carrier this node's copy of the directory binds l to.
// It is local: the copy may be a little behind the directory's order.
func (s *Service) Lookup(ctx context.Context, l ID) (hwg.GroupID, bool, error) {
	var h hwg.GroupID
	var ok bool
	err := s.do(ctx, func(ch chan error) error {
		h, ok = s.core.Lookup(l)
		now(ch)
		return nil
	})
	return h, ok, err
}
