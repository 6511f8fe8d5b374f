package lwg

import (
	"slices"

	"github.com/lwgkit/lwgkit/hwg"
)

// replica is the part of a replicated state machine that every HWG the
// Core uses shares: the directory and each carrier's LWG table are
// deterministic functions of their HWG's delivery sequence, so every member
// holds the same state at the same point of the total order.
//
// A process that joins the HWG has no state. At the install that admits it,
// one member that has the state (the first continuing member of the view)
// multicasts a snapshot taken exactly at the install; the joiner buffers
// every delivery until that snapshot arrives, restores it and replays the
// buffer. If the view changes first, the snapshot is owed again and sent at
// the next install (a snapshot names the view it was taken at, so a late
// one is ignored).
type replica struct {
	group  hwg.GroupID
	view   hwg.View
	member bool // installed a view and neither left nor was excluded since
	synced bool // holds the state
	// buf holds deliveries while !synced.
	buf []delivery
	// parts holds the parts of the snapshot received so far while
	// !synced; the state is restored when the last one arrives.
	parts [][]byte
	// owed: members of the view that joined and have not had a snapshot
	// yet. Every synced member computes the same set.
	owed map[hwg.Process]bool
}

type delivery struct {
	from hwg.Process
	ctl  *control
}

// state is what a replica replicates.
type state interface {
	// boundary applies an install of the HWG (the view change is the
	// flush point for everything the state holds).
	boundary(ev *hwg.Event)
	// apply applies one delivered control message.
	apply(from hwg.Process, c *control)
	snapshot() []byte
	restore(b []byte) error
	reset()
}

// snapshotSender is the member that owes joiners the snapshot: the first
// member of the view that is not owed one itself.
func (r *replica) snapshotSender() hwg.Process {
	for _, m := range r.view.Members {
		if !r.owed[m] {
			return m
		}
	}
	return hwg.Process{}
}

// owedList returns the members owed a snapshot, sorted.
func (r *replica) owedList() []hwg.Process {
	if len(r.owed) == 0 {
		return nil
	}
	ps := make([]hwg.Process, 0, len(r.owed))
	for p := range r.owed {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, cmpProcess)
	return ps
}

// onInstall handles an install of the replica's HWG. It reports whether
// self must now multicast a snapshot of st.
func (r *replica) onInstall(self hwg.Process, ev *hwg.Event, st state) bool {
	first := !r.member
	r.member, r.view = true, ev.View.Clone()
	if first {
		r.owed = map[hwg.Process]bool{}
		r.buf, r.parts = nil, nil
		st.reset()
		// View 1 is a bootstrap: the state starts empty everywhere.
		r.synced = ev.View.ID == 1
		if !r.synced {
			return false
		}
	}
	if !r.synced {
		// The snapshot owed at this install covers them, and a snapshot
		// of the last view still in parts is sent whole again.
		r.buf, r.parts = r.buf[:0], nil
		return false
	}
	st.boundary(ev)
	for _, j := range ev.Joined {
		if j != self {
			r.owed[j] = true
		}
	}
	for p := range r.owed {
		if !r.view.Contains(p) {
			delete(r.owed, p)
		}
	}
	return len(r.owed) > 0 && r.snapshotSender() == self
}

// onGone handles leaving or exclusion: the state is dropped.
func (r *replica) onGone(st state) {
	r.member, r.synced, r.buf, r.parts, r.owed = false, false, nil, nil, nil
	r.view = hwg.View{}
	st.reset()
}
