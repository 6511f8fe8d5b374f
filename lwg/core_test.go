package lwg

import (
	"errors"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
)

var self = hwg.Process{Node: 1, Inc: 1}

func newTestCore(t *testing.T) *Core {
	t.Helper()
	c, err := NewCore(Config{Self: self})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewCoreRejectsBadConfig(t *testing.T) {
	for _, p := range []hwg.Process{{}, {Node: 1}, {Inc: 1}} {
		if _, err := NewCore(Config{Self: p}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Self %v: err = %v, want ErrInvalidConfig", p, err)
		}
	}
}

// TestRequestErrors: requests that cannot apply fail with their sentinel
// and change nothing (Ready stays empty).
func TestRequestErrors(t *testing.T) {
	c := newTestCore(t)
	checks := []struct {
		name string
		err  error
		want error
	}{
		{"bootstrap without self", c.BootstrapDirectory([]hwg.Process{{Node: 2, Inc: 1}}), ErrInvalidConfig},
		{"join with empty id", c.Join(""), ErrBadID},
		{"join with long id", c.Join(ID(make([]byte, maxIDLen+1))), ErrBadID},
		{"leave a stranger", c.Leave("l/x"), ErrNotMember},
		{"multicast to a stranger", c.Multicast("l/x", []byte("m")), ErrNotMember},
		{"hold ok for a stranger", c.HoldOK("l/x"), ErrNotMember},
		{"switch a stranger", c.Switch("l/x", "h/b"), ErrNotMember},
	}
	for _, ch := range checks {
		if !errors.Is(ch.err, ch.want) {
			t.Errorf("%s: err = %v, want %v", ch.name, ch.err, ch.want)
		}
	}
	if rd := c.Ready(); !rd.Empty() {
		t.Fatalf("failed requests produced %+v", rd)
	}
	if err := c.Join("l/x"); err != nil {
		t.Fatal(err)
	}
	if err := c.Join("l/x"); !errors.Is(err, ErrAlreadyMember) {
		t.Fatalf("second Join: %v, want ErrAlreadyMember", err)
	}
	// A Leave before anything was asked just forgets the Join.
	if err := c.Leave("l/x"); err != nil {
		t.Fatal(err)
	}
	if err := c.Leave("l/x"); !errors.Is(err, ErrNotMember) {
		t.Fatalf("Leave after the Join was forgotten: %v, want ErrNotMember", err)
	}
}

// TestBadPayloadsAreCounted: payloads from a carrier that do not decode are
// counted and dropped; the table does not change.
func TestBadPayloadsAreCounted(t *testing.T) {
	c := newTestCore(t)
	if err := c.BootstrapDirectory([]hwg.Process{self}); err != nil {
		t.Fatal(err)
	}
	c.HWGEvent(hwg.Event{Type: hwg.EventInstall, Group: "h/dir", View: hwg.View{ID: 1, Members: []hwg.Process{self}}})
	before := c.dir.snapshot()
	for _, p := range [][]byte{{}, {tagControl, 0xc1}, {tagControl}, {9, 9}} {
		c.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: "h/dir", Msg: hwg.MsgID{Sender: self}, Payload: p})
	}
	if got := c.Stats().Malformed; got != 4 {
		t.Fatalf("Malformed = %d, want 4", got)
	}
	if after := c.dir.snapshot(); string(after) != string(before) {
		t.Fatal("a malformed payload changed the directory")
	}
}

// TestJoinBatches: a node joining many LWGs on one carrier sends one bind
// and, once in the carrier, one join message for all of them.
func TestJoinBatches(t *testing.T) {
	c := newTestCore(t)
	if err := c.BootstrapDirectory([]hwg.Process{self}); err != nil {
		t.Fatal(err)
	}
	dir := hwg.View{ID: 1, Members: []hwg.Process{self}}
	c.HWGEvent(hwg.Event{Type: hwg.EventInstall, Group: "h/dir", View: dir})
	c.Ready()
	for _, l := range []ID{"l/1", "l/2", "l/3"} {
		if err := c.Join(l); err != nil {
			t.Fatal(err)
		}
	}
	rd := c.Ready()
	if len(rd.Actions) != 1 || rd.Actions[0].Type != ActMulticast || rd.Actions[0].Group != "h/dir" {
		t.Fatalf("want one directory multicast, got %+v", rd.Actions)
	}
	bind, err := decodeControl(rd.Actions[0].Payload)
	if err != nil || bind.Kind != kBind || len(bind.Items) != 3 {
		t.Fatalf("want one bind of 3 LWGs, got %+v (%v)", bind, err)
	}
	// The directory delivers it: this node creates the carrier, bootstraps
	// it, and joins the three LWGs with one message.
	h := bootstrapBound(t, c, rd.Actions[0].Payload)
	rd = c.Ready()
	var joins []*control
	for _, a := range rd.Actions {
		if ctl, err := decodeControl(a.Payload); err == nil && a.Group == h && ctl.Kind == kJoin {
			joins = append(joins, ctl)
		}
	}
	if len(joins) != 1 || len(joins[0].Items) != 3 {
		t.Fatalf("want one join message for 3 LWGs on %s, got %d (%+v)", h, len(joins), rd.Actions)
	}
}

// bootstrapBound delivers this node's bind in the directory, expects the
// bootstrap of a new carrier, and installs the carrier's first view (self
// alone). It returns the carrier; the Core's next Ready holds what the
// install made it do.
func bootstrapBound(t *testing.T, c *Core, bind []byte) hwg.GroupID {
	t.Helper()
	c.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: "h/dir", Msg: hwg.MsgID{Sender: self}, Payload: bind})
	rd := c.Ready()
	if len(rd.Actions) != 1 || rd.Actions[0].Type != ActBootstrap {
		t.Fatalf("want a bootstrap of the carrier, got %+v", rd.Actions)
	}
	h := rd.Actions[0].Group
	c.HWGEvent(hwg.Event{Type: hwg.EventInstall, Group: h, View: hwg.View{ID: 1, Members: []hwg.Process{self}}})
	return h
}

// TestReadyWithoutSpareSizesNextArray: when every event array is with the
// reader, the next one is made the size of the batch just handed out (up
// to keepEventsCap), not grown from nothing by doubling.
func TestReadyWithoutSpareSizesNextArray(t *testing.T) {
	for _, n := range []int{300, 2 * keepEventsCap} {
		c := newTestCore(t)
		for range n {
			c.emit(Event{Type: EventDeliver})
		}
		if rd := c.Ready(); len(rd.Events) != n {
			t.Fatalf("Ready returned %d events, want %d", len(rd.Events), n)
		}
		if want := min(n, keepEventsCap); cap(c.events) != want || len(c.events) != 0 {
			t.Fatalf("after a batch of %d with no spare: next array len %d cap %d, want 0 and %d", n, len(c.events), cap(c.events), want)
		}
	}
}

// TestRecycleKeepsSeveralArrays: a reader that holds several event
// batches before handing them back gets them reused, not one array per
// batch; arrays are kept up to maxSpareEvents, and besides the Core's own
// only the first spare may be larger than keepEventsCap.
func TestRecycleKeepsSeveralArrays(t *testing.T) {
	c := newTestCore(t)
	held := make([][]Event, 5)
	for i := range held {
		held[i] = make([]Event, 1, 16)
	}
	for _, evs := range held {
		c.Recycle(Ready{Events: evs})
	}
	// The next five Readys with events reuse the five arrays.
	seen := map[*Event]bool{}
	for _, evs := range held {
		seen[&evs[:1][0]] = true
	}
	for i := range 5 {
		c.emit(Event{Type: EventDeliver})
		rd := c.Ready()
		if !seen[&rd.Events[:1][0]] {
			t.Fatalf("Ready %d: a new event array while %d were handed back", i, len(held))
		}
	}
	c = newTestCore(t)
	for range 2 * maxSpareEvents {
		c.Recycle(Ready{Events: make([]Event, 1, 16)})
	}
	c.Recycle(Ready{Events: make([]Event, 1, 2*keepEventsCap)})
	c.Recycle(Ready{Events: make([]Event, 1, 4*keepEventsCap)})
	if len(c.spares) > maxSpareEvents {
		t.Fatalf("%d spare arrays kept, at most %d", len(c.spares), maxSpareEvents)
	}
	large := 0
	for i, evs := range c.spares {
		if cap(evs) > keepEventsCap {
			large++
			if i != 0 {
				t.Fatalf("a spare of %d events at %d, not first", cap(evs), i)
			}
		}
	}
	// The largest becomes the Core's array, the next largest its first
	// spare; the small ones it displaced fill the rest.
	if cap(c.events) != 4*keepEventsCap || large != 1 || cap(c.spares[0]) != 2*keepEventsCap {
		t.Fatalf("array of %d events, %d large spares, first of %d; want %d, 1, %d", cap(c.events), large, cap(c.spares[0]), 4*keepEventsCap, 2*keepEventsCap)
	}
}
