package lwg

import (
	"slices"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
)

// A carrier view change that drops every member of an LWG's view records
// the dropped ones (not those leaving) in its gone record, and the next
// join continues the view ids and names them; one that drops only some
// names those at the install (Event.Vanished).
func TestVanishedMembers(t *testing.T) {
	c := newTestCore(t)
	car := newCarrier(c, "h/x")
	a, b, d := hwg.Process{Node: 2, Inc: 1}, hwg.Process{Node: 3, Inc: 1}, hwg.Process{Node: 4, Inc: 1}
	var installs []Event
	car.entries["l/all"] = &entry{View: View{ID: 1<<32 | 3, Members: []hwg.Process{a, b}}}
	car.entries["l/leave"] = &entry{View: View{ID: 1<<32 | 3, Members: []hwg.Process{a, b}}, Fl: &flush{Need: []hwg.Process{a}, Leaves: []hwg.Process{b}}}
	car.entries["l/some"] = &entry{View: View{ID: 1<<32 | 3, Members: []hwg.Process{a, d}}}
	c.sawInstall = func(ev Event) { installs = append(installs, ev) }
	car.boundary(&hwg.Event{View: hwg.View{ID: 9, Members: []hwg.Process{self, d}}})
	if g := car.gone["l/all"]; g.View != 1<<32|3 || !slices.Equal(g.Members, []hwg.Process{a, b}) {
		t.Fatalf("gone l/all = %+v, want view 3 and both members", g)
	}
	if g := car.gone["l/leave"]; !slices.Equal(g.Members, []hwg.Process{a}) {
		t.Fatalf("gone l/leave = %+v, want a only (b left)", g)
	}
	if len(installs) != 1 || installs[0].LWG != "l/some" || !slices.Equal(installs[0].Vanished, []hwg.Process{a}) || !slices.Equal(installs[0].View.Members, []hwg.Process{d}) {
		t.Fatalf("installs %+v, want l/some's view [d] with a vanished", installs)
	}
	installs = nil
	if !car.join(d, item{LWG: "l/all"}) {
		t.Fatal("join of an ended LWG refused")
	}
	if len(installs) != 1 || installs[0].View.ID != 1<<32|4 || !slices.Equal(installs[0].Vanished, []hwg.Process{a, b}) {
		t.Fatalf("installs %+v, want l/all's view 4 with a and b vanished", installs)
	}
}

// A switch's members that are not in the new carrier when the LWG arrives
// there vanished: a joiner that follows the move and finds none of them
// starts the LWG naming them all, and an announcement names the missing
// ones. Before, both installs named nobody, and rsm's joiner started the
// object over after two empty claim rounds while the moved members, cut
// off with its state, could still come back.
func TestVanishedInSwitch(t *testing.T) {
	c := newTestCore(t)
	car := newCarrier(c, "h/t")
	car.view = hwg.View{ID: 5, Members: []hwg.Process{self, {Node: 4, Inc: 1}}}
	a, b, d := hwg.Process{Node: 2, Inc: 1}, hwg.Process{Node: 3, Inc: 1}, hwg.Process{Node: 4, Inc: 1}
	var installs []Event
	c.sawInstall = func(ev Event) { installs = append(installs, ev) }
	if !car.join(d, item{LWG: "l/moved", Ver: 1, View: 1<<32 | 8, Members: []hwg.Process{a, b}}) {
		t.Fatal("join after a move none of whose members is here refused")
	}
	if len(installs) != 1 || installs[0].View.ID != 1<<32|8 || !slices.Equal(installs[0].Vanished, []hwg.Process{a, b}) {
		t.Fatalf("installs %+v, want l/moved's view 8 with a and b vanished", installs)
	}
	installs = nil
	car.adopt(item{LWG: "l/adopted", View: 1<<32 | 4, Members: []hwg.Process{a, d}})
	if len(installs) != 1 || !slices.Equal(installs[0].View.Members, []hwg.Process{d}) || !slices.Equal(installs[0].Vanished, []hwg.Process{a}) {
		t.Fatalf("installs %+v, want l/adopted's view [d] with a vanished", installs)
	}
	installs = nil
	car.adopt(item{LWG: "l/whole", View: 1<<32 | 4, Members: []hwg.Process{d}})
	if len(installs) != 1 || len(installs[0].Vanished) != 0 {
		t.Fatalf("installs %+v, want l/whole's view with nobody vanished", installs)
	}
}

// A life that switched to a carrier (the rebind raised the directory
// version to 2, its view ids kept version 1) and ended there goes on after
// its last view when someone joins through the directory: the members of
// that view vanished. Before, the join compared the ended view with the
// first view of version 2, took the LWG for one never seen here, and
// installed view 2.1 naming nobody; rsm's joiner, holding an older state,
// went on from it as a new life (RSM seed 11201).
func TestJoinAfterSwitchedLifeEnded(t *testing.T) {
	c := newTestCore(t)
	car := newCarrier(c, "h/new")
	a, d := hwg.Process{Node: 2, Inc: 1}, hwg.Process{Node: 4, Inc: 1}
	car.view = hwg.View{ID: 6, Members: []hwg.Process{self, d}}
	car.gone["l/s"] = gone{View: 1<<32 | 7, Members: []hwg.Process{a}}
	var installs []Event
	c.sawInstall = func(ev Event) { installs = append(installs, ev) }
	if !car.join(d, item{LWG: "l/s", Ver: 2}) {
		t.Fatal("join refused")
	}
	if len(installs) != 1 || installs[0].View.ID != 1<<32|8 || !slices.Equal(installs[0].Vanished, []hwg.Process{a}) {
		t.Fatalf("installs %+v, want l/s's view 1.8 with a vanished", installs)
	}
}
