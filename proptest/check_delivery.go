package proptest

import "fmt"

// firstSends maps each message id to the trace index of its first send.
func firstSends(tr []Event) map[string]int {
	sends := make(map[string]int)
	for i := range tr {
		if e := &tr[i]; e.Ev == EvSend {
			if _, ok := sends[e.Msg]; !ok {
				sends[e.Msg] = i
			}
		}
	}
	return sends
}

func checkDeliveryIntegrity(tr []Event) []Violation {
	r := reporter{name: nameDeliveryIntegrity}
	sends := firstSends(tr)
	for i := range tr {
		e := &tr[i]
		if e.Ev != EvDeliver {
			continue
		}
		j, ok := sends[e.Msg]
		if !ok {
			r.add(e.Group, e.T, "%s delivered message %s, which was never sent", e.proc(), e.Msg)
			continue
		}
		s := &tr[j]
		switch {
		case j > i:
			r.add(e.Group, e.T, "%s delivered message %s before it was sent (t=%d)", e.proc(), e.Msg, s.T)
		case s.Group != e.Group:
			r.add(e.Group, e.T, "%s delivered message %s, which was sent in group %s", e.proc(), e.Msg, s.Group)
		case s.Node != e.From:
			r.add(e.Group, e.T, "%s delivered message %s as from node %d, but node %d sent it", e.proc(), e.Msg, e.From, s.Node)
		}
	}
	return r.result()
}

func checkNoDuplication(tr []Event) []Violation {
	r := reporter{name: nameNoDuplication}
	sent := make(map[string]int)
	delivered := make(map[procGroupMsg]int)
	for i := range tr {
		e := &tr[i]
		switch e.Ev {
		case EvSend:
			if j, ok := sent[e.Msg]; ok {
				r.add(e.Group, e.T, "%s sent message %s, already sent by %s (t=%d)", e.proc(), e.Msg, tr[j].proc(), tr[j].T)
			} else {
				sent[e.Msg] = i
			}
		case EvDeliver:
			k := procGroupMsg{e.proc(), e.Group, e.Msg}
			if j, ok := delivered[k]; ok {
				r.add(e.Group, e.T, "%s delivered message %s again (first at t=%d)", k.p, e.Msg, tr[j].T)
			} else {
				delivered[k] = i
			}
		}
	}
	return r.result()
}

func checkSendingView(tr []Event) []Violation {
	r := reporter{name: nameSendingView}
	sends := firstSends(tr)
	for i := range tr {
		e := &tr[i]
		if e.Ev != EvDeliver {
			continue
		}
		j, ok := sends[e.Msg]
		if !ok || tr[j].Group != e.Group { // delivery-integrity's business
			continue
		}
		if s := &tr[j]; s.View != e.View {
			r.add(e.Group, e.T, "%s delivered message %s in view %d, but it was sent in view %d", e.proc(), e.Msg, e.View, s.View)
		}
	}
	return r.result()
}

// epoch is the time a process spends in one view of a group: from installing
// it until its next install in the group, or its crash.
type epoch struct {
	view      uint64
	delivered []string
	sent      []string
}

// survivor is an epoch that ended with the process installing the next view
// of the group (see nextView).
type survivor struct {
	p     proc
	t     uint64 // step of the install of the next view
	next  uint64 // the next view
	epoch *epoch
}

func checkVirtualSynchrony(tr []Event) []Violation {
	r := reporter{name: nameVirtualSynchrony}
	cur := make(map[procGroup]*epoch)
	groupsOf := make(map[proc][]string) // groups with an open epoch, to close on crash
	survivors := make(map[groupView][]survivor)
	succ := lwgSuccessors(tr)
	for i := range tr {
		e := &tr[i]
		k := procGroup{e.proc(), e.Group}
		switch e.Ev {
		case EvInstall:
			if ep, ok := cur[k]; ok {
				if next, ok := nextView(succ, e.Group, ep.view); ok && e.View == next {
					gv := groupView{e.Group, ep.view}
					survivors[gv] = append(survivors[gv], survivor{k.p, e.T, next, ep})
				}
			} else {
				groupsOf[k.p] = append(groupsOf[k.p], e.Group)
			}
			cur[k] = &epoch{view: e.View}
		case EvDeliver:
			if ep, ok := cur[k]; ok {
				ep.delivered = append(ep.delivered, e.Msg)
			}
		case EvSend:
			if ep, ok := cur[k]; ok {
				ep.sent = append(ep.sent, e.Msg)
			}
		case EvLeave, EvExclude:
			// The membership ended; a later install is a new one, not a
			// move from this view.
			delete(cur, k)
		case EvCrash:
			for _, g := range groupsOf[k.p] {
				delete(cur, procGroup{k.p, g})
			}
			delete(groupsOf, k.p)
		}
	}
	for _, gv := range sortedGroupViews(survivors) {
		ss := survivors[gv]
		// union maps every message delivered by some survivor to the first
		// survivor that delivered it; sets holds each survivor's deliveries.
		union := make(map[string]proc)
		var order []string
		sets := make([]map[string]bool, len(ss))
		for i, s := range ss {
			sets[i] = make(map[string]bool, len(s.epoch.delivered))
			for _, m := range s.epoch.delivered {
				sets[i][m] = true
				if _, ok := union[m]; !ok {
					union[m] = s.p
					order = append(order, m)
				}
			}
		}
		for i, s := range ss {
			if len(sets[i]) < len(union) && r.room() {
				var missed []string
				for _, m := range order {
					if !sets[i][m] {
						missed = append(missed, m)
					}
				}
				r.put(gv.group, s.t, fmt.Sprintf("%s moved from view %d to %d without delivering %s, delivered in view %d by %s",
					s.p, gv.view, s.next, listIDs(missed), gv.view, union[missed[0]]))
			}
			var own []string
			for _, m := range s.epoch.sent {
				if !sets[i][m] {
					own = append(own, m)
				}
			}
			if len(own) > 0 {
				r.add(gv.group, s.t, "%s moved from view %d to %d without delivering its own messages %s",
					s.p, gv.view, s.next, listIDs(own))
			}
		}
	}
	return r.result()
}
