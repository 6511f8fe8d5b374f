package proptest

import "slices"

func checkSelfInclusion(tr []Event) []Violation {
	r := reporter{name: nameSelfInclusion}
	for i := range tr {
		e := &tr[i]
		if e.Ev == EvInstall && !e.includes(e.proc()) {
			r.add(e.Group, e.T, "%s installed view %d with members %s, which do not include it", e.proc(), e.View, e.memberString())
		}
	}
	return r.result()
}

func checkLocalMonotonicity(tr []Event) []Violation {
	r := reporter{name: nameLocalMonotonicity}
	last := make(map[procGroup]uint64)
	for i := range tr {
		e := &tr[i]
		if e.Ev != EvInstall {
			continue
		}
		k := procGroup{e.proc(), e.Group}
		if prev, ok := last[k]; ok && e.View <= prev {
			r.add(e.Group, e.T, "%s installed view %d after view %d", k.p, e.View, prev)
		}
		last[k] = e.View
	}
	return r.result()
}

func checkInitialView(tr []Event) []Violation {
	r := reporter{name: nameInitialView}
	cur := make(map[procGroup]uint64) // latest installed view
	for i := range tr {
		e := &tr[i]
		switch e.Ev {
		case EvInstall:
			cur[procGroup{e.proc(), e.Group}] = e.View
		case EvSend, EvDeliver:
			v, ok := cur[procGroup{e.proc(), e.Group}]
			if !ok {
				r.add(e.Group, e.T, "%s %s message %s before installing any view of the group", e.proc(), verb(e.Ev), e.Msg)
			} else if e.View != v {
				r.add(e.Group, e.T, "%s %s message %s in view %d, but its current view is %d", e.proc(), verb(e.Ev), e.Msg, e.View, v)
			}
		}
	}
	return r.result()
}

func verb(ev string) string {
	if ev == EvSend {
		return "sent"
	}
	return "delivered"
}

func checkViewAgreement(tr []Event) []Violation {
	r := reporter{name: nameViewAgreement}
	first := make(map[groupView]int)
	for i := range tr {
		e := &tr[i]
		if e.Ev != EvInstall {
			continue
		}
		k := groupView{e.Group, e.View}
		j, ok := first[k]
		if !ok {
			first[k] = i
			continue
		}
		f := &tr[j]
		if !slices.Equal(e.Members, f.Members) || (e.hasIncs() && f.hasIncs() && !slices.Equal(e.Incs, f.Incs)) {
			r.add(e.Group, e.T, "%s installed view %d as %s, but %s installed it as %s (t=%d)",
				e.proc(), e.View, e.memberString(), f.proc(), f.memberString(), f.T)
		}
	}
	return r.result()
}

// checkPrimaryComponent applies to every group but LWGs. An LWG view need
// not keep a majority of its predecessor: the carrier HWG is the primary
// component, and when a member crashes the LWG keeps the old members that
// are in the new HWG view, however few. HWG view ids are consecutive, so the
// successor of view v is v+1.
func checkPrimaryComponent(tr []Event) []Violation {
	r := reporter{name: namePrimaryComponent}
	first := make(map[groupView]int)      // first install of each view
	leavers := make(map[groupView][]proc) // processes that left from each view
	for i := range tr {
		e := &tr[i]
		if isLWG(e.Group) {
			continue
		}
		switch e.Ev {
		case EvInstall:
			if _, ok := first[groupView{e.Group, e.View}]; !ok {
				first[groupView{e.Group, e.View}] = i
			}
			// The install names who left, so the property holds on every
			// prefix, before the leavers' own leave events appear.
			if e.View > 1 && len(e.Left) > 0 {
				k := groupView{e.Group, e.View - 1}
				for _, n := range e.Left {
					leavers[k] = append(leavers[k], proc{node: n})
				}
			}
		case EvLeave:
			k := groupView{e.Group, e.View}
			leavers[k] = append(leavers[k], e.proc())
		}
	}
	for _, k := range sortedGroupViews(first) {
		j, ok := first[groupView{k.group, k.view + 1}]
		if !ok {
			continue
		}
		prev, next := &tr[first[k]], &tr[j]
		// Compare incarnations only when both views name them.
		byProc := prev.hasIncs() && next.hasIncs()
		key := func(node, inc uint64) proc {
			if !byProc {
				inc = 0
			}
			return proc{node, inc}
		}
		inNext := make(map[proc]bool, len(next.Members))
		for i, n := range next.Members {
			inNext[key(n, incAt(next, i))] = true
		}
		counted := make(map[proc]bool, len(prev.Members))
		kept := 0
		for i, n := range prev.Members {
			p := key(n, incAt(prev, i))
			if inNext[p] && !counted[p] {
				counted[p] = true
				kept++
			}
		}
		left := 0
		seen := make(map[proc]bool)
		for _, p := range leavers[k] {
			if p.inc == 0 { // named by an install: the node's member in prev
				for i, n := range prev.Members {
					if n == p.node {
						p.inc = incAt(prev, i)
					}
				}
			}
			if !seen[p] && prev.includes(p) && !next.includes(p) {
				seen[p] = true
				left++
			}
		}
		if need := len(prev.Members)/2 + 1; kept+left < need {
			r.add(k.group, next.T, "view %d %s keeps %d members and %d voluntary leavers of view %d %s; a majority needs %d",
				k.view+1, next.memberString(), kept, left, k.view, prev.memberString(), need)
		}
	}
	return r.result()
}

// incAt returns the incarnation of an install's i-th member, or 0 if the
// install does not name incarnations.
func incAt(e *Event, i int) uint64 {
	if e.hasIncs() {
		return e.Incs[i]
	}
	return 0
}
