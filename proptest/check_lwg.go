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

// checkLWGCarrier: every install of an LWG names its carrier (hwg and
// hwgview), and at that point the installing process's latest installed view
// of the carrier is that hwgview and contains every member of the LWG view.
func checkLWGCarrier(tr []Event) []Violation {
	r := reporter{name: nameLWGCarrier}
	latest := make(map[procGroup]int) // trace index of each process's latest install of each group
	for i := range tr {
		e := &tr[i]
		if e.Ev != EvInstall {
			continue
		}
		p := e.proc()
		if isLWG(e.Group) {
			checkCarrierAt(&r, tr, latest, e)
		}
		latest[procGroup{p, e.Group}] = i
	}
	return r.result()
}

func checkCarrierAt(r *reporter, tr []Event, latest map[procGroup]int, e *Event) {
	p := e.proc()
	if e.HWG == "" || e.HWGView == 0 {
		r.add(e.Group, e.T, "%s installed view %d without naming its carrier (hwg %q, hwgview %d)", p, e.View, e.HWG, e.HWGView)
		return
	}
	j, ok := latest[procGroup{p, e.HWG}]
	if !ok {
		r.add(e.Group, e.T, "%s installed view %d on %s view %d, but it has installed no view of %s", p, e.View, e.HWG, e.HWGView, e.HWG)
		return
	}
	h := &tr[j]
	if h.View != e.HWGView {
		r.add(e.Group, e.T, "%s installed view %d on %s view %d, but its latest view of %s is %d (t=%d)", p, e.View, e.HWG, e.HWGView, e.HWG, h.View, h.T)
		return
	}
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

// checkOneCarrier: all installs of an (LWG, view) name the same hwg, and a
// process sends and delivers in an LWG only while its latest install of the
// carrier named by its latest install of the LWG is the named hwgview, and
// it has not left the carrier since. The trace records no exclusion; an
// excluded process's next install of the carrier is a later view.
func checkOneCarrier(tr []Event) []Violation {
	r := reporter{name: nameOneCarrier}
	first := make(map[groupView]int) // first install naming a carrier of each LWG view
	latest := make(map[procGroup]int)
	left := make(map[procGroup]int) // leave after the latest install
	for i := range tr {
		e := &tr[i]
		k := procGroup{e.proc(), e.Group}
		switch e.Ev {
		case EvInstall:
			latest[k] = i
			delete(left, k)
			if !isLWG(e.Group) || e.HWG == "" { // a missing carrier is lwg-carrier's business
				continue
			}
			gv := groupView{e.Group, e.View}
			j, ok := first[gv]
			if !ok {
				first[gv] = i
			} else if f := &tr[j]; f.HWG != e.HWG {
				r.add(e.Group, e.T, "%s installed view %d on %s, but %s installed it on %s (t=%d)",
					k.p, e.View, e.HWG, f.proc(), f.HWG, f.T)
			}
		case EvLeave:
			left[k] = i
		case EvSend, EvDeliver:
			if !isLWG(e.Group) {
				continue
			}
			j, ok := latest[k]
			if !ok { // initial-view's business
				continue
			}
			l := &tr[j]
			if l.HWG == "" || l.HWGView == 0 {
				continue
			}
			hk := procGroup{k.p, l.HWG}
			h, ok := latest[hk]
			switch {
			case !ok:
				r.add(e.Group, e.T, "%s %s message %s in view %d on %s view %d, but it has installed no view of %s",
					k.p, verb(e.Ev), e.Msg, l.View, l.HWG, l.HWGView, l.HWG)
			case tr[h].View != l.HWGView:
				r.add(e.Group, e.T, "%s %s message %s in view %d on %s view %d, but its latest view of %s is %d (t=%d)",
					k.p, verb(e.Ev), e.Msg, l.View, l.HWG, l.HWGView, l.HWG, tr[h].View, tr[h].T)
			default:
				if x, gone := left[hk]; gone {
					r.add(e.Group, e.T, "%s %s message %s in view %d on %s view %d, but it left %s (t=%d)",
						k.p, verb(e.Ev), e.Msg, l.View, l.HWG, l.HWGView, l.HWG, tr[x].T)
				}
			}
		}
	}
	return r.result()
}
