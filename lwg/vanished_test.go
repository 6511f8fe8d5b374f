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
