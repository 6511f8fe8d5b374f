package switching_test

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/switching"
)

func nodes(ns ...hwg.NodeID) []hwg.NodeID { return ns }

// group returns n LWGs "<prefix>/i" of members on carrier h, each with
// rate, decided by the caller, long settled.
func group(prefix string, n int, members []hwg.NodeID, h hwg.GroupID, rate float64) []switching.LWG {
	var out []switching.LWG
	for i := range n {
		out = append(out, switching.LWG{ID: lwg.ID(fmt.Sprintf("%s/%02d", prefix, i)), Members: members, HWG: h, Rate: rate, Observed: true, SinceSwitch: 1000, Decide: true})
	}
	return out
}

func snap(lwgs []switching.LWG, hwgs ...switching.HWG) *switching.Snapshot {
	s := &switching.Snapshot{LWGs: lwgs, HWGs: hwgs}
	slices.SortFunc(s.LWGs, func(a, b switching.LWG) int { return compare(a.ID, b.ID) })
	slices.SortFunc(s.HWGs, func(a, b switching.HWG) int { return compare(a.ID, b.ID) })
	return s
}

func compare[T ~string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func all5() switching.HWG {
	return switching.HWG{ID: "h/shared#1", Base: "h/shared", Members: nodes(1, 2, 3, 4, 5), Stable: 1000}
}

func switches(acts []switching.Action) []switching.Action {
	var out []switching.Action
	for _, a := range acts {
		if a.Kind == switching.ActSwitch {
			out = append(out, a)
		}
	}
	return out
}

func kinds(acts []switching.Action, k switching.ActionKind) int {
	n := 0
	for _, a := range acts {
		if a.Kind == k {
			n++
		}
	}
	return n
}

// switchGain is W·rate·excess − Margin·cost for an LWG of 3 switching off
// a 5-node HWG onto an existing HWG of exactly its members, no node
// leaving: the share rule's test.
func switchGain(cfg switching.Config, rate float64) float64 {
	return cfg.Window*rate*2 - cfg.Margin*2*cfg.Cost.LWGFlush
}

// TestShareCreatesOneHWGPerMemberSet: LWGs of one member set, hot enough,
// on an HWG of all nodes: one ActCreate for their set (named MemberBase),
// then a switch of each to it, the create first.
func TestShareCreatesOneHWGPerMemberSet(t *testing.T) {
	p := switching.NewDefault(switching.Config{})
	ls := append(group("l/a", 20, nodes(1, 2, 3), "h/shared#1", 5), group("l/b", 20, nodes(2, 4, 5), "h/shared#1", 5)...)
	acts := p.Decide(snap(ls, all5()))
	if got := kinds(acts, switching.ActCreate); got != 2 {
		t.Fatalf("%d creates, want one per member set: %v", got, acts)
	}
	sw := switches(acts)
	if len(sw) != 40 {
		t.Fatalf("%d switches, want 40: %v", len(sw), acts)
	}
	created := map[hwg.GroupID]bool{}
	for _, a := range acts {
		switch a.Kind {
		case switching.ActCreate:
			created[a.Base] = true
		case switching.ActSwitch:
			want := switching.MemberBase(nodes(1, 2, 3))
			if a.LWG[2] == 'b' {
				want = switching.MemberBase(nodes(2, 4, 5))
			}
			if a.Base != want || !created[a.Base] || a.Why != switching.ReasonShare || a.HWG != "h/shared#1" {
				t.Fatalf("%v: want a switch to %s after its create", a, want)
			}
		}
	}
}

// TestShareJoinsExistingHWG: with an HWG of exactly the set, LWGs move to
// it and nothing is created.
func TestShareJoinsExistingHWG(t *testing.T) {
	p := switching.NewDefault(switching.Config{})
	exact := switching.HWG{ID: "h/m/1.2.3#7", Base: "h/m/1.2.3", Members: nodes(1, 2, 3), Stable: 1000}
	ls := append(group("l/a", 5, nodes(1, 2, 3), "h/shared#1", 5), group("l/in", 3, nodes(1, 2, 3), exact.ID, 5)...)
	acts := p.Decide(snap(ls, all5(), exact))
	if kinds(acts, switching.ActCreate) != 0 || len(switches(acts)) != 5 {
		t.Fatalf("want 5 switches to the existing HWG and no create: %v", acts)
	}
	for _, a := range switches(acts) {
		if a.Base != "h/m/1.2.3" || a.LWG[2] != 'a' {
			t.Fatalf("%v", a)
		}
	}
}

// TestHysteresis: a switch is made only when its saving over Window is
// Margin times its cost: just below the threshold rate nothing moves, just
// above it the LWG moves.
func TestHysteresis(t *testing.T) {
	p := switching.NewDefault(switching.Config{})
	cfg := p.Config()
	exact := switching.HWG{ID: "h/m/1.2.3#7", Base: "h/m/1.2.3", Members: nodes(1, 2, 3), Stable: 1000}
	// A second LWG of each node on h/shared keeps every node there, so
	// the switch makes no node leave it: its cost is the two LWG flushes.
	keep := group("l/keep", 1, nodes(1, 2, 3, 4, 5), "h/shared#1", 0)
	threshold := cfg.Margin * 2 * cfg.Cost.LWGFlush / (cfg.Window * 2)
	for _, tc := range []struct {
		rate float64
		move bool
	}{{0.99 * threshold, false}, {1.01 * threshold, true}, {0, false}} {
		ls := append(group("l/a", 1, nodes(1, 2, 3), "h/shared#1", tc.rate), keep...)
		sw := switches(p.Decide(snap(ls, all5(), exact)))
		if (len(sw) == 1) != tc.move {
			t.Errorf("rate %.4f (threshold %.4f, gain %.1f): switches %v, want move=%v", tc.rate, threshold, switchGain(cfg, tc.rate), sw, tc.move)
		}
	}
}

// TestDwellBusyAndOwnership: an LWG that moved less than MinDwell rounds
// ago, a busy one, and one the caller does not decide for stay put.
func TestDwellBusyAndOwnership(t *testing.T) {
	p := switching.NewDefault(switching.Config{})
	exact := switching.HWG{ID: "h/m/1.2.3#7", Base: "h/m/1.2.3", Members: nodes(1, 2, 3), Stable: 1000}
	ls := group("l/a", 4, nodes(1, 2, 3), "h/shared#1", 10)
	ls[0].SinceSwitch = p.Config().MinDwell - 1
	ls[1].Busy = true
	ls[2].Decide = false
	sw := switches(p.Decide(snap(ls, all5(), exact)))
	if len(sw) != 1 || sw[0].LWG != ls[3].ID {
		t.Fatalf("switches %v, want only %s", sw, ls[3].ID)
	}
}

// TestMaxSwitches: one decision makes at most MaxSwitches switches, the
// most profitable first.
func TestMaxSwitches(t *testing.T) {
	p := switching.NewDefault(switching.Config{MaxSwitches: 7})
	exact := switching.HWG{ID: "h/m/1.2.3#7", Base: "h/m/1.2.3", Members: nodes(1, 2, 3), Stable: 1000}
	ls := group("l/a", 30, nodes(1, 2, 3), "h/shared#1", 1)
	ls[17].Rate = 50 // the hottest goes first
	sw := switches(p.Decide(snap(ls, all5(), exact)))
	if len(sw) != 7 || sw[0].LWG != ls[17].ID {
		t.Fatalf("switches %v, want 7 starting with %s", sw, ls[17].ID)
	}
}

// TestMerge: an HWG that switches emptied down to one member set merges
// into that set's own HWG at once; one named for another set (a node of
// it is down) only after MergeStable rounds.
func TestMerge(t *testing.T) {
	p := switching.NewDefault(switching.Config{})
	own := switching.HWG{ID: "h/m/1.2#3", Base: "h/m/1.2", Members: nodes(1, 2), Stable: 1000}
	shared := switching.HWG{ID: "h/shared#1", Base: "h/shared", Members: nodes(1, 2), Stable: 1}
	ls := append(group("l/own", 10, nodes(1, 2), own.ID, 1), group("l/left", 2, nodes(1, 2), shared.ID, 1)...)
	acts := p.Decide(snap(ls, own, shared))
	if kinds(acts, switching.ActMerge) != 1 || len(switches(acts)) != 2 {
		t.Fatalf("want a merge of %s into %s: %v", shared.ID, own.ID, acts)
	}
	for _, a := range switches(acts) {
		if a.Base != own.Base || a.Why != switching.ReasonMerge {
			t.Fatalf("%v", a)
		}
	}
	shrunk := switching.HWG{ID: "h/m/1.2.3#2", Base: "h/m/1.2.3", Members: nodes(1, 2), Stable: 5}
	ls = append(group("l/own", 10, nodes(1, 2), own.ID, 1), group("l/down", 2, nodes(1, 2), shrunk.ID, 1)...)
	if acts := p.Decide(snap(ls, own, shrunk)); len(acts) != 0 {
		t.Fatalf("merged an HWG of another set %d rounds after it changed: %v", shrunk.Stable, acts)
	}
	shrunk.Stable = p.Config().MergeStable
	if acts := p.Decide(snap(ls, own, shrunk)); kinds(acts, switching.ActMerge) != 1 || len(switches(acts)) != 2 {
		t.Fatalf("no merge after MergeStable rounds: %v", acts)
	}
}

// TestRetire: an HWG with no LWG is retired; one the caller only partly
// knows is not.
func TestRetire(t *testing.T) {
	p := switching.NewDefault(switching.Config{})
	empty := switching.HWG{ID: "h/old#4", Base: "h/old", Members: nodes(1, 2)}
	partial := switching.HWG{ID: "h/far#5", Base: "h/far", Members: nodes(4, 5), Partial: true}
	acts := p.Decide(snap(group("l/a", 1, nodes(1, 2, 3, 4, 5), "h/shared#1", 1), all5(), empty, partial))
	if len(acts) != 1 || acts[0].Kind != switching.ActRetire || acts[0].HWG != empty.ID {
		t.Fatalf("want only a retire of %s: %v", empty.ID, acts)
	}
}

// TestConsolidate: a cold LWG alone on an HWG of its own moves to the
// pool when churn makes that HWG cost more than the move; with the default
// (low) churn it stays.
func TestConsolidate(t *testing.T) {
	p := switching.NewDefault(switching.Config{})
	own := switching.HWG{ID: "h/m/1.2.3#2", Base: "h/m/1.2.3", Members: nodes(1, 2, 3), Stable: 1000}
	pool := switching.HWG{ID: "h/pool#1", Base: "h/pool", Members: nodes(1, 2, 3, 4, 5), Stable: 1000}
	ls := append(group("l/cold", 1, nodes(1, 2, 3), own.ID, 0.001), group("l/p", 3, nodes(1, 2, 3, 4, 5), pool.ID, 0.001)...)
	s := snap(ls, own, pool)
	if acts := p.Decide(s); len(acts) != 0 {
		t.Fatalf("consolidated at the default churn: %v", acts)
	}
	s.Churn = 0.05 // a node event every 20 rounds
	sw := switches(p.Decide(s))
	if len(sw) != 1 || sw[0].Base != "h/pool" || sw[0].Why != switching.ReasonConsolidate {
		t.Fatalf("want l/cold consolidated onto the pool: %v", sw)
	}
}

// TestCapDisplacesColdHWG: at MaxHWGsPerNode, a hot group does not get an
// HWG of its own unless emptying a colder HWG of the full node pays.
func TestCapDisplacesColdHWG(t *testing.T) {
	p := switching.NewDefault(switching.Config{MaxHWGsPerNode: 2})
	cold := switching.HWG{ID: "h/m/1.4#2", Base: "h/m/1.4", Members: nodes(1, 4), Stable: 1000}
	pool := switching.HWG{ID: "h/pool#1", Base: "h/pool", Members: nodes(1, 2, 3, 4, 5), Stable: 1000}
	ls := append(group("l/hot", 10, nodes(1, 2, 3), pool.ID, 10), group("l/cold", 1, nodes(1, 4), cold.ID, 0.001)...)
	acts := p.Decide(snap(ls, cold, pool))
	var created, displaced bool
	for _, a := range acts {
		created = created || a.Kind == switching.ActCreate && a.Base == switching.MemberBase(nodes(1, 2, 3))
		displaced = displaced || a.Kind == switching.ActSwitch && a.HWG == cold.ID && a.Why == switching.ReasonConsolidate
	}
	if !created || !displaced {
		t.Fatalf("want the cold HWG emptied for the hot set's new one: %v", acts)
	}
	// Not worth it for a lukewarm group: the node stays at its cap.
	for i := range ls {
		if ls[i].Rate == 10 {
			ls[i].Rate = 0.05
		}
	}
	if acts := p.Decide(snap(ls, cold, pool)); kinds(acts, switching.ActCreate) != 0 {
		t.Fatalf("displaced a colder HWG for a lukewarm group: %v", acts)
	}
}

// TestPlace: a new LWG goes to the HWG of its member set if there is one;
// with nothing measured it shares (the pool); among hot LWGs it gets an
// HWG of its own.
func TestPlace(t *testing.T) {
	p := switching.NewDefault(switching.Config{})
	exact := switching.HWG{ID: "h/m/1.2.3#7", Base: "h/m/1.2.3", Members: nodes(1, 2, 3)}
	l := switching.LWG{ID: "l/new", Members: nodes(1, 2, 3)}
	if got := p.Place(snap(nil, exact, all5()), l); got != "h/m/1.2.3" {
		t.Errorf("with an HWG of its set: %s", got)
	}
	if got := p.Place(snap(nil), l); got != "h/pool" {
		t.Errorf("nothing measured: %s, want the pool", got)
	}
	hot := group("l/hot", 5, nodes(4, 5), "h/m/4.5#3", 20)
	got := p.Place(snap(hot, switching.HWG{ID: "h/m/4.5#3", Base: "h/m/4.5", Members: nodes(4, 5)}, switching.HWG{ID: "h/pool#9", Base: "h/pool", Members: nodes(4, 5)}), l)
	if got != switching.MemberBase(nodes(1, 2, 3)) {
		t.Errorf("among hot LWGs: %s, want an HWG of its own", got)
	}
}

// TestDecidePure: Decide leaves its snapshot alone and gives the same
// answer for the same snapshot.
func TestDecidePure(t *testing.T) {
	w := switching.RandomOverlap(3)
	var ls []switching.LWG
	for i, s := range w.LWGs[:120] {
		members := slices.Clone(s.Members)
		slices.Sort(members)
		ls = append(ls, switching.LWG{ID: s.ID, Members: members, HWG: "h/shared#1", Rate: s.Rate, Observed: i%7 != 0, SinceSwitch: i % 20, Decide: i%3 != 0, Busy: i%11 == 0})
	}
	all := switching.HWG{ID: "h/shared#1", Base: "h/shared", Members: nodes(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16), Stable: 3}
	s := snap(ls, all)
	orig := snap(slices.Clone(ls), all)
	for i := range orig.LWGs {
		orig.LWGs[i].Members = slices.Clone(orig.LWGs[i].Members)
	}
	p := switching.NewDefault(switching.Config{MaxHWGsPerNode: 6})
	a, b := p.Decide(s), p.Decide(s)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two decisions on one snapshot differ")
	}
	if !reflect.DeepEqual(s, orig) {
		t.Fatal("Decide modified its snapshot")
	}
	if len(switches(a)) == 0 {
		t.Fatal("nothing decided: the test proves nothing")
	}
}

func TestMemberBase(t *testing.T) {
	if got := switching.MemberBase(nodes(3, 1, 12)); got != "h/m/1.3.12" {
		t.Fatalf("MemberBase = %s", got)
	}
	place := switching.ByMembers(func(l lwg.ID) []hwg.NodeID { return switching.Rendezvous(string(l), 5, 3) })
	seen := map[hwg.GroupID]bool{}
	for i := range 1024 {
		seen[place(switching.KVShardID(i))] = true
	}
	if len(seen) != 10 {
		t.Fatalf("1,024 shards of R=3 over 5 nodes use %d member sets, want C(5,3) = 10", len(seen))
	}
}
