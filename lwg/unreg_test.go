package lwg

import (
	"slices"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
)

// dirItems returns the items of kind k that rd multicasts in the directory.
func dirItems(t *testing.T, rd Ready, k kind) []item {
	t.Helper()
	var out []item
	for _, a := range rd.Actions {
		if a.Type != ActMulticast || a.Group != "h/dir" {
			continue
		}
		ctl, err := decodeControl(a.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if ctl.Kind == k {
			out = append(out, ctl.Items...)
		}
	}
	return out
}

// newDirCore returns a Core in a bootstrapped directory of itself and b.
func newDirCore(t *testing.T) (c *Core, b hwg.Process) {
	t.Helper()
	c = newTestCore(t)
	b = hwg.Process{Node: 2, Inc: 1}
	if err := c.BootstrapDirectory([]hwg.Process{self, b}); err != nil {
		t.Fatal(err)
	}
	c.HWGEvent(hwg.Event{Type: hwg.EventInstall, Group: "h/dir", View: hwg.View{ID: 1, Members: []hwg.Process{self, b}}})
	c.Ready()
	return c, b
}

// TestUnregLostWithDirectoryMembership: a node that leaves a carrier and is
// excluded from the directory before its kUnreg is delivered finds itself
// still registered in the snapshot it gets when it is back, and sends the
// kUnreg again; otherwise the directory would count it as a member of the
// carrier for good and never declare the carrier dead (RSM seed 1178:
// joiners kept asking it to admit them after the heal).
func TestUnregLostWithDirectoryMembership(t *testing.T) {
	c, b := newDirCore(t)
	if err := c.Join("l/x"); err != nil {
		t.Fatal(err)
	}
	rd := c.Ready()
	if len(rd.Actions) != 1 || rd.Actions[0].Type != ActMulticast {
		t.Fatalf("want the bind, got %+v", rd.Actions)
	}
	h := bootstrapBound(t, c, rd.Actions[0].Payload)
	c.Ready()
	if rec := c.dir.carriers[h]; rec == nil || !rec.has(self) {
		t.Fatalf("directory record of %s: %+v, want self registered", h, rec)
	}
	// The directory as B will hand it back: self still registered in h.
	snap := c.dir.snapshot()

	// Self leaves the carrier; its kUnreg is multicast but lost, because
	// the directory's view change excludes self before delivering it.
	if err := c.Leave("l/x"); err != nil {
		t.Fatal(err)
	}
	c.HWGEvent(hwg.Event{Type: hwg.EventLeft, Group: h})
	if got := dirItems(t, c.Ready(), kUnreg); len(got) != 1 || got[0].Group != h {
		t.Fatalf("kUnreg items %+v, want one for %s", got, h)
	}
	c.HWGEvent(hwg.Event{Type: hwg.EventExcluded, Group: "h/dir"})
	c.Ready()

	// Back in the directory with B's snapshot.
	c.HWGEvent(hwg.Event{Type: hwg.EventInstall, Group: "h/dir", View: hwg.View{ID: 2, Members: []hwg.Process{b, self}}, Joined: []hwg.Process{self}})
	c.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: "h/dir", Msg: hwg.MsgID{Sender: b}, Payload: encodeControl(&control{Kind: kSnapshot, View: 2, Snap: snap})})
	if !c.dir.synced {
		t.Fatal("directory snapshot not restored")
	}
	rd = c.Ready()
	got := dirItems(t, rd, kUnreg)
	if len(got) != 1 || got[0].Group != h {
		t.Fatalf("kUnreg items %+v, want one for %s again (actions %+v)", got, h, rd.Actions)
	}
	// Its delivery declares the carrier dead: nobody else is in it.
	for _, a := range rd.Actions {
		if a.Type == ActMulticast && a.Group == "h/dir" {
			c.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: "h/dir", Msg: hwg.MsgID{Sender: self}, Payload: a.Payload})
		}
	}
	if c.dir.alive(h) {
		t.Fatalf("%s still alive: %+v", h, c.dir.carriers[h])
	}
}

// TestUnstartedCarrierIsReaped: a carrier the directory made this process
// the creator of, for a request that ended before the process started it,
// is unregistered once IdleTicks pass with nothing asking for it, which
// kills it. Before, it stayed in the directory for good, listed under a
// creator that would never admit anyone (lwgsim -seed 21 -nodes 7 -lwgs 60
// -carriers 0 -switches 40).
func TestUnstartedCarrierIsReaped(t *testing.T) {
	c, _ := newDirCore(t)
	// A switch's request for a carrier of base h/alt, delivered after the
	// switch ended.
	bind := encodeControl(&control{Kind: kBind, Items: []item{{Group: "h/alt"}}})
	c.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: "h/dir", Msg: hwg.MsgID{Sender: self}, Payload: bind})
	h, ok := c.dir.bases["h/alt"]
	if !ok || c.dir.carriers[h].Creator != self {
		t.Fatalf("no carrier of h/alt created by self: %v %+v", h, c.dir.carriers[h])
	}
	for _, a := range c.Ready().Actions {
		if a.Type == ActBootstrap {
			t.Fatalf("bootstrapped %s, which nothing asked for", a.Group)
		}
	}
	for i := range c.cfg.IdleTicks {
		c.Tick()
		if got := dirItems(t, c.Ready(), kUnreg); len(got) > 0 {
			t.Fatalf("unregistered after %d ticks, before IdleTicks (%d)", i+1, c.cfg.IdleTicks)
		}
	}
	c.Tick()
	rd := c.Ready()
	if got := dirItems(t, rd, kUnreg); len(got) != 1 || got[0].Group != h {
		t.Fatalf("kUnreg items %+v, want one for %s", got, h)
	}
	for _, a := range rd.Actions {
		if a.Type == ActMulticast && a.Group == "h/dir" {
			c.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: "h/dir", Msg: hwg.MsgID{Sender: self}, Payload: a.Payload})
		}
	}
	if c.dir.alive(h) {
		t.Fatalf("%s still alive: %+v", h, c.dir.carriers[h])
	}
	if c.carriers[h] != nil {
		t.Fatalf("record of %s kept after its unregistration", h)
	}
	// A request for the base now gets a new carrier.
	c.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: "h/dir", Msg: hwg.MsgID{Sender: self}, Payload: bind})
	if h2 := c.dir.bases["h/alt"]; h2 == h || !c.dir.alive(h2) {
		t.Fatalf("base h/alt resolves to %q after %s died", h2, h)
	}
}

// TestRejoinRegistersViewMembers: back in the directory, a member of a
// carrier registers the other members of its view that the directory does
// not list, stamped with that view: their own registrations and the
// admitting member's may all have been lost with directory memberships,
// and then the directory would declare the carrier dead while they hold
// its table (compose seed 189: a second life of an LWG beside the first).
func TestRejoinRegistersViewMembers(t *testing.T) {
	c, b := newDirCore(t)
	if err := c.Join("l/x"); err != nil {
		t.Fatal(err)
	}
	h := bootstrapBound(t, c, c.Ready().Actions[0].Payload)
	c.Ready()
	snap := c.dir.snapshot() // h registered to self alone

	p3, p4 := hwg.Process{Node: 3, Inc: 1}, hwg.Process{Node: 4, Inc: 1}
	c.HWGEvent(hwg.Event{Type: hwg.EventInstall, Group: h, View: hwg.View{ID: 2, Members: []hwg.Process{self, p3, p4}}, Joined: []hwg.Process{p3, p4}})
	if got := dirItems(t, c.Ready(), kMember); len(got) != 1 || len(got[0].Members) != 2 || got[0].View != 2 {
		t.Fatalf("the admitting member's kMember: %+v, want p3 and p4 at view 2", got)
	}
	// That kMember is lost: self is excluded from the directory, and comes
	// back to a snapshot that lists only itself.
	c.HWGEvent(hwg.Event{Type: hwg.EventExcluded, Group: "h/dir"})
	c.Ready()
	c.HWGEvent(hwg.Event{Type: hwg.EventInstall, Group: "h/dir", View: hwg.View{ID: 2, Members: []hwg.Process{b, self}}, Joined: []hwg.Process{self}})
	c.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: "h/dir", Msg: hwg.MsgID{Sender: b}, Payload: encodeControl(&control{Kind: kSnapshot, View: 2, Snap: snap})})
	got := dirItems(t, c.Ready(), kMember)
	if len(got) != 1 || got[0].Group != h || got[0].View != 2 || !slices.Equal(got[0].Members, []hwg.Process{p3, p4}) {
		t.Fatalf("kMember items %+v, want p3 and p4 registered at view 2 of %s", got, h)
	}
}
