package lwg

import (
	"fmt"
	"slices"

	"github.com/lwgkit/lwgkit/hwg"
)

// replica is the part of a replicated state machine that every HWG the
// Core uses shares: the directory and each carrier's LWG table are
// deterministic functions of their HWG's delivery sequence, so every member
// holds the same state at the same point of the total order.
//
// A process that joins the HWG has no state. At the install that admits it,
// one member that has the state (the first member of the view not owed one
// itself) multicasts a snapshot taken exactly at the install; the joiner
// logs every install and delivery from its admission on, and restores the
// first snapshot taken at an install it logged that reaches it, then
// replays the rest of its log. If the view changes first, the snapshot is
// owed again and sent at the next install, but the earlier one, still in
// flight, serves as well: a member that sent one and was then cut off
// leaves the joiner nothing to wait for. (Before, a snapshot delivered
// after the view it was taken in was ignored, and partitions that cut off
// one holder after another while their snapshots waited behind the next
// flush left no member holding the directory: RSM seed 542 with the
// application wired apart.)
type replica struct {
	group  hwg.GroupID
	view   hwg.View
	member bool // installed a view and neither left nor was excluded since
	synced bool // holds the state
	// since is the view whose install admitted this member, where its
	// log starts.
	since hwg.ViewID
	// log holds, while !synced, every install and delivery since then
	// (snapshot parts without their bytes).
	log []logEntry
	// parts holds, while !synced, the parts received so far of each
	// snapshot it may restore.
	parts map[snapKey][][]byte
	// owed: members of the view that hold no state yet, each with the
	// view whose install admitted it. Every synced member computes the
	// same map at the same point of the total order.
	owed map[hwg.Process]hwg.ViewID
	// delivered counts the control messages delivered since the latest
	// install: a synced member's state is the state at (view, delivered).
	delivered uint64
	// sender is the member that owes the members of the view the
	// snapshot: named at the install, or, if no member held the state
	// then, when the first one did (zero: none yet, or none owed).
	sender hwg.Process

	// keep makes a synced member that is excluded or leaves keep its
	// state (the directory's: nothing else holds it), and offer it once
	// admitted again if no snapshot came within offerTicks; kept is that
	// state, waited the ticks it waited in the current membership, and
	// offered says the offer went out.
	keep    bool
	kept    *keptState
	waited  int
	offered bool

	// currentOnly: Config.currentSnapshotsOnly.
	currentOnly bool
}

// keptState is a state a member held when it was excluded or left: the
// state after the install of view and the first at control messages
// delivered in it, with the members it owed a snapshot then.
type keptState struct {
	view  hwg.ViewID
	at    uint64
	snap  []byte
	owed  []hwg.Process
	since []hwg.ViewID
}

// logEntry is an install (install set) or a delivery.
type logEntry struct {
	install *hwg.Event
	from    hwg.Process
	ctl     *control
}

// snapKey names one snapshot in parts: its sender and the point it was
// taken at.
type snapKey struct {
	from hwg.Process
	view hwg.ViewID
	at   uint64
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
		if _, owed := r.owed[m]; !owed {
			return m
		}
	}
	return hwg.Process{}
}

// owedList returns the members owed a snapshot, sorted, and the view that
// admitted each.
func (r *replica) owedList() ([]hwg.Process, []hwg.ViewID) {
	if len(r.owed) == 0 {
		return nil, nil
	}
	ps := make([]hwg.Process, 0, len(r.owed))
	for p := range r.owed {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, cmpProcess)
	since := make([]hwg.ViewID, len(ps))
	for i, p := range ps {
		since[i] = r.owed[p]
	}
	return ps, since
}

// onInstall handles an install of the replica's HWG. It reports whether
// self must now multicast a snapshot of st.
func (r *replica) onInstall(self hwg.Process, ev *hwg.Event, st state) bool {
	first := !r.member
	r.member, r.view = true, ev.View.Clone()
	if first {
		r.owed = map[hwg.Process]hwg.ViewID{}
		r.log, r.parts = nil, nil
		r.since = ev.View.ID
		st.reset()
		// View 1 is a bootstrap: the state starts empty everywhere.
		r.synced = ev.View.ID == 1
	}
	r.delivered = 0
	if !r.synced {
		in := *ev
		in.View, in.Joined, in.Left = ev.View.Clone(), slices.Clone(ev.Joined), slices.Clone(ev.Left)
		r.log = append(r.log, logEntry{install: &in})
		return false
	}
	r.installed(self, ev, st)
	return r.sender == self
}

// offerTicks is how long a member back without the state waits for a
// snapshot before it offers the state it kept: normally a member that
// holds the state sends one at once, and the offer, a snapshot as large,
// is not needed.
const offerTicks = 10

// tick returns, once per membership, the state this member kept, to
// multicast after offerTicks without the state: if every member that held
// it was cut off (none had sent the snapshots the joiners were owed), the
// members whose logs reach back to it restore it and replay their logs
// from that point.
func (r *replica) tick() *keptState {
	if !r.member || r.synced || r.kept == nil || r.offered {
		return nil
	}
	if r.waited++; r.waited < offerTicks {
		return nil
	}
	r.offered = true
	return r.kept
}

// installed applies an install to the state and to who is owed a snapshot.
func (r *replica) installed(self hwg.Process, ev *hwg.Event, st state) {
	st.boundary(ev)
	for _, j := range ev.Joined {
		if j != self {
			r.owed[j] = ev.View.ID
		}
	}
	for p := range r.owed {
		if !ev.View.Contains(p) {
			delete(r.owed, p)
		}
	}
	r.sender = hwg.Process{}
	if len(r.owed) > 0 {
		r.sender = r.snapshotSender()
	}
}

// nameSender names the sender once a snapshot's delivery leaves members
// owed and none was named at the install (no member held the state then:
// they restored a late snapshot or a kept state since). It reports
// whether that is self, which must then multicast the state it holds now,
// at (view, delivered): those left were admitted after the state restored
// was taken, and no install may come to name a sender.
func (r *replica) nameSender(self hwg.Process) bool {
	if len(r.owed) == 0 || r.sender != (hwg.Process{}) {
		return false
	}
	r.sender = r.snapshotSender()
	return r.sender == self
}

// snapshotDone: the last part of a snapshot taken at the install of view
// was delivered, and every member admitted at or before that install
// (whose log covers it) restored it.
func (r *replica) snapshotDone(view hwg.ViewID) {
	for p, since := range r.owed {
		if since <= view {
			delete(r.owed, p)
		}
	}
}

// deliver steps one delivered control message: a synced member applies
// it, another logs it. restored reports that it completed a snapshot this
// member restored (it is synced now); send, that self must now multicast
// a snapshot of the state at (view, delivered) (nameSender); malformed, a
// snapshot it could not take.
func (r *replica) deliver(self, from hwg.Process, ctl *control, st state) (restored, send, malformed bool) {
	if !r.synced {
		snap, replay, done, bad := r.logDelivery(from, ctl)
		if !done {
			return false, false, bad
		}
		if err := st.restore(snap); err != nil {
			return false, false, true
		}
		// What it logged since the snapshot was taken was applied by the
		// members that held the state, with it owed; the snapshot's
		// delivery, here, ends that for all it covers.
		r.restored(self, from, ctl, replay, st)
		return true, r.nameSender(self), false
	}
	r.delivered++
	if ctl.Kind == kSnapshot {
		return false, r.completed(self, ctl, r.view.ID), false
	}
	st.apply(from, ctl)
	return false, false, false
}

// completed takes a snapshot's delivery in a view of a member that holds
// the state: if it is the last part, the joiners it covers hold the state
// now (every member sees the same parts, so they all stop owing it at the
// same point). It reports whether self is named to send the next one
// (nameSender).
func (r *replica) completed(self hwg.Process, ctl *control, view hwg.ViewID) bool {
	if ctl.Part+1 < ctl.parts() || r.currentOnly && (ctl.View != view || ctl.At != 0) {
		return false
	}
	r.snapshotDone(ctl.View)
	return r.nameSender(self)
}

// logDelivery logs a delivery while !synced and reports whether it
// completes a snapshot this member can restore, and that snapshot, with
// the index in the log of the first entry to replay after restoring it.
func (r *replica) logDelivery(from hwg.Process, ctl *control) (snap []byte, replay int, done, malformed bool) {
	if ctl.Kind != kSnapshot {
		r.log = append(r.log, logEntry{from: from, ctl: ctl})
		return nil, 0, false, false
	}
	bare := *ctl
	bare.Snap = nil
	r.log = append(r.log, logEntry{from: from, ctl: &bare})
	if ctl.View < r.since || ctl.View > r.view.ID {
		return nil, 0, false, false // taken before this member was admitted
	}
	if r.currentOnly && (ctl.View != r.view.ID || ctl.At != 0) {
		return nil, 0, false, false
	}
	if r.parts == nil {
		r.parts = map[snapKey][][]byte{}
	}
	k := snapKey{from, ctl.View, ctl.At}
	ps := r.parts[k]
	// One member sends the parts in a row and FIFO order keeps them so;
	// a part out of turn is a broken sender, dropped.
	if ctl.Part != uint32(len(ps)) {
		return nil, 0, false, true
	}
	ps = append(ps, ctl.Snap)
	if ctl.Part+1 < ctl.parts() {
		r.parts[k] = ps
		return nil, 0, false, false
	}
	delete(r.parts, k)
	replay, ok := r.replayFrom(ctl.View, ctl.At)
	if !ok {
		return nil, 0, false, true
	}
	if len(ps) == 1 {
		return ps[0], replay, true, false
	}
	return slices.Concat(ps...), replay, true, false
}

// replayFrom returns the index in the log of the first entry after the
// install of view and the at control messages delivered after it: what a
// state taken there has not seen. ok is false if the log does not hold
// that point (a sender claiming more deliveries in view than there were).
func (r *replica) replayFrom(view hwg.ViewID, at uint64) (int, bool) {
	i := slices.IndexFunc(r.log, func(e logEntry) bool { return e.install != nil && e.install.View.ID == view })
	// INVARIANT: the log holds the install of every view from the
	// admission on, and logDelivery takes only states taken since then.
	if i < 0 {
		panic(fmt.Sprintf("lwg: %s: the log lacks the install of view %d (admitted at %d)", r.group, view, r.since))
	}
	i++
	for ; at > 0; at-- {
		if i >= len(r.log)-1 || r.log[i].install != nil {
			return 0, false
		}
		i++
	}
	return i, true
}

// restored makes the replica synced from st, just restored from ctl, the
// last part of a snapshot, and replays what it logged from replay on (up
// to ctl's own delivery, the log's last entry), as the members holding the
// state applied it.
func (r *replica) restored(self, from hwg.Process, ctl *control, replay int, st state) {
	log := r.log
	r.synced, r.log, r.parts, r.kept = true, nil, nil, nil
	r.owed = make(map[hwg.Process]hwg.ViewID, len(ctl.Owed))
	for i, p := range ctl.Owed {
		r.owed[p] = ctl.View
		if i < len(ctl.Since) {
			r.owed[p] = ctl.Since[i]
		}
	}
	// The sender of a snapshot of this view is the one named in it; past
	// an install, the install names one. The replay steps through the
	// views since the snapshot's, as the members holding the state did,
	// and ends in the current one, the log's last install.
	r.sender = from
	cur := r.view
	for i := replay - 1; i >= 0; i-- {
		if in := log[i].install; in != nil {
			r.view = in.View
			break
		}
	}
	for _, e := range log[replay : len(log)-1] {
		switch {
		case e.install != nil:
			r.view = e.install.View
			r.installed(self, e.install, st)
		case e.ctl.Kind == kSnapshot:
			// (A sender named here sent it already, or will have no
			// state to send: this member held none then.)
			r.completed(self, e.ctl, r.view.ID)
		default:
			st.apply(e.from, e.ctl)
		}
	}
	r.view = cur
	// The deliveries since the latest install, for a state kept later.
	r.delivered = 0
	for _, e := range slices.Backward(log) {
		if e.install != nil {
			break
		}
		r.delivered++
	}
	r.snapshotDone(ctl.View)
}

// onGone handles leaving or exclusion: the state is dropped, or kept
// (keep) until it is offered to a membership without it.
func (r *replica) onGone(st state) {
	if r.keep && r.synced && !r.currentOnly {
		owed, since := r.owedList()
		r.kept = &keptState{view: r.view.ID, at: r.delivered, snap: st.snapshot(), owed: owed, since: since}
	}
	r.member, r.synced, r.log, r.parts, r.owed = false, false, nil, nil, nil
	r.waited, r.offered = 0, false
	r.view = hwg.View{}
	st.reset()
}
