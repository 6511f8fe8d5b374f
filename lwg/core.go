package lwg

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/lwgkit/lwgkit/hwg"
)

// Core hosts every LWG endpoint of one node: a pure, deterministic state
// machine driven by the events of the node's HWGs (HWGEvent), Tick and the
// application's requests, which hands back what must happen through Ready.
// It starts no goroutines, reads no clock and does no I/O. One goroutine
// owns a Core (a Service's loop, or a simulator).
type Core struct {
	cfg      Config
	self     hwg.Process
	dir      *directory
	carriers map[hwg.GroupID]*carrier
	// carrierList holds carriers' values by group, for the walks that
	// must be deterministic; nil once a carrier is added or forgotten
	// (carrierOf, forgetCarrier). Tick walks it
	// every tick: sorting 10,000 keys each time (a carrier per LWG) took
	// 2 ms, and looking each up again most of the rest
	// (BenchmarkCoreTick).
	carrierList []*carrier
	eps         map[ID]*endpoint
	// handleItems is handlesDelivered's scratch, kept between messages.
	handleItems []handleItem
	// tags: what SetTag attached to each LWG, carried by its deliveries.
	tags    map[ID]any
	intents map[ID]*intent
	order   []ID // intents in request order, so advance is deterministic
	inOrder map[ID]bool
	// stale: an input since the last advance may have changed what any
	// Join or Leave waits on (the directory's events, ticks). touched:
	// carriers with an event since then, which move on only the intents
	// listed in waiting under them (or under ""). With a carrier per LWG,
	// a burst of n joins gets n carrier installs, and walking every
	// intent at each made the burst quadratic (BenchmarkCoreJoinBurst).
	stale   bool
	touched []hwg.GroupID
	waiting map[hwg.GroupID][]ID
	// sentOn lists the intents with a request in flight on each carrier
	// (in.joinOn or in.leaveOn), for forgetInFlight: walking every intent
	// at each carrier's snapshot made a burst of joins on carriers of
	// their own quadratic. Entries whose request ended since are skipped;
	// advance's full walk lists them afresh.
	sentOn map[hwg.GroupID][]ID
	// intentVisits counts advanceIntent calls (tests: what a burst costs);
	// passes, advanceWaiting's passes.
	intentVisits uint64
	passes       uint64
	switches     map[ID]*switchReq
	// pendingEP: endpoints waiting to acknowledge a switch or to see their
	// LWG announced on its new carrier; advance retries them.
	pendingEP map[ID]bool
	// booted: carriers this process bootstrapped or gave up as unstarted
	// (it must never start one twice, nor one it unregistered).
	booted map[hwg.GroupID]bool
	// unbooted: carriers the directory made this process the creator of
	// and that it has not started yet, with the tick it learnt so (see
	// reapUnbooted).
	unbooted map[hwg.GroupID]uint64
	// dirContacts are the nodes to join the directory through again after
	// an exclusion, when its last view is unknown.
	dirContacts []hwg.NodeID
	ticks       uint64
	// replaying: installs are replays of a switched LWG's past on its new
	// carrier, so queued multicasts wait for the last of them.
	replaying bool
	// raisingAll: Hold.up is being raised in every LWG of a carrier; the
	// carrier's BlockOK is considered once, after.
	raisingAll bool

	// sawInstall, if set (tests), sees every LWG install of a table this
	// node keeps, local endpoint or not.
	sawInstall func(Event)

	actions []Action
	events  []Event
	// Handed back by Recycle, for the next Readys: event arrays, the
	// largest first (see keepSpare), and one action array.
	spares    [][]Event
	spareActs []Action
	batch     map[hwg.GroupID][]*control   // control messages not yet sent, per HWG
	data      map[hwg.GroupID]*pendingData // data not yet sent, per HWG
	dataOrder []hwg.GroupID                // the HWGs with data in data, in the order they got it
	stats     Stats
	counts    counters // per-LWG traffic, for Observe

	// switchEnds are the switch requests ended without moving their LWG
	// since the last Ready (endSwitch).
	switchEnds []switchEnd
}

// endpoint is this node's membership in one LWG.
type endpoint struct {
	id   ID
	h    hwg.GroupID // current carrier
	view View
	// blocked: EventBlock raised, HoldOK not yet given. held: HoldOK given;
	// multicasts queue until the next install.
	blocked, held bool
	queue         [][]byte
	// okSent is the view whose flush this member acknowledged.
	okSent uint64
	// awaitAdopt: the LWG switched to h and waits for its announcement.
	awaitAdopt bool
	adoptSent  bool
	// incoming: the carrier this member acknowledged a switch to; early
	// holds the LWG's events there until this node sees the switch point.
	incoming   hwg.GroupID
	early      []Event
	rebindSent bool
	// Traffic counters (see counters), kept here while the endpoint lives:
	// one map update less per data message at 10,000 LWGs.
	traffic, sent uint64
	// ent caches car.entries[id] for the carrier gen of entCar.
	ent    *entry
	entCar *carrier
	entGen uint64
	// hdl: this LWG's data handle on carrier hdlCar, valid while the
	// carrier's installs are hdlInstall (handles.go).
	hdl        uint64
	hdlCar     *carrier
	hdlInstall uint64
	tag        any // see SetTag
	// ended: no longer in eps (a later Join makes a new endpoint).
	ended bool
}

// intent is a Join or Leave in progress.
type intent struct {
	leave    bool
	bindSent bool        // a kBind is in flight
	joinOn   hwg.GroupID // carrier of an in-flight kJoin
	leaveOn  hwg.GroupID // carrier of an in-flight kLeave
	rejoin   bool        // Join came during the leave: join once it is done
	// waitOn is the group whose events can move it on, as its last
	// advance found ("" if any carrier's may); listed: it is in
	// Core.waiting[waitOn].
	waitOn hwg.GroupID
	listed bool
	// pass is the last advanceWaiting pass that looked at it: an intent
	// listed twice in one list (listed, moved away and back) is looked
	// at once.
	pass uint64
}

// switchEnd is a switch request that ended without moving its LWG: err is
// nil if the LWG was on the target carrier already, else why it was given
// up. A switch that moves its LWG ends with the LWG's install on the new
// carrier, and one whose endpoint ends with EventLeft or EventExcluded:
// those are events, seen by everyone.
type switchEnd struct {
	l   ID
	err error
}

// endSwitch drops l's switch request, which ended without moving l, and
// tells the driver (Ready.switchEnds): the Service's Switch waits for an
// install on the new carrier, which will not come.
func (c *Core) endSwitch(l ID, err error) {
	delete(c.switches, l)
	c.switchEnds = append(c.switchEnds, switchEnd{l: l, err: err})
}

type switchReq struct {
	base    hwg.GroupID
	sent    bool   // kSwitch in flight
	started uint64 // view whose flush is the switch, once applied
	ticks   int
	bound   bool // a kBind for base is in flight
}

// NewCore returns a Core for cfg.Self. It does nothing until the directory
// is started with BootstrapDirectory or JoinDirectory.
func NewCore(cfg Config) (*Core, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Core{
		cfg:       cfg,
		self:      cfg.Self,
		carriers:  map[hwg.GroupID]*carrier{},
		eps:       map[ID]*endpoint{},
		tags:      map[ID]any{},
		intents:   map[ID]*intent{},
		inOrder:   map[ID]bool{},
		waiting:   map[hwg.GroupID][]ID{},
		sentOn:    map[hwg.GroupID][]ID{},
		switches:  map[ID]*switchReq{},
		pendingEP: map[ID]bool{},
		booted:    map[hwg.GroupID]bool{},
		unbooted:  map[hwg.GroupID]uint64{},
		batch:     map[hwg.GroupID][]*control{},
		data:      map[hwg.GroupID]*pendingData{},
	}
	c.dir = newDirectory(cfg.Directory)
	c.dir.currentOnly = cfg.currentSnapshotsOnly
	c.dir.me = cfg.Self
	c.dir.applied = c.dirApplied
	return c, nil
}

// BootstrapDirectory creates the directory HWG with the given initial
// members (which must include this node); every initial member calls it
// with the same list.
func (c *Core) BootstrapDirectory(members []hwg.Process) error {
	if !slices.Contains(members, c.self) {
		return fmt.Errorf("%w: directory members %v do not include %v", ErrInvalidConfig, members, c.self)
	}
	c.dirContacts = nodesOf(members, c.self.Node)
	c.act(Action{Type: ActBootstrap, Group: c.cfg.Directory, Members: slices.Clone(members)})
	return nil
}

// JoinDirectory joins the directory HWG through contacts (any nodes of the
// cluster).
func (c *Core) JoinDirectory(contacts []hwg.NodeID) error {
	c.dirContacts = slices.Clone(contacts)
	c.act(Action{Type: ActJoin, Group: c.cfg.Directory, Contacts: slices.Clone(contacts)})
	return nil
}

func validID(l ID) error {
	if l == "" || len(l) > maxIDLen {
		return fmt.Errorf("%w: %q", ErrBadID, l)
	}
	return nil
}

// Join makes this node a member of l, creating it if it does not exist. The
// join completes with an EventInstall whose Joined holds this node.
func (c *Core) Join(l ID) error {
	if err := validID(l); err != nil {
		return err
	}
	if c.eps[l] != nil {
		return ErrAlreadyMember
	}
	if in := c.intents[l]; in != nil {
		switch {
		case !in.leave:
			return ErrAlreadyMember
		case in.leaveOn != "":
			in.rejoin = true // the leave is under way: join again after it
		default:
			in.leave = false // the leave was not asked yet: stay
		}
		return nil
	}
	c.addIntent(l, &intent{})
	c.advanceIntent(l) // only this one: a burst of n Joins costs O(n)
	return nil
}

// SetTag attaches v to l at this node: every EventDeliver of l carries it
// in Event.Tag, so that an application keeping an object per LWG finds it
// without a lookup (at 10,000 LWGs, a map lookup by ID is a cache miss or
// two per message). A nil v removes the tag. It outlives the endpoint:
// after a Leave or an exclusion, a later Join's deliveries carry it too.
func (c *Core) SetTag(l ID, v any) {
	if v == nil {
		delete(c.tags, l)
	} else {
		c.tags[l] = v
	}
	if ep := c.eps[l]; ep != nil {
		ep.tag = v
	}
}

// Leave removes this node from l. It completes with EventLeft.
func (c *Core) Leave(l ID) error {
	in := c.intents[l]
	if c.eps[l] == nil {
		if in == nil || in.leave {
			return ErrNotMember
		}
		if in.joinOn == "" {
			delete(c.intents, l) // not asked yet: just forget it
			return nil
		}
	}
	if in == nil {
		in = &intent{}
		c.addIntent(l, in)
	}
	in.leave, in.rejoin = true, false
	c.advanceIntent(l)
	return nil
}

// Multicast sends payload to l in total order. It is sent at once in the
// current view, or, after HoldOK, queued and sent in the next view.
func (c *Core) Multicast(l ID, payload []byte) error {
	return c.multicastTo(c.eps[l], payload)
}

// multicastTo is Multicast to ep's LWG, for a caller that holds ep (a
// Service, from the lookup that Service.Multicast makes anyway): it saves
// a second lookup. ep is nil when this node has no endpoint.
func (c *Core) multicastTo(ep *endpoint, payload []byte) error {
	if ep == nil {
		return ErrNotMember
	}
	if ep.held || ep.awaitAdopt || c.carriers[ep.h].blockAcked {
		ep.queue = append(ep.queue, payload)
		return nil
	}
	c.sendData(ep, payload)
	return nil
}

func (c *Core) sendData(ep *endpoint, payload []byte) {
	c.flushBatch(ep.h) // control messages made earlier go first
	// The data waits for the end of this step (Ready) or for anything
	// else asked of the carrier (act), and goes with the other data made
	// meanwhile on the same carrier in one HWG message.
	pd := c.data[ep.h]
	if pd == nil {
		pd = &pendingData{}
		c.data[ep.h] = pd
	}
	if len(pd.entries) == 0 {
		c.dataOrder = append(c.dataOrder, ep.h)
	}
	// An upper bound of the entry's encoded size in any of the formats
	// (a handle takes at most 5 bytes), and of the message's header.
	size := 5 + 1 + len(ep.id) + uvarintLen(ep.view.ID) + uvarintLen(uint64(len(payload))) + len(payload)
	if len(pd.entries) > 0 && pd.size+size > c.cfg.MaxMessageBytes {
		c.flushData(ep.h)
	}
	if len(pd.entries) == 0 {
		pd.size = 1 + binary.MaxVarintLen64
	}
	pd.entries = append(pd.entries, dataEntry{l: ep.id, ep: ep, view: ep.view.ID, payload: payload})
	pd.size += size
	ep.sent++
	if !c.cfg.noSendEvents {
		c.emit(Event{Type: EventSend, LWG: ep.id, View: View{ID: ep.view.ID}, Payload: payload})
	}
}

// keepDataEntries bounds the array of pending data a carrier keeps from
// one message to the next. A step of a busy node sends hundreds of
// entries on a carrier (rsm at 10,000 objects: one per object proposed
// to); at the bound of 64 that was before, each step grew a new array,
// a third of what such a node allocated.
const keepDataEntries = 4096

// pendingData is the data a carrier has waiting to be sent.
type pendingData struct {
	entries []dataEntry
	size    int // an upper bound of their encoded size
}

// flushData asks for the data waiting for carrier h to be multicast: alone
// as a tagData message, or several in one tagBatch.
func (c *Core) flushData(h hwg.GroupID) {
	pd := c.data[h]
	if pd == nil || len(pd.entries) == 0 {
		return
	}
	var (
		b    []byte
		view hwg.ViewID
		car  = c.carriers[h]
	)
	if car != nil {
		view = car.view.ID // (the handles, and the entries' LWG views, are of it)
	}
	switch {
	case car != nil && car.handlesOK(len(pd.entries)) && pd.size <= c.cfg.MaxMessageBytes:
		// (A larger message is one entry too large to share one, which
		// the HWG may refuse: its bindings would be lost with it.)
		car.assignHandles(pd.entries)
		b = encodeHandles(uint64(car.view.ID), pd.entries)
	case len(pd.entries) == 1:
		e := pd.entries[0]
		b = encodeData(e.l, e.view, e.payload)
	default:
		b = encodeBatch(pd.entries)
	}
	if len(pd.entries) > 1 {
		c.stats.Batched += uint64(len(pd.entries))
	}
	c.actions = append(c.actions, Action{Type: ActMulticast, Group: h, Payload: b, View: view})
	clear(pd.entries)
	pd.entries, pd.size = pd.entries[:0], 0
	if cap(pd.entries) > keepDataEntries {
		pd.entries = nil // a burst's worth of slots is not kept
	}
}

// HoldOK answers l's EventBlock (only with Config.ManualHoldOK): this
// member sends nothing more in the current view.
func (c *Core) HoldOK(l ID) error {
	ep := c.eps[l]
	if ep == nil {
		return ErrNotMember
	}
	if !ep.blocked {
		return ErrNotHolding
	}
	c.holdOK(ep)
	c.advance()
	return nil
}

// Switch moves l to the carrier the directory resolves base to (creating
// it if needed). This node must be a member of l. The switch completes
// when l installs a view whose HWG is the new carrier; it is abandoned if
// the members cannot all join the new carrier within SwitchTimeoutTicks (a
// view change of the old carrier that interrupts it makes it start again).
// A switch that ends without moving l (abandoned, or l is there already)
// emits no event: Ready reports it to the Service, whose Switch call waits.
func (c *Core) Switch(l ID, base hwg.GroupID) error {
	ep := c.eps[l]
	if ep == nil {
		return ErrNotMember
	}
	if c.switches[l] != nil || ep.awaitAdopt {
		return ErrSwitching
	}
	c.switches[l] = &switchReq{base: base}
	c.advance()
	return nil
}

// Tick advances time by one tick: HWG join timeouts, switch timeouts,
// lazy leaves of idle carriers, and the offer of a directory state kept
// through an exclusion. Idle LWGs have no timers.
func (c *Core) Tick() {
	c.ticks++
	if k := c.dir.tick(); k != nil {
		c.sendSnapshot(c.dir.group, k.view, k.at, k.snap, k.owed, k.since)
	}
	for _, car := range c.sortedCarriers() {
		h := car.group
		if c.settleGone(car) {
			continue
		}
		if car.member && !car.synced {
			// Admitted but no snapshot: if no member that holds the table
			// is left (it failed before sending it), none ever comes. Leave
			// and join again; a carrier that everyone leaves dies, and its
			// LWGs, which had no live member, start afresh elsewhere.
			// But not while a registered member is outside this view: it may
			// hold the table behind a partition, and if everyone here left,
			// nobody would tell it it was excluded (strandedMember).
			car.joinTicks++
			dead := c.dir.synced && !c.dir.alive(h)
			if dead || car.joinTicks > c.cfg.TableTimeoutTicks && !c.strandedMember(car) {
				car.joinTicks = 0
				c.leaveCarrier(car)
			}
		}
		if car.joining {
			car.joinTicks++
		}
		if car.joining && (c.dir.synced && !c.dir.alive(h) || car.joinTicks > 10*c.cfg.TableTimeoutTicks) {
			// The carrier died (or was never started) while this node was
			// joining: nobody is left to admit it. Stop (EventLeft follows,
			// which unregisters); if it is still needed, the next attempt
			// asks the directory again. A join to a live carrier is not
			// timed out: hwg retries it, however long many joins take.
			car.joining = false
			c.leaveCarrier(car)
		}
		if car.member && c.dir.synced && len(car.local) == 0 && len(car.incoming) == 0 && c.ticks-car.pinned > uint64(c.cfg.IdleTicks) && !car.blocking && !c.dirBindsTo(h) && !c.strandedMember(car) {
			c.leaveCarrier(car)
			car.pinned = c.ticks // do not ask again until it answers
		}
	}
	for _, l := range sortedKeys(c.switches) {
		sw := c.switches[l]
		sw.ticks++
		if sw.ticks <= c.cfg.SwitchTimeoutTicks {
			continue
		}
		ep := c.eps[l]
		if ep != nil && sw.started != 0 {
			if e := c.carriers[ep.h].entries[l]; e != nil && e.Fl != nil && e.Fl.To != "" && e.View.ID == sw.started {
				c.ctl(ep.h, kAbort, item{LWG: l, View: sw.started, Group: sw.base})
			}
		}
		c.endSwitch(l, fmt.Errorf("%w: %s to %s after %d ticks", ErrSwitchTimeout, l, sw.base, sw.ticks))
	}
	c.reapUnbooted()
	c.stale = true // timeouts may have moved something on
	c.advance()
}

// noteCreated notes carrier h if the directory made this process its
// creator and it has not started it.
func (c *Core) noteCreated(h hwg.GroupID) {
	rec := c.dir.carriers[h]
	if rec == nil || rec.Creator != c.self || c.booted[h] || !rec.has(c.self) {
		return
	}
	if _, ok := c.unbooted[h]; !ok {
		c.unbooted[h] = c.ticks
	}
}

// reapUnbooted unregisters the carriers this process was made the creator
// of and that nothing here asked to start (needCarrier pins the carrier)
// for IdleTicks: the switch or join that asked the directory for them
// ended first (it timed out, the LWG was left or already there). Listed
// under this process alone and never started, such a carrier would stay
// alive in the directory for good, and joiners sent to it would wait for
// a creator that never admits them; once unregistered it is dead, and
// whoever needs its base gets a new one.
func (c *Core) reapUnbooted() {
	if !c.dir.synced {
		return
	}
	for _, h := range sortedKeys(c.unbooted) {
		rec := c.dir.carriers[h]
		if rec == nil || rec.Creator != c.self || c.booted[h] || !rec.has(c.self) {
			delete(c.unbooted, h)
			continue
		}
		since := c.unbooted[h]
		if car := c.carriers[h]; car != nil {
			since = max(since, car.pinned)
		}
		if c.ticks-since <= uint64(c.cfg.IdleTicks) {
			continue
		}
		delete(c.unbooted, h)
		c.booted[h] = true
		car := c.carrierOf(h)
		car.out = true
		c.ctl(c.cfg.Directory, kUnreg, item{Group: h})
		car.unregSent = true
	}
}

// dirBindsTo reports whether carrier h must stay although this node has
// no endpoint on it: an LWG moved from h to a live carrier and the
// directory does not say so yet. Joiners whose directory copy is behind
// find the LWG through h's record of the move, and the directory lets an
// LWG start afresh only when the carrier it moved to died, which would be
// wrong while its members live elsewhere.
func (c *Core) dirBindsTo(h hwg.GroupID) bool {
	car := c.carriers[h]
	if car == nil || !car.synced {
		return true
	}
	for _, l := range sortedKeys(car.gone) {
		if g := car.gone[l]; g.To != "" && c.dir.alive(g.To) && c.dir.lwgs[l].HWG != g.To {
			return true
		}
	}
	return false
}

// strandedMember reports whether a registered member of car is outside this
// node's view of it: excluded behind a partition, it may still hold an
// older view. hwg has former members tell it (MsgStale), but one that
// restarted has forgotten; staying in the carrier keeps a member that can,
// until the stranded one learns of its exclusion and unregisters.
func (c *Core) strandedMember(car *carrier) bool {
	rec := c.dir.carriers[car.group]
	if rec == nil {
		return false
	}
	for _, p := range rec.Regs {
		if !car.view.Contains(p) {
			return true
		}
	}
	return false
}

// Ready returns what the caller must do and resets it.
func (c *Core) Ready() Ready {
	for _, h := range sortedKeys(c.batch) {
		c.flushBatch(h)
	}
	// In the order the carriers got data, not the map's: the simulator
	// replays a seed exactly only if the Core's output is a function of
	// its input.
	for _, h := range c.dataOrder {
		c.flushData(h) // a no-op if something asked of h flushed it
	}
	clear(c.dataOrder)
	c.dataOrder = c.dataOrder[:0]
	var rd Ready
	if len(c.actions) > 0 {
		rd.Actions, c.actions, c.spareActs = c.actions, c.spareActs, nil
	}
	rd.Events = c.TakeEvents()
	rd.switchEnds, c.switchEnds = c.switchEnds, nil
	return rd
}

// TakeEvents returns the events raised since the last Ready or TakeEvents
// and leaves the rest for the next Ready: the actions, and the data and
// control still being gathered into one HWG message per carrier. A driver
// that steps several inputs before it carries out their actions, as
// Service does with a burst of HWG events, may call it after each input
// to learn which events that input raised; the simulator does, to trace
// each LWG event after the carrier events the Core had taken before it.
// The slice is the caller's until it hands it to Recycle (in a Ready).
func (c *Core) TakeEvents() []Event {
	if len(c.events) == 0 {
		return nil
	}
	evs := c.events
	if n := len(c.spares); n > 0 {
		c.events, c.spares[n-1] = c.spares[n-1], nil
		c.spares = c.spares[:n-1]
	} else {
		// Every array is still with the reader: a new one the size of
		// this batch (up to keepEventsCap), not one grown by doubling
		// from nothing, which copies each event about twice more.
		c.events = make([]Event, 0, min(len(evs), keepEventsCap))
	}
	return evs
}

// Recycle hands back the slices of a Ready once the caller is done with
// them (the actions and events may live on as copies; leave out a slice
// still in use), so that a later Ready reuses their memory instead of
// growing new ones: under load the Core emits an event per delivery and
// an action per multicast. Optional; call it from the goroutine that
// drives the Core.
func (c *Core) Recycle(rd Ready) {
	if evs := rd.Events; cap(evs) > 0 {
		clear(evs) // drop the payloads
		if len(c.events) == 0 && cap(evs) > cap(c.events) {
			evs, c.events = c.events, evs[:0]
		}
		c.keepSpare(evs[:0])
	}
	if acts := rd.Actions; cap(acts) > 0 {
		clear(acts)
		switch {
		case len(c.actions) == 0 && cap(acts) > cap(c.actions):
			c.actions = acts[:0]
		case cap(acts) > cap(c.spareActs):
			c.spareActs = acts[:0]
		}
	}
}

// Event arrays kept for later Readys. A runtime that hands the reader
// its events in batches has several in flight (the Service queues up to
// 64): with one spare, each batch beyond two was a new array, a fifth of
// what a busy node allocated at 10,000 LWGs. The first spare may be of
// any size (a burst's), the others of at most keepEventsCap events.
const (
	maxSpareEvents = 8
	keepEventsCap  = 4096
)

// keepSpare keeps evs (empty) for a later Ready, if there is room.
func (c *Core) keepSpare(evs []Event) {
	switch {
	case cap(evs) == 0:
	case len(c.spares) == 0:
		c.spares = append(c.spares, evs)
	case cap(evs) > cap(c.spares[0]):
		// The largest goes first, taken last; the one it displaces is
		// kept as the others are.
		evs, c.spares[0] = c.spares[0], evs
		fallthrough
	default:
		if len(c.spares) < maxSpareEvents && cap(evs) <= keepEventsCap {
			c.spares = append(c.spares, evs)
		}
	}
}

// Stats returns the counters.
func (c *Core) Stats() Stats { return c.stats }

// Lookup returns the carrier the local directory copy binds l to.
func (c *Core) Lookup(l ID) (hwg.GroupID, bool) {
	b, ok := c.dir.lwgs[l]
	return b.HWG, ok
}

// View returns this node's current view of l and its carrier.
func (c *Core) View(l ID) (View, hwg.GroupID, bool) {
	ep := c.eps[l]
	if ep == nil {
		return View{}, "", false
	}
	return ep.view.Clone(), ep.h, true
}

// Endpoints returns the number of local LWG endpoints.
func (c *Core) Endpoints() int { return len(c.eps) }

// HWGEvent hands the Core one event of one of the node's HWGs, in the order
// the HWG layer emitted them.
func (c *Core) HWGEvent(e hwg.Event) {
	if e.Type == hwg.EventDeliver && len(e.Payload) > 0 && (e.Payload[0] == tagData || e.Payload[0] == tagBatch || e.Payload[0] == tagHandles) {
		// The hot path, kept apart so that e stays on the stack: the
		// other events' handlers take its address.
		if car := c.carriers[e.Group]; car != nil && e.Group != c.cfg.Directory {
			c.dataDelivered(car, e.Msg.Sender, e.Payload)
		} else if e.Group == c.cfg.Directory {
			c.stats.Malformed++
		}
		c.advance()
		return
	}
	ev := e
	c.hwgEvent(&ev)
}

func (c *Core) hwgEvent(e *hwg.Event) {
	car := c.carriers[e.Group]
	// Anything but data and sends may move a Join or Leave on: a
	// carrier's event those waiting on it, others any.
	switch {
	case e.Type == hwg.EventSend:
	case car == nil || e.Group == c.cfg.Directory:
		c.stale = true
	case !c.dir.synced:
		// advance waits for the directory, whose sync walks every intent.
	case len(c.touched) == 0 || c.touched[len(c.touched)-1] != e.Group:
		c.touched = append(c.touched, e.Group)
	}
	if e.Group == c.cfg.Directory {
		c.dirEvent(e)
	} else if car != nil {
		c.carrierEvent(car, e)
	}
	c.advance()
}

func (c *Core) dirEvent(e *hwg.Event) {
	d := c.dir
	switch e.Type {
	case hwg.EventInstall:
		if d.onInstall(c.self, e, d) {
			owed, since := d.owedList()
			c.sendSnapshot(d.group, e.View.ID, 0, d.snapshot(), owed, since)
		}

	case hwg.EventDeliver:
		c.replicaDeliver(&d.replica, d, e)
	case hwg.EventBlock:
		// What this node queued for the directory goes in the view
		// being flushed, as on a carrier (maybeBlockOK): the runtime
		// takes many events before Ready, so controls queued by earlier
		// ones would otherwise follow the BlockOK into the next view.
		c.flushBatch(d.group)
		c.act(Action{Type: ActBlockOK, Group: d.group, View: e.View.ID})
	case hwg.EventExcluded, hwg.EventLeft:
		// Out of the cluster: join again as a new member. Carriers are not
		// touched; their own views decide their membership.
		contacts := nodesOf(d.view.Members, c.self.Node)
		if len(contacts) == 0 {
			contacts = c.dirContacts
		}
		d.onGone(d)
		c.dirContacts = contacts
		c.forgetInFlight(d.group)
		c.act(Action{Type: ActJoin, Group: d.group, Contacts: contacts})
	}
}

// forgetInFlight clears what this node had in flight in group h: it was
// lost with the node's membership, or its effect (which this node could not
// watch) is in the snapshot it restored. Requests are made again as needed;
// every one is idempotent or names the version it replaces, so a repeat is
// harmless.
func (c *Core) forgetInFlight(h hwg.GroupID) {
	if h == c.cfg.Directory {
		for _, car := range c.carriers {
			car.regSent, car.unregSent = false, false
		}
		for _, in := range c.intents {
			in.bindSent = false
		}
		for _, sw := range c.switches {
			sw.bound = false
		}
		for _, ep := range c.eps {
			ep.rebindSent = false
		}
		return
	}
	for _, l := range c.sentOn[h] {
		if in := c.intents[l]; in != nil {
			if in.joinOn == h {
				in.joinOn = ""
			}
			if in.leaveOn == h {
				in.leaveOn = ""
			}
		}
	}
	delete(c.sentOn, h)
}

func nodesOf(ps []hwg.Process, except hwg.NodeID) []hwg.NodeID {
	var out []hwg.NodeID
	for _, p := range ps {
		if p.Node != except {
			out = append(out, p.Node)
		}
	}
	return out
}

// replicaDeliver applies one delivered payload to a replicated state,
// logging it while the state is not synced.
func (c *Core) replicaDeliver(r *replica, st state, e *hwg.Event) {
	if len(e.Payload) == 0 || e.Payload[0] != tagControl {
		if r.group != c.cfg.Directory {
			c.dataDelivered(c.carriers[r.group], e.Msg.Sender, e.Payload)
		} else {
			c.stats.Malformed++
		}
		return
	}
	ctl, err := decodeControl(e.Payload)
	if err != nil {
		c.stats.Malformed++
		return
	}
	restored, send, malformed := r.deliver(c.self, e.Msg.Sender, ctl, st)
	if malformed {
		c.stats.Malformed++
	}
	if send {
		owed, since := r.owedList()
		c.sendSnapshot(r.group, r.view.ID, r.delivered, st.snapshot(), owed, since)
	}
	if restored {
		if ctl.View != r.view.ID || ctl.At != 0 {
			c.stats.LateRestores++
		}
		c.forgetInFlight(r.group)
		if r != &c.dir.replica {
			// It holds the table now: a member in the directory's sense.
			c.ctl(c.cfg.Directory, kMember, item{Group: r.group})
		} else {
			// Back in the directory: correct what it says of this node's
			// carriers and of the LWGs it coordinates (updates may have
			// been lost with its membership). A carrier that lists this
			// node but that it keeps no record of (it left and forgot it,
			// and a member's kMember admitting it came later) gets one, to
			// be unregistered below.
			for _, h := range sortedKeys(c.dir.carriers) {
				if c.carriers[h] == nil && c.dir.carriers[h].has(c.self) {
					c.carrierOf(h).out = true
				}
				c.noteCreated(h)
			}
			for _, car := range c.sortedCarriers() {
				h := car.group
				rec := c.dir.carriers[h]
				if !car.synced && (rec == nil || !rec.registered(c.self)) {
					// Its kUnreg may have been applied while this node
					// was out of the directory (forgetInFlight cleared
					// unregSent): nothing is left to wait for.
					c.forgetCarrier(car)
					continue
				}
				if car.synced {
					if rec == nil {
						c.leaveCarrier(car) // declared dead meanwhile
						continue
					}
					if !rec.has(c.self) {
						c.ctl(c.cfg.Directory, kMember, item{Group: h})
					}
					// The other members of its view may have lost their
					// registrations as this node did (a joiner's, and the
					// admitting member's for it, both with their directory
					// memberships): if every registered member then went,
					// the directory would declare the carrier dead while
					// they hold its table, and the LWGs would start a
					// second life beside the first (compose seed 189).
					// The view stamps the registration, so one older than
					// a member's departure is ignored.
					var others []hwg.Process
					for _, p := range car.view.Members {
						if p != c.self && !rec.has(p) {
							others = append(others, p)
						}
					}
					if len(others) > 0 {
						c.ctl(c.cfg.Directory, kMember, item{Group: h, Members: others, View: uint64(car.view.ID)})
					}
				} else if rec != nil && rec.has(c.self) && !car.member && !car.joining && !car.unregSent &&
					(rec.Creator != c.self || c.booted[h]) && !c.cfg.keepStaleRegs {
					// A registered member of a carrier this node is out of:
					// it left or was excluded, and its kUnreg was lost with
					// its directory membership or is still in flight (this
					// node cannot tell: forgetInFlight cleared unregSent; a
					// second kUnreg is harmless). Nobody else removes a
					// process that is still alive, so if it was lost the
					// directory would count this node as a member for good
					// and never declare the carrier dead: joiners would keep
					// asking it to admit them (RSM seed 1178). A creator
					// that has not bootstrapped yet is not out: it is about
					// to start the carrier. (A stale Pending entry is
					// harmless: it only lets this node join without a kReg.)
					c.ctl(c.cfg.Directory, kUnreg, item{Group: h, View: car.lastView})
					car.unregSent = true
				}
			}
			for _, l := range sortedKeys(c.eps) {
				c.checkBinding(c.eps[l])
			}
		}
	}
}

func (c *Core) carrierEvent(car *carrier, e *hwg.Event) {
	switch e.Type {
	case hwg.EventInstall:
		if car.joining || car.synced {
			car.joinTicks = 0
		}
		car.joining, car.rejoining = false, false
		car.blocking, car.blockAcked = false, false
		// The senders number their LWGs afresh, this node too.
		car.installs++
		clear(car.received)
		car.nextHandle, car.sentHandles = 0, nil
		if car.onInstall(c.self, e, car) {
			owed, since := car.owedList()
			c.sendSnapshot(car.group, e.View.ID, 0, car.snapshot(), owed, since)
			// Register the joiners as members now, before anything this
			// node says later (such as its own departure) can leave the
			// directory thinking the carrier has no member: the snapshot
			// will reach them unless the view changes first, and then a
			// member of the next view owes it.
			joined := slices.DeleteFunc(slices.Clone(e.Joined), func(p hwg.Process) bool { return p == c.self })
			if len(joined) > 0 {
				c.ctl(c.cfg.Directory, kMember, item{Group: car.group, Members: joined, View: uint64(e.View.ID)})
			}
		}
	case hwg.EventDeliver:
		c.replicaDeliver(&car.replica, car, e)
	case hwg.EventBlock:
		// Hold.up in every LWG here, then answer once: checking after each
		// of n automatic HoldOKs would cost O(n²).
		car.blocking, car.blockView = true, e.View.ID
		c.raisingAll = true
		c.room(len(car.local))
		for _, l := range c.localOn(car) {
			c.raiseHold(c.eps[l])
		}
		c.raisingAll = false
		c.maybeBlockOK(car)
	case hwg.EventLeft, hwg.EventExcluded:
		c.carrierGone(car, e.Type == hwg.EventLeft)
	}
}

// localOn returns the local endpoints carried by car, sorted.
func (c *Core) localOn(car *carrier) []ID { return sortedKeys(car.local) }

// attach moves ep onto carrier h.
func (c *Core) attach(ep *endpoint, h hwg.GroupID) {
	if old := c.carriers[ep.h]; old != nil {
		delete(old.local, ep.id)
	}
	ep.h = h
	c.carrierOf(h).local[ep.id] = ep
}

// carrierOf returns this node's record of carrier h, made if it has none.
func (c *Core) carrierOf(h hwg.GroupID) *carrier {
	car := c.carriers[h]
	if car == nil {
		car = newCarrier(c, h)
		c.carriers[h] = car
		c.carrierList = nil
	}
	return car
}

// forgetCarrier drops this node's record of car if it holds nothing:
// the node left it, the directory no longer lists it, and nothing local
// is on it or on its way. A record made again later starts as one that
// was never used. Not after an exclusion: hwg joins the carrier again by
// itself, and its install must find the record. Without this, every
// carrier a node ever used stayed (with a carrier per LWG, one per LWG
// ever joined), and Tick walked them all.
func (c *Core) forgetCarrier(car *carrier) {
	if !car.out || car.member || car.joining || car.regSent || car.unregSent || car.synced || car.blocking ||
		len(car.local) > 0 || len(car.incoming) > 0 || c.carriers[car.group] != car {
		return
	}
	for _, l := range c.sentOn[car.group] {
		if in := c.intents[l]; in != nil && (in.joinOn == car.group || in.leaveOn == car.group) {
			return
		}
	}
	delete(c.carriers, car.group)
	c.carrierList = nil
}

// settleGone ends what is left of a carrier this node is out of once
// the directory no longer lists it, and reports whether the record went.
// An excluded node whose carrier died meanwhile leaves it: hwg.Node would
// try to join it again for good, through members that are gone. A record
// whose unregistration was applied while something was still on its way
// to the carrier (an endpoint kept through the departure, or incoming) is
// forgotten once that has gone; the kUnreg that usually forgets it came
// too early.
func (c *Core) settleGone(car *carrier) bool {
	// A join under way is left by Tick's own rule for a dead carrier.
	if !(car.out || car.rejoining) || car.leaving || car.joining || car.unregSent || !c.dir.synced ||
		len(car.local) > 0 || len(car.incoming) > 0 {
		return false
	}
	rec := c.dir.carriers[car.group]
	switch {
	case car.rejoining && rec == nil:
		c.leaveCarrier(car)
	case car.out && (rec == nil || !rec.registered(c.self)):
		c.forgetCarrier(car)
	}
	return c.carriers[car.group] != car
}

// sortedCarriers returns c.carriers' values ordered by group. The slice
// is shared and must not be modified; a carrier added while a caller
// walks it is not in it (as with a copy).
func (c *Core) sortedCarriers() []*carrier {
	if c.carrierList == nil {
		c.carrierList = make([]*carrier, 0, len(c.carriers))
		for _, h := range sortedKeys(c.carriers) {
			c.carrierList = append(c.carrierList, c.carriers[h])
		}
	}
	return c.carrierList
}

func (c *Core) maybeBlockOK(car *carrier) {
	if !car.blocking || car.blockAcked {
		return
	}
	for _, ep := range car.local {
		if !ep.held && !ep.awaitAdopt {
			return
		}
	}
	car.blockAcked = true
	c.flushBatch(car.group)
	c.act(Action{Type: ActBlockOK, Group: car.group, View: car.blockView})
}

// carrierGone handles this node's departure from car (it left it or was
// excluded): the local endpoints on car end, and its table goes.
func (c *Core) carrierGone(car *carrier, left bool) {
	// Endpoints on car end. Those on their way to it stay: an LWG that
	// switched here and was not announced yet (awaitAdopt), or whose
	// switch this node acknowledged (incoming), has no view here that
	// could drop this node. Its peers in the carrier announce it with the
	// members of its last view that are in the carrier then, so a member
	// that ended it now and came back before the announcement would be
	// counted in by them and out by itself; and if it was the only one
	// left to announce it, nobody would. It rejoins instead (advanceAdopt),
	// and ends if the announcement went without it.
	var gone, kept []*endpoint
	for _, l := range c.localOn(car) {
		if ep := c.eps[l]; ep.awaitAdopt {
			kept = append(kept, ep)
			ep.adoptSent = false
			c.pendingEP[l] = true
		} else {
			gone = append(gone, ep)
		}
	}
	for _, l := range sortedKeys(car.incoming) {
		if ep := c.eps[l]; ep != nil {
			// What it saw here before the switch point is history the
			// table it gets when back already holds.
			ep.early = nil
		}
	}
	for _, ep := range gone {
		c.endEndpoint(c.carriers[ep.h], ep, left && ep.h == car.group)
	}
	c.forgetInFlight(car.group)
	car.lastView = uint64(car.view.ID)
	car.onGone(car)
	clear(car.local)
	for _, ep := range kept {
		car.local[ep.id] = ep
	}
	car.regSent, car.joining, car.leaving = false, false, false
	car.blocking, car.blockAcked = false, false
	car.out, car.rejoining = left, !left
	delete(c.batch, car.group)
	// Let go of what only a member needs: the pending-data array (up to
	// keepDataEntries entries; with one HWG per LWG, one per carrier ever
	// used) once what it holds went out as before, and the handle
	// tables, whose slots point at the ended endpoints. An install
	// starts them over if this node comes back.
	c.flushData(car.group)
	delete(c.data, car.group)
	car.received, car.sentHandles, car.nextHandle = nil, nil, 0
	c.ctl(c.cfg.Directory, kUnreg, item{Group: car.group, View: car.lastView})
	car.unregSent = true
}

// leaveCarrier asks hwg to leave car.
func (c *Core) leaveCarrier(car *carrier) {
	car.leaving = true
	c.act(Action{Type: ActLeave, Group: car.group})
}

// raiseHold raises Hold.up on ep, unless it is up already.
func (c *Core) raiseHold(ep *endpoint) {
	if ep.blocked || ep.held || ep.awaitAdopt {
		return
	}
	ep.blocked = true
	c.emit(Event{Type: EventBlock, LWG: ep.id, View: View{ID: ep.view.ID}})
	if !c.cfg.ManualHoldOK {
		c.holdOK(ep)
	}
}

func (c *Core) holdOK(ep *endpoint) {
	ep.blocked, ep.held = false, true
	c.sendFlushOK(ep)
	if !c.raisingAll {
		c.maybeBlockOK(c.carriers[ep.h])
	}
}

// sendFlushOK acknowledges the flush of ep's LWG if it has one this member
// has not acknowledged, and if, for a switch, this node is in the new
// carrier already.
func (c *Core) sendFlushOK(ep *endpoint) {
	if !ep.held {
		return
	}
	car := c.carriers[ep.h]
	e := car.entries[ep.id]
	if e == nil || e.Fl == nil || ep.okSent == e.View.ID || !slices.Contains(e.Fl.Need, c.self) {
		return
	}
	if to := e.Fl.To; to != "" {
		// Not while leaving the new carrier: the leave would end this
		// endpoint after its acknowledgement let the switch go on, and its
		// peers, which may join the carrier only later, would keep it in
		// the LWG. It acknowledges once back (needCarrier rejoins after
		// the leave's kUnreg).
		if t := c.carriers[to]; t == nil || !t.synced || t.leaving {
			c.needCarrier(to)
			c.pendingEP[ep.id] = true
			return
		}
	}
	ep.okSent = e.View.ID
	if to := e.Fl.To; to != "" {
		ep.incoming = to
		c.carriers[to].incoming[ep.id] = true
	}
	c.ctl(ep.h, kFlushOK, item{LWG: ep.id, View: e.View.ID})
}

// Table callbacks: the carrier's replicated transitions tell the Core what
// they mean for local endpoints.

func (c *Core) flushStarted(car *carrier, l ID) {
	if ep := c.eps[l]; ep != nil && ep.h == car.group {
		c.raiseHold(ep)
		c.sendFlushOK(ep)
	}
}

func (c *Core) switchAborted(car *carrier, l ID) {
	ep := c.eps[l]
	if ep == nil || ep.h != car.group {
		return
	}
	c.dropIncoming(ep)
	ep.okSent = 0 // acknowledge the flush again, as a plain one
	c.sendFlushOK(ep)
}

func (c *Core) installed(car *carrier, l ID, v View, joined, left, vanished []hwg.Process) {
	ep := c.eps[l]
	ev := Event{Type: EventInstall, LWG: l, View: v.Clone(), Joined: joined, Left: left, Vanished: slices.Clone(vanished), HWG: car.group, HWGView: car.view.ID}
	if c.sawInstall != nil {
		c.sawInstall(ev)
	}
	if ep != nil && ep.h != car.group {
		if ep.incoming == car.group {
			// The LWG reached its new carrier in that carrier's order before
			// this node saw the switch point in the old one: keep what
			// happens to it here until then.
			ep.early = append(ep.early, ev)
		}
		return
	}
	c.installLocal(car, ep, ev)
}

// installLocal carries out an install of ep's LWG on car for this node.
func (c *Core) installLocal(car *carrier, ep *endpoint, ev Event) {
	l, v := ev.LWG, ev.View
	if !v.Contains(c.self) {
		if ep != nil {
			c.endEndpoint(car, ep, slices.Contains(ev.Left, c.self))
		}
		return
	}
	if ep == nil {
		ep = &endpoint{id: l, tag: c.tags[l]}
		c.eps[l] = ep
		c.attach(ep, car.group)
	}
	c.dropIncoming(ep) // a switch this node acknowledged ended without moving
	ep.view = v
	ep.blocked, ep.held, ep.awaitAdopt, ep.adoptSent = false, false, false, false
	c.emit(ev)
	if in := c.intents[l]; in != nil {
		if in.leave {
			in.joinOn = "" // a Leave came while joining: ask now
		} else {
			delete(c.intents, l)
		}
	}
	c.checkBinding(ep)
	if car.blocking {
		if car.blockAcked {
			ep.held = true // too late to send in this carrier view
		} else {
			c.raiseHold(ep)
		}
	}
	if !c.replaying {
		c.sendQueued(ep)
	}
}

// sendQueued sends the multicasts ep queued while it was held.
func (c *Core) sendQueued(ep *endpoint) {
	q := ep.queue
	ep.queue = nil
	for i, p := range q {
		if ep.held || ep.awaitAdopt {
			ep.queue = append(ep.queue, q[i:]...)
			break
		}
		c.sendData(ep, p)
	}
}

// dropIncoming forgets ep's pending arrival on another carrier.
func (c *Core) dropIncoming(ep *endpoint) {
	if ep.incoming == "" {
		return
	}
	t := c.carriers[ep.incoming]
	ep.incoming, ep.early = "", nil
	if t != nil {
		delete(t.incoming, ep.id)
		c.maybeBlockOK(t)
	}
}

// checkBinding has the coordinator of an LWG correct the directory when it
// still names another carrier (after a switch).
func (c *Core) checkBinding(ep *endpoint) {
	if ep.view.Coordinator() != c.self || ep.rebindSent || ep.awaitAdopt {
		return
	}
	b, ok := c.dir.lwgs[ep.id]
	if !ok || b.HWG == ep.h || !c.dir.synced {
		return
	}
	c.send(c.cfg.Directory, &control{Kind: kRebind, Items: []item{{LWG: ep.id, Ver: b.Ver, Group: ep.h}}})
	ep.rebindSent = true
}

func (c *Core) endEndpoint(car *carrier, ep *endpoint, left bool) {
	c.counts.add(ep)
	c.dropIncoming(ep)
	ep.ended = true
	// Nothing reaches an ended endpoint any more, but a receiver's handle
	// slot may hold it until the carrier's next install (handles.go): let
	// go of what it holds (rsm's tag is its whole object).
	ep.tag, ep.queue, ep.early = nil, nil, nil
	ep.ent, ep.entCar, ep.hdlCar = nil, nil, nil
	delete(c.eps, ep.id)
	delete(c.switches, ep.id)
	delete(c.pendingEP, ep.id)
	delete(car.local, ep.id)
	t := EventExcluded
	if left {
		t = EventLeft
	}
	c.emit(Event{Type: t, LWG: ep.id, View: View{ID: ep.view.ID}})
	if in := c.intents[ep.id]; in != nil && in.leave {
		if in.rejoin {
			// A Join now: the advance after this input looks at it
			// whatever group's event this is.
			*in = intent{}
			c.listIntent(ep.id, in, "")
		} else {
			delete(c.intents, ep.id)
		}
	}
}

func (c *Core) ended(car *carrier, l ID, left []hwg.Process) {
	if ep := c.eps[l]; ep != nil && ep.h == car.group {
		c.endEndpoint(car, ep, slices.Contains(left, c.self))
	}
}

func (c *Core) moved(car *carrier, l ID, last View, to hwg.GroupID) {
	ep := c.eps[l]
	if ep == nil || ep.h != car.group {
		return
	}
	c.attach(ep, to)
	ep.awaitAdopt, ep.adoptSent = true, false
	ep.view = last
	c.pendingEP[l] = true
	delete(c.switches, l)
	t := c.carriers[to]
	ep.incoming = ""
	delete(t.incoming, l)
	// Replay what the LWG did on its new carrier before this node saw the
	// switch point. Its installs may name older views of that carrier:
	// they happened then in its order. Queued multicasts wait for the last.
	early := ep.early
	ep.early = nil
	c.replaying = true
	for _, ev := range early {
		if ep = c.eps[l]; ep == nil {
			break
		}
		if ev.Type == EventInstall {
			c.installLocal(t, ep, ev)
		} else {
			c.emit(ev)
		}
	}
	c.replaying = false
	if ep = c.eps[l]; ep != nil && !ep.awaitAdopt {
		if e := t.entries[l]; e != nil && e.Fl != nil {
			c.flushStarted(t, l) // a flush began there meanwhile
		}
		c.sendQueued(ep)
	}
	c.maybeBlockOK(t)
}

// dataDelivered hands a data message (or each of a batch) to its local
// endpoint, if any.
func (c *Core) dataDelivered(car *carrier, from hwg.Process, msg []byte) {
	if car != nil && msg[0] == tagHandles {
		// Its bindings count even while the table is missing.
		c.handlesDelivered(car, from, msg)
		return
	}
	if car == nil || !car.synced {
		c.stats.Interference++
		return
	}
	if msg[0] == tagBatch {
		if err := decodeBatch(msg, func(id []byte, view uint64, payload []byte) {
			c.deliverData(car, from, id, view, payload)
		}); err != nil {
			c.stats.Malformed++
		}
		return
	}
	id, view, payload, err := decodeData(msg)
	if err != nil {
		c.stats.Malformed++
		return
	}
	c.deliverData(car, from, id, view, payload)
}

func (c *Core) deliverData(car *carrier, from hwg.Process, id []byte, view uint64, payload []byte) {
	// Look the id up without making a string of it: a delivery to a
	// local endpoint allocates nothing here.
	ep := c.eps[ID(id)]
	if ep == nil {
		c.counts.delivered(ID(id))
		c.stats.Interference++
		return
	}
	c.deliverTo(car, from, ep, view, payload)
}

// deliverTo hands a data entry for ep's LWG, sent in view, to ep.
func (c *Core) deliverTo(car *carrier, from hwg.Process, ep *endpoint, view uint64, payload []byte) {
	l := ep.id
	ep.traffic++
	early := ep.h != car.group && ep.incoming == car.group
	if (ep.h != car.group && !early) || ep.awaitAdopt {
		c.stats.Interference++
		return
	}
	if ent := car.entry(ep); ent == nil || ent.View.ID != view || !ent.View.Contains(from) {
		c.stats.Stale++
		return
	}
	c.stats.Delivered++
	ev := Event{Type: EventDeliver, LWG: l, View: View{ID: view}, From: from, Payload: payload, Tag: ep.tag}
	if early {
		ep.early = append(ep.early, ev)
		return
	}
	c.emit(ev)
}

// ownApplied clears what this process had in flight once its own request
// was applied; ok reports whether it took effect (if not, the request is
// made again when possible).
func (c *Core) ownApplied(car *carrier, from hwg.Process, k kind, l ID, ok bool) {
	if from != c.self {
		return
	}
	switch k {
	case kJoin:
		if in := c.intents[l]; in != nil && in.joinOn == car.group && !ok {
			in.joinOn = ""
		}
	case kLeave:
		if in := c.intents[l]; in != nil && in.leaveOn == car.group && !ok {
			in.leaveOn = ""
		}
	case kSwitch:
		if sw := c.switches[l]; sw != nil {
			sw.sent = false
			if ok {
				sw.started = car.entries[l].View.ID
			}
		}
	}
}

func (c *Core) dirApplied(ctl *control) {
	switch ctl.Kind {
	case kBind:
		for _, it := range ctl.Items {
			if it.LWG == "" {
				for _, sw := range c.switches {
					if sw.base == it.Group {
						sw.bound = false
					}
				}
				c.noteCreated(c.dir.bases[it.Group])
			} else {
				if in := c.intents[it.LWG]; in != nil {
					in.bindSent = false
				}
				c.noteCreated(c.dir.lwgs[it.LWG].HWG)
			}
		}
	case kReg:
		for _, it := range ctl.Items {
			if car := c.carriers[it.Group]; car != nil {
				car.regSent = false
			}
		}
	case kUnreg:
		for _, it := range ctl.Items {
			if car := c.carriers[it.Group]; car != nil {
				car.unregSent = false
				c.forgetCarrier(car)
			}
		}
	case kMember:
		for _, it := range ctl.Items {
			if car := c.carriers[it.Group]; car != nil && car.member && !c.dir.alive(car.group) {
				// Every other member left or restarted before this node's
				// membership reached the directory, which declared the
				// carrier dead: its LWGs may live again elsewhere, so leave.
				c.leaveCarrier(car)
			}
		}
	case kRebind:
		// Checked again at the LWG's next install, not now: a rebind that
		// lost to another binding must not be retried in a loop.
		if ep := c.eps[ctl.Items[0].LWG]; ep != nil {
			ep.rebindSent = false
		}
	}
}

// ctl queues one control item for group h. Items of a batchable kind made
// in a row ride in one message: a node joining n LWGs sends one kJoin.
func (c *Core) ctl(h hwg.GroupID, k kind, it item) {
	b := c.batch[h]
	if n := len(b); n > 0 && b[n-1].Kind == k && (k == kJoin || k == kLeave || k == kFlushOK || k == kBind || k.carrierKind()) {
		b[n-1].Items = append(b[n-1].Items, it)
		return
	}
	c.batch[h] = append(b, &control{Kind: k, Items: []item{it}})
}

// send queues a whole control message for group h.
func (c *Core) send(h hwg.GroupID, ctl *control) { c.batch[h] = append(c.batch[h], ctl) }

// sendSnapshot queues snap, the state of group h after the install of
// view and the at control messages delivered after it, in parts of at most
// MaxMessageBytes, with the members owed it and the views that admitted
// them.
func (c *Core) sendSnapshot(h hwg.GroupID, view hwg.ViewID, at uint64, snap []byte, owed []hwg.Process, since []hwg.ViewID) {
	// Room for the control message around the part: kind, view, part
	// numbers and msgpack framing take well under 64 bytes.
	size := max(1, c.cfg.MaxMessageBytes-64)
	parts := max(1, (len(snap)+size-1)/size)
	for i := range parts {
		part := snap[i*size : min(len(snap), (i+1)*size)]
		ctl := &control{Kind: kSnapshot, View: view, At: at, Snap: part, Owed: owed, Since: since}
		if parts > 1 {
			ctl.Part, ctl.Parts = uint32(i), uint32(parts)
		}
		c.send(h, ctl)
	}
}

func (c *Core) flushBatch(h hwg.GroupID) {
	if h == c.cfg.Directory && !c.dir.member {
		return // kept until this node is in the directory (again)
	}
	for _, ctl := range c.batch[h] {
		c.multicastControl(h, ctl)
	}
	delete(c.batch, h)
}

// multicastControl asks for ctl to be multicast in h, split by items into
// messages of at most MaxMessageBytes: a node joining tens of thousands of
// LWGs at once would otherwise ask for one message larger than the HWG
// takes. Every kind that batches items applies them one by one, so the
// parts mean what the whole did.
func (c *Core) multicastControl(h hwg.GroupID, ctl *control) {
	b := encodeControl(ctl)
	if len(b) > c.cfg.MaxMessageBytes && len(ctl.Items) > 1 {
		half := len(ctl.Items) / 2
		c.multicastControl(h, &control{Kind: ctl.Kind, View: ctl.View, Items: ctl.Items[:half]})
		c.multicastControl(h, &control{Kind: ctl.Kind, View: ctl.View, Items: ctl.Items[half:]})
		return
	}
	c.act(Action{Type: ActMulticast, Group: h, Payload: b})
}

// act asks for a; data waiting for a's group goes first, so that what a
// node asks of one HWG keeps its order.
func (c *Core) act(a Action) {
	if pd := c.data[a.Group]; pd != nil && len(pd.entries) > 0 {
		c.flushData(a.Group)
	}
	c.actions = append(c.actions, a)
}

func (c *Core) emit(e Event) { c.events = append(c.events, e) }

// PendingEvents returns the number of events the next Ready will return.
// A runtime that drains many inputs before calling Ready can stop
// draining once it passes a bound, keeping each batch of events (and the
// arrays Recycle keeps) small.
func (c *Core) PendingEvents() int { return len(c.events) }

// room makes room for n more events before a loop that emits about one
// per LWG: an Event is some 200 bytes, and growing the slice by doubling
// under 1,000 Hold.ups or installs was a tenth of a join burst's CPU.
func (c *Core) room(n int) { c.events = slices.Grow(c.events, n) }

// Debug describes the Core's requests in progress and carriers, for
// debugging; the format is not stable.
func (c *Core) Debug() string {
	var b []byte
	b = fmt.Appendf(b, "dir synced=%v view=%v owed=%d carriers=%d\n", c.dir.synced, c.dir.view, len(c.dir.owed), len(c.dir.carriers))
	for _, car := range c.sortedCarriers() {
		h := car.group
		rec := c.dir.carriers[h]
		b = fmt.Appendf(b, "  carrier %s member=%v synced=%v view=%v joining=%v(%d) reg=%v/%v local=%d incoming=%d blocking=%v/%v entries=%d dirrec=%v\n",
			h, car.member, car.synced, car.view, car.joining, car.joinTicks, car.regSent, car.unregSent, len(car.local), len(car.incoming), car.blocking, car.blockAcked, len(car.entries), rec)
	}
	for _, l := range c.order {
		if in := c.intents[l]; in != nil {
			bd := c.dir.lwgs[l]
			b = fmt.Appendf(b, "  intent %s %+v dir=%+v", l, *in, bd)
			if car := c.carriers[bd.HWG]; car != nil {
				if e := car.entries[l]; e != nil {
					b = fmt.Appendf(b, " entry=%v flush=%+v", e.View, e.Fl)
				}
				if g, ok := car.gone[l]; ok {
					b = fmt.Appendf(b, " gone=%+v", g)
				}
			}
			b = append(b, '\n')
		}
	}
	return string(b)
}
