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
