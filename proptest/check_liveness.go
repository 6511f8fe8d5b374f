package proptest

import (
	"fmt"
	"slices"
)

// checkLiveness applies only to traces with a heal: after the last fault the
// run is quiescent, so the processes still up must have converged. For each
// group, the live processes are the latest incarnations of the nodes that
// ever installed a view of it, minus nodes that are down at the end and
// processes whose last event in the group is a leave.
func checkLiveness(tr []Event) []Violation {
	if !slices.ContainsFunc(tr, func(e Event) bool { return e.Ev == EvHeal }) {
		return nil
	}
	r := reporter{name: nameLiveness}
	endT := tr[len(tr)-1].T

	type state struct {
		lastInstall int    // trace index, or -1
		lastEv      string // kind of the process's last event in the group
	}
	lastAt := make(map[uint64]int)            // node → index of its last event
	latest := make(map[uint64]uint64)         // node → highest incarnation seen
	nodes := make(map[string]map[uint64]bool) // group → nodes that ever installed it
	states := make(map[procGroup]*state)
	for i := range tr {
		e := &tr[i]
		if e.Ev == EvHeal {
			continue
		}
		lastAt[e.Node] = i
		latest[e.Node] = max(latest[e.Node], e.Inc)
		if e.Group == "" {
			continue
		}
		k := procGroup{e.proc(), e.Group}
		st := states[k]
		if st == nil {
			st = &state{lastInstall: -1}
			states[k] = st
		}
		st.lastEv = e.Ev
		if e.Ev == EvInstall {
			st.lastInstall = i
			if nodes[e.Group] == nil {
				nodes[e.Group] = make(map[uint64]bool)
			}
			nodes[e.Group][e.Node] = true
		}
	}

	// final records, per group, the view the live processes must share and
	// the processes that view contains.
	type final struct {
		view    uint64
		members []proc
	}
	finals := make(map[string]final)
	for _, group := range sortedKeys(nodes) {
		var live []proc
		for _, n := range sortedKeys(nodes[group]) {
			p := proc{n, latest[n]}
			if tr[lastAt[n]].Ev == EvCrash {
				continue
			}
			if st := states[procGroup{p, group}]; st != nil && st.lastEv == EvLeave {
				continue
			}
			live = append(live, p)
		}
		if len(live) == 0 {
			continue
		}
		// The final view is the highest any live process reached.
		var ref *Event
		for _, p := range live {
			if st := states[procGroup{p, group}]; st != nil && st.lastInstall >= 0 {
				if e := &tr[st.lastInstall]; ref == nil || e.View > ref.View {
					ref = e
				}
			}
		}
		for _, p := range live {
			st := states[procGroup{p, group}]
			switch {
			case st == nil || st.lastInstall < 0:
				r.add(group, endT, "%s is up at the end but never installed a view of the group (an earlier incarnation did)", p)
			case tr[st.lastInstall].View != ref.View:
				r.add(group, endT, "%s ended in view %d, behind final view %d", p, tr[st.lastInstall].View, ref.View)
			}
		}
		if ref == nil {
			continue
		}
		isLive := make(map[proc]bool, len(live))
		liveNode := make(map[uint64]bool, len(live))
		for _, p := range live {
			isLive[p] = true
			liveNode[p.node] = true
			if !ref.includes(p) {
				r.add(group, endT, "%s is up at the end but not a member of final view %d %s", p, ref.View, ref.memberString())
			}
		}
		f := final{view: ref.View}
		for i, n := range ref.Members {
			p := proc{n, latest[n]}
			if ref.hasIncs() {
				p.inc = ref.Incs[i]
			}
			f.members = append(f.members, p)
			if ref.hasIncs() && !isLive[p] || !ref.hasIncs() && !liveNode[n] {
				r.add(group, endT, "final view %d %s contains %s, which is not up in the group at the end", ref.View, ref.memberString(), p)
			}
		}
		finals[group] = f
	}

	// Every message sent in a final view must reach every member of it.
	var sent []Event // sends in final views, in trace order
	delivered := make(map[procGroupMsg]bool)
	for i := range tr {
		e := &tr[i]
		f, ok := finals[e.Group]
		if !ok {
			continue
		}
		switch e.Ev {
		case EvSend:
			if e.View == f.view {
				sent = append(sent, *e)
			}
		case EvDeliver:
			delivered[procGroupMsg{e.proc(), e.Group, e.Msg}] = true
		}
	}
	missing := make(map[procGroup][]string)
	var order []procGroup
	for _, s := range sent {
		for _, p := range finals[s.Group].members {
			k := procGroup{p, s.Group}
			if !delivered[procGroupMsg{p, s.Group, s.Msg}] {
				if missing[k] == nil {
					order = append(order, k)
				}
				missing[k] = append(missing[k], s.Msg)
			}
		}
	}
	for _, k := range order {
		ms := missing[k]
		r.add(k.group, endT, "%s never delivered %s sent in final view %d", k.p, pluralIDs(ms), finals[k.group].view)
	}
	return r.result()
}

func pluralIDs(ids []string) string {
	if len(ids) == 1 {
		return "message " + ids[0]
	}
	return fmt.Sprintf("%d messages %s", len(ids), listIDs(ids))
}
