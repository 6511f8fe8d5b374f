package proptest

// Checkers of replicated objects, over the "state" and "apply" events of a
// trace (see the package doc).
//
// A life of an object's state begins when a replica that never held it
// creates it (a "state" event without "from": the first member of a new
// group; one that held a life goes on with it) and passes from
// donor to joiner (a "state" event naming the donor's node): replicas of
// one life must agree, while a new life after every holder was lost starts
// over from the empty state, and its indexes say nothing about the old
// one's. The donor named by node is its latest incarnation that held a
// life of the object when the joiner got the state.
const (
	nameRSMDigest = "rsm-digest"
	nameRSMIndex  = "rsm-index"
	nameRSMJoiner = "rsm-joiner"
)

// RSMCheckers returns the checkers of replicated objects, in a stable
// order. They look only at groups with "state" or "apply" events.
func RSMCheckers() []Checker {
	return []Checker{
		{nameRSMDigest, "replicas holding the same life of an object's state have equal digests at equal applied index", asSeenByApp(checkRSMDigest)},
		{nameRSMIndex, "a replica applies only while it holds the state, and from the index of its state on, one at a time: after a state at i come i+1, i+2, ...", asSeenByApp(checkRSMIndex)},
		{nameRSMJoiner, "a joiner's state equals its donor's state at that index", asSeenByApp(checkRSMJoiner)},
	}
}

// CheckRSM runs every checker of RSMCheckers.
func CheckRSM(tr []Event) []Violation {
	var out []Violation
	for _, c := range RSMCheckers() {
		out = append(out, c.Check(tr)...)
	}
	return out
}

// rsmReplay walks a trace's replica events, tracking each replica's life
// and index, and each replica's digests by index.
type rsmReplay struct {
	reps  map[procGroup]*replicaState
	lives int
}

type replicaState struct {
	life    int  // the life of the state it holds or last held; 0: none yet
	holding bool // it holds the state now
	index   uint64
	digests map[uint64]string // every index this replica held, in its lives
}

// step takes one event and reports the replica it concerns (nil for other
// events) and, for a state event from a donor, the donor's replica (nil if
// none held the state).
func (rp *rsmReplay) step(e *Event) (rep, donor *replicaState) {
	pg := procGroup{e.proc(), e.Group}
	switch e.Ev {
	case EvState:
		r := rp.get(pg)
		if e.From == 0 {
			// Created: the state goes on from what this replica held, if
			// it held a life before (unless it branched off it), or else
			// from the empty state.
			if r.life == 0 || e.Branch {
				rp.lives++
				r.life = rp.lives
			}
		} else {
			donor = rp.donorOf(e.From, e.Group)
			if donor != nil {
				r.life = donor.life
			} else {
				rp.lives++
				r.life = rp.lives
			}
		}
		r.index, r.holding = e.Index, true
		return r, donor
	case EvApply:
		return rp.get(pg), nil
	case EvExclude, EvLeave:
		// The replica's membership ended: it holds the state no more (but
		// it may have donated it already).
		if r := rp.reps[pg]; r != nil {
			r.holding = false
		}
	}
	return nil, nil
}

func (rp *rsmReplay) get(pg procGroup) *replicaState {
	r := rp.reps[pg]
	if r == nil {
		r = &replicaState{digests: map[uint64]string{}}
		rp.reps[pg] = r
	}
	return r
}

// donorOf returns the latest incarnation of node that holds a life of
// group (or held one when it crashed).
func (rp *rsmReplay) donorOf(node uint64, group string) *replicaState {
	var best *replicaState
	var inc uint64
	for k, r := range rp.reps {
		if k.p.node == node && k.group == group && r.life != 0 && k.p.inc >= inc {
			best, inc = r, k.p.inc
		}
	}
	return best
}

type lifeAt struct {
	group string
	life  int
	index uint64
}

func checkRSMDigest(tr []Event) []Violation {
	r := reporter{name: nameRSMDigest}
	rp := rsmReplay{reps: map[procGroup]*replicaState{}}
	type first struct {
		digest string
		p      proc
		t      uint64
	}
	seen := map[lifeAt]first{}
	for i := range tr {
		e := &tr[i]
		rep, _ := rp.step(e)
		if rep == nil || rep.life == 0 {
			continue
		}
		k := lifeAt{e.Group, rep.life, e.Index}
		f, ok := seen[k]
		if !ok {
			seen[k] = first{e.Digest, e.proc(), e.T}
			continue
		}
		if f.digest != e.Digest {
			r.add(e.Group, e.T, "%s holds digest %.16s at index %d (%s), %s held %.16s there (t=%d)", e.proc(), e.Digest, e.Index, e.Ev, f.p, f.digest, f.t)
		}
	}
	return r.result()
}

func checkRSMIndex(tr []Event) []Violation {
	r := reporter{name: nameRSMIndex}
	rp := rsmReplay{reps: map[procGroup]*replicaState{}}
	for i := range tr {
		e := &tr[i]
		if e.Ev != EvApply {
			rp.step(e)
			continue
		}
		rep := rp.get(procGroup{e.proc(), e.Group})
		switch {
		case !rep.holding:
			r.add(e.Group, e.T, "%s applied index %d without holding the state", e.proc(), e.Index)
		case e.Index != rep.index+1:
			r.add(e.Group, e.T, "%s applied index %d after index %d", e.proc(), e.Index, rep.index)
		}
		rep.index = e.Index
	}
	return r.result()
}

func checkRSMJoiner(tr []Event) []Violation {
	r := reporter{name: nameRSMJoiner}
	rp := rsmReplay{reps: map[procGroup]*replicaState{}}
	for i := range tr {
		e := &tr[i]
		rep, donor := rp.step(e)
		if rep == nil {
			continue
		}
		if e.Ev == EvState && e.From != 0 {
			switch d, ok := "", false; {
			case donor == nil:
				r.add(e.Group, e.T, "%s got the state at index %d from node %d, which never held it", e.proc(), e.Index, e.From)
			default:
				d, ok = donor.digests[e.Index]
				if !ok {
					r.add(e.Group, e.T, "%s got the state at index %d from node %d, which never held that index", e.proc(), e.Index, e.From)
				} else if d != e.Digest {
					r.add(e.Group, e.T, "%s got digest %.16s at index %d from node %d, whose state there was %.16s", e.proc(), e.Digest, e.Index, e.From, d)
				}
			}
		}
		rep.digests[e.Index] = e.Digest
	}
	return r.result()
}
