package proptest

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// builder assembles hand-made traces, numbering steps from 1.
type builder struct{ tr Trace }

func (b *builder) add(e Event) {
	e.T = uint64(len(b.tr) + 1)
	b.tr.Append(e)
}

func (b *builder) install(p proc, g string, v uint64, members ...uint64) {
	b.add(Event{Node: p.node, Inc: p.inc, Ev: EvInstall, Group: g, View: v, Members: members})
}

func (b *builder) installIncs(p proc, g string, v uint64, members, incs []uint64) {
	b.add(Event{Node: p.node, Inc: p.inc, Ev: EvInstall, Group: g, View: v, Members: members, Incs: incs})
}

// installAll has each of ps install view v whose members are exactly ps.
func (b *builder) installAll(g string, v uint64, ps ...proc) {
	var members []uint64
	for _, p := range ps {
		members = append(members, p.node)
	}
	for _, p := range ps {
		b.install(p, g, v, members...)
	}
}

// installLWG has p install view v of LWG lg on carrier view hv of HWG hg;
// incs may be nil.
func (b *builder) installLWG(p proc, lg string, v uint64, hg string, hv uint64, members, incs []uint64) {
	b.add(Event{Node: p.node, Inc: p.inc, Ev: EvInstall, Group: lg, View: v, Members: members, Incs: incs, HWG: hg, HWGView: hv})
}

func (b *builder) send(p proc, g string, v uint64, msg string) {
	b.add(Event{Node: p.node, Inc: p.inc, Ev: EvSend, Group: g, View: v, Msg: msg})
}

func (b *builder) deliver(p proc, g string, v uint64, msg string, from uint64) {
	b.add(Event{Node: p.node, Inc: p.inc, Ev: EvDeliver, Group: g, View: v, Msg: msg, From: from})
}

func (b *builder) deliverAll(g string, v uint64, msg string, from uint64, ps ...proc) {
	for _, p := range ps {
		b.deliver(p, g, v, msg, from)
	}
}

func (b *builder) crash(p proc) { b.add(Event{Node: p.node, Inc: p.inc, Ev: EvCrash}) }
func (b *builder) leave(p proc, g string, v uint64) {
	b.add(Event{Node: p.node, Inc: p.inc, Ev: EvLeave, Group: g, View: v})
}
func (b *builder) heal() { b.add(Event{Ev: EvHeal}) }
func (b *builder) apply(p proc, g string, i uint64, d string) {
	b.add(Event{Node: p.node, Inc: p.inc, Ev: EvApply, Group: g, Index: i, Digest: d})
}

var (
	p1 = proc{1, 1}
	p2 = proc{2, 1}
	p3 = proc{3, 1}
)

const g = "h/1"

// byChecker groups CheckAll's output by checker name.
func byChecker(tr []Event) map[string][]Violation {
	out := make(map[string][]Violation)
	for _, v := range CheckAll(tr) {
		out[v.Checker] = append(out[v.Checker], v)
	}
	return out
}

func expectClean(t *testing.T, tr []Event) {
	t.Helper()
	for _, v := range CheckAll(tr) {
		t.Errorf("unexpected violation: %v", v)
	}
}

// expectOnly asserts that checker name fires and, if isolated, no other does.
func expectOnly(t *testing.T, tr []Event, name string, isolated bool) []Violation {
	t.Helper()
	got := byChecker(tr)
	if len(got[name]) == 0 {
		t.Errorf("%s reported nothing", name)
	}
	for _, v := range got[name] {
		t.Logf("%v", v)
	}
	if isolated {
		for n, vs := range got {
			if n != name {
				for _, v := range vs {
					t.Errorf("unexpected violation from another checker: %v", v)
				}
			}
		}
	}
	return got[name]
}

// goodTrace is a correct run: three processes, a crash, a restart, a
// voluntary leave of an LWG, a heal and a converged final view.
func goodTrace() Trace {
	var b builder
	b.installAll(g, 1, p1, p2, p3)
	b.send(p1, g, 1, "m1")
	b.deliverAll(g, 1, "m1", 1, p1, p2, p3)
	b.send(p2, g, 1, "m2")
	b.deliverAll(g, 1, "m2", 2, p1, p2, p3)

	for _, p := range []proc{p1, p2} {
		b.add(Event{Node: p.node, Inc: p.inc, Ev: EvInstall, Group: "l/a", View: 1, Members: []uint64{1, 2}, HWG: g, HWGView: 1})
	}
	b.send(p1, "l/a", 1, "a1")
	b.deliverAll("l/a", 1, "a1", 1, p1, p2)
	b.leave(p2, "l/a", 1)
	b.add(Event{Node: 1, Inc: 1, Ev: EvInstall, Group: "l/a", View: 2, Members: []uint64{1}, HWG: g, HWGView: 1})

	b.crash(p3)
	b.installAll(g, 2, p1, p2)
	b.send(p1, g, 2, "m3")
	b.deliverAll(g, 2, "m3", 1, p1, p2)
	b.apply(p1, g, 1, "d1")

	b.heal()
	p3b := proc{3, 2}
	for _, p := range []proc{p1, p2, p3b} {
		b.installIncs(p, g, 3, []uint64{1, 2, 3}, []uint64{1, 1, 2})
	}
	b.send(p3b, g, 3, "m4")
	b.deliverAll(g, 3, "m4", 3, p1, p2, p3b)
	return b.tr
}

func TestGoodTrace(t *testing.T) {
	expectClean(t, goodTrace())
}

func TestCheckersStable(t *testing.T) {
	want := []string{"self-inclusion", "local-monotonicity", "initial-view", "view-agreement",
		"primary-component", "lwg-carrier", "one-carrier", "delivery-integrity", "no-duplication", "sending-view",
		"virtual-synchrony", "fifo", "total-order", "liveness"}
	var got []string
	for _, c := range Checkers() {
		got = append(got, c.Name)
		if c.Doc == "" || c.Check == nil {
			t.Errorf("checker %s lacks Doc or Check", c.Name)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Checkers() = %v, want %v", got, want)
	}
}

func TestViolations(t *testing.T) {
	tests := []struct {
		name     string
		checker  string
		isolated bool
		build    func(b *builder)
	}{
		{"not a member", nameSelfInclusion, true, func(b *builder) {
			b.install(p1, g, 1, 2)
		}},
		{"wrong incarnation", nameSelfInclusion, true, func(b *builder) {
			b.installIncs(p1, g, 1, []uint64{1}, []uint64{2})
		}},
		{"view goes back", nameLocalMonotonicity, true, func(b *builder) {
			b.install(p1, g, 2, 1)
			b.install(p1, g, 1, 1)
		}},
		{"view repeats", nameLocalMonotonicity, true, func(b *builder) {
			b.install(p1, g, 1, 1)
			b.install(p1, g, 1, 1)
		}},
		{"send before install", nameInitialView, true, func(b *builder) {
			b.send(p1, g, 1, "m")
		}},
		{"deliver in stale view", nameInitialView, false, func(b *builder) {
			// sending-view fires too: the delivery's view differs from the send's.
			b.installAll(g, 1, p1)
			b.send(p1, g, 1, "m")
			b.installAll(g, 2, p1)
			b.deliver(p1, g, 1, "m", 1)
		}},
		{"restart must reinstall", nameInitialView, true, func(b *builder) {
			b.installAll(g, 1, p1)
			b.crash(p1)
			b.send(proc{1, 2}, g, 1, "m")
		}},
		{"different members", nameViewAgreement, true, func(b *builder) {
			b.install(p1, g, 1, 1, 2)
			b.install(p2, g, 1, 1, 2, 3)
		}},
		{"different incarnations", nameViewAgreement, true, func(b *builder) {
			b.installIncs(p1, g, 1, []uint64{1, 2}, []uint64{1, 1})
			b.installIncs(proc{2, 2}, g, 1, []uint64{1, 2}, []uint64{1, 2})
		}},
		{"minority successor", namePrimaryComponent, true, func(b *builder) {
			b.installAll(g, 1, p1, p2, p3)
			b.installAll(g, 2, p1)
		}},
		{"restarted incarnation does not count", namePrimaryComponent, true, func(b *builder) {
			b.installIncs(p1, g, 1, []uint64{1, 2, 3}, []uint64{1, 1, 1})
			b.installIncs(p1, g, 2, []uint64{1, 2, 3}, []uint64{1, 2, 2})
		}},
		{"LWG install names no carrier", nameLWGCarrier, true, func(b *builder) {
			b.installAll(g, 1, p1)
			b.install(p1, "l/a", 1, 1)
		}},
		{"LWG install names no carrier view", nameLWGCarrier, true, func(b *builder) {
			b.installAll(g, 1, p1)
			b.installLWG(p1, "l/a", 1, g, 0, []uint64{1}, nil)
		}},
		{"carrier never installed", nameLWGCarrier, true, func(b *builder) {
			b.installAll(g, 1, p1)
			b.installLWG(p1, "l/a", 1, "h/9", 1, []uint64{1}, nil)
		}},
		{"carrier view the process was excluded from", nameLWGCarrier, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.add(Event{Node: p1.node, Inc: p1.inc, Ev: EvExclude, Group: g, View: 1})
			b.installLWG(p1, "l/a", 1, g, 1, []uint64{1, 2}, nil)
		}},
		{"carrier view the process never installed", nameLWGCarrier, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.installLWG(p1, "l/a", 1, g, 2, []uint64{1, 2}, nil)
		}},
		{"LWG member outside the carrier view", nameLWGCarrier, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.installLWG(p1, "l/a", 1, g, 1, []uint64{1, 2, 3}, nil)
			b.installLWG(p2, "l/a", 1, g, 1, []uint64{1, 2, 3}, nil)
		}},
		{"LWG member's incarnation outside the carrier view", nameLWGCarrier, true, func(b *builder) {
			b.installIncs(p1, g, 1, []uint64{1, 2}, []uint64{1, 1})
			b.installLWG(p1, "l/a", 1, g, 1, []uint64{1, 2}, []uint64{1, 2})
		}},
		{"two carriers for one LWG view", nameOneCarrier, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.installAll("h/2", 1, p1, p2)
			b.installLWG(p1, "l/a", 1, g, 1, []uint64{1, 2}, nil)
			b.installLWG(p2, "l/a", 1, "h/2", 1, []uint64{1, 2}, nil)
		}},
		{"LWG send after the carrier moved on", nameOneCarrier, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.installLWG(p1, "l/a", 1, g, 1, []uint64{1, 2}, nil)
			b.installLWG(p2, "l/a", 1, g, 1, []uint64{1, 2}, nil)
			b.installAll(g, 2, p1, p2)
			b.send(p1, "l/a", 1, "a")
		}},
		{"LWG delivery after leaving the carrier", nameOneCarrier, true, func(b *builder) {
			b.installAll(g, 1, p1, p2, p3)
			b.installLWG(p1, "l/a", 1, g, 1, []uint64{1, 2}, nil)
			b.installLWG(p2, "l/a", 1, g, 1, []uint64{1, 2}, nil)
			b.send(p1, "l/a", 1, "a")
			b.deliver(p1, "l/a", 1, "a", 1)
			b.leave(p2, g, 1)
			b.deliver(p2, "l/a", 1, "a", 1)
		}},
		{"never sent", nameDeliveryIntegrity, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.deliver(p2, g, 1, "x", 1)
		}},
		{"delivered before sent", nameDeliveryIntegrity, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.deliver(p2, g, 1, "m", 1)
			b.send(p1, g, 1, "m")
		}},
		{"wrong sender", nameDeliveryIntegrity, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.send(p1, g, 1, "m")
			b.deliver(p2, g, 1, "m", 2)
		}},
		{"wrong group", nameDeliveryIntegrity, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.installAll("h/2", 1, p1, p2)
			b.send(p1, g, 1, "m")
			b.deliver(p2, "h/2", 1, "m", 1)
		}},
		{"delivered twice", nameNoDuplication, true, func(b *builder) {
			b.installAll(g, 1, p1)
			b.send(p1, g, 1, "m")
			b.deliver(p1, g, 1, "m", 1)
			b.deliver(p1, g, 1, "m", 1)
		}},
		{"sent twice", nameNoDuplication, true, func(b *builder) {
			b.installAll(g, 1, p1)
			b.send(p1, g, 1, "m")
			b.send(p1, g, 1, "m")
		}},
		{"delivered in a later view", nameSendingView, true, func(b *builder) {
			b.installAll(g, 1, p1, p2, p3)
			b.send(p3, g, 1, "m")
			b.crash(p3)
			b.installAll(g, 2, p1, p2)
			b.deliverAll(g, 2, "m", 3, p1, p2)
		}},
		{"survivors disagree", nameVirtualSynchrony, true, func(b *builder) {
			b.installAll(g, 1, p1, p2, p3)
			b.send(p3, g, 1, "m")
			b.deliver(p1, g, 1, "m", 3)
			b.crash(p3)
			b.installAll(g, 2, p1, p2)
		}},
		{"LWG survivors disagree across a gap in view ids", nameVirtualSynchrony, true, func(b *builder) {
			b.installAll(g, 1, p1, p2, p3)
			for _, p := range []proc{p1, p2, p3} {
				b.installLWG(p, "l/a", 2, g, 1, []uint64{1, 2, 3}, nil)
			}
			b.send(p3, "l/a", 2, "m")
			b.deliver(p1, "l/a", 2, "m", 3)
			b.crash(p3)
			b.installAll(g, 2, p1, p2)
			b.installLWG(p1, "l/a", 5, g, 2, []uint64{1, 2}, nil)
			b.installLWG(p2, "l/a", 5, g, 2, []uint64{1, 2}, nil)
		}},
		{"own message lost", nameVirtualSynchrony, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.send(p1, g, 1, "m")
			b.installAll(g, 2, p1, p2)
		}},
		{"gap", nameFIFO, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.send(p1, g, 1, "a")
			b.send(p1, g, 1, "b")
			b.deliverAll(g, 1, "a", 1, p1)
			b.deliverAll(g, 1, "b", 1, p1, p2)
		}},
		{"reordered", nameFIFO, false, func(b *builder) {
			// total-order fires too: p1 and p2 disagree on a and b.
			b.installAll(g, 1, p1, p2)
			b.send(p1, g, 1, "a")
			b.send(p1, g, 1, "b")
			b.deliverAll(g, 1, "a", 1, p1)
			b.deliverAll(g, 1, "b", 1, p1, p2)
			b.deliver(p2, g, 1, "a", 1)
		}},
		{"two processes disagree", nameTotalOrder, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.send(p1, g, 1, "a")
			b.send(p2, g, 1, "b")
			b.deliver(p1, g, 1, "a", 1)
			b.deliver(p1, g, 1, "b", 2)
			b.deliver(p2, g, 1, "b", 2)
			b.deliver(p2, g, 1, "a", 1)
		}},
		{"process behind", nameLiveness, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.heal()
			b.install(p1, g, 2, 1, 2)
		}},
		{"crashed member in final view", nameLiveness, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.crash(p2)
			b.heal()
		}},
		{"restarted node never rejoined", nameLiveness, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.crash(p2)
			b.heal()
			b.install(proc{2, 2}, "h/2", 1, 2)
		}},
		{"undelivered", nameLiveness, true, func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.heal()
			b.send(p1, g, 1, "m")
			b.deliver(p1, g, 1, "m", 1)
		}},
	}
	covered := make(map[string]bool)
	for _, tc := range tests {
		covered[tc.checker] = true
		t.Run(tc.checker+"/"+tc.name, func(t *testing.T) {
			var b builder
			tc.build(&b)
			expectOnly(t, b.tr, tc.checker, tc.isolated)
		})
	}
	for _, c := range Checkers() {
		if !covered[c.Name] {
			t.Errorf("no negative test for %s", c.Name)
		}
	}
}

func TestTotalOrderThreeWayCycle(t *testing.T) {
	// Every pair of processes agrees on the messages both delivered, yet
	// the union of the orders a<b, b<c, c<a admits no total order.
	var b builder
	b.installAll(g, 1, p1, p2, p3)
	b.send(p1, g, 1, "a")
	b.send(p2, g, 1, "b")
	b.send(p3, g, 1, "c")
	b.deliver(p1, g, 1, "a", 1)
	b.deliver(p1, g, 1, "b", 2)
	b.deliver(p2, g, 1, "b", 2)
	b.deliver(p2, g, 1, "c", 3)
	b.deliver(p3, g, 1, "c", 3)
	b.deliver(p3, g, 1, "a", 1)
	vs := expectOnly(t, b.tr, nameTotalOrder, true)
	if len(vs) != 1 {
		t.Fatalf("got %d violations, want 1", len(vs))
	}
	for _, want := range []string{"cycle of 3", "a", "b", "c", "n3.i1 delivered c before a"} {
		if !strings.Contains(vs[0].Detail, want) {
			t.Errorf("detail %q lacks %q", vs[0].Detail, want)
		}
	}
}

func TestTotalOrderCycleAmidChains(t *testing.T) {
	// A cycle x<->y with long chains before and after it. Kahn's algorithm
	// leaves the downstream chain too; the search starts there (t0 is the
	// first message seen) and must still report just the real cycle.
	p4 := proc{4, 1}
	var b builder
	b.installAll(g, 1, p1, p2, p3, p4)
	b.send(p1, g, 1, "x")
	b.send(p1, g, 1, "y")
	b.deliver(p3, g, 1, "t0", 2)
	var head, tail []string
	for i := range 1000 {
		head = append(head, fmt.Sprint("h", i))
		tail = append(tail, fmt.Sprint("t", i))
	}
	for _, m := range head {
		b.deliver(p2, g, 1, m, 2)
	}
	b.deliver(p2, g, 1, "x", 1)
	b.deliver(p2, g, 1, "y", 1)
	for _, m := range tail {
		b.deliver(p2, g, 1, m, 2)
	}
	b.deliver(p4, g, 1, "y", 1)
	b.deliver(p4, g, 1, "x", 1)
	vs := byChecker(b.tr)[nameTotalOrder]
	if len(vs) != 1 || !strings.Contains(vs[0].Detail, "cycle of 2 messages: x -> y -> x") {
		t.Fatalf("got %v, want the cycle x -> y -> x", vs)
	}
}

func TestNoLivenessWithoutHeal(t *testing.T) {
	var b builder
	b.installAll(g, 1, p1, p2)
	b.install(p1, g, 2, 1, 2)
	b.send(p1, g, 2, "m")
	expectClean(t, b.tr)
}

func TestLivenessIgnoresLeaversAndDownNodes(t *testing.T) {
	var b builder
	b.installAll(g, 1, p1, p2, p3)
	b.leave(p2, g, 1)
	b.crash(p3)
	b.heal()
	b.installAll(g, 2, p1)
	expectClean(t, b.tr)
}

func TestViolationsCapped(t *testing.T) {
	var b builder
	for i := range 100 {
		b.install(proc{uint64(i + 1), 1}, fmt.Sprint("h/", i), 1, 1000)
	}
	vs := byChecker(b.tr)[nameSelfInclusion]
	if len(vs) != maxViolations+1 {
		t.Fatalf("got %d violations, want %d plus a summary", len(vs), maxViolations)
	}
	if last := vs[len(vs)-1]; !strings.Contains(last.Detail, "80 further") {
		t.Errorf("summary = %v", last)
	}
}

func TestViolationString(t *testing.T) {
	v := Violation{Checker: "fifo", Group: "h/1", T: 7, Detail: "x"}
	if got, want := v.String(), "fifo: group h/1: t=7: x"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	v.Group = ""
	if got, want := v.String(), "fifo: t=7: x"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestJSONLRoundTrip(t *testing.T) {
	tr := goodTrace()
	var first bytes.Buffer
	if err := tr.WriteJSONL(&first); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSONL(bytes.NewReader(first.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, tr) {
		t.Fatalf("round trip changed the trace:\ngot  %+v\nwant %+v", got, tr)
	}
	var second bytes.Buffer
	if err := got.WriteJSONL(&second); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Fatal("re-encoding is not byte-identical")
	}
	line, _, _ := strings.Cut(first.String(), "\n")
	if want := `{"t":1,"node":1,"inc":1,"ev":"install","group":"h/1","view":1,"members":[1,2,3]}`; line != want {
		t.Errorf("first line = %s, want %s", line, want)
	}
}

func TestReadJSONLLongLine(t *testing.T) {
	members := make([]uint64, 100000)
	for i := range members {
		members[i] = uint64(i + 1)
	}
	tr := Trace{{T: 1, Node: 1, Inc: 1, Ev: EvInstall, Group: g, View: 1, Members: members}}
	var buf bytes.Buffer
	if err := tr.WriteJSONL(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSONL(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Members) != len(members) {
		t.Fatalf("read %d events", len(got))
	}
}

func TestReadJSONLErrors(t *testing.T) {
	good := `{"t":1,"node":1,"inc":1,"ev":"install","group":"h/1","view":1,"members":[1]}` + "\n"
	tests := []struct {
		line string
		want string
	}{
		{`not json`, "line 2"},
		{`{"t":2,"node":1,"inc":1,"ev":"bogus"}`, `unknown event kind "bogus"`},
		{`{"t":2,"node":1,"inc":1}`, `missing "ev"`},
		{`{"node":1,"inc":1,"ev":"crash"}`, `missing "t"`},
		{`{"t":2,"node":1,"ev":"crash"}`, `missing "inc"`},
		{`{"t":2,"node":1,"inc":1,"ev":"send","view":1}`, `missing "group", "msg"`},
		{`{"t":2,"node":1,"inc":1,"ev":"deliver","group":"h/1","msg":"m"}`, `missing "from"`},
		{`{"t":2,"node":1,"inc":1,"ev":"install","group":"h/1","view":1}`, `missing "members"`},
		{`{"t":2,"node":1,"inc":1,"ev":"install","group":"h/1","members":[1,2],"incs":[1]}`, "2 members but 1 incs"},
		{`{"t":2,"node":1,"inc":1,"ev":"deliver","group":"h/1","msg":"m","from":1,"seen":true}`, "only an install, leave or exclude"},
		{`{"t":2,"node":1,"inc":1,"ev":"deliver","group":"l/1","msg":"m","from":1,"seen":true}`, "only an install, leave or exclude"},
		{`{"t":2,"node":1,"inc":1,"ev":"apply","group":"h/1","index":1}`, `missing "digest"`},
		{`{"t":2,"node":1,"inc":1,"ev":"crash","extra":true}`, `unknown field "extra"`},
		{`{"t":2,"node":1,"inc":1,"ev":"crash"} {}`, "trailing data"},
		{`{"t":0,"node":1,"inc":1,"ev":"crash"}`, "before the previous step"},
	}
	for _, tc := range tests {
		_, err := ReadJSONL(strings.NewReader(good + tc.line + "\n"))
		if err == nil {
			t.Errorf("%s: no error", tc.line)
			continue
		}
		if !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want line 2 and %q", tc.line, err, tc.want)
		}
	}
	// Blank lines are skipped but still counted.
	if _, err := ReadJSONL(strings.NewReader(good + "\n" + `{"t":3,"ev":"nope"}`)); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("blank line: error %v, want line 3", err)
	}
}

// syntheticTrace is a correct run of about n events: five processes in one
// group, a view change every 500 messages, every message delivered by all.
func syntheticTrace(n int) Trace {
	ps := []proc{{1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}}
	var b builder
	b.tr = make(Trace, 0, n+64)
	view := uint64(1)
	b.installAll(g, view, ps...)
	for i := 0; len(b.tr) < n; i++ {
		if i > 0 && i%500 == 0 {
			view++
			b.installAll(g, view, ps...)
		}
		s := ps[i%len(ps)]
		msg := fmt.Sprint("m", i)
		b.send(s, g, view, msg)
		b.deliverAll(g, view, msg, s.node, ps...)
	}
	b.heal()
	return b.tr
}

func TestCheckAllLargeTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("large trace")
	}
	tr := syntheticTrace(300000)
	start := time.Now()
	vs := CheckAll(tr)
	elapsed := time.Since(start)
	for _, v := range vs {
		t.Errorf("unexpected violation: %v", v)
	}
	t.Logf("CheckAll on %d events took %v", len(tr), elapsed)
	// Generous bound: the race detector slows this several-fold.
	if elapsed > 30*time.Second {
		t.Errorf("CheckAll took %v", elapsed)
	}
}

func BenchmarkCheckAll(b *testing.B) {
	tr := syntheticTrace(300000)
	for b.Loop() {
		if vs := CheckAll(tr); len(vs) > 0 {
			b.Fatal(vs[0])
		}
	}
}

// TestPrimaryComponentCountsLeaversNamedByInstall: a view that keeps only a
// minority of its predecessor is a violation, unless the others left
// voluntarily. The install itself may name them ("left"), so the property
// holds on a prefix where the leavers have not yet emitted their own leave
// events.
func TestPrimaryComponentCountsLeaversNamedByInstall(t *testing.T) {
	check := func(withLeft bool) []Violation {
		var b builder
		b.installAll(g, 1, p1, p2, p3)
		e := Event{Node: p1.node, Inc: p1.inc, Ev: EvInstall, Group: g, View: 2, Members: []uint64{1}}
		if withLeft {
			e.Left = []uint64{2, 3}
		}
		b.add(e)
		return checkerByName(t, namePrimaryComponent).Check(b.tr)
	}
	if v := check(false); len(v) == 0 {
		t.Fatal("view 2 [1] after [1 2 3] with nobody leaving must violate primary-component")
	}
	if v := check(true); len(v) != 0 {
		t.Fatalf("view 2 [1] naming 2 and 3 as leavers is legal, got %v", v)
	}
}

func checkerByName(t *testing.T, name string) Checker {
	t.Helper()
	for _, c := range Checkers() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no checker %q", name)
	return Checker{}
}

// lwgTrace is a correct run with two LWGs on one HWG: LWG view ids skip
// values; a crash leaves l/a with a minority of its previous view, which is
// legal because the carrier keeps the majority; a restarted incarnation
// rejoins the HWG and then l/a.
func lwgTrace() Trace {
	ps := []proc{{1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}}
	p4, p5 := ps[3], ps[4]
	var b builder
	b.installAll(g, 1, ps...)
	for _, p := range ps[:3] {
		b.installLWG(p, "l/a", 3, g, 1, []uint64{1, 2, 3}, nil)
	}
	for _, p := range ps[3:] {
		b.installLWG(p, "l/b", 1, g, 1, []uint64{4, 5}, nil)
	}
	b.send(p1, "l/a", 3, "a1")
	b.deliverAll("l/a", 3, "a1", 1, p1, p2, p3)
	b.send(p4, "l/b", 1, "b1")
	b.deliverAll("l/b", 1, "b1", 4, p4, p5)

	b.crash(p2)
	b.crash(p3)
	b.installAll(g, 2, p1, p4, p5)
	b.installLWG(p1, "l/a", 7, g, 2, []uint64{1}, nil)
	b.installLWG(p4, "l/b", 2, g, 2, []uint64{4, 5}, nil)
	b.installLWG(p5, "l/b", 2, g, 2, []uint64{4, 5}, nil)
	b.send(p1, "l/a", 7, "a2")
	b.deliver(p1, "l/a", 7, "a2", 1)

	b.heal()
	p2b := proc{2, 2}
	for _, p := range []proc{p1, p2b, p4, p5} {
		b.installIncs(p, g, 3, []uint64{1, 2, 4, 5}, []uint64{1, 2, 1, 1})
	}
	for _, p := range []proc{p1, p2b} {
		b.installLWG(p, "l/a", 9, g, 3, []uint64{1, 2}, []uint64{1, 2})
	}
	b.installLWG(p4, "l/b", 3, g, 3, []uint64{4, 5}, nil)
	b.installLWG(p5, "l/b", 3, g, 3, []uint64{4, 5}, nil)
	b.send(p2b, "l/a", 9, "a3")
	b.deliverAll("l/a", 9, "a3", 2, p1, p2b)
	b.send(p5, "l/b", 3, "b2")
	b.deliverAll("l/b", 3, "b2", 5, p4, p5)
	return b.tr
}

func TestLWGTrace(t *testing.T) {
	tr := lwgTrace()
	expectClean(t, tr)
	// The trace does exercise primary-component's exemption: as an HWG with
	// consecutive view ids, l/a's step from [1 2 3] to [1] is a violation.
	hw := slices.Clone(tr)
	renumber := map[uint64]uint64{3: 1, 7: 2, 9: 3}
	for i := range hw {
		if hw[i].Group == "l/a" {
			hw[i].Group, hw[i].View, hw[i].HWG, hw[i].HWGView = "h/a", renumber[hw[i].View], "", 0
		}
	}
	if vs := checkerByName(t, namePrimaryComponent).Check(hw); len(vs) != 1 || vs[0].Group != "h/a" {
		t.Errorf("primary-component on l/a renamed h/a: got %v, want one violation", vs)
	}
}

// TestPrimaryComponentIgnoresLWGs: the same minority successor is a
// violation in an HWG and legal in an LWG.
func TestPrimaryComponentIgnoresLWGs(t *testing.T) {
	build := func(group string) []Event {
		var b builder
		b.installAll(group, 1, p1, p2, p3)
		b.installAll(group, 2, p1)
		return b.tr
	}
	check := checkerByName(t, namePrimaryComponent).Check
	if vs := check(build("h/x")); len(vs) != 1 || vs[0].Group != "h/x" {
		t.Errorf("h/x: got %v, want one violation", vs)
	}
	if vs := check(build("l/x")); len(vs) != 0 {
		t.Errorf("l/x: got %v, want none", vs)
	}
}

// TestLWGNearMisses: corrected versions of the lwg-carrier and one-carrier
// negative tests are accepted by every checker.
func TestLWGNearMisses(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *builder)
	}{
		{"LWG install replayed on an older carrier view", func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.installAll(g, 2, p1, p2)
			b.installLWG(p1, "l/a", 1, g, 1, []uint64{1, 2}, nil)
			b.installLWG(p2, "l/a", 1, g, 1, []uint64{1, 2}, nil)
		}},
		{"LWG on the latest carrier view", func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.installAll(g, 2, p1, p2)
			b.installLWG(p1, "l/a", 1, g, 2, []uint64{1, 2}, nil)
		}},
		{"LWG incarnations match the carrier's", func(b *builder) {
			b.installIncs(p1, g, 1, []uint64{1, 2}, []uint64{1, 2})
			b.installLWG(p1, "l/a", 1, g, 1, []uint64{1, 2}, []uint64{1, 2})
		}},
		{"LWG without incs matches by node", func(b *builder) {
			b.installIncs(p1, g, 1, []uint64{1, 2}, []uint64{1, 2})
			b.installLWG(p1, "l/a", 1, g, 1, []uint64{1, 2}, nil)
		}},
		{"carrier without incs matches by node", func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.installLWG(p1, "l/a", 1, g, 1, []uint64{1, 2}, []uint64{1, 7})
		}},
		{"successive LWG views on different carriers", func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.installAll("h/2", 1, p1, p2)
			b.installLWG(p1, "l/a", 1, g, 1, []uint64{1, 2}, nil)
			b.installLWG(p2, "l/a", 1, g, 1, []uint64{1, 2}, nil)
			b.installLWG(p1, "l/a", 4, "h/2", 1, []uint64{1, 2}, nil)
			b.installLWG(p2, "l/a", 4, "h/2", 1, []uint64{1, 2}, nil)
		}},
		{"LWG reinstalled on the carrier's new view before sending", func(b *builder) {
			b.installAll(g, 1, p1, p2)
			b.installLWG(p1, "l/a", 1, g, 1, []uint64{1, 2}, nil)
			b.installLWG(p2, "l/a", 1, g, 1, []uint64{1, 2}, nil)
			b.installAll(g, 2, p1, p2)
			b.installLWG(p1, "l/a", 2, g, 2, []uint64{1, 2}, nil)
			b.installLWG(p2, "l/a", 2, g, 2, []uint64{1, 2}, nil)
			b.send(p1, "l/a", 2, "a")
			b.deliverAll("l/a", 2, "a", 1, p1, p2)
		}},
		{"LWG delivery before leaving the carrier", func(b *builder) {
			b.installAll(g, 1, p1, p2, p3)
			b.installLWG(p1, "l/a", 1, g, 1, []uint64{1, 2}, nil)
			b.installLWG(p2, "l/a", 1, g, 1, []uint64{1, 2}, nil)
			b.send(p1, "l/a", 1, "a")
			b.deliverAll("l/a", 1, "a", 1, p1, p2)
			b.leave(p2, g, 1)
		}},
		{"carrier left, then rejoined and LWG reinstalled", func(b *builder) {
			b.installAll(g, 1, p1, p2, p3)
			b.installLWG(p2, "l/a", 1, g, 1, []uint64{2}, nil)
			b.leave(p2, g, 1)
			b.add(Event{Node: 1, Inc: 1, Ev: EvInstall, Group: g, View: 2, Members: []uint64{1, 3}, Left: []uint64{2}})
			b.add(Event{Node: 3, Inc: 1, Ev: EvInstall, Group: g, View: 2, Members: []uint64{1, 3}, Left: []uint64{2}})
			b.installAll(g, 3, p1, p2, p3)
			b.installLWG(p2, "l/a", 2, g, 3, []uint64{2}, nil)
			b.send(p2, "l/a", 2, "a")
			b.deliver(p2, "l/a", 2, "a", 2)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b builder
			tc.build(&b)
			expectClean(t, b.tr)
		})
	}
}

// TestVirtualSynchronyLWGNextView: an LWG's next view is the next id anyone
// installed, and the report names it.
func TestVirtualSynchronyLWGNextView(t *testing.T) {
	var b builder
	b.installAll(g, 1, p1, p2)
	b.installLWG(p1, "l/a", 2, g, 1, []uint64{1, 2}, nil)
	b.installLWG(p2, "l/a", 2, g, 1, []uint64{1, 2}, nil)
	b.send(p1, "l/a", 2, "m")
	b.installAll(g, 2, p1, p2)
	b.installLWG(p1, "l/a", 6, g, 2, []uint64{1, 2}, nil)
	b.installLWG(p2, "l/a", 6, g, 2, []uint64{1, 2}, nil)
	vs := expectOnly(t, b.tr, nameVirtualSynchrony, true)
	if len(vs) != 1 || !strings.Contains(vs[0].Detail, "n1.i1 moved from view 2 to 6 without delivering its own messages m") {
		t.Errorf("got %v, want n1.i1's own message m lost between views 2 and 6", vs)
	}
}

// TestSeenCopies: in a trace whose layers run asynchronously
// (LWGOptions.Async), a carrier's install, leave or exclusion is traced
// again, as Seen, when the LWG layer took it. The carrier checkers hold LWG
// events against the copies, and every other checker ignores them.
func TestSeenCopies(t *testing.T) {
	build := func(deliverAfterSeen bool) []Event {
		var b builder
		b.installAll(g, 1, p1, p2, p3)
		for _, p := range []proc{p1, p2, p3} {
			b.add(Event{Node: p.node, Inc: p.inc, Ev: EvInstall, Group: g, View: 1, Members: []uint64{1, 2, 3}, Seen: true})
		}
		b.installLWG(p1, "l/a", 1, g, 1, []uint64{1, 2}, nil)
		b.installLWG(p2, "l/a", 1, g, 1, []uint64{1, 2}, nil)
		b.send(p1, "l/a", 1, "a")
		b.deliver(p1, "l/a", 1, "a", 1)
		// p2's carrier is done with it before its LWG layer delivers.
		b.leave(p2, g, 1)
		seen := Event{Node: 2, Inc: 1, Ev: EvLeave, Group: g, View: 1, Seen: true}
		if deliverAfterSeen {
			b.add(seen)
		}
		b.deliver(p2, "l/a", 1, "a", 1)
		if !deliverAfterSeen {
			b.add(seen)
		}
		return b.tr
	}
	// The layer delivered before it saw the leave: as the runtime does.
	// (The Seen install copies would break local-monotonicity and
	// view-agreement's counts if the other checkers read them.)
	expectClean(t, build(false))
	// After it saw the leave, the delivery is out of its carrier.
	vs := checkerByName(t, nameOneCarrier).Check(build(true))
	if len(vs) != 1 || vs[0].Group != "l/a" {
		t.Errorf("one-carrier on a delivery after the layer saw the leave: got %v, want one violation in l/a", vs)
	}
	// Without copies, the originals count: the same delivery after the
	// leave is out of its carrier.
	plain := slices.DeleteFunc(build(false), func(e Event) bool { return e.Seen })
	if vs := checkerByName(t, nameOneCarrier).Check(plain); len(vs) != 1 {
		t.Errorf("one-carrier on a delivery after the leave, no copies: got %v, want one violation", vs)
	}
}

// TestAppSeenCopies: with the application wired apart from the LWG layer
// (LWGOptions.Async), an LWG's exclusion is traced when the LWG layer
// raises it and again, as seen, when the application takes it. A replica
// applies what was delivered before the exclusion after the layer raised
// it: the checkers of replicated objects count the exclusion where the
// application took it, the LWG checkers where the layer raised it.
func TestAppSeenCopies(t *testing.T) {
	build := func(applyAfterSeen bool) []Event {
		var b builder
		b.installAll(g, 1, p1, p2)
		b.installLWG(p1, "l/a", 1, g, 1, []uint64{1, 2}, nil)
		b.installLWG(p2, "l/a", 1, g, 1, []uint64{1, 2}, nil)
		for _, p := range []proc{p1, p2} {
			b.add(Event{Node: p.node, Inc: p.inc, Ev: EvInstall, Group: "l/a", View: 1, Members: []uint64{1, 2}, HWG: g, HWGView: 1, Seen: true})
			b.add(Event{Node: p.node, Inc: p.inc, Ev: EvState, Group: "l/a", Index: 0, Digest: "d0"})
		}
		b.send(p1, "l/a", 1, "a")
		b.deliverAll("l/a", 1, "a", 1, p1, p2)
		b.apply(p1, "l/a", 1, "d1")
		// p2's LWG layer excludes it before its application applied "a".
		b.add(Event{Node: 2, Inc: 1, Ev: EvExclude, Group: "l/a", View: 1})
		seen := Event{Node: 2, Inc: 1, Ev: EvExclude, Group: "l/a", View: 1, Seen: true}
		if applyAfterSeen {
			b.add(seen)
		}
		b.apply(p2, "l/a", 1, "d1")
		if !applyAfterSeen {
			b.add(seen)
		}
		return b.tr
	}
	// Applied before the application saw the exclusion: as rsm's router
	// does. (The Seen install copies would break local-monotonicity if
	// the LWG checkers read them.)
	expectClean(t, build(false))
	if vs := CheckRSM(build(false)); len(vs) > 0 {
		t.Errorf("an apply before the application saw the exclusion: %v", vs)
	}
	// After it saw the exclusion, the replica no longer holds the state.
	if vs := CheckRSM(build(true)); len(vs) != 1 || vs[0].Checker != nameRSMIndex {
		t.Errorf("rsm checkers on an apply after the application saw the exclusion: got %v, want one rsm-index violation", vs)
	}
	// Without copies, the original counts: the same apply after it is
	// out of the state.
	plain := slices.DeleteFunc(build(false), func(e Event) bool { return e.Seen })
	if vs := CheckRSM(plain); len(vs) != 1 || vs[0].Checker != nameRSMIndex {
		t.Errorf("rsm checkers on an apply after the exclusion, no copies: got %v, want one rsm-index violation", vs)
	}
}
