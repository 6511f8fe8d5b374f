package lwg

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/internal/wirecheck"
)

// binding is where an LWG lives. Ver counts the bindings of the LWG; a
// rebind names the version it replaces, so concurrent rebinds cannot both
// win.
type binding struct {
	HWG hwg.GroupID `msgpack:"h"`
	Ver uint64      `msgpack:"v"`
}

// carrierRec is a live carrier HWG as the directory knows it. A node
// registers as pending before it joins, as a member once it holds the
// carrier's LWG table (Regs; the creator is one from the start), and
// unregisters after it leaves or is excluded. A carrier whose Regs empties
// has no member left that holds its table: it is dead, and pending joiners
// and members still waiting for the table give up on it.
type carrierRec struct {
	Base    hwg.GroupID   `msgpack:"b"`
	Creator hwg.Process   `msgpack:"c"`
	Regs    []hwg.Process `msgpack:"r"`           // members, sorted
	Pending []hwg.Process `msgpack:"p,omitempty"` // joiners, sorted
	// Gone: processes that unregistered, each with the last carrier view
	// it was in (MaxUint64: not known), sorted. Another member's kMember
	// registering one of them for a view no later than that is older than
	// the departure, and is ignored; the process's own registration
	// clears it.
	Gone []goneReg `msgpack:"g,omitempty"`
}

// goneReg is one process that unregistered from a carrier.
type goneReg struct {
	P    hwg.Process `msgpack:"p"`
	View uint64      `msgpack:"v,omitempty"`
}

// goneAt returns the view p unregistered at, if it did.
func (r *carrierRec) goneAt(p hwg.Process) (uint64, bool) {
	i, ok := slices.BinarySearchFunc(r.Gone, p, func(g goneReg, p hwg.Process) int { return cmpProcess(g.P, p) })
	if !ok {
		return 0, false
	}
	return r.Gone[i].View, true
}

// setGone notes p's departure at view v.
func (r *carrierRec) setGone(p hwg.Process, v uint64) {
	i, ok := slices.BinarySearchFunc(r.Gone, p, func(g goneReg, p hwg.Process) int { return cmpProcess(g.P, p) })
	if ok {
		r.Gone[i].View = max(r.Gone[i].View, v)
		return
	}
	r.Gone = slices.Insert(r.Gone, i, goneReg{P: p, View: v})
}

// clearGone forgets p's departure: it registered again itself.
func (r *carrierRec) clearGone(p hwg.Process) {
	r.Gone = slices.DeleteFunc(r.Gone, func(g goneReg) bool { return g.P == p })
}

func (r *carrierRec) has(p hwg.Process) bool {
	_, ok := slices.BinarySearchFunc(r.Regs, p, cmpProcess)
	return ok
}

// registered reports whether p is a member or a pending joiner.
func (r *carrierRec) registered(p hwg.Process) bool {
	_, ok := slices.BinarySearchFunc(r.Pending, p, cmpProcess)
	return ok || r.has(p)
}

func insertSorted(s []hwg.Process, p hwg.Process) []hwg.Process {
	i, ok := slices.BinarySearchFunc(s, p, cmpProcess)
	if ok {
		return s
	}
	return slices.Insert(s, i, p)
}

func removeSorted(s []hwg.Process, p hwg.Process) []hwg.Process {
	if i, ok := slices.BinarySearchFunc(s, p, cmpProcess); ok {
		return slices.Delete(s, i, i+1)
	}
	return s
}

func cmpProcess(a, b hwg.Process) int {
	if a.Node != b.Node {
		if a.Node < b.Node {
			return -1
		}
		return 1
	}
	switch {
	case a.Inc < b.Inc:
		return -1
	case a.Inc > b.Inc:
		return 1
	}
	return 0
}

// directory is the LWG→HWG directory, replicated in the cluster-wide
// directory HWG by the replica mechanism. Every update is an ordered
// multicast, so every node's copy passes through the same states, and an
// LWG has one binding at any point of the directory's order.
type directory struct {
	replica
	lwgs     map[ID]binding
	carriers map[hwg.GroupID]*carrierRec
	// bases: base → the carrier create made for it last, while it lives.
	// INVARIANT: each is a live carrier of its base (kill drops it;
	// restore and FuzzRestore check it).
	bases map[hwg.GroupID]hwg.GroupID
	gen   uint64 // carriers ever created
	// incs: the highest incarnation of each node that a view of the
	// directory held. An update about an older one is stale: it crashed.
	incs map[hwg.NodeID]uint64

	// me is this process; applied is called for every update it made,
	// after it was applied, so the Core can clear what it had in flight.
	me      hwg.Process
	applied func(c *control)
}

func newDirectory(g hwg.GroupID) *directory {
	// Nothing else holds the directory's state: a member cut off keeps it
	// (replica.keep).
	d := &directory{replica: replica{group: g, keep: true}}
	d.reset()
	return d
}

func (d *directory) reset() {
	d.lwgs = map[ID]binding{}
	d.carriers = map[hwg.GroupID]*carrierRec{}
	d.bases = map[hwg.GroupID]hwg.GroupID{}
	d.gen = 0
	d.incs = map[hwg.NodeID]uint64{}
}

// alive reports whether h is a live carrier.
func (d *directory) alive(h hwg.GroupID) bool { return d.carriers[h] != nil }

// boundary drops the registrations of processes that a newer incarnation
// of their node has replaced: they crashed, so they are in no carrier.
//
// A process the directory view merely excluded keeps its registrations: it
// may be alive behind a partition, still running its LWGs in its carriers,
// and declaring those carriers dead would let a joiner start a second life
// of their LWGs beside the first. So a carrier dies only when each of its
// registered members has left it or restarted; a node that crashes and
// never comes back keeps its carriers alive (and their LWGs bound) for good.
//
// An update that a crashed process sent, or one that registers it, can
// still be delivered after its node's next incarnation joined (the old one
// stays in the view until it is excluded); such updates are ignored, or
// they would register it again, where no later boundary would drop it.
func (d *directory) boundary(ev *hwg.Event) {
	for _, p := range ev.View.Members {
		d.incs[p.Node] = max(d.incs[p.Node], p.Inc)
		d.supersede(p)
	}
}

// stale reports whether a newer incarnation of p's node was in a view.
func (d *directory) stale(p hwg.Process) bool { return p.Inc < d.incs[p.Node] }

// supersede drops the registrations of older incarnations of p's node.
func (d *directory) supersede(p hwg.Process) {
	for _, h := range sortedKeys(d.carriers) {
		rec := d.carriers[h]
		older := func(q hwg.Process) bool { return q.Node == p.Node && q.Inc < p.Inc }
		n := len(rec.Regs)
		rec.Regs = slices.DeleteFunc(rec.Regs, older)
		rec.Pending = slices.DeleteFunc(rec.Pending, older)
		rec.Gone = slices.DeleteFunc(rec.Gone, func(g goneReg) bool { return older(g.P) })
		if len(rec.Regs) == 0 && n > 0 {
			d.kill(h)
		}
	}
}

func (d *directory) kill(h hwg.GroupID) {
	rec := d.carriers[h]
	delete(d.carriers, h)
	if d.bases[rec.Base] == h {
		delete(d.bases, rec.Base)
	}
}

// resolve returns base's live carrier, creating one registered to creator.
func (d *directory) resolve(base hwg.GroupID, creator hwg.Process) hwg.GroupID {
	if h, ok := d.bases[base]; ok {
		return h
	}
	return d.create(base, creator)
}

// create makes a new carrier for base, registered to creator, and makes it
// base's carrier.
func (d *directory) create(base hwg.GroupID, creator hwg.Process) hwg.GroupID {
	d.gen++
	h := hwg.GroupID(fmt.Sprintf("%s#%d", base, d.gen))
	d.carriers[h] = &carrierRec{Base: base, Creator: creator, Regs: []hwg.Process{creator}}
	d.bases[base] = h
	return h
}

// carrierBase returns the placement base of carrier h (create names a
// carrier base#gen), without the directory: a node may install an LWG on
// a carrier before its directory copy has the carrier's record (they are
// different HWGs, with no order between them).
func carrierBase(h hwg.GroupID) hwg.GroupID {
	if i := strings.LastIndexByte(string(h), '#'); i >= 0 {
		return h[:i]
	}
	return h
}

func (d *directory) apply(from hwg.Process, c *control) {
	switch c.Kind {
	case kBind:
		if d.stale(from) {
			break // it would make a dead process a carrier's creator
		}
		for _, it := range c.Items {
			if it.LWG == "" {
				d.resolve(it.Group, from)
				continue
			}
			// Bind only an LWG that is unbound or whose carrier is dead, or
			// that moved to a carrier now dead (From) before the directory
			// learnt of the move. Members that moved on from a carrier keep
			// it alive until the directory follows them, so a dead From
			// means every member of the LWG is gone.
			cur, ok := d.lwgs[it.LWG]
			if cur.Ver != it.Ver || (ok && d.alive(cur.HWG) && (it.From == "" || d.alive(it.From))) {
				continue // another bind won, or the LWG may be alive
			}
			h := d.resolve(it.Group, from)
			if ok && h == cur.HWG {
				// The carrier it moved from holds the record of the move,
				// which turns joiners away: start afresh on a new one.
				h = d.create(it.Group, from)
			}
			d.lwgs[it.LWG] = binding{HWG: h, Ver: it.Ver + 1}
		}
	case kRebind:
		it := c.Items[0]
		if cur, ok := d.lwgs[it.LWG]; ok && cur.Ver == it.Ver && d.alive(it.Group) {
			d.lwgs[it.LWG] = binding{HWG: it.Group, Ver: it.Ver + 1}
		}
	case kReg:
		for _, it := range c.Items {
			if rec := d.carriers[it.Group]; rec != nil && !rec.has(from) && !d.stale(from) {
				rec.Pending = insertSorted(rec.Pending, from)
				rec.clearGone(from)
			}
		}
	case kMember:
		for _, it := range c.Items {
			rec := d.carriers[it.Group]
			if rec == nil {
				continue
			}
			who := []hwg.Process{from}
			if len(it.Members) > 0 {
				// A member registers others: the joiners it admitted, or
				// the members of its view of the carrier (after it was out
				// of the directory), as of carrier view it.View.
				who = it.Members
			}
			for _, p := range who {
				if d.stale(p) {
					continue // a joiner admitted before it crashed
				}
				if v, ok := rec.goneAt(p); ok && p != from && it.View != 0 && it.View <= v {
					continue // it left after that view
				}
				rec.clearGone(p)
				rec.Pending = removeSorted(rec.Pending, p)
				rec.Regs = insertSorted(rec.Regs, p)
			}
		}
	case kUnreg:
		for _, it := range c.Items {
			rec := d.carriers[it.Group]
			if rec == nil {
				continue
			}
			rec.Pending = removeSorted(rec.Pending, from)
			// A departure from an unknown view (the sender never installed
			// one, or forgot it) blocks every stamped registration by
			// others: only its own registers it again.
			gone := it.View
			if gone == 0 {
				gone = math.MaxUint64
			}
			rec.setGone(from, gone)
			if n := len(rec.Regs); n > 0 {
				rec.Regs = removeSorted(rec.Regs, from)
				if len(rec.Regs) == 0 {
					d.kill(it.Group)
				}
			}
		}
	default:
		return // carrier kinds have no meaning here
	}
	if d.applied != nil && from == d.me {
		d.applied(c)
	}
}

type dirSnap struct {
	L   []dirSnapLWG                `msgpack:"l"`
	C   map[hwg.GroupID]*carrierRec `msgpack:"c"`
	Gen uint64                      `msgpack:"g"`
	// B: each base's carrier. Not derivable from C: two live carriers
	// can share a base (a rebind re-creates a base's carrier while the
	// old one lives on), and a base whose newest carrier died has none.
	B map[hwg.GroupID]hwg.GroupID `msgpack:"b,omitempty"`
	// I: directory.incs (absent before it existed: nothing is stale then).
	I map[hwg.NodeID]uint64 `msgpack:"i,omitempty"`
}

type dirSnapLWG struct {
	ID ID `msgpack:"i"`
	binding
}

func (d *directory) snapshot() []byte {
	s := dirSnap{C: d.carriers, Gen: d.gen, B: d.bases, I: d.incs}
	for _, l := range sortedKeys(d.lwgs) {
		s.L = append(s.L, dirSnapLWG{l, d.lwgs[l]})
	}
	b, err := msgpack.Marshal(&s)
	if err != nil {
		panic(fmt.Sprintf("lwg: encoding directory snapshot: %v", err))
	}
	return b
}

func (d *directory) restore(b []byte) error {
	var s dirSnap
	if err := wirecheck.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: directory snapshot: %v", ErrMalformed, err)
	}
	d.reset()
	d.gen = s.Gen
	for n, inc := range s.I {
		d.incs[n] = inc
	}
	for _, l := range s.L {
		d.lwgs[l.ID] = l.binding
	}
	for h, rec := range s.C {
		if rec == nil {
			return fmt.Errorf("%w: directory snapshot: nil carrier %s", ErrMalformed, h)
		}
		slices.SortFunc(rec.Regs, cmpProcess)
		slices.SortFunc(rec.Pending, cmpProcess)
		slices.SortFunc(rec.Gone, func(a, b goneReg) int { return cmpProcess(a.P, b.P) })
		d.carriers[h] = rec
	}
	if s.B != nil {
		for base, h := range s.B {
			if rec := d.carriers[h]; rec == nil || rec.Base != base {
				return fmt.Errorf("%w: directory snapshot: base %s names carrier %s, not one of its live carriers", ErrMalformed, base, h)
			}
			d.bases[base] = h
		}
		return nil
	}
	// A snapshot from before B: each base's newest live carrier (what
	// create made last), the same at every node.
	for h, rec := range d.carriers {
		if cur, ok := d.bases[rec.Base]; !ok || carrierGen(h) > carrierGen(cur) {
			d.bases[rec.Base] = h
		}
	}
	return nil
}

// carrierGen is the generation in carrier h's name (base#gen), 0 if none.
func carrierGen(h hwg.GroupID) uint64 {
	i := strings.LastIndexByte(string(h), '#')
	if i < 0 {
		return 0
	}
	g, _ := strconv.ParseUint(string(h[i+1:]), 10, 64)
	return g
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b K) int { return strings.Compare(string(a), string(b)) })
	return ks
}
