package lwg

import (
	"fmt"
	"slices"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/internal/wirecheck"
)

// entry is one LWG in a carrier's table.
type entry struct {
	View View   `msgpack:"v"`
	Fl   *flush `msgpack:"f,omitempty"`
}

// flush is an LWG flush in progress: it began when a join, leave or switch
// was delivered in view View, and completes at the point of the carrier's
// total order where the last member's FLUSH_OK is delivered, which every
// member computes alike (the NEWVIEW of the paper is implicit).
type flush struct {
	Need   []hwg.Process `msgpack:"n"`           // members whose FLUSH_OK is missing
	Joins  []hwg.Process `msgpack:"j,omitempty"` // in delivery order
	Leaves []hwg.Process `msgpack:"l,omitempty"`
	To     hwg.GroupID   `msgpack:"t,omitempty"` // switch target, if a switch
}

// gone records an LWG that left this carrier: moved to To, or ended with
// no members (To empty). View is its last view here, so a later life or
// arrival continues its view ids; a moved record also redirects joiners
// whose directory is behind.
type gone struct {
	View uint64      `msgpack:"v"`
	To   hwg.GroupID `msgpack:"t,omitempty"`
	// Members: moved, the members that left with it; ended, the members
	// of its last view that vanished with a carrier view change (did not
	// leave), told to the next life's first member (Event.Vanished).
	Members []hwg.Process `msgpack:"m,omitempty"`
}

// carrier is this node's membership in one carrier HWG: the replicated
// LWG table of every LWG on it (kept by every member, whether or not it
// has an endpoint) and this node's local progress in joining it.
type carrier struct {
	replica
	core    *Core
	entries map[ID]*entry
	gone    map[ID]gone
	// gen changes whenever an entry is added, replaced or removed, so an
	// endpoint's cached entry is known good without a lookup.
	gen uint64

	// Local, not replicated.
	local     map[ID]*endpoint // local endpoints on this carrier
	incoming  map[ID]bool      // local endpoints switching to this carrier
	regSent   bool             // a kReg is in flight
	unregSent bool             // a kUnreg is in flight: rejoin only after it is applied
	joining   bool             // ActJoin or ActBootstrap issued, no install yet
	// leaving: ActLeave issued; EventLeft or EventExcluded follows. A
	// carrier being left takes no new LWG, joined or switched in: the
	// endpoint would end with the leave while its peers kept it.
	leaving    bool
	joinTicks  int
	blocking   bool       // the HWG raised Block and has not installed since
	blockView  hwg.ViewID // the view of that Block
	blockAcked bool       // ActBlockOK issued for it
	// out: this node is out of the HWG and hwg will not rejoin it on its
	// own: it left, or it never joined (a record made only to unregister
	// it). An excluded node's hwg.Node joins again by itself.
	out bool
	// rejoining: this node was excluded and hwg.Node is joining it again
	// by itself; cleared by the next install or departure.
	rejoining bool
	pinned    uint64
	// lastView is the view of the carrier this node was last in, kept
	// when it leaves or is excluded for its kUnreg (see carrierRec.Gone).
	lastView uint64

	// Data handles (handles.go), local: the installs of this carrier
	// seen here; this node's next number and the numbers it gave, and per
	// sender the handles it bound, in the current view (all reset at
	// every install).
	installs, nextHandle uint64
	sentHandles          map[ID]uint64
	received             map[hwg.Process][]handleSlot
}

func newCarrier(core *Core, h hwg.GroupID) *carrier {
	car := &carrier{core: core, replica: replica{group: h}, local: map[ID]*endpoint{}, incoming: map[ID]bool{}}
	if core != nil {
		car.currentOnly = core.cfg.currentSnapshotsOnly
	}
	car.reset()
	return car
}

// entry returns car.entries[ep.id], cached on ep.
func (car *carrier) entry(ep *endpoint) *entry {
	if ep.entCar == car && ep.entGen == car.gen {
		return ep.ent
	}
	e := car.entries[ep.id]
	ep.ent, ep.entCar, ep.entGen = e, car, car.gen
	return e
}

func (car *carrier) reset() {
	car.gen++
	car.entries = map[ID]*entry{}
	car.gone = map[ID]gone{}
}

// INVARIANT: the table changes only through apply and boundary, both
// deterministic in the carrier's delivery sequence; checked by the
// simulator's view-agreement checker over every LWG install.

func (car *carrier) apply(from hwg.Process, c *control) {
	switch c.Kind {
	case kJoin, kLeave, kFlushOK:
		// An item raises Hold.up or installs at most once, and only in an
		// LWG with a local endpoint or one this node is joining.
		car.core.room(min(len(c.Items), len(car.local)+len(car.core.intents)))
	}
	switch c.Kind {
	case kJoin:
		for _, it := range c.Items {
			car.core.ownApplied(car, from, c.Kind, it.LWG, car.join(from, it))
		}
	case kLeave:
		for _, it := range c.Items {
			car.core.ownApplied(car, from, c.Kind, it.LWG, car.leave(from, it.LWG))
		}
	case kFlushOK:
		for _, it := range c.Items {
			car.flushOK(from, it)
		}
	case kSwitch:
		it := c.Items[0]
		car.core.ownApplied(car, from, c.Kind, it.LWG, car.startSwitch(from, it))
	case kAbort:
		it := c.Items[0]
		if e := car.entries[it.LWG]; e != nil && e.Fl != nil && e.Fl.To != "" && e.View.ID == it.View && e.View.Contains(from) {
			e.Fl.To = ""
			car.core.switchAborted(car, it.LWG)
		}
	case kAdopt:
		car.adopt(c.Items[0])
	default:
		car.core.stats.Malformed++ // directory kinds have no meaning here
	}
}

func (car *carrier) join(from hwg.Process, it item) bool {
	l := it.LWG
	if g, ok := car.gone[l]; ok && g.To != "" {
		return false // moved: the joiner follows the record
	}
	e := car.entries[l]
	if e == nil {
		if mayAnnounce(it.Members, from, car.view) {
			// The joiner followed a move here, and a member that moved is
			// still in this carrier: its announcement may come yet.
			return false
		}
		id := max(firstViewID(it.Ver), it.View)
		var vanished []hwg.Process
		if g, ok := car.gone[l]; ok && g.View >= it.View {
			// It ended here (a move returned above), after any move
			// the joiner followed: the life goes on after it, whatever
			// the directory's version says. A switch's rebind raises
			// the version but not the life, whose view ids keep the
			// version they began with; compared with firstViewID of
			// the new version, a life that switched here and ended
			// looked like none, and a joiner with an older state
			// started it over as new (RSM seed 11201).
			id, vanished = g.View+1, g.Members
		} else if len(it.Members) > 0 {
			// The joiner followed a move here and none of the members
			// that moved is in this carrier (a switch's crash or
			// partition): they held the LWG, and may come back with
			// its state (Event.Vanished).
			vanished = slices.DeleteFunc(slices.Clone(it.Members), func(p hwg.Process) bool { return p == from })
		}
		delete(car.gone, l)
		e = &entry{}
		car.entries[l] = e
		car.gen++
		car.install(l, e, View{ID: id, Members: []hwg.Process{from}}, []hwg.Process{from}, nil, vanished)
		return true
	}
	if e.View.Contains(from) || (e.Fl != nil && slices.Contains(e.Fl.Joins, from)) {
		return true
	}
	if e.Fl != nil && e.Fl.To != "" {
		return false // a switch admits nobody; ask again on the new carrier
	}
	if car.core.cfg.brokenFlush && e.Fl == nil {
		car.install(l, e, View{ID: e.View.ID + 1, Members: append(slices.Clone(e.View.Members), from)}, []hwg.Process{from}, nil, nil)
		return true
	}
	car.startFlush(l, e, "")
	e.Fl.Joins = append(e.Fl.Joins, from)
	return true
}

// mayAnnounce reports whether a member that moved an LWG here, other than
// the joiner (which has no endpoint waiting if it asks to join), is in the
// carrier's view and so may still announce the LWG.
func mayAnnounce(moved []hwg.Process, joiner hwg.Process, v hwg.View) bool {
	return slices.ContainsFunc(moved, func(p hwg.Process) bool { return p != joiner && v.Contains(p) })
}

func (car *carrier) leave(from hwg.Process, l ID) bool {
	e := car.entries[l]
	if e == nil || !e.View.Contains(from) {
		return true // nothing to leave
	}
	if e.Fl != nil {
		if e.Fl.To != "" {
			return false
		}
		if slices.Contains(e.Fl.Leaves, from) {
			return true
		}
	}
	car.startFlush(l, e, "")
	e.Fl.Leaves = append(e.Fl.Leaves, from)
	return true
}

func (car *carrier) startSwitch(from hwg.Process, it item) bool {
	e := car.entries[it.LWG]
	if e == nil || e.Fl != nil || e.View.ID != it.View || !e.View.Contains(from) || it.Group == car.group {
		return false
	}
	car.startFlush(it.LWG, e, it.Group)
	return true
}

func (car *carrier) startFlush(l ID, e *entry, to hwg.GroupID) {
	if e.Fl != nil {
		return
	}
	e.Fl = &flush{Need: slices.Clone(e.View.Members), To: to}
	car.core.flushStarted(car, l)
}

func (car *carrier) flushOK(from hwg.Process, it item) {
	e := car.entries[it.LWG]
	if e == nil || e.Fl == nil || e.View.ID != it.View {
		return // stale: the flush ended at a carrier view change
	}
	i := slices.Index(e.Fl.Need, from)
	if i < 0 {
		return
	}
	e.Fl.Need = slices.Delete(e.Fl.Need, i, i+1)
	if len(e.Fl.Need) > 0 {
		return
	}
	fl := e.Fl
	if fl.To != "" {
		// The switch point: the LWG leaves this carrier here.
		delete(car.entries, it.LWG)
		car.gen++
		car.gone[it.LWG] = gone{View: e.View.ID, To: fl.To, Members: slices.Clone(e.View.Members)}
		car.core.moved(car, it.LWG, e.View, fl.To)
		return
	}
	car.finish(it.LWG, e, nil)
}

// finish ends e's flush (or, with no flush, a carrier view change) and
// installs the next view: members minus leavers plus joiners, restricted to
// keep (the new carrier view) if given.
func (car *carrier) finish(l ID, e *entry, keep *hwg.View) {
	var joined, left []hwg.Process
	if e.Fl == nil && keep != nil && len(e.View.Members) > 0 && keepsAll(keep, e.View.Members) {
		// Failure multiplexing, and this LWG lost nobody: the next view has
		// the same members, and serves them from the table's slice, which
		// nothing changes in place (events get copies).
		car.install(l, e, View{ID: e.View.ID + 1, Members: e.View.Members}, nil, nil, nil)
		return
	}
	next := slices.Clone(e.View.Members)
	if fl := e.Fl; fl != nil {
		left = slices.Clone(fl.Leaves)
		next = slices.DeleteFunc(next, func(p hwg.Process) bool { return slices.Contains(fl.Leaves, p) })
		for _, j := range fl.Joins {
			if keep == nil || keep.Contains(j) {
				next = append(next, j)
				joined = append(joined, j)
			}
		}
	}
	if keep != nil {
		next = slices.DeleteFunc(next, func(p hwg.Process) bool { return !keep.Contains(p) })
	}
	// The members the carrier's view change dropped (they did not leave).
	// Failure multiplexing runs this for every LWG on the carrier, and
	// most lose nobody: allocate only for those that did.
	var vanished []hwg.Process
	if len(next)-len(joined)+len(left) < len(e.View.Members) {
		vanished = slices.DeleteFunc(slices.Clone(e.View.Members), func(p hwg.Process) bool {
			return slices.Contains(left, p) || slices.Contains(next, p)
		})
	}
	id := e.View.ID + 1
	if len(next) == 0 {
		delete(car.entries, l)
		car.gen++
		car.gone[l] = gone{View: e.View.ID, Members: vanished}
		car.core.ended(car, l, left)
		return
	}
	car.install(l, e, View{ID: id, Members: next}, joined, left, vanished)
}

// keepsAll reports whether every one of ms is in v.
func keepsAll(v *hwg.View, ms []hwg.Process) bool {
	for _, p := range ms {
		if !v.Contains(p) {
			return false
		}
	}
	return true
}

func (car *carrier) adopt(it item) {
	l := it.LWG
	if car.entries[l] != nil {
		return // announced already
	}
	if g, ok := car.gone[l]; ok && g.View >= it.View {
		return // a late announcement of a life that moved on
	}
	// Members that do not hold the table yet (back in the carrier after
	// they left it or were excluded, their snapshot still to come) are
	// not counted: the data of the LWG's first view here would reach
	// them before they could take it.
	in := func(p hwg.Process) bool {
		_, owed := car.owed[p]
		return car.view.Contains(p) && !owed
	}
	members := slices.DeleteFunc(slices.Clone(it.Members), func(p hwg.Process) bool { return !in(p) })
	if len(members) == 0 {
		return
	}
	// The announced members not counted (they crashed or were cut off
	// during the switch) did not leave: they vanished.
	var vanished []hwg.Process
	if len(members) < len(it.Members) {
		vanished = slices.DeleteFunc(slices.Clone(it.Members), in)
	}
	delete(car.gone, l)
	e := &entry{}
	car.entries[l] = e
	car.gen++
	car.install(l, e, View{ID: it.View, Members: members}, nil, nil, vanished)
}

// install installs v; vanished are members of the view before that a
// carrier view change dropped, or, for the first view after the LWG ended
// here, the members of its last view (see Event.Vanished).
func (car *carrier) install(l ID, e *entry, v View, joined, left, vanished []hwg.Process) {
	e.View, e.Fl = v, nil
	car.core.installed(car, l, v, joined, left, vanished)
}

// boundary is failure multiplexing: one carrier view change is the flush of
// every LWG on it. Each installs the next view, keeping the members still in
// the carrier, completing the joins and leaves its own flush had collected
// and cancelling its switch.
func (car *carrier) boundary(ev *hwg.Event) {
	keep := ev.View
	car.core.room(len(car.local))
	for _, l := range sortedKeys(car.entries) {
		car.finish(l, car.entries[l], &keep)
	}
}

type tableSnap struct {
	E []tableSnapEntry `msgpack:"e"`
	G map[ID]gone      `msgpack:"g"`
}

type tableSnapEntry struct {
	L ID `msgpack:"l"`
	entry
}

func (car *carrier) snapshot() []byte {
	s := tableSnap{G: car.gone}
	for _, l := range sortedKeys(car.entries) {
		s.E = append(s.E, tableSnapEntry{l, *car.entries[l]})
	}
	b, err := msgpack.Marshal(&s)
	if err != nil {
		panic(fmt.Sprintf("lwg: encoding table snapshot: %v", err))
	}
	return b
}

func (car *carrier) restore(b []byte) error {
	var s tableSnap
	if err := wirecheck.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: table snapshot: %v", ErrMalformed, err)
	}
	car.reset()
	for _, se := range s.E {
		e := se.entry
		if len(e.View.Members) == 0 {
			return fmt.Errorf("%w: table snapshot: LWG %s has no members", ErrMalformed, se.L)
		}
		car.entries[se.L] = &e
		car.gen++
	}
	if s.G != nil {
		car.gone = s.G
	}
	return nil
}
