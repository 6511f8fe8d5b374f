package lwg

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/lwgkit/lwgkit/hwg"
)

// TestCarrierBase: a carrier's base is known from its id alone (Switch
// waits on it before the directory copy may have the carrier's record).
func TestCarrierBase(t *testing.T) {
	d := newDirectory("h/dir")
	for _, base := range []hwg.GroupID{"h/shared", "h/l#x", "h/"} {
		if h := d.create(base, hwg.Process{Node: 1, Inc: 1}); carrierBase(h) != base {
			t.Errorf("carrierBase(%q) = %q, want %q", h, carrierBase(h), base)
		}
	}
}

// TestDirectoryRestoreKeepsBases (found in review): when two live carriers
// share a base, every node's copy resolves the base to the one create made
// last; a copy restored from a snapshot must too. Restore used to take
// whichever carrier of the base its map iteration met last, so a node
// joining the directory could resolve the base to another carrier than
// the rest. And a base whose newest carrier died resolves to none (the
// next resolve creates one), not to the older one still alive.
func TestDirectoryRestoreKeepsBases(t *testing.T) {
	p := hwg.Process{Node: 1, Inc: 1}
	d := newDirectory("h/dir")
	old := d.create("h/b", p)
	for i := range 8 { // other carriers, so map order varies more
		d.create(hwg.GroupID(fmt.Sprintf("h/o%d", i)), p)
	}
	cur := d.create("h/b", p) // a rebind re-created h/b's carrier; old lives on
	restored := func(snap []byte) *directory {
		t.Helper()
		r := newDirectory("h/dir")
		if err := r.restore(snap); err != nil {
			t.Fatal(err)
		}
		return r
	}
	snap := d.snapshot()
	for range 50 {
		if h, ok := restored(snap).bases["h/b"]; !ok || h != cur {
			t.Fatalf("restored copy resolves h/b to %q (%v), want %q (old %q)", h, ok, cur, old)
		}
	}
	d.kill(cur)
	snap = d.snapshot()
	for range 50 {
		r := restored(snap)
		if h, ok := r.bases["h/b"]; ok {
			t.Fatalf("restored copy resolves h/b to %q after its newest carrier died; the original resolves it to none", h)
		}
		if got, want := r.resolve("h/b", p), d.resolve("h/b", p); got != want {
			t.Fatalf("after restore, resolve(h/b) = %q, the original's %q", got, want)
		}
		d = restored(snap) // keep d as it was before its resolve
	}
}

// TestDirectoryRestoreOldSnapshot: a snapshot without bases (from before
// they were kept) resolves each base to its newest live carrier, at every
// node alike; one whose bases name a dead carrier is malformed.
func TestDirectoryRestoreOldSnapshot(t *testing.T) {
	p := hwg.Process{Node: 1, Inc: 1}
	d := newDirectory("h/dir")
	d.create("h/b", p)
	for i := range 8 {
		d.create(hwg.GroupID(fmt.Sprintf("h/o%d", i)), p)
	}
	cur := d.create("h/b", p)
	old, err := msgpack.Marshal(&dirSnap{C: d.carriers, Gen: d.gen})
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		r := newDirectory("h/dir")
		if err := r.restore(old); err != nil {
			t.Fatal(err)
		}
		if h := r.bases["h/b"]; h != cur {
			t.Fatalf("old snapshot: h/b resolves to %q, want its newest carrier %q", h, cur)
		}
	}
	bad, err := msgpack.Marshal(&dirSnap{C: d.carriers, Gen: d.gen, B: map[hwg.GroupID]hwg.GroupID{"h/b": "h/b#99"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := newDirectory("h/dir").restore(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("snapshot naming a dead carrier for a base: %v, want ErrMalformed", err)
	}
}

// TestDirectoryIgnoresStaleIncarnations: once a view of the directory held
// node 3's second incarnation, updates about its first (a member's kMember
// admitting it, its own kReg or kBind, sent before it crashed and
// delivered after) change nothing: nothing would drop such a registration
// again (lwgsim -seed 53 -lwgs 200 -carriers 1 -switches 50
// -manual-blockok). A restored copy knows what the original knew.
func TestDirectoryIgnoresStaleIncarnations(t *testing.T) {
	p1 := hwg.Process{Node: 1, Inc: 1}
	old, cur := hwg.Process{Node: 3, Inc: 1}, hwg.Process{Node: 3, Inc: 2}
	updates := func(d *directory, h hwg.GroupID) {
		d.apply(p1, &control{Kind: kMember, Items: []item{{Group: h, Members: []hwg.Process{old}}}})
		d.apply(old, &control{Kind: kReg, Items: []item{{Group: h}}})
		d.apply(old, &control{Kind: kBind, Items: []item{{Group: "h/new"}}})
	}
	// Without the newer incarnation, the same updates take effect.
	d := newDirectory("h/dir")
	h := d.create("h/b", p1)
	updates(d, h)
	if !d.carriers[h].has(old) || !d.alive(d.bases["h/new"]) {
		t.Fatalf("updates of a live process ignored: %+v, bases %v", d.carriers[h], d.bases)
	}

	d = newDirectory("h/dir")
	h = d.create("h/b", p1)
	d.boundary(&hwg.Event{Type: hwg.EventInstall, Group: "h/dir", View: hwg.View{ID: 2, Members: []hwg.Process{p1, old, cur}}})
	r := newDirectory("h/dir")
	if err := r.restore(d.snapshot()); err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]*directory{"original": d, "restored": r} {
		updates(d, h)
		if rec := d.carriers[h]; rec.registered(old) {
			t.Errorf("%s: a crashed incarnation registered: %+v", name, rec)
		}
		if _, ok := d.bases["h/new"]; ok {
			t.Errorf("%s: a crashed incarnation created a carrier", name)
		}
		d.apply(p1, &control{Kind: kMember, Items: []item{{Group: h, Members: []hwg.Process{cur}}}})
		if !d.carriers[h].has(cur) {
			t.Errorf("%s: the current incarnation not registered: %+v", name, d.carriers[h])
		}
	}
}

// TestDirectoryRegistrationOlderThanDeparture: a member's kMember naming
// another process is stamped with the carrier view it saw that process in;
// once the process unregistered, leaving the carrier at a view, a stamp no
// later than that is older than the departure and is ignored, a later one
// registers it again, and the process's own registration always counts.
// An unstamped one (0) counts, as before stamps existed. The record of the
// departure survives a snapshot.
func TestDirectoryRegistrationOlderThanDeparture(t *testing.T) {
	p1, p2 := hwg.Process{Node: 1, Inc: 1}, hwg.Process{Node: 2, Inc: 1}
	d := newDirectory("h/dir")
	h := d.create("h/b", p1)
	member := func(from hwg.Process, view uint64, who ...hwg.Process) {
		d.apply(from, &control{Kind: kMember, Items: []item{{Group: h, Members: who, View: view}}})
	}
	unreg := func(view uint64) {
		d.apply(p2, &control{Kind: kUnreg, Items: []item{{Group: h, View: view}}})
	}
	member(p1, 3, p2)
	if !d.carriers[h].has(p2) {
		t.Fatalf("p2 not registered: %+v", d.carriers[h])
	}
	unreg(5)
	r := newDirectory("h/dir")
	if err := r.restore(d.snapshot()); err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]*directory{"original": d, "restored": r} {
		for _, v := range []uint64{4, 5} {
			d.apply(p1, &control{Kind: kMember, Items: []item{{Group: h, Members: []hwg.Process{p2}, View: v}}})
			if d.carriers[h].has(p2) {
				t.Fatalf("%s: registered by a kMember of view %d, after it left at view 5", name, v)
			}
		}
		d.apply(p1, &control{Kind: kMember, Items: []item{{Group: h, Members: []hwg.Process{p2}, View: 6}}})
		if rec := d.carriers[h]; !rec.has(p2) || len(rec.Gone) != 0 {
			t.Fatalf("%s: a kMember of view 6 did not register it again: %+v", name, rec)
		}
	}
	unreg(7)
	d.apply(p2, &control{Kind: kMember, Items: []item{{Group: h}}})
	if !d.carriers[h].has(p2) {
		t.Fatalf("its own registration ignored: %+v", d.carriers[h])
	}
	unreg(8)
	member(p1, 0, p2)
	if !d.carriers[h].has(p2) {
		t.Fatalf("an unstamped registration ignored: %+v", d.carriers[h])
	}
	// A departure from an unknown view (it never installed one) is later
	// than any view another member can name.
	unreg(0)
	member(p1, 1000, p2)
	if d.carriers[h].has(p2) {
		t.Fatalf("registered by another member after leaving from an unknown view: %+v", d.carriers[h])
	}
	d.apply(p2, &control{Kind: kMember, Items: []item{{Group: h}}})
	if !d.carriers[h].has(p2) {
		t.Fatalf("its own registration ignored: %+v", d.carriers[h])
	}
}
