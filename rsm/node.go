package rsm

import (
	"context"
	"errors"
	"fmt"
	"io"
	goruntime "runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// Config configures a Node. Zero fields take the defaults shown.
type Config struct {
	// Service runs this node's LWGs. The Node reads its Events (or its
	// Batches, with lwg.ServiceConfig.EventBatches, which costs less per
	// event and is what Start sets): nothing else may.
	Service *lwg.Service
	// HWG is the node under Service; the Node sends and reads its Directs
	// (state transfer). Nothing else may read them.
	HWG *hwg.Node
	// SnapshotEvery is how many applied commands trigger a local snapshot
	// of an object. Default 10,000. A restarted node reads its objects
	// from local snapshots, so lower keeps them fresher, at the cost of
	// one snapshot write per SnapshotEvery commands.
	SnapshotEvery uint64
	// SnapshotInterval snapshots an object that applied anything and has
	// not been snapshotted for this long. Default 1 minute.
	SnapshotInterval time.Duration
	// TickInterval drives transfer timeouts and SnapshotInterval. Default
	// 100ms; transfers ask again after 10 ticks without progress.
	TickInterval time.Duration
	// ChunkSize is the bytes of one state-transfer message, and the largest
	// snapshot sent inside its offer. Default 1 MiB (the storage chunk);
	// it must stay well under the transport's frame limit (16 MiB).
	ChunkSize int
	// TransferWindow is how many bytes a joiner asks for ahead of what it
	// received: flow control for snapshots. Default 4 MiB.
	TransferWindow int
	// SpoolMemory bounds the bytes of large snapshots (over 1 MiB) a node
	// started with Start holds in memory, for all its objects, from their
	// writing until they are stored in its data file (in the background,
	// once transfers pause); past it they wait in files under
	// DataDir/spool. Default 256 MiB; negative: none.
	SpoolMemory int
	// Workers is how many goroutines apply commands, for all objects
	// (one object is never on two at once), beside the router, which
	// applies the commands of idle objects itself. Default GOMAXPROCS.
	Workers int
	// MaxCommandBytes bounds a command or query. Default 4 MiB.
	MaxCommandBytes int
	// MaxInFlight bounds the proposals and reads of one object that
	// callers on this node await at once (queued, sent, or delivered and
	// not yet applied); MaxInFlightBytes bounds their commands' and
	// queries' bytes. A call beyond either returns ErrBusy at once,
	// without queuing (one call is always taken when none is in flight,
	// whatever its size). They keep a node that cannot get its commands
	// ordered (out of its group, a long flush, an overloaded carrier)
	// from growing its queues without bound; a client that gets ErrBusy
	// should back off. Defaults 65,536 and 64 MiB; negative: no bound.
	MaxInFlight      int
	MaxInFlightBytes int
	// Logger receives the Node's logs. Default: silent.
	Logger hclog.Logger
	// Tap, if set, sees every LWG event of every open object, in order,
	// before the object does; it runs on the routing goroutine and must
	// not block. Layers that share objects' groups (Node.Multicast) read
	// their messages here.
	Tap func(id ObjectID, e lwg.Event)

	snapshotTicks int
	snaps         snapStore // default: in memory
}

func (c Config) withDefaults(runtime bool) (Config, error) {
	if runtime && (c.Service == nil || c.HWG == nil) {
		return c, fmt.Errorf("%w: Service and HWG are required", ErrInvalidConfig)
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = 10_000
	}
	if c.SnapshotInterval <= 0 {
		c.SnapshotInterval = time.Minute
	}
	if c.TickInterval <= 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = 1 << 20
	}
	if c.ChunkSize > 8<<20 {
		return c, fmt.Errorf("%w: ChunkSize %d over 8 MiB", ErrInvalidConfig, c.ChunkSize)
	}
	if c.TransferWindow <= 0 {
		c.TransferWindow = 4 << 20
	}
	c.TransferWindow = max(c.TransferWindow, c.ChunkSize)
	if c.Workers <= 0 {
		c.Workers = goruntime.GOMAXPROCS(0)
	}
	if c.MaxCommandBytes <= 0 {
		c.MaxCommandBytes = 4 << 20
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 1 << 16
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = 64 << 20
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	c.snapshotTicks = max(1, int(c.SnapshotInterval/c.TickInterval))
	if c.snaps == nil {
		c.snaps = newMemStore()
	}
	return c, nil
}

// Node hosts this node's replicated objects over an lwg.Service: any
// number of them, with no goroutine per object. One goroutine routes the
// LWG events to objects (and applies an idle object's commands itself,
// see runInline), one serves and routes state transfers, and a fixed
// pool of workers applies the rest: an object with inputs is queued for
// the next free worker, which processes its inputs in order.
//
// All methods are safe for concurrent use.
type Node struct {
	cfg  Config
	log  hclog.Logger
	svc  *lwg.Service
	hn   *hwg.Node
	self hwg.Process

	mu      sync.Mutex
	objects map[lwg.ID]*Object
	// closing holds, per object closed here and not yet forgotten (its
	// record and snapshots removed), a channel its Close closes then. An
	// Open of the id waits for it: else the old Close would remove the
	// new object's record and snapshots.
	closing map[lwg.ID]chan struct{}
	watched map[*Object]*watchState
	// dueAt lists watched objects' states by the tick their next tick
	// item is due at (entries unwatched, or due at another tick since,
	// are skipped; an unwatched state lets go of its object), and tickNo
	// counts ticks: a tick looks only at the objects due. Walking every
	// watched object each tick cost 10,000 dirty objects on three nodes
	// 15 ms of CPU a second.
	dueAt     map[uint64][]*watchState
	tickNo    uint64
	observers []func(Event)
	runq      []*Object
	wake      *sync.Cond
	closed    bool

	// Objects whose outbox waits for the sender (see send).
	sendMu   sync.Mutex
	sendq    []*Object
	sendIdle bool // the sender waits on sendWake
	sendWake *sync.Cond

	stop  chan struct{}
	wg    sync.WaitGroup
	bg    context.Context
	cncl  context.CancelFunc
	owned []io.Closer

	stats nodeStats
	// Router turns (see runInline), for tests; on a cache line of its
	// own, as the router adds to it on every turn.
	inlined struct {
		_ [64]byte
		n atomic.Uint64
		_ [56]byte
	}
}

type nodeStats struct {
	proposals, reads, applied   atomic.Uint64
	messages                    atomic.Uint64
	snapshots, sentBytes, views atomic.Uint64
	received, receivedSnapshots atomic.Uint64
	sentSnapshots               atomic.Uint64
	// Of closed objects; the open ones count their own.
	chunkBytes, malformed atomic.Uint64
}

// New starts a Node over cfg.Service and cfg.HWG. Close stops it (and not
// them).
func New(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults(true)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger.Named("rsm"),
		svc:     cfg.Service,
		hn:      cfg.HWG,
		self:    cfg.HWG.Self(),
		objects: map[lwg.ID]*Object{},
		closing: map[lwg.ID]chan struct{}{},
		watched: map[*Object]*watchState{},
		dueAt:   map[uint64][]*watchState{},
		stop:    make(chan struct{}),
	}
	n.wake = sync.NewCond(&n.mu)
	n.sendWake = sync.NewCond(&n.sendMu)
	n.bg, n.cncl = context.WithCancel(context.Background())
	n.wg.Add(4 + cfg.Workers)
	go n.sendLoop()
	go n.routeEvents()
	go n.routeDirects()
	go n.tick()
	for range cfg.Workers {
		go n.work()
	}
	return n, nil
}

// Self returns this node's process.
func (n *Node) Self() hwg.Process { return n.self }

// Service returns the LWG layer the Node runs on.
func (n *Node) Service() *lwg.Service { return n.svc }

// HWG returns the HWG node under the Service.
func (n *Node) HWG() *hwg.Node { return n.hn }

// Observe registers fn to receive every Event. fn runs on a worker or
// routing goroutine and must not block or call back into the Node.
func (n *Node) Observe(fn func(Event)) {
	n.mu.Lock()
	n.observers = append(n.observers, fn)
	n.mu.Unlock()
}

// Open opens object id on this node: it joins the object's LWG (creating
// it if no node has it open) and returns once this replica holds the
// state: created empty with f, restored from a donor's snapshot, or, for a
// new group whose first member has a local snapshot, from that. Opening an
// open object returns it; concurrent Opens of one object share one join.
// An Open during a Close of the object fails with ErrClosed; one that
// begins after the Close took the object out of this node waits until the
// Close has removed the old record and snapshots, then opens afresh.
//
// If ctx ends first, Open returns its error, but the object stays on this
// node, recorded for a restart (as hwg's Join, the request stays in
// effect): a join under way goes on, a later Open tries a join that did
// not start again and returns the object once it holds the state, and
// Close removes it.
func (n *Node) Open(ctx context.Context, id ObjectID, f Factory) (*Object, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: empty object id", ErrInvalidConfig)
	}
	o, err := n.openable(ctx, id)
	if err != nil {
		return nil, err
	}
	var recorded chan error
	if o == nil {
		sm, err := f(id)
		if err != nil {
			return nil, fmt.Errorf("rsm: making %s: %w", id, err)
		}
		o = newObject(id, n.self, &n.cfg, n, n, sm)
		o.deferDone = true
		if err := n.restoreLocal(o); err != nil {
			return nil, err
		}
		// Record the object (for a restart to reopen it) while it joins:
		// the write waits for group commit and an fsync, 1.5-3 ms here,
		// which the join need not wait for. A crash before it is durable
		// only leaves the object out of the restart, as a crash before
		// Open would. Open returns once it is.
		n.mu.Lock()
		if done := n.closing[id.LWG()]; done != nil {
			// Opened and closed again while this Open made its object.
			n.mu.Unlock()
			return n.Open(ctx, id, f)
		}
		if cur := n.objects[id.LWG()]; cur != nil {
			o = cur // opened concurrently: its Open records it
		} else {
			// Only the Open that put o in place records it, and acts on
			// a failed record; Close waits for the record (o.recorded)
			// before it removes o, so the record cannot land after.
			recorded = make(chan error, 1)
			o.recorded = make(chan struct{})
			n.objects[id.LWG()] = o
			go func() {
				recorded <- n.cfg.snaps.register(id)
				close(o.recorded)
			}()
		}
		n.mu.Unlock()
	}
	err = n.join(ctx, o)
	if recorded == nil && o.recorded != nil {
		<-o.recorded // the Open that put o in place records it
	}
	if recorded != nil {
		if rerr := <-recorded; rerr != nil {
			// Not recorded: leave again, as if it had never opened; with
			// a context of its own, since ctx may be what ended the join.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), openUndoTimeout)
			cerr := o.Close(cctx)
			cancel()
			return nil, errors.Join(fmt.Errorf("rsm: recording %s: %w", id, rerr), cerr)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("rsm: opening %s: %w", id, err)
	}
	select {
	case <-o.readyCh:
	case <-o.closedCh:
	case <-ctx.Done():
		return nil, fmt.Errorf("rsm: opening %s: waiting for its state: %w", id, ctx.Err())
	case <-n.stop:
		return nil, ErrClosed
	}
	select {
	case <-o.closedCh: // ready or not, a concurrent Close won
		return nil, fmt.Errorf("%w: %s closed while it opened", ErrClosed, id)
	default:
		return o, nil
	}
}

// openable returns the object open as id, or nil if there is none, once
// no Close of an earlier one is still forgetting it.
func (n *Node) openable(ctx context.Context, id ObjectID) (*Object, error) {
	for {
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			return nil, ErrClosed
		}
		o, done := n.objects[id.LWG()], n.closing[id.LWG()]
		n.mu.Unlock()
		if o != nil || done == nil {
			return o, nil
		}
		if testHookOpenWaits != nil {
			testHookOpenWaits(id)
		}
		select {
		case <-done:
		case <-ctx.Done():
			return nil, fmt.Errorf("rsm: opening %s: waiting for its Close: %w", id, ctx.Err())
		case <-n.stop:
			return nil, ErrClosed
		}
	}
}

// join joins o's group unless an Open of o already did. Opens of one
// object take turns here, so concurrent Opens share one Join and all
// succeed, rather than the second failing with ErrAlreadyMember
// (TestOpenRaceRecordsOnce); after a failed Join (ctx ended) the next Open
// tries again.
func (n *Node) join(ctx context.Context, o *Object) error {
	select {
	case o.joinTurn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-o.joinTurn }()
	if testHookJoin != nil {
		testHookJoin(o, "turn")
	}
	if o.isClosing() {
		// A Close got here first: its Leave found nothing to leave, so a
		// Join now would leave this node in the group of a detached
		// object. (Close takes the turn too, so a Join under way ends
		// before its Leave.)
		return fmt.Errorf("%w: %s closed while it opened", ErrClosed, o.id)
	}
	if testHookJoin != nil {
		testHookJoin(o, "checked")
	}
	if o.joinDone {
		return nil
	}
	// Deliveries carry o, so that the router finds it without a lookup.
	err := n.svc.SetTag(ctx, o.lwg, o)
	if err == nil {
		err = n.svc.Join(ctx, o.lwg)
	}
	if testHookJoin != nil {
		testHookJoin(o, "joined")
	}
	if errors.Is(err, lwg.ErrAlreadyMember) {
		// Joining already (a Join whose caller gave up, a rejoin after an
		// exclusion: the wait for the state decides), or still leaving
		// after a Close whose ctx ended: not joined, so the next Open
		// tries again rather than skip a Join that never happened.
		return nil
	}
	o.joinDone = err == nil
	return err
}

// testHookJoin, when set, runs as an Open's join takes its turn
// (stage "turn"), once it found o not closed ("checked"), and after its
// Join returned, still holding the turn ("joined").
var testHookJoin func(o *Object, stage string)

// Test hooks: testHookDetached runs as a Close has taken o out of the
// node's objects (before it removes o's record and snapshots);
// testHookOpenWaits as an Open is about to wait for such a Close.
var (
	testHookDetached  func(*Object)
	testHookOpenWaits func(ObjectID)
)

// isClosing reports whether Close has begun on o.
func (o *Object) isClosing() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed
}

// openUndoTimeout bounds the Close of an object whose record failed.
const openUndoTimeout = 10 * time.Second

// restoreLocal loads o's local snapshot, if there is one, before o joins.
func (n *Node) restoreLocal(o *Object) error {
	info, ok, err := n.cfg.snaps.current(o.id)
	if err != nil || !ok {
		return err
	}
	if err := o.restoreFrom(info.Gen); err != nil {
		return fmt.Errorf("rsm: local snapshot of %s: %w", o.id, err)
	}
	o.pubStale.Store(true)
	return nil
}

// Multicast sends payload in object id's group, in its total order, for a
// layer that shares the group (it reads the deliveries through
// Config.Tap). The payload's first byte must be 0x80 or above, so the
// replicas know it is not theirs. Returns once queued.
func (n *Node) Multicast(ctx context.Context, id ObjectID, payload []byte) error {
	if len(payload) == 0 || payload[0] < foreignKinds {
		return fmt.Errorf("%w: a foreign payload must begin with a byte >= 0x80", ErrInvalidConfig)
	}
	if len(payload) > n.cfg.MaxCommandBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), n.cfg.MaxCommandBytes)
	}
	return n.svc.Multicast(ctx, id.LWG(), payload)
}

// Stored returns the objects recorded in this node's data file: those open
// here when it stopped (and not closed), which a restarted node reopens.
func (n *Node) Stored() ([]ObjectID, error) {
	ids, err := n.cfg.snaps.list()
	slices.Sort(ids)
	return ids, err
}

// Object returns the open object id.
func (n *Node) Object(id ObjectID) (*Object, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	o := n.objects[id.LWG()]
	return o, o != nil
}

// Objects returns the ids of the objects open here.
func (n *Node) Objects() []ObjectID {
	n.mu.Lock()
	defer n.mu.Unlock()
	ids := make([]ObjectID, 0, len(n.objects))
	for _, o := range n.objects {
		ids = append(ids, o.id)
	}
	return ids
}

// Close leaves the object's group and forgets it on this node, with its
// local snapshots. Waiting proposals end with ErrClosed. While this replica
// is the donor of a joiner that has not restored yet, Close first waits
// (until ctx ends) for the joiner, so closing a replica never strands one
// that depends on it. It also waits for the Join of an Open of the object
// under way, and then leaves; if ctx ends first, it returns ctx's error
// and leaves in the background once that Join is over (the Open fails
// with ErrClosed; a new Open of the object waits for the Leave), so the
// node does not stay in the group either way.
//
// A replica that leaves is not waited for: closing the last replica that
// holds the newest state discards that state, and a replica of an older
// one kept elsewhere (on a node that stopped or crashed while in the
// group, and restarts) then continues the object from its older state.
// To keep an object whose other replicas are down, stop the Node instead
// (Node.Close keeps its objects).
func (o *Object) Close(ctx context.Context) error {
	n, ok := o.host.(*Node)
	if !ok {
		return fmt.Errorf("%w: object not hosted by a Node", ErrInvalidConfig)
	}
	o.mu.Lock()
	already := o.closed
	o.closed = true
	o.mu.Unlock()
	if already {
		return nil
	}
	close(o.closedCh)
	for o.serving.Load() && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-n.stop:
			return ErrClosed
		case <-time.After(n.cfg.TickInterval):
		}
	}
	// Wait for an Open's Join under way, so the Leave comes after it; an
	// Open that takes the turn later sees o closed and does not join. If
	// ctx ends first, leaveLater leaves once that Join is over.
	turn := false
	select {
	case o.joinTurn <- struct{}{}:
		turn = true
	default:
		select {
		case o.joinTurn <- struct{}{}:
			turn = true
		case <-ctx.Done():
		}
	}
	var err error
	if turn {
		err = n.svc.Leave(ctx, o.lwg)
		<-o.joinTurn
	} else {
		err = fmt.Errorf("waiting for its join: %w", ctx.Err())
	}
	n.mu.Lock()
	var forgotten chan struct{}
	if n.objects[o.lwg] == o {
		delete(n.objects, o.lwg)
		forgotten = make(chan struct{})
		n.closing[o.lwg] = forgotten
		o.detached = true
		// Stats sums the open objects' counters: keep the closed one's.
		n.stats.applied.Add(o.applies.Load())
		n.stats.chunkBytes.Add(o.received.Load())
		n.stats.malformed.Add(o.malformed.Load())
	}
	n.unwatch(o)
	n.mu.Unlock()
	if testHookDetached != nil && forgotten != nil {
		testHookDetached(o)
	}
	// Let a turn under way (an Apply in progress) finish first, until ctx
	// ends: it resolves the commands it applied, whose callers get their
	// results rather than ErrClosed (TestProposeAsyncPendingAtClose).
	turnDone := make(chan struct{})
	go func() {
		o.smMu.Lock()
		o.smMu.Unlock()
		close(turnDone)
	}()
	select {
	case <-turnDone:
	case <-ctx.Done():
	}
	o.failAll(fmt.Errorf("%w: %s", ErrClosed, o.id))
	if o.recorded != nil {
		<-o.recorded // Open's record: remove must come after it
	}
	if rerr := n.cfg.snaps.remove(o.id); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if o.detached {
		// Let the Service drop its reference to o. With the node's
		// context, not the caller's: it fails only when the node closes.
		// (The router checks detached: a stale tag costs a lookup.)
		_ = n.svc.SetTag(n.bg, o.lwg, nil)
	}
	switch {
	case forgotten != nil && !turn:
		go n.leaveLater(o, forgotten)
	case forgotten != nil:
		n.forgotten(o.lwg, forgotten)
	}
	n.emit(Event{Type: EventClosed, Object: o.id})
	if err != nil && !errors.Is(err, lwg.ErrNotMember) {
		return fmt.Errorf("rsm: closing %s: %w", o.id, err)
	}
	return nil
}

// leaveLater ends the Close of o whose ctx ended while an Open's join held
// the turn: once that join is over, it leaves o's group (the Join may have
// landed after anything Close could send), and only then lets Opens of
// the id go on, so a new object's Join cannot meet the old one's Leave.
func (n *Node) leaveLater(o *Object, forgotten chan struct{}) {
	defer n.forgotten(o.lwg, forgotten)
	select {
	case o.joinTurn <- struct{}{}:
		defer func() { <-o.joinTurn }()
	case <-n.stop:
		return
	}
	ctx, cancel := context.WithTimeout(n.bg, openUndoTimeout)
	defer cancel()
	if err := n.svc.Leave(ctx, o.lwg); err != nil && !errors.Is(err, lwg.ErrNotMember) {
		n.log.Warn("leaving the group of an object closed while it joined", "object", o.id, "error", err)
	}
}

// forgotten lets Opens of l go on after a Close (see Node.closing).
func (n *Node) forgotten(l lwg.ID, done chan struct{}) {
	n.mu.Lock()
	delete(n.closing, l)
	n.mu.Unlock()
	close(done)
}

// Close stops the Node: it first writes a snapshot of every object that
// applied commands since its last one (at most 30 s), so that a restart of
// every node keeps them; then waiting calls end with ErrClosed, and large
// snapshots still in the spool are copied into the data file (at most
// 30 s more; one not copied by then leaves the previous one current). Objects are
// not left (their groups see this node fail, or stop with it); a Node
// started with Start also closes its Service, HWG node and data file.
func (n *Node) Close() error {
	n.flushSnapshots(closeFlushTimeout)
	return n.stopNode(false)
}

// stopNode stops the Node; crash: without the last snapshots, and the
// spools not yet in the data file abandoned, as a crash leaves them.
func (n *Node) stopNode(crash bool) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	stageClose()
	objs := make([]*Object, 0, len(n.objects))
	for _, o := range n.objects {
		objs = append(objs, o)
	}
	n.wake.Broadcast()
	n.mu.Unlock()
	close(n.stop)
	n.cncl()
	n.sendMu.Lock()
	n.sendWake.Broadcast() // the sender sees n.bg ended
	n.sendMu.Unlock()
	n.wg.Wait()
	// The workers are gone: end the transfers in progress here, so a
	// restorer goroutine does not wait for chunks that will not come and
	// a pending snapshot is aborted before the data file closes.
	for _, o := range objs {
		o.smMu.Lock()
		o.abortFetch()
		o.smMu.Unlock()
	}
	// Waiting calls end before the owned parts close: the store may
	// spend a while copying spools into the data file.
	for _, o := range objs {
		o.endAll(fmt.Errorf("%w: node closed", ErrClosed), true, false)
	}
	if s, ok := n.cfg.snaps.(*dbStore); ok && crash {
		s.closeWithin(0)
	}
	var err error
	for _, c := range n.owned {
		err = errors.Join(err, c.Close())
	}
	return err
}

// closeFlushTimeout bounds how long Close spends writing snapshots.
const closeFlushTimeout = 30 * time.Second

// flushSnapshots snapshots every object that applied commands since its
// last snapshot, so a restart of every node at once (which finds no live
// replica to transfer from) loses nothing a clean Close could keep. With
// snapshots in memory there is nothing to keep.
func (n *Node) flushSnapshots(timeout time.Duration) {
	if _, mem := n.cfg.snaps.(*memStore); mem {
		return
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	objs := make([]*Object, 0, len(n.objects))
	for _, o := range n.objects {
		if o.pubReady.Load() && o.pubIndex.Load() > 0 {
			objs = append(objs, o)
		}
	}
	n.mu.Unlock()
	// Many at once, so the storage's group commit shares the syncs. Each
	// holds the object's smMu, which excludes its worker.
	work := make(chan *Object)
	var wg sync.WaitGroup
	for range flushParallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				o.smMu.Lock()
				if o.ready && o.index > o.snapIndex {
					o.takeSnapshot()
				}
				o.smMu.Unlock()
			}
		}()
	}
	deadline := time.After(timeout)
feed:
	for _, o := range objs {
		select {
		case work <- o:
		case <-deadline:
			n.log.Warn("closing: gave up writing snapshots", "objects", len(objs))
			break feed
		}
	}
	close(work)
	wg.Wait()
}

// flushParallel is how many snapshots Close writes at once.
const flushParallel = 64

// routeEvents hands every LWG event to its object. It takes them in the
// batches the LWG service produced them in (ServiceConfig.EventBatches:
// no channel operation or copy per event), with one lookup lock per
// batch, and one mailbox append and run-queue push per object per batch
// rather than per event. The events are grouped by object as indices
// into the batch (a counting sort on Object.routeN and routeOff), and
// applied where they are: a map of per-object slices cost two more
// lookups per event and, at 10,000 objects, a fresh slice per object per
// batch, and copying each event into an item cost another 376 bytes.
func (n *Node) routeEvents() {
	defer n.wg.Done()
	var (
		batch []lwg.Event
		r     router
		ok    bool
	)
	for {
		if batch, ok = n.nextEvents(batch); !ok {
			return
		}
		// At most routeBatch at a time: n.mu is held while they are
		// looked up, and idx and its keep their largest size.
		for rest := batch; len(rest) > 0; {
			k := min(len(rest), routeBatch)
			r.route(n, rest[:k])
			rest = rest[k:]
		}
		if n.svc.Batches() != nil {
			n.svc.Release(batch) // the inline turns are over; the items hold copies
			batch = nil
		} else {
			clear(batch)
		}
	}
}

// router is routeEvents' scratch space, kept between batches.
type router struct {
	objs  []*Object // batch[i]'s object, nil if none
	order []*Object // objects with events, by first event
	// idx holds the batch's indices grouped by object: the events stay
	// where they are, and only what goes to a worker is copied (items).
	idx []int32
	its []item
}

// route hands batch's events to their objects.
func (r *router) route(n *Node, batch []lwg.Event) {
	n.mu.Lock()
	for _, e := range batch {
		var o *Object
		switch e.Type {
		case lwg.EventDeliver:
			if o, _ = e.Tag.(*Object); o == nil || o.detached {
				o = n.objects[e.LWG]
			}
		case lwg.EventInstall, lwg.EventLeft, lwg.EventExcluded:
			o = n.objects[e.LWG]
		}
		r.objs = append(r.objs, o)
		if o == nil {
			continue
		}
		if n.cfg.Tap != nil {
			n.cfg.Tap(o.id, e)
		}
		if e.Type == lwg.EventDeliver {
			stageRouted(o)
		}
		if o.routeN == 0 {
			r.order = append(r.order, o)
		}
		o.routeN++
	}
	n.mu.Unlock()
	var total int32
	for _, o := range r.order {
		o.routeOff, total = total, total+o.routeN
		o.routeN = 0 // counts the items placed below
	}
	r.idx = slices.Grow(r.idx[:0], int(total))[:total]
	for i, o := range r.objs {
		if o != nil {
			r.idx[o.routeOff+o.routeN] = int32(i)
			o.routeN++
		}
	}
	clock := sinceStart()
	for _, o := range r.order {
		// enqueueAll copies the items.
		if idx := r.idx[o.routeOff : o.routeOff+o.routeN]; !n.runInline(r, o, batch, idx, &clock) {
			n.enqueueAll(o, r.items(batch, idx))
		}
		o.routeN = 0
	}
	r.reset()
}

// reset empties r after a batch, pinning no object and no payload.
func (r *router) reset() {
	clear(r.its) // what items wrote last; it cleared the earlier calls'
	r.its = r.its[:0]
	clear(r.objs)
	clear(r.order)
	r.objs, r.order = r.objs[:0], r.order[:0]
}

// nextEvents waits for the next events: a batch from the Service's
// Batches, or, from a Service without ServiceConfig.EventBatches, the
// events waiting on Events (up to routeBatch), appended to buf[:0]. It
// reports false once the Node or the Service stopped.
func (n *Node) nextEvents(buf []lwg.Event) ([]lwg.Event, bool) {
	if bs := n.svc.Batches(); bs != nil {
		select {
		case <-n.stop:
			return nil, false
		case b, ok := <-bs:
			return b, ok
		}
	}
	evs := n.svc.Events()
	select {
	case <-n.stop:
		return nil, false
	case e, ok := <-evs:
		if !ok {
			return nil, false
		}
		buf = append(buf[:0], e)
	}
	for len(buf) < routeBatch {
		select {
		case e, ok := <-evs:
			if !ok {
				return buf, true
			}
			buf = append(buf, e)
		default:
			return buf, true
		}
	}
	return buf, true
}

// items returns the events of batch at idx as items for a worker, in
// r's scratch space (valid until the next call, which clears them: route
// clears the last call's, so no payload stays pinned).
func (r *router) items(batch []lwg.Event, idx []int32) []item {
	clear(r.its)
	r.its = r.its[:0]
	for _, i := range idx {
		r.its = append(r.its, item{kind: itemEvent, ev: batch[i]})
	}
	return r.its
}

// routeBatch bounds the events routed at once (and those nextEvents
// takes at once from a Service that hands them out one at a time).
const routeBatch = 1024

// runInline applies o's routed events on the router's goroutine when o
// is idle and they are plain commands, which saves the hand-off to a
// worker (a mailbox, the run queue and a wake-up): at 10,000 objects
// nearly every object turn is one proposal, and the hand-off cost 7% of
// the CPU. It reports false, having done nothing, when a worker must
// take them: o is slow (see inlineBudget), queued or running, or an event
// is anything but a command (an install may donate a snapshot; a claim
// multicasts, which may block on the LWG service: the router must never
// block, or the service, blocked sending it events, stops taking
// multicasts). When o is not ready, or the commands could make its
// scheduled snapshot due (a large one would stall every object's
// deliveries), it hands them to a worker itself.
//
// clock is the router's last reading of sinceStart, before this turn;
// runInline reads it again after an inline turn. One reading per turn,
// not two: at 10,000 objects nearly every turn is one proposal, and
// time.Now and time.Since around each cost 5% of the CPU (kvm-clock).
// The time a turn is charged with includes the hand-offs of the objects
// routed since the last reading, microseconds against inlineBudget.
//
// INVARIANT: o's inputs are processed in order, one turn at a time: the
// router claims o as a worker does (scheduled), and what arrives
// meanwhile waits in o's mailbox for a worker.
func (n *Node) runInline(r *router, o *Object, batch []lwg.Event, idx []int32, clock *time.Duration) bool {
	size, plain := plainEvents(batch, idx)
	if !plain || o.slow.Load() {
		return false
	}
	o.mu.Lock()
	if o.scheduled {
		o.mu.Unlock()
		return false
	}
	o.scheduled = true
	o.mu.Unlock()
	o.smMu.Lock()
	// Every command takes at least a byte: size bounds their number.
	ok := o.ready && !snapshotDue(o, uint64(size))
	if ok {
		for _, i := range idx {
			o.onEvent(&batch[i])
		}
	}
	o.smMu.Unlock()
	if ok {
		o.runDone() // charged to this turn: they run on the router too
		now := sinceStart()
		if now-*clock > inlineBudget {
			o.markSlow()
		}
		*clock = now
		n.inlined.n.Add(1)
	}
	if !ok {
		// Hand them to a worker, ahead of anything that came meanwhile.
		o.mu.Lock()
		if o.mail == nil {
			o.mail = getMail()
		}
		o.mail.items = slices.Insert(o.mail.items, 0, r.items(batch, idx)...)
		o.mu.Unlock()
	}
	n.release(o, true)
	return true
}

// plainEvents is plainCommands of the events of batch at idx.
func plainEvents(batch []lwg.Event, idx []int32) (size int, ok bool) {
	for _, i := range idx {
		if !plainCommand(&batch[i]) {
			return 0, false
		}
		size += len(batch[i].Payload)
	}
	return size, true
}

// plainCommands reports whether its are all deliveries of plain commands
// (what the router may apply itself), and their payloads' total size.
func plainCommands(its []item) (size int, ok bool) {
	for i := range its {
		if its[i].kind != itemEvent || !plainCommand(&its[i].ev) {
			return 0, false
		}
		size += len(its[i].ev.Payload)
	}
	return size, true
}

// plainCommand reports whether e is a delivery of a plain command.
func plainCommand(e *lwg.Event) bool {
	return e.Type == lwg.EventDeliver && inlineKind(e.Payload)
}

// release ends o's turn: o goes back on the run queue if inputs came
// meanwhile. wake: signal a worker (the caller is not one).
func (n *Node) release(o *Object, wake bool) {
	o.mu.Lock()
	more := o.mail != nil
	o.scheduled = more
	o.mu.Unlock()
	if more {
		n.mu.Lock()
		n.runq = append(n.runq, o)
		if wake {
			n.wake.Signal()
		}
		n.mu.Unlock()
	}
}

// snapshotDue reports whether applying at most n more commands could
// make o's scheduled snapshot due (see afterApply).
func snapshotDue(o *Object, n uint64) bool {
	e := o.cfg.SnapshotEvery
	if e == 0 {
		return false
	}
	if o.snapIndex > o.index {
		return true // the local snapshot is of another state
	}
	d := o.index - o.snapIndex
	return d >= e || n >= e-d
}

// processStart is the origin of sinceStart.
var processStart = time.Now()

// sinceStart reads the monotonic clock alone (time.Now reads the wall
// clock too).
func sinceStart() time.Duration { return time.Since(processStart) }

// inlineBudget: an object whose turn on the router took longer (its
// Apply or Query is slow, or blocks) is left to the workers (see
// Object.slow), so it holds the other objects' deliveries up rarely.
const inlineBudget = time.Millisecond

// inlineKind: an ordered message the router may apply itself (see
// runInline).
func inlineKind(payload []byte) bool {
	if len(payload) == 0 {
		return false
	}
	switch payload[0] {
	case kindPropose, kindOnce, kindRead, kindBatch:
		return true
	}
	return false
}

// routeDirects serves snapshot fetches and hands the other transfer
// messages to their objects.
func (n *Node) routeDirects() {
	defer n.wg.Done()
	ds := n.hn.Direct()
	for {
		select {
		case <-n.stop:
			return
		case m := <-ds:
			d, err := decodeDirect(m.Payload)
			if err != nil {
				n.log.Debug("dropping a transfer message", "from", m.From, "error", err)
				m.Release()
				continue
			}
			if d.kind == kindFetch {
				n.serveFetch(m.From, d)
				m.Release()
				continue
			}
			n.mu.Lock()
			o := n.objects[d.object.LWG()]
			n.mu.Unlock()
			switch {
			case o == nil:
				m.Release()
			case d.kind == kindChunk:
				// Its data is consumed (copied or restored) by the time
				// the worker is done with it: the frame goes back then.
				n.enqueue(o, item{kind: itemDirect, from: m.From, d: d, frame: &m})
			default:
				n.enqueue(o, item{kind: itemDirect, from: m.From, d: d})
			}
		}
	}
}

// serveFetch sends the asked bytes of a local snapshot. A chunk is read
// straight into a message the hwg node sends as is (no copy on the way).
func (n *Node) serveFetch(to hwg.Process, d direct) {
	if n.servePieces(to, d) {
		return
	}
	reply, wire, last, size, err := answerFetch(n.cfg.snaps, d, n.cfg.ChunkSize, hwg.DirectBuffer)
	if err != nil {
		n.log.Warn("reading a snapshot for a transfer", "object", d.object, "error", err)
	}
	switch reply.kind {
	case 0:
		return
	case kindChunk:
		err = n.hn.SendBuffer(to, wire)
	default:
		err = n.hn.Send(to, wire)
	}
	if err != nil {
		n.log.Debug("transfer message", "to", to, "error", err)
	}
	if last {
		n.emit(Event{Type: EventSnapshotSent, Object: d.object, Peer: to, Bytes: size})
	}
}

// pieceReader is a snapshot reader that lends its bytes in memory (a
// spool's): see spoolReader.pieces.
type pieceReader interface {
	pieces(off int64, n int) ([][]byte, func(), bool)
}

// servePieces answers a fetch whose bytes are all in a spool's memory
// with a chunk the transport writes from there (hwg.Node.SendParts), not
// copied into a message first, and reports whether it did; the caller
// answers any other fetch.
func (n *Node) servePieces(to hwg.Process, d direct) bool {
	r, err := n.cfg.snaps.open(d.object, d.gen)
	if err != nil {
		return false
	}
	pr, ok := r.(pieceReader)
	size := r.Size()
	if !ok || d.offset >= uint64(size) {
		return false
	}
	k := int(min(d.n, uint64(2*n.cfg.ChunkSize), uint64(size)-d.offset))
	parts, release, ok := pr.pieces(int64(d.offset), k)
	if !ok {
		return false
	}
	var head [maxChunkHeader + 64]byte
	wire := appendChunkHeader(head[:0], d.object, d.gen, d.offset)
	if err := n.hn.SendParts(to, wire, parts, release); err != nil {
		n.log.Debug("transfer message", "to", to, "error", err)
	}
	if d.offset+uint64(k) == uint64(size) {
		n.emit(Event{Type: EventSnapshotSent, Object: d.object, Peer: to, Bytes: size})
	}
	return true
}

// answerFetch reads the bytes a fetch asks for from the store and returns
// the reply and its encoding: a chunk (last when it ends the snapshot),
// appended to alloc's buffer for its size (nil: a fresh one), GONE if the
// generation is gone or unreadable, or nothing (kind 0) for an offset past
// the end. err is a read failure worth logging.
func answerFetch(store snapStore, d direct, chunkSize int, alloc func(n int) []byte) (reply direct, wire []byte, last bool, size int64, err error) {
	gone := direct{kind: kindGone, object: d.object, gen: d.gen}
	r, err := store.open(d.object, d.gen)
	if err != nil {
		return gone, encodeDirect(gone), false, 0, nil // replaced twice since it was offered
	}
	size = r.Size()
	if d.offset >= uint64(size) {
		return direct{}, nil, false, size, nil
	}
	n := int(min(d.n, uint64(2*chunkSize), uint64(size)-d.offset))
	if alloc != nil {
		wire = alloc(maxChunkHeader + len(d.object) + n)
	}
	wire = appendChunkHeader(wire, d.object, d.gen, d.offset)
	h := len(wire)
	wire = slices.Grow(wire, n)[:h+n]
	got, err := r.ReadAt(wire[h:], int64(d.offset))
	if got == 0 && err != nil {
		return gone, encodeDirect(gone), false, size, err
	}
	wire = wire[:h+got]
	reply = direct{kind: kindChunk, object: d.object, gen: d.gen, offset: d.offset, data: wire[h:]}
	return reply, wire, d.offset+uint64(got) == uint64(size), size, nil
}

// tick sends ticks to the objects that asked for them.
func (n *Node) tick() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		// A joiner waiting for its state needs every tick (transfer
		// timeouts); an object waiting only for its time-based snapshot
		// needs one per SnapshotInterval, which keeps thousands of dirty
		// objects from costing a queue item each per tick.
		type dueTick struct {
			o     *Object
			ticks int
		}
		var due []dueTick
		n.mu.Lock()
		n.tickNo++
		now := n.tickNo
		ws := n.dueAt[now]
		delete(n.dueAt, now)
		for _, w := range ws {
			if w.o == nil || w.due != now {
				continue // unwatched, or due at another tick since
			}
			due = append(due, dueTick{w.o, int(now - w.last)})
			w.last = now
			n.dueIn(w, n.period(w.o))
		}
		n.mu.Unlock()
		for _, d := range due {
			n.enqueue(d.o, item{kind: itemTick, ticks: d.ticks})
		}
	}
}

// watchState counts ticks for a watched object, in Node.tickNo.
type watchState struct {
	o    *Object // nil once unwatched: a closed object is not kept
	due  uint64  // tick of its next tick item
	last uint64  // tick of its last one, or of its watch
}

// dueIn makes w's next tick item due in ticks ticks (n.mu held).
func (n *Node) dueIn(w *watchState, ticks int) {
	w.due = n.tickNo + uint64(ticks)
	n.dueAt[w.due] = append(n.dueAt[w.due], w)
}

// unwatch stops o's tick items (n.mu held).
func (n *Node) unwatch(o *Object) {
	if w := n.watched[o]; w != nil {
		w.o = nil
		delete(n.watched, o)
	}
}

// period is how many ticks o waits between tick items.
func (n *Node) period(o *Object) int {
	if o.pubReady.Load() {
		return n.cfg.snapshotTicks
	}
	return 1
}

// enqueue adds an input to o's mailbox and queues o for a worker.
func (n *Node) enqueue(o *Object, it item) { n.enqueueAll(o, []item{it}) }

// enqueueAll adds inputs to o's mailbox, in order, and queues o for a
// worker.
func (n *Node) enqueueAll(o *Object, its []item) {
	o.mu.Lock()
	if o.mail == nil {
		o.mail = getMail()
	}
	o.mail.items = append(o.mail.items, its...)
	sched := !o.scheduled
	o.scheduled = true
	o.mu.Unlock()
	if sched {
		n.mu.Lock()
		n.runq = append(n.runq, o)
		n.wake.Signal()
		n.mu.Unlock()
	}
}

// mailbox holds an object's inputs between its turns.
type mailbox struct{ items []item }

// mailboxes recycles mailboxes: under load every batch of inputs would
// otherwise be copied into a fresh slice, and an idle object keeps none.
// A sync.Pool, not a shared channel: at 10,000 objects the channel's lock,
// taken twice per object turn by the router and the workers, cost 9% of
// the process's CPU.
var mailboxes = sync.Pool{New: func() any { return &mailbox{items: make([]item, 0, 8)} }}

func getMail() *mailbox { return mailboxes.Get().(*mailbox) }

func putMail(m *mailbox) {
	if cap(m.items) > 4096 {
		return
	}
	clear(m.items) // pin no payload
	m.items = m.items[:0]
	mailboxes.Put(m)
}

// work runs objects with inputs, one batch at a time each, round robin.
func (n *Node) work() {
	defer n.wg.Done()
	for {
		n.mu.Lock()
		for len(n.runq) == 0 && !n.closed {
			n.wake.Wait()
		}
		if n.closed {
			n.mu.Unlock()
			return
		}
		o := n.runq[0]
		n.runq[0] = nil
		n.runq = n.runq[1:]
		n.mu.Unlock()

		o.mu.Lock()
		mail := o.mail
		o.mail = nil
		o.mu.Unlock()
		n.turn(o, mail.items)
		putMail(mail)
		n.release(o, false) // this worker comes back for it
	}
}

// turn is a worker's turn of o. One of plain commands only (the router
// could not take them: o was busy) is timed as a router turn is, and
// marks o slow the same way: an Apply that is slow (or blocks) met first
// on a worker must not be met next on the router, where it would hold
// every object's deliveries up (TestSlowApplyLeftToWorkers failed so in
// CI). Fast ones of an object marked slow count towards its return to
// the router (see Object.slow). A turn that takes a scheduled snapshot is
// not timed: the snapshot is the worker's job, not the Apply's.
func (n *Node) turn(o *Object, items []item) {
	o.smMu.Lock()
	size, plain := plainCommands(items)
	timed := plain && o.ready && !snapshotDue(o, uint64(size))
	var start time.Duration
	if timed {
		start = sinceStart()
	}
	for i := range items {
		o.process(&items[i])
	}
	o.smMu.Unlock()
	o.runDone()
	if !timed {
		return
	}
	switch d := sinceStart() - start; {
	case d > inlineBudget:
		o.markSlow()
	case d <= inlineBudget/2 && o.slow.Load():
		if o.fastTurns++; o.fastTurns >= o.slowPenalty {
			o.slow.Store(false) // the router may take it again
		}
	}
}

// markSlow leaves o to the workers (see Object.slow); the caller holds
// o's turn.
func (o *Object) markSlow() {
	o.slow.Store(true)
	o.fastTurns = 0
	o.slowPenalty = min(max(2*o.slowPenalty, slowFirstPenalty), slowMaxPenalty)
}

// The worker turns in a row under half the inlineBudget after which an
// object marked slow goes back to the router: slowFirstPenalty after its
// first marking, twice as many after each later one, up to
// slowMaxPenalty.
const (
	slowFirstPenalty = 16
	slowMaxPenalty   = 1 << 20
)

// process steps one input. It keeps no pointer into it (see onEvent).
func (o *Object) process(it *item) {
	switch it.kind {
	case itemEvent:
		o.onEvent(&it.ev)
	case itemDirect:
		o.onDirect(it.from, it.d)
		if it.frame != nil {
			it.frame.Release()
		}
	case itemTick:
		o.onTick(it.ticks)

	}
}

// sendLoop sends objects' outboxes: one batch per object per turn, in
// the order they asked. What callers queue meanwhile goes in an object's
// next batch. Callers sending for themselves each found the LWG service
// ready and sent alone (1.04-1.09 proposals a message at 256 clients),
// and so did this loop when it sent as soon as it woke (1.1): the
// callers that a worker's results wake are runnable but not yet run. So
// a turn with few objects first yields once, letting them queue (32-50
// proposals a message at 1 object, 2.8 at 100; the yield is a hint to
// the scheduler, not a wait: correctness does not depend on it).
func (n *Node) sendLoop() {
	defer n.wg.Done()
	var (
		q     []*Object
		preps []prepared
		msgs  []lwg.Message
		errs  []error
	)
	for {
		n.sendMu.Lock()
		for len(n.sendq) == 0 && n.bg.Err() == nil {
			n.sendIdle = true
			n.sendWake.Wait()
		}
		n.sendIdle = false
		if n.bg.Err() != nil {
			n.sendMu.Unlock()
			return
		}
		if len(n.sendq) < yieldBelow {
			n.sendMu.Unlock()
			goruntime.Gosched()
			n.sendMu.Lock()
		}
		q, n.sendq = n.sendq, q[:0]
		n.sendMu.Unlock()
		// Every object's batch goes to the LWG service in one hand-off.
		for i, o := range q {
			if b, ok := o.takeBatch(); ok {
				preps = append(preps, prepared{o, b})
				msgs = append(msgs, lwg.Message{LWG: o.lwg, Payload: b.payload})
			}
			q[i] = nil
		}
		errs = slices.Grow(errs[:0], len(msgs))[:len(msgs)]
		n.submitAll(preps, msgs, errs)
		for i, p := range preps {
			if p.o.sent(p.b, errs[i]) {
				n.kick(p.o)
			}
		}
		clear(preps)
		clear(msgs)
		clear(errs)
		preps, msgs = preps[:0], msgs[:0]
	}
}

// prepared is an object's batch on its way through the sender.
type prepared struct {
	o *Object
	b outBatch
}

// submitAll hands msgs, the batches of preps, to the LWG service, and sets
// errs[i] to what became of msgs[i] (submit's errors).
func (n *Node) submitAll(preps []prepared, msgs []lwg.Message, errs []error) {
	if len(msgs) == 0 {
		return
	}
	err := n.bg.Err()
	if err == nil {
		var proposals, reads int
		for _, p := range preps {
			proposals += p.b.proposals
			reads += p.b.reads
		}
		n.stats.proposals.Add(uint64(proposals))
		n.stats.reads.Add(uint64(reads))
		n.stats.messages.Add(uint64(len(msgs)))
		err = n.svc.MulticastBatch(n.bg, msgs, errs)
	}
	if err != nil {
		if n.bg.Err() != nil {
			err = ErrClosed
		}
		for i := range errs {
			errs[i] = err
		}
	}
}

// yieldBelow: a send turn with fewer objects waiting yields first (see
// sendLoop); a longer one is busy enough to batch without.
const yieldBelow = 64

// The host interface, for the objects.

func (n *Node) kick(o *Object) {
	n.sendMu.Lock()
	n.sendq = append(n.sendq, o)
	if n.sendIdle {
		n.sendIdle = false
		n.sendWake.Signal()
	}
	n.sendMu.Unlock()
}

func (n *Node) multicast(o *Object, payload []byte) {
	if err := n.svc.Multicast(n.bg, o.lwg, payload); err != nil {
		n.log.Debug("multicast", "object", o.id, "error", err)
	}
}

func (n *Node) send(to hwg.Process, d direct) {
	if err := n.hn.Send(to, encodeDirect(d)); err != nil {
		n.log.Debug("transfer message", "to", to, "error", err)
	}
}

func (n *Node) store() snapStore     { return n.cfg.snaps }
func (n *Node) logger() hclog.Logger { return n.log }
func (n *Node) applied(o *Object)    { o.applies.Add(1) }
func (n *Node) observe(e Event)      { n.emit(e) }
func (n *Node) submit(o *Object, payload []byte, proposals, reads int) error {
	if err := n.bg.Err(); err != nil {
		return ErrClosed
	}
	n.stats.proposals.Add(uint64(proposals))
	n.stats.reads.Add(uint64(reads))
	n.stats.messages.Add(1)
	return n.svc.Multicast(n.bg, o.lwg, payload)
}

func (n *Node) forget(ctx context.Context, o *Object) error {
	if err := n.bg.Err(); err != nil {
		return ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(n.bg, cancel) // Close ends the wait too
	defer stop()
	if err := n.svc.Multicast(ctx, o.lwg, encodeForget()); err != nil {
		if n.bg.Err() != nil {
			return ErrClosed
		}
		return err
	}
	return nil
}

func (n *Node) watch(o *Object, on bool) {
	n.mu.Lock()
	if on && !n.closed && n.objects[o.lwg] == o {
		if w := n.watched[o]; w == nil {
			left := n.period(o)
			if o.pubReady.Load() {
				// Spread time-based snapshots over the interval, so that
				// thousands of objects written at once do not all
				// snapshot on the same tick and stall the workers.
				left += int(o.spread % uint32(n.cfg.snapshotTicks))
			}
			w = &watchState{o: o, last: n.tickNo}
			n.watched[o] = w
			n.dueIn(w, left)
		} else if p := n.period(o); n.tickNo+uint64(p) < w.due {
			n.dueIn(w, p) // sooner: the entry at the old tick is skipped
		}
	} else if !on {
		n.unwatch(o)
	}
	n.mu.Unlock()
}

// ended rejoins an object whose node was excluded from its group; a Left
// object was closed.
func (n *Node) ended(o *Object, t lwg.EventType) {
	if t != lwg.EventExcluded {
		return
	}
	o.mu.Lock()
	closed := o.closed
	o.mu.Unlock()
	if closed {
		return
	}
	n.log.Info("excluded from an object's group; joining again", "object", o.id)
	go func() {
		for {
			err := n.svc.Join(n.bg, o.lwg)
			if err == nil || n.bg.Err() != nil {
				return
			}
			select {
			case <-n.stop:
				return
			case <-time.After(n.cfg.TickInterval * retryTicks):
			}
		}
	}()
}

func (n *Node) emit(e Event) {
	switch e.Type {
	case EventView:
		n.stats.views.Add(1)
	case EventSnapshotTaken:
		n.stats.snapshots.Add(1)
	case EventSnapshotSent:
		n.stats.sentSnapshots.Add(1)
		n.stats.sentBytes.Add(uint64(e.Bytes))
	case EventSnapshotReceived:
		n.stats.receivedSnapshots.Add(1)
		n.stats.received.Add(uint64(e.Bytes))
	}
	n.mu.Lock()
	obs := n.observers
	n.mu.Unlock()
	for _, fn := range obs {
		fn(e)
	}
}
