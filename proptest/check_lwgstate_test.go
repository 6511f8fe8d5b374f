package proptest

import (
	"strings"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// TestCheckDirRegs feeds the checker hand-made observations of three nodes:
// consistent ones pass, and each way a registration can be wrong fires.
func TestCheckDirRegs(t *testing.T) {
	p := func(n hwg.NodeID) hwg.Process { return hwg.Process{Node: n, Inc: 1} }
	// obs: every node's directory lists carrier h/a registered to regs;
	// the nodes in holding hold its table.
	obs := func(regs []hwg.Process, holding ...hwg.NodeID) []lwg.Observation {
		var out []lwg.Observation
		for n := hwg.NodeID(1); n <= 3; n++ {
			c := lwg.CarrierObservation{ID: "h/a", Base: "h/a", Current: true, Regs: regs}
			for _, h := range holding {
				c.Member = c.Member || h == n
			}
			out = append(out, lwg.Observation{Self: p(n), Synced: true, Carriers: []lwg.CarrierObservation{c}})
		}
		return out
	}
	regs12 := []hwg.Process{p(1), p(2)}
	if v := checkDirRegs(obs(regs12, 1, 2)); len(v) != 0 {
		t.Fatalf("consistent registrations: %v", v)
	}
	if v := checkDirRegs(nil); len(v) != 0 {
		t.Fatalf("no node: %v", v)
	}
	diverged := obs(regs12, 1, 2)
	diverged[2].Carriers[0].Regs = []hwg.Process{p(1), p(2), p(3)}
	restarted := obs([]hwg.Process{p(1), {Node: 2, Inc: 2}}, 1, 2)
	unsynced := obs(regs12, 1, 2)
	unsynced[1].Synced, unsynced[1].Carriers = false, nil
	for _, tc := range []struct {
		name string
		obs  []lwg.Observation
		want string
	}{
		{"a registered node that left", obs(regs12, 1), "lists 2.1, which does not hold its table"},
		{"a registration of another incarnation", restarted, "lists 2.2, which does not hold its table"},
		{"a member that is not registered", obs(regs12, 1, 2, 3), "3.1 holds the table of carrier h/a but is not registered"},
		{"replicas that disagree", diverged, "the directories differ"},
		{"a node without the directory", unsynced, "2.1 does not hold the directory"},
	} {
		v := checkDirRegs(tc.obs)
		if len(v) == 0 {
			t.Errorf("%s: not caught", tc.name)
			continue
		}
		if v[0].Checker != nameDirRegs || !strings.Contains(v[0].Detail, tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, v, tc.want)
		}
	}
}

// TestCheckDirBindings: an LWG on the carrier the directory binds it to,
// and live, passes; a binding that lags, a carrier the directory does not
// list and a flush left unfinished each fire. LWGs the node is not a member
// of are not its to check.
func TestCheckDirBindings(t *testing.T) {
	obs := func(l lwg.LWGObservation) []lwg.Observation {
		return []lwg.Observation{{
			Self: hwg.Process{Node: 1, Inc: 1}, Synced: true,
			Carriers: []lwg.CarrierObservation{{ID: "h/a"}, {ID: "h/b"}},
			LWGs:     []lwg.LWGObservation{l},
		}}
	}
	ok := lwg.LWGObservation{ID: "l/x", HWG: "h/a", Bound: "h/a", Local: true}
	if v := checkDirBindings(obs(ok)); len(v) != 0 {
		t.Fatalf("consistent binding: %v", v)
	}
	remote := lwg.LWGObservation{ID: "l/y", HWG: "h/a", Bound: "h/b", Busy: true}
	if v := checkDirBindings(obs(remote)); len(v) != 0 {
		t.Fatalf("an LWG of another node: %v", v)
	}
	lags, dead, busy := ok, ok, ok
	lags.Bound = "h/b"
	dead.HWG, dead.Bound = "h/c", "h/c"
	busy.Busy = true
	for _, tc := range []struct {
		name string
		l    lwg.LWGObservation
		want string
	}{
		{"a binding behind a move", lags, `l/x is on carrier h/a, bound to "h/b"`},
		{"a carrier the directory does not list", dead, "l/x is on carrier h/c, which the directory does not list"},
		{"an unfinished flush", busy, "l/x is still busy on carrier h/a"},
	} {
		v := checkDirBindings(obs(tc.l))
		if len(v) != 1 || v[0].Checker != nameDirBinding || !strings.Contains(v[0].Detail, tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, v, tc.want)
		}
	}
}

// TestCheckTables: two holders of carrier h/a with the same view and table
// pass; a table that lacks an LWG, an LWG in another view, and another
// carrier view each fire. A node that does not hold the carrier is not
// compared.
func TestCheckTables(t *testing.T) {
	p := func(n hwg.NodeID) hwg.Process { return hwg.Process{Node: n, Inc: 1} }
	lv := func(id uint64, ms ...hwg.NodeID) lwg.View {
		v := lwg.View{ID: id}
		for _, n := range ms {
			v.Members = append(v.Members, p(n))
		}
		return v
	}
	node := func(n hwg.NodeID, holds bool, cv hwg.ViewID, lwgs ...lwg.LWGObservation) lwg.Observation {
		return lwg.Observation{Self: p(n), Synced: true, LWGs: lwgs,
			Carriers: []lwg.CarrierObservation{{ID: "h/a", Member: holds, View: hwg.View{ID: cv, Members: []hwg.Process{p(1), p(2)}}}}}
	}
	x := lwg.LWGObservation{ID: "l/x", HWG: "h/a", View: lv(3, 1, 2)}
	y := lwg.LWGObservation{ID: "l/y", HWG: "h/a", View: lv(5, 2)}
	if v := checkTables([]lwg.Observation{node(1, true, 2, x, y), node(2, true, 2, x, y), node(3, false, 0)}); len(v) != 0 {
		t.Fatalf("equal copies: %v", v)
	}
	yOld := y
	yOld.View = lv(4, 1, 2)
	for _, tc := range []struct {
		name   string
		second lwg.Observation
	}{
		{"an LWG missing", node(2, true, 2, x)},
		{"an LWG in another view", node(2, true, 2, x, yOld)},
		{"another carrier view", node(2, true, 3, x, y)},
	} {
		v := checkTables([]lwg.Observation{node(1, true, 2, x, y), tc.second})
		if len(v) != 1 || v[0].Checker != nameTables || !strings.Contains(v[0].Detail, "carrier h/a") {
			t.Errorf("%s: got %v", tc.name, v)
		}
	}
}
