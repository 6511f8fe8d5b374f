package lwg

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
)

// opsState is a state that records what was applied to it, in order.
type opsState struct{ ops []string }

func (s *opsState) boundary(ev *hwg.Event) {
	s.ops = append(s.ops, fmt.Sprintf("install %d %v", ev.View.ID, ev.View.Members))
}
func (s *opsState) apply(from hwg.Process, c *control) {
	s.ops = append(s.ops, fmt.Sprintf("%v from %v", c.Items[0].LWG, from))
}
func (s *opsState) snapshot() []byte { return []byte(strings.Join(s.ops, "\n")) }
func (s *opsState) restore(b []byte) error {
	s.ops = nil
	if len(b) > 0 {
		s.ops = strings.Split(string(b), "\n")
	}
	return nil
}
func (s *opsState) reset() { s.ops = nil }

// replicaUnderTest is a replica and its state, as one member of a group.
type replicaUnderTest struct {
	self hwg.Process
	r    replica
	st   opsState
}

func newReplicaUnderTest(node hwg.NodeID, keep bool) *replicaUnderTest {
	return &replicaUnderTest{self: hwg.Process{Node: node, Inc: 1}, r: replica{group: "h/g", keep: keep}}
}

// install steps an install; it returns the snapshot the member must send,
// if any (taken at the install).
func (m *replicaUnderTest) install(v hwg.ViewID, members []hwg.Process, joined ...hwg.Process) *control {
	ev := hwg.Event{Type: hwg.EventInstall, Group: "h/g", View: hwg.View{ID: v, Members: members}, Joined: joined}
	if !m.r.onInstall(m.self, &ev, &m.st) {
		return nil
	}
	owed, since := m.r.owedList()
	return &control{Kind: kSnapshot, View: v, Snap: m.st.snapshot(), Owed: owed, Since: since}
}

// deliver steps a delivered control message (one part). It returns the
// snapshot the member must send now, if any.
func (m *replicaUnderTest) deliver(t *testing.T, from hwg.Process, c *control) *control {
	t.Helper()
	_, send, malformed := m.r.deliver(m.self, from, c, &m.st)
	if malformed {
		t.Fatalf("%v: malformed %+v", m.self, c)
	}
	if !send {
		return nil
	}
	owed, since := m.r.owedList()
	return &control{Kind: kSnapshot, View: m.r.view.ID, At: m.r.delivered, Snap: m.st.snapshot(), Owed: owed, Since: since}
}

func op(name string) *control { return &control{Kind: kBind, Items: []item{{LWG: ID(name)}}} }

// sameAs fails unless m holds want's state and owes what want owes.
func (m *replicaUnderTest) sameAs(t *testing.T, want *replicaUnderTest) {
	t.Helper()
	if !m.r.synced {
		t.Fatalf("%v holds no state", m.self)
	}
	if !slices.Equal(m.st.ops, want.st.ops) {
		t.Fatalf("%v holds %q, want %q", m.self, m.st.ops, want.st.ops)
	}
	if fmt.Sprint(m.r.owedList()) != fmt.Sprint(want.r.owedList()) {
		gotP, gotS := m.r.owedList()
		wantP, wantS := want.r.owedList()
		t.Fatalf("%v owes %v (admitted %v), want %v (%v)", m.self, gotP, gotS, wantP, wantS)
	}
	if m.r.delivered != want.r.delivered {
		t.Fatalf("%v counts %d deliveries in its view, want %d", m.self, m.r.delivered, want.r.delivered)
	}
	if m.r.sender != want.r.sender {
		t.Fatalf("%v names %v the view's sender, want %v", m.self, m.r.sender, want.r.sender)
	}
}

// TestLateSnapshotServesTheJoinersItCovers: a snapshot taken at the
// install of view 2 and delivered only in view 3 syncs the member admitted
// in view 2, which replays what it logged since, and every member stops
// owing it at the same point; the member admitted in view 3 logged nothing
// from view 2 and waits for another. Before, a joiner ignored a snapshot
// of an earlier view, and if its sender was then cut off, nobody sent one
// (the directory of RSM seed 946 with the application wired apart).
func TestLateSnapshotServesTheJoinersItCovers(t *testing.T) {
	h, j, k := newReplicaUnderTest(1, false), newReplicaUnderTest(2, false), newReplicaUnderTest(3, false)
	hp, jp, kp := h.self, j.self, k.self
	h.install(1, []hwg.Process{hp})
	h.deliver(t, hp, op("a"))
	s2 := h.install(2, []hwg.Process{hp, jp}, jp)
	if s2 == nil {
		t.Fatal("the holder owes no snapshot to the joiner")
	}
	j.install(2, []hwg.Process{hp, jp}, jp)
	for _, m := range []*replicaUnderTest{h, j} {
		m.deliver(t, jp, op("b"))
	}
	// The view changes before the snapshot is delivered: it is owed again.
	v3 := []hwg.Process{hp, jp, kp}
	if h.install(3, v3, kp) == nil {
		t.Fatal("the holder owes no snapshot in view 3")
	}
	j.install(3, v3, kp)
	k.install(3, v3, kp)
	for _, m := range []*replicaUnderTest{h, j, k} {
		m.deliver(t, kp, op("c"))
	}
	for _, m := range []*replicaUnderTest{h, j, k} {
		m.deliver(t, hp, s2)
	}
	j.sameAs(t, h)
	if p, _ := h.r.owedList(); !slices.Equal(p, []hwg.Process{kp}) {
		t.Fatalf("after the late snapshot the holder owes %v, want only %v", p, kp)
	}
	if k.r.synced {
		t.Fatal("the member admitted after the snapshot's view restored it")
	}
}

// TestKeptStateOffered: a member cut off holding the state keeps it (at the
// point it had reached in its last view) and offers it when it is back in
// a membership; members whose logs reach back to that point restore it
// and replay, and end with the state of a member that never left.
// Without keep, the state is dropped.
func TestKeptStateOffered(t *testing.T) {
	h, j := newReplicaUnderTest(1, true), newReplicaUnderTest(2, true)
	ref := newReplicaUnderTest(9, false) // a member that sees everything
	hp, jp, rp := h.self, j.self, ref.self
	for _, m := range []*replicaUnderTest{h, ref} {
		m.install(1, []hwg.Process{hp, rp})
	}
	v2 := []hwg.Process{hp, rp, jp}
	h.install(2, v2, jp)
	ref.install(2, v2, jp)
	j.install(2, v2, jp)
	for _, m := range []*replicaUnderTest{h, ref, j} {
		m.deliver(t, rp, op("a"))
	}
	h.r.onGone(&h.st) // cut off after a: b in view 2 never reached it
	if h.r.kept == nil || h.r.kept.view != 2 || h.r.kept.at != 1 {
		t.Fatalf("kept %+v, want the state after a in view 2", h.r.kept)
	}
	for _, m := range []*replicaUnderTest{ref, j} {
		m.deliver(t, rp, op("b"))
	}
	v3 := []hwg.Process{rp, jp}
	ref.install(3, v3)
	j.install(3, v3)
	for _, m := range []*replicaUnderTest{ref, j} {
		m.deliver(t, jp, op("c"))
	}
	v4 := []hwg.Process{rp, jp, hp}
	ref.install(4, v4, hp)
	j.install(4, v4, hp)
	h.install(4, v4, hp)
	var k *keptState
	for i := range offerTicks {
		if k = h.r.tick(); (k != nil) != (i == offerTicks-1) {
			t.Fatalf("tick %d: offer %v, want one at tick %d", i+1, k != nil, offerTicks)
		}
	}
	for range 2 * offerTicks {
		if h.r.tick() != nil {
			t.Fatal("a second offer in one membership")
		}
	}
	offer := &control{Kind: kSnapshot, View: k.view, At: k.at, Snap: k.snap, Owed: k.owed, Since: k.since}
	for _, m := range []*replicaUnderTest{ref, j, h} {
		m.deliver(t, hp, offer)
	}
	j.sameAs(t, ref)
	if h.r.synced {
		t.Fatal("the offering member restored its own offer (its log starts after it)")
	}

	// Without keep, nothing is kept.
	d := newReplicaUnderTest(4, false)
	d.install(1, []hwg.Process{d.self})
	d.r.onGone(&d.st)
	if d.r.kept != nil {
		t.Fatal("a replica without keep kept its state")
	}
}

// TestOfferBeyondTheViewIsRefused: a kept state that claims more
// deliveries in its view than the log holds is malformed and not restored.
func TestOfferBeyondTheViewIsRefused(t *testing.T) {
	j := newReplicaUnderTest(2, true)
	hp := hwg.Process{Node: 1, Inc: 1}
	v2 := []hwg.Process{hp, j.self}
	j.install(2, v2, j.self)
	j.deliver(t, hp, op("a"))
	j.install(3, v2)
	_, _, done, malformed := j.r.logDelivery(hp, &control{Kind: kSnapshot, View: 2, At: 2, Snap: []byte("x")})
	if done || !malformed || j.r.synced {
		t.Fatalf("an offer past view 2's one delivery: done %v, malformed %v", done, malformed)
	}
}

// TestKeptStateThenMidViewSnapshot: when every member that held the state
// was cut off, an install names no sender; the members a kept state
// restores name one at its delivery, and it sends the members admitted
// later a snapshot of the state at that point, which no install would
// otherwise ask for (LWG seed 106 with the application wired apart: the
// view stayed, and its joiners waited for good).
func TestKeptStateThenMidViewSnapshot(t *testing.T) {
	h, j, k, m := newReplicaUnderTest(1, true), newReplicaUnderTest(2, true), newReplicaUnderTest(3, true), newReplicaUnderTest(4, true)
	hp, jp, kp, mp := h.self, j.self, k.self, m.self
	for _, x := range []*replicaUnderTest{h, j} {
		x.install(1, []hwg.Process{hp, jp})
		x.deliver(t, hp, op("a"))
	}
	v2 := []hwg.Process{hp, jp, kp}
	if h.install(2, v2, kp) == nil {
		t.Fatal("no snapshot owed to k")
	}
	j.install(2, v2, kp)
	k.install(2, v2, kp)
	for _, x := range []*replicaUnderTest{h, j, k} {
		x.deliver(t, jp, op("b"))
	}
	// Both holders are cut off before h's snapshot is delivered.
	h.r.onGone(&h.st)
	j.r.onGone(&j.st)
	k.install(3, []hwg.Process{kp})
	k.deliver(t, kp, op("c"))
	v4 := []hwg.Process{kp, hp, mp}
	for _, x := range []*replicaUnderTest{k, h, m} {
		if x.install(4, v4, hp, mp) != nil {
			t.Fatalf("%v, without the state, owes a snapshot", x.self)
		}
	}
	var kept *keptState
	for range offerTicks {
		kept = h.r.tick()
	}
	offer := &control{Kind: kSnapshot, View: kept.view, At: kept.at, Snap: kept.snap, Owed: kept.owed, Since: kept.since}
	var mid *control
	for _, x := range []*replicaUnderTest{k, h, m} {
		if c := x.deliver(t, hp, offer); c != nil {
			if x != k {
				t.Fatalf("%v sends a snapshot after the offer, want only %v", x.self, kp)
			}
			mid = c
		}
	}
	if !k.r.synced || h.r.synced || m.r.synced {
		t.Fatalf("after the offer: synced k %v, h %v, m %v; want only k (the others were admitted after the kept state)", k.r.synced, h.r.synced, m.r.synced)
	}
	if mid == nil {
		t.Fatal("nobody sends the members admitted in view 4 a snapshot")
	}
	for _, x := range []*replicaUnderTest{k, h, m} {
		x.deliver(t, kp, mid)
	}
	h.sameAs(t, k)
	m.sameAs(t, k)
	if p, _ := k.r.owedList(); len(p) > 0 {
		t.Fatalf("still owed: %v", p)
	}
	want := []string{"a from " + hp.String(), "install 2 " + fmt.Sprint(v2), "b from " + jp.String(), "install 3 " + fmt.Sprint([]hwg.Process{kp}), "c from " + kp.String(), "install 4 " + fmt.Sprint(v4)}
	if !slices.Equal(k.st.ops[1:], want) {
		t.Fatalf("k holds %q, want the bootstrap's install then %q", k.st.ops, want)
	}
}
