package proptest

import (
	"fmt"
	"slices"
	"strings"
)

// isLWG reports whether a group id names a light-weight group.
func isLWG(group string) bool { return strings.HasPrefix(group, "l/") }

// lwgSuccessors maps each view of an LWG to the next higher view id any
// process installed in that LWG. LWG view ids increase but may skip values;
// HWG view ids are consecutive and are not in the map (see nextView).
func lwgSuccessors(tr []Event) map[groupView]uint64 {
	ids := make(map[string][]uint64)
	for i := range tr {
		if e := &tr[i]; e.Ev == EvInstall && isLWG(e.Group) {
			ids[e.Group] = append(ids[e.Group], e.View)
		}
	}
	succ := make(map[groupView]uint64)
	for group, vs := range ids {
		slices.Sort(vs)
		vs = slices.Compact(vs)
		for i := 0; i+1 < len(vs); i++ {
			succ[groupView{group, vs[i]}] = vs[i+1]
		}
	}
	return succ
}

// nextView returns the view that follows view v of group: v+1 for an HWG,
// the next view id installed by anyone for an LWG.
func nextView(succ map[groupView]uint64, group string, v uint64) (uint64, bool) {
	if !isLWG(group) {
		return v + 1, true
	}
	n, ok := succ[groupView{group, v}]
	return n, ok
}

// containsMember reports whether install e lists node, comparing the
// incarnation too when withInc is set and e names incarnations.
func containsMember(e *Event, node, inc uint64, withInc bool) bool {
	withInc = withInc && e.hasIncs()
	for i, n := range e.Members {
		if n == node && (!withInc || e.Incs[i] == inc) {
			return true
		}
	}
	return false
}

// carrierViews tracks, per process and HWG, the views it installed since
// it last joined (a leave or exclusion forgets them): an LWG event may name
// only such a view.
type carrierViews struct {
	installed map[procGroup]map[uint64]int // view → trace index
}

func (cv *carrierViews) see(i int, e *Event) {
	k := procGroup{e.proc(), e.Group}
	switch e.Ev {
	case EvInstall:
		if cv.installed[k] == nil {
			cv.installed[k] = map[uint64]int{}
		}
		cv.installed[k][e.View] = i
	case EvLeave, EvExclude:
		delete(cv.installed, k)
	}
}

// lookup returns the trace index of p's install of view v of hwg, if p is
// still in the membership that installed it.
func (cv *carrierViews) lookup(p proc, hwg string, v uint64) (int, bool) {
	j, ok := cv.installed[procGroup{p, hwg}][v]
	return j, ok
}

// checkLWGCarrier: every install of an LWG names its carrier (hwg and
// hwgview), the installing process installed that view of the carrier and
// has not left or been excluded from the carrier since, and that carrier
// view contains every member of the LWG view. (A member that reaches a
// switched LWG's new carrier late replays its installs there, so hwgview
// may be older than the process's latest view of the carrier.)
func checkLWGCarrier(tr []Event) []Violation {
	r := reporter{name: nameLWGCarrier}
	cv := carrierViews{installed: map[procGroup]map[uint64]int{}}
	for i := range tr {
		e := &tr[i]
		if e.Ev == EvInstall && isLWG(e.Group) {
			checkCarrierAt(&r, tr, &cv, e)
		}
		cv.see(i, e)
	}
	return r.result()
}

func checkCarrierAt(r *reporter, tr []Event, cv *carrierViews, e *Event) {
	p := e.proc()
	if e.HWG == "" || e.HWGView == 0 {
		r.add(e.Group, e.T, "%s installed view %d without naming its carrier (hwg %q, hwgview %d)", p, e.View, e.HWG, e.HWGView)
		return
	}
	j, ok := cv.lookup(p, e.HWG, e.HWGView)
	if !ok {
		r.add(e.Group, e.T, "%s installed view %d on %s view %d, but it is not in that view of %s", p, e.View, e.HWG, e.HWGView, e.HWG)
		return
	}
	h := &tr[j]
	withInc := e.hasIncs()
	var missing []string
	for i, n := range e.Members {
		if !containsMember(h, n, incAt(e, i), withInc) {
			if withInc && h.hasIncs() {
				missing = append(missing, proc{n, e.Incs[i]}.String())
			} else {
				missing = append(missing, fmt.Sprintf("n%d", n))
			}
		}
	}
	if len(missing) > 0 {
		r.add(e.Group, e.T, "%s installed view %d %s on %s view %d %s, which lacks %s",
			p, e.View, e.memberString(), e.HWG, h.View, h.memberString(), listIDs(missing))
	}
}

// checkOneCarrier: all installs of an (LWG, view) name the same hwg; a
// process sends in an LWG only while the carrier view its latest LWG install
// names is its latest view of that carrier; and it delivers only while it is
// still in that carrier view's membership (it installed it and has not left
// or been excluded since; deliveries a late member replays may name an older
// carrier view).
func checkOneCarrier(tr []Event) []Violation {
	r := reporter{name: nameOneCarrier}
	first := make(map[groupView]int) // first install naming a carrier of each LWG view
	latest := make(map[procGroup]int)
	cv := carrierViews{installed: map[procGroup]map[uint64]int{}}
	for i := range tr {
		e := &tr[i]
		k := procGroup{e.proc(), e.Group}
		switch e.Ev {
		case EvInstall:
			latest[k] = i
			if !isLWG(e.Group) || e.HWG == "" { // a missing carrier is lwg-carrier's business
				break
			}
			gv := groupView{e.Group, e.View}
			j, ok := first[gv]
			if !ok {
				first[gv] = i
			} else if f := &tr[j]; f.HWG != e.HWG {
				r.add(e.Group, e.T, "%s installed view %d on %s, but %s installed it on %s (t=%d)",
					k.p, e.View, e.HWG, f.proc(), f.HWG, f.T)
			}
		case EvSend, EvDeliver:
			j, ok := latest[k]
			if !isLWG(e.Group) || !ok { // no install: initial-view's business
				break
			}
			l := &tr[j]
			if l.HWG == "" || l.HWGView == 0 {
				break
			}
			if _, ok := cv.lookup(k.p, l.HWG, l.HWGView); !ok {
				r.add(e.Group, e.T, "%s %s message %s in view %d on %s view %d, but it is not in that view of %s",
					k.p, verb(e.Ev), e.Msg, l.View, l.HWG, l.HWGView, l.HWG)
				break
			}
			if h := &tr[latest[procGroup{k.p, l.HWG}]]; e.Ev == EvSend && h.View != l.HWGView {
				r.add(e.Group, e.T, "%s %s message %s in view %d on %s view %d, but its latest view of %s is %d (t=%d)",
					k.p, verb(e.Ev), e.Msg, l.View, l.HWG, l.HWGView, l.HWG, h.View, h.T)
			}
		}
		cv.see(i, e)
	}
	return r.result()
}
