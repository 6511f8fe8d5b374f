package lwg

import (
	"slices"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
)

// loopDriver runs a Core that is alone in every carrier it starts and in
// a directory it shares with a silent peer: its multicasts come back to it
// in order, and its bootstraps install a view of itself. Leaves are held
// until the test lets them finish, which is how a leave under way meets
// later requests.
type loopDriver struct {
	t      *testing.T
	c      *Core
	views  map[hwg.GroupID]hwg.ViewID
	leaves []hwg.GroupID // ActLeave asked, EventLeft not delivered yet
	events []Event
	sent   []Action // every multicast, in order
	// cut: groups whose multicasts are lost (this node is being cut off
	// from them).
	cut map[hwg.GroupID]bool
}

func newLoopDriver(t *testing.T, cfg Config) *loopDriver {
	t.Helper()
	cfg.Self = self
	c, err := NewCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	peer := hwg.Process{Node: 2, Inc: 1}
	if err := c.BootstrapDirectory([]hwg.Process{self, peer}); err != nil {
		t.Fatal(err)
	}
	d := &loopDriver{t: t, c: c, views: map[hwg.GroupID]hwg.ViewID{}, cut: map[hwg.GroupID]bool{}}
	d.install("h/dir", self, peer)
	d.pump()
	return d
}

func (d *loopDriver) install(h hwg.GroupID, members ...hwg.Process) {
	d.views[h]++
	d.c.HWGEvent(hwg.Event{Type: hwg.EventInstall, Group: h, View: hwg.View{ID: d.views[h], Members: members}})
}

// pump hands the Core its own actions' outcomes until it has nothing more
// to do.
func (d *loopDriver) pump() {
	d.t.Helper()
	for range 1000 {
		rd := d.c.Ready()
		if rd.Empty() {
			return
		}
		d.events = append(d.events, rd.Events...)
		for _, a := range rd.Actions {
			switch a.Type {
			case ActMulticast:
				d.sent = append(d.sent, a)
				if d.cut[a.Group] {
					continue
				}
				d.c.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: a.Group, Msg: hwg.MsgID{Sender: self}, Payload: a.Payload})
			case ActBootstrap:
				d.install(a.Group, self)
			case ActBlockOK:
				d.install(a.Group, self)
			case ActLeave:
				d.leaves = append(d.leaves, a.Group)
			case ActJoin:
				// Only a carrier this node is cut off from: hwg joins it
				// again by itself, and the test decides when it is back.
				if !d.cut[a.Group] {
					d.t.Fatalf("join of %s: nobody to admit this node", a.Group)
				}
			}
		}
	}
	d.t.Fatal("the Core did not settle")
}

// finishLeaves delivers EventLeft for every leave asked so far.
func (d *loopDriver) finishLeaves() {
	for _, h := range d.leaves {
		d.c.HWGEvent(hwg.Event{Type: hwg.EventLeft, Group: h})
	}
	d.leaves = nil
	d.pump()
}

// ended reports whether an endpoint of l ended (EventLeft or
// EventExcluded) since the driver started.
func (d *loopDriver) ended(l ID) bool {
	for _, ev := range d.events {
		if ev.LWG == l && (ev.Type == EventLeft || ev.Type == EventExcluded) {
			return true
		}
	}
	return false
}

// TestNoSwitchOntoACarrierBeingLeft: a member that is lazily leaving a
// carrier (it held nothing there) does not acknowledge a switch to that
// carrier until the leave has ended. Before, it acknowledged at once,
// since it still held the carrier's table; the leave then ended its
// endpoint with EventExcluded while its peers, which joined the carrier
// after the leave, kept it in the LWG and announced it there with the
// member back in the carrier: rsm's replica there, which had dropped its
// state at the exclusion, waited for a transfer nobody owed it (RSM seed
// 6131).
func TestNoSwitchOntoACarrierBeingLeft(t *testing.T) {
	d := newLoopDriver(t, Config{Place: PerLWG, IdleTicks: 3})
	for _, l := range []ID{"l/x", "l/y"} {
		if err := d.c.Join(l); err != nil {
			t.Fatal(err)
		}
		d.pump()
		if d.c.eps[l] == nil {
			t.Fatalf("%s not joined", l)
		}
	}
	target := d.c.eps["l/y"].h
	if err := d.c.Leave("l/y"); err != nil {
		t.Fatal(err)
	}
	d.pump()
	for range 5 {
		d.c.Tick()
		d.pump()
	}
	if len(d.leaves) != 1 || d.leaves[0] != target {
		t.Fatalf("leaves asked %v, want the lazy leave of %s", d.leaves, target)
	}

	if err := d.c.Switch("l/x", PerLWG("l/y")); err != nil {
		t.Fatal(err)
	}
	d.pump()
	if e := d.c.carriers[d.c.eps["l/x"].h].entries["l/x"]; e == nil || e.Fl == nil || e.Fl.To != target {
		t.Fatalf("no switch of l/x to %s under way: %+v", target, e)
	}
	if n := d.kinds("", kFlushOK, "l/x"); n != 0 {
		t.Fatalf("%d acknowledgements of the switch to %s while leaving it", n, target)
	}
	d.finishLeaves()
	if d.ended("l/x") {
		t.Fatalf("l/x ended with the leave of %s: %+v", target, d.events)
	}
	// The LWG lives on, moved or where it was once the switch gives up.
	for range 500 {
		d.c.Tick()
		d.pump()
	}
	ep := d.c.eps["l/x"]
	if ep == nil || d.ended("l/x") {
		t.Fatalf("l/x ended: %+v", d.events)
	}
	if ep.awaitAdopt || ep.incoming != "" || d.c.switches["l/x"] != nil {
		t.Fatalf("l/x still switching: awaitAdopt=%v incoming=%q switch=%+v", ep.awaitAdopt, ep.incoming, d.c.switches["l/x"])
	}
}

// mustBeExcluded fails unless l's endpoint ended with EventExcluded
// (its carrier h holds it without this node).
func (d *loopDriver) mustBeExcluded(h hwg.GroupID, l ID) {
	d.t.Helper()
	if d.c.eps[l] != nil {
		d.t.Fatalf("%s still waits on %s, which holds it without this node", l, h)
	}
	for _, ev := range d.events {
		if ev.LWG == l && ev.Type == EventExcluded {
			return
		}
	}
	d.t.Fatalf("no EventExcluded for %s: %+v", l, d.events)
}

// kinds counts the items of kind k for l multicast in h (any group if
// h is "") so far.
func (d *loopDriver) kinds(h hwg.GroupID, k kind, l ID) int {
	n := 0
	for _, a := range d.sent {
		if h != "" && a.Group != h {
			continue
		}
		ctl, err := decodeControl(a.Payload)
		if err != nil || ctl.Kind != k {
			continue
		}
		for _, it := range ctl.Items {
			if it.LWG == l {
				n++
			}
		}
	}
	return n
}

// switchedUnannounced joins l/x and l/y (each on a carrier of its own),
// leaves l/y but stays in its carrier, which peer (if not zero) joins too,
// and switches
// l/x there with the carrier's multicasts lost: l/x passes its switch
// point and waits for its announcement, which is lost with this node's
// exclusion from the carrier.
// It returns the carrier, with this node excluded from it.
func switchedUnannounced(t *testing.T, d *loopDriver, peer hwg.Process) hwg.GroupID {
	t.Helper()
	for _, l := range []ID{"l/x", "l/y"} {
		if err := d.c.Join(l); err != nil {
			t.Fatal(err)
		}
		d.pump()
	}
	target := d.c.eps["l/y"].h
	if err := d.c.Leave("l/y"); err != nil {
		t.Fatal(err)
	}
	d.pump()
	// The peer joins the carrier too (as far as the directory knows), so
	// that it lives on while this node is out of it. A zero peer: nobody
	// does, and the carrier dies with this node's unregistration.
	if peer != (hwg.Process{}) {
		for _, k := range []kind{kReg, kMember} {
			d.c.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: "h/dir", Msg: hwg.MsgID{Sender: peer}, Payload: encodeControl(&control{Kind: k, Items: []item{{Group: target}}})})
		}
		d.pump()
		if rec := d.c.dir.carriers[target]; rec == nil || !rec.has(peer) {
			t.Fatalf("peer not registered in %s: %+v", target, rec)
		}
	}
	d.cut[target] = true
	if err := d.c.Switch("l/x", PerLWG("l/y")); err != nil {
		t.Fatal(err)
	}
	d.pump()
	ep := d.c.eps["l/x"]
	if ep == nil || !ep.awaitAdopt || ep.h != target || d.kinds(target, kAdopt, "l/x") != 1 {
		t.Fatalf("l/x not waiting for its (lost) announcement on %s: %+v", target, ep)
	}
	d.c.HWGEvent(hwg.Event{Type: hwg.EventExcluded, Group: target})
	d.pump()
	return target
}

// back admits this node to h again in a view with peer, which sends it
// the carrier's table (tab's entries, taken at the install), after the
// controls in between, which this node buffers until the table is there.
func (d *loopDriver) back(h hwg.GroupID, peer hwg.Process, tab map[ID]*entry, between ...*control) {
	d.t.Helper()
	src := newCarrier(d.c, h)
	src.entries = tab
	d.views[h]++
	v := d.views[h]
	d.c.HWGEvent(hwg.Event{Type: hwg.EventInstall, Group: h, View: hwg.View{ID: v, Members: []hwg.Process{peer, self}}, Joined: []hwg.Process{self}})
	for _, ctl := range between {
		d.c.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: h, Msg: hwg.MsgID{Sender: peer}, Payload: encodeControl(ctl)})
	}
	d.c.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: h, Msg: hwg.MsgID{Sender: peer}, Payload: encodeControl(&control{Kind: kSnapshot, View: v, Snap: src.snapshot(), Owed: []hwg.Process{self}})})
	delete(d.cut, h)
	d.pump()
}

// TestExcludedBeforeAnnouncementAnnouncesWhenBack: the only member of an
// LWG that switched, excluded from the new carrier before its
// announcement, keeps its endpoint, and announces the LWG once it is back
// in the carrier. Before, the exclusion ended the endpoint, nobody was left
// to announce the LWG, and its joiners, this node's among them, waited for
// the announcement for good (RSM seed 10690).
func TestExcludedBeforeAnnouncementAnnouncesWhenBack(t *testing.T) {
	d := newLoopDriver(t, Config{Place: PerLWG, IdleTicks: 1000})
	peer := hwg.Process{Node: 2, Inc: 1}
	target := switchedUnannounced(t, d, peer)
	if d.ended("l/x") || d.c.eps["l/x"] == nil {
		t.Fatalf("l/x ended with the exclusion from %s: %+v", target, d.events)
	}
	d.back(target, peer, map[ID]*entry{})
	ep := d.c.eps["l/x"]
	if ep == nil || d.ended("l/x") {
		t.Fatalf("l/x ended once back in %s: %+v", target, d.events)
	}
	if d.kinds(target, kAdopt, "l/x") != 2 {
		t.Fatalf("l/x announced %d times on %s, want again once back", d.kinds(target, kAdopt, "l/x"), target)
	}
	if ep.awaitAdopt || ep.h != target || !ep.view.Contains(self) {
		t.Fatalf("l/x not installed on %s: awaitAdopt=%v on %s view %v", target, ep.awaitAdopt, ep.h, ep.view)
	}
}

// TestExcludedBeforeAnnouncementEndsIfLeftOut: a member kept through its
// exclusion from the new carrier ends its endpoint (EventExcluded) when the
// table it gets back holds the LWG announced without it.
func TestExcludedBeforeAnnouncementEndsIfLeftOut(t *testing.T) {
	d := newLoopDriver(t, Config{Place: PerLWG, IdleTicks: 1000})
	peer := hwg.Process{Node: 2, Inc: 1}
	target := switchedUnannounced(t, d, peer)
	last := d.c.eps["l/x"].view
	d.back(target, peer, map[ID]*entry{"l/x": {View: View{ID: last.ID + 1, Members: []hwg.Process{peer}}}})
	d.mustBeExcluded(target, "l/x")
	if n := d.kinds(target, kAdopt, "l/x"); n != 1 {
		t.Fatalf("l/x announced %d times, want only the lost one", n)
	}
}

// TestAnnouncedWhileBackWithoutTable: a member kept through its exclusion
// from the new carrier, back in its view but still without its table when
// a peer's announcement is delivered, is not counted in by it (it would
// drop the LWG's first data, delivered before it holds the table): the
// peer installs the LWG without it, and so does this node when it replays
// the announcement after the table comes, ending its endpoint. Before,
// the announcement counted it in at the peer; this node, whose table
// (had the view changed before it came) already held the LWG, waited
// for an announcement that would not come again, while the peer counted
// it a member (found in review).
func TestAnnouncedWhileBackWithoutTable(t *testing.T) {
	d := newLoopDriver(t, Config{Place: PerLWG, IdleTicks: 1000})
	peer := hwg.Process{Node: 2, Inc: 1}
	target := switchedUnannounced(t, d, peer)
	last := d.c.eps["l/x"].view
	adopt := &control{Kind: kAdopt, Items: []item{{LWG: "l/x", View: last.ID + 1, Members: []hwg.Process{self, peer}}}}
	d.back(target, peer, map[ID]*entry{}, adopt)
	e := d.c.carriers[target].entries["l/x"]
	if e == nil || e.View.Contains(self) || !e.View.Contains(peer) {
		t.Fatalf("l/x's entry on %s: %+v, want announced with the peer only", target, e)
	}
	d.mustBeExcluded(target, "l/x")
}

// A carrier's announcement counts only the members that hold its table:
// one owed the snapshot vanished.
func TestAdoptSkipsMembersWithoutTable(t *testing.T) {
	c := newTestCore(t)
	car := newCarrier(c, "h/t")
	a, b := hwg.Process{Node: 2, Inc: 1}, hwg.Process{Node: 3, Inc: 1}
	car.view = hwg.View{ID: 5, Members: []hwg.Process{a, self, b}}
	car.owed = map[hwg.Process]hwg.ViewID{b: 5}
	var installs []Event
	c.sawInstall = func(ev Event) { installs = append(installs, ev) }
	car.adopt(item{LWG: "l/m", View: 1<<32 | 4, Members: []hwg.Process{a, b}})
	if len(installs) != 1 || !slices.Equal(installs[0].View.Members, []hwg.Process{a}) || !slices.Equal(installs[0].Vanished, []hwg.Process{b}) {
		t.Fatalf("installs %+v, want l/m's view [a] with b vanished", installs)
	}
}

// TestExcludedBeforeAnnouncementEndsIfCarrierDied: a kept endpoint ends
// (EventExcluded) once the directory declares its new carrier dead: no
// member is left to take this node back in.
func TestExcludedBeforeAnnouncementEndsIfCarrierDied(t *testing.T) {
	d := newLoopDriver(t, Config{Place: PerLWG, IdleTicks: 1000})
	target := switchedUnannounced(t, d, hwg.Process{})
	if d.c.dir.alive(target) {
		t.Fatalf("%s alive with nobody registered: %+v", target, d.c.dir.carriers[target])
	}
	d.mustBeExcluded(target, "l/x")
}

// TestExcludedBeforeAnnouncementTakesTableView: a kept endpoint whose
// table, once back, holds the LWG with this node in it installs that view
// rather than wait for an announcement that already happened. A correct
// peer does not send such a table (an announcement skips members owed the
// snapshot); the endpoint must not hang if one comes.
func TestExcludedBeforeAnnouncementTakesTableView(t *testing.T) {
	d := newLoopDriver(t, Config{Place: PerLWG, IdleTicks: 1000})
	peer := hwg.Process{Node: 2, Inc: 1}
	target := switchedUnannounced(t, d, peer)
	want := View{ID: d.c.eps["l/x"].view.ID + 1, Members: []hwg.Process{self, peer}}
	d.back(target, peer, map[ID]*entry{"l/x": {View: want}})
	ep := d.c.eps["l/x"]
	if ep == nil || ep.awaitAdopt || ep.view.ID != want.ID || d.ended("l/x") {
		t.Fatalf("l/x on %s: %+v, want view %v installed", target, ep, want)
	}
	if n := d.kinds(target, kAdopt, "l/x"); n != 1 {
		t.Fatalf("l/x announced %d times, want only the lost one", n)
	}
}

// TestExcludedFromDeadCarrierLeaves: a node excluded from a carrier that
// then died (nobody registered in it) leaves it, and forgets its record
// once the leave ended. Before, nothing did: hwg.Node, which joins an
// excluded node again by itself, kept asking the carrier's former members
// to admit it for good, and Tick walked the record for good.
func TestExcludedFromDeadCarrierLeaves(t *testing.T) {
	d := newLoopDriver(t, Config{Place: PerLWG, IdleTicks: 1000})
	target := switchedUnannounced(t, d, hwg.Process{})
	d.mustBeExcluded(target, "l/x")
	if len(d.leaves) != 0 {
		t.Fatalf("leaves %v before a tick", d.leaves)
	}
	d.c.Tick()
	d.pump()
	if !slices.Equal(d.leaves, []hwg.GroupID{target}) {
		t.Fatalf("leaves asked %v, want %s (dead, and this node excluded from it)", d.leaves, target)
	}
	d.finishLeaves()
	if car := d.c.carriers[target]; car != nil {
		t.Fatalf("record of dead carrier %s kept after the leave: %+v", target, car)
	}
}

// TestGoneCarrierForgottenOnceNothingComes: a carrier this node left,
// whose unregistration was applied while an endpoint was still on its
// way there (so the kUnreg could not forget it), is forgotten at the
// first tick after that endpoint went; and not before.
func TestGoneCarrierForgottenOnceNothingComes(t *testing.T) {
	d := newLoopDriver(t, Config{Place: PerLWG, IdleTicks: 1000})
	const h hwg.GroupID = "h/gone"
	car := d.c.carrierOf(h)
	car.out = true // left, its kUnreg applied: the directory has no record
	car.incoming["l/z"] = true
	d.c.Tick()
	d.pump()
	if d.c.carriers[h] != car {
		t.Fatalf("record of %s forgotten with an endpoint still incoming", h)
	}
	delete(car.incoming, "l/z")
	d.c.Tick()
	d.pump()
	if d.c.carriers[h] != nil {
		t.Fatalf("record of %s kept with nothing on its way there", h)
	}
	if len(d.leaves) != 0 {
		t.Fatalf("leaves asked %v for a carrier this node is out of", d.leaves)
	}
}

// TestExcludedFromLiveCarrierStays: a node excluded from a carrier that
// lives on (a peer is registered in it) asks no leave and keeps its record
// however long hwg takes to admit it again, holding nothing there; the
// install of that rejoin finds the record and makes it a member again.
func TestExcludedFromLiveCarrierStays(t *testing.T) {
	d := newLoopDriver(t, Config{Place: PerLWG, IdleTicks: 1000})
	peer := hwg.Process{Node: 2, Inc: 1}
	if err := d.c.Join("l/y"); err != nil {
		t.Fatal(err)
	}
	d.pump()
	target := d.c.eps["l/y"].h
	for _, k := range []kind{kReg, kMember} {
		d.c.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: "h/dir", Msg: hwg.MsgID{Sender: peer}, Payload: encodeControl(&control{Kind: k, Items: []item{{Group: target}}})})
	}
	if err := d.c.Leave("l/y"); err != nil {
		t.Fatal(err)
	}
	d.pump()
	d.cut[target] = true
	d.c.HWGEvent(hwg.Event{Type: hwg.EventExcluded, Group: target})
	d.pump()
	for range 50 {
		d.c.Tick()
		d.pump()
	}
	car := d.c.carriers[target]
	if len(d.leaves) != 0 || car == nil {
		t.Fatalf("excluded from live %s: leaves asked %v, record %+v", target, d.leaves, car)
	}
	if !car.rejoining || !d.c.dir.alive(target) {
		t.Fatalf("record of %s: rejoining=%v, carrier alive=%v", target, car.rejoining, d.c.dir.alive(target))
	}
	d.back(target, peer, map[ID]*entry{})
	if !car.member || car.rejoining || d.c.carriers[target] != car {
		t.Fatalf("rejoin of %s not taken: member=%v rejoining=%v", target, car.member, car.rejoining)
	}
}

// TestRejoiningAndJoiningDeadCarrierLeavesOnce: an excluded node that also
// asked to join its carrier (an LWG wanted it) leaves it once when it dies,
// not once for the rejoin and once for the join (the second Leave found
// no group and was logged as a failure).
func TestRejoiningAndJoiningDeadCarrierLeavesOnce(t *testing.T) {
	d := newLoopDriver(t, Config{Place: PerLWG, IdleTicks: 1000})
	const h hwg.GroupID = "h/dead"
	car := d.c.carrierOf(h)
	car.rejoining, car.joining = true, true // no directory record: dead
	d.c.Tick()
	d.pump()
	if !slices.Equal(d.leaves, []hwg.GroupID{h}) {
		t.Fatalf("leaves asked %v, want %s once", d.leaves, h)
	}
}
