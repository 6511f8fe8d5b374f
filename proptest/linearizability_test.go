package proptest

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
)

func total(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// TestLinearizabilityHistories feeds the checker small hand-made histories.
func TestLinearizabilityHistories(t *testing.T) {
	p := hwg.Process{Node: 1, Inc: 1}
	cases := []struct {
		name string
		ok   bool
		hist []RSMOp
	}{
		{"sequential", true, []RSMOp{
			{Object: "0", Node: p, Map: true, Key: "a", Value: "x", Call: 1, Return: 2, Out: nil},
			{Object: "0", Node: p, Map: true, Read: true, Key: "a", Call: 3, Return: 4, Out: []byte("x")},
		}},
		{"stale read", false, []RSMOp{
			{Object: "0", Node: p, Map: true, Key: "a", Value: "x", Call: 1, Return: 2},
			{Object: "0", Node: p, Map: true, Read: true, Key: "a", Call: 3, Return: 4, Out: nil},
		}},
		{"concurrent read may see either", true, []RSMOp{
			{Object: "0", Node: p, Map: true, Key: "a", Value: "x", Call: 1, Return: 5},
			{Object: "0", Node: p, Map: true, Read: true, Key: "a", Call: 2, Return: 3, Out: nil},
			{Object: "0", Node: p, Map: true, Read: true, Key: "a", Call: 3, Return: 4, Out: []byte("x")},
		}},
		{"unknown write may take effect later", true, []RSMOp{
			{Object: "0", Node: p, Map: true, Key: "a", Value: "x", Call: 1, Return: -1},
			{Object: "0", Node: p, Map: true, Read: true, Key: "a", Call: 2, Return: 3, Out: nil},
			{Object: "0", Node: p, Map: true, Read: true, Key: "a", Call: 4, Return: 5, Out: []byte("x")},
		}},
		{"value never written", false, []RSMOp{
			{Object: "0", Node: p, Map: true, Key: "a", Value: "x", Call: 1, Return: -1},
			{Object: "0", Node: p, Map: true, Read: true, Key: "a", Call: 2, Return: 3, Out: []byte("y")},
		}},
		{"set returns the old value", false, []RSMOp{
			{Object: "0", Node: p, Map: true, Key: "a", Value: "x", Call: 1, Return: 2, Out: nil},
			{Object: "0", Node: p, Map: true, Key: "a", Value: "y", Call: 3, Return: 4, Out: nil},
		}},
		{"counter", true, []RSMOp{
			{Object: "1", Node: p, Add: 3, Call: 1, Return: 2, Out: total(3)},
			{Object: "1", Node: p, Add: 4, Call: 3, Return: -1},
			{Object: "1", Node: p, Read: true, Call: 5, Return: 6, Out: total(7)},
		}},
		{"unknown write applied: its output is known", true, []RSMOp{
			{Object: "0", Node: p, Map: true, Key: "a", Value: "x", Call: 1, Return: 2},
			{Object: "0", Node: p, Map: true, Key: "a", Value: "y", Call: 3, Return: -1, Effect: true, Out: []byte("x")},
			{Object: "0", Node: p, Map: true, Read: true, Key: "a", Call: 4, Return: 5, Out: []byte("y")},
		}},
		{"unknown write applied with an output no order gives", false, []RSMOp{
			{Object: "0", Node: p, Map: true, Key: "a", Value: "x", Call: 1, Return: 2},
			{Object: "0", Node: p, Map: true, Key: "a", Value: "y", Call: 3, Return: -1, Effect: true, Out: []byte("z")},
		}},
		{"unknown add applied after a read", true, []RSMOp{
			{Object: "1", Node: p, Add: 3, Call: 1, Return: 2, Out: total(3)},
			{Object: "1", Node: p, Add: 4, Call: 3, Return: -1, Effect: true, Out: total(7)},
			{Object: "1", Node: p, Read: true, Call: 4, Return: 5, Out: total(3)},
		}},
		{"unknown add applied with a total no order gives", false, []RSMOp{
			{Object: "1", Node: p, Add: 3, Call: 1, Return: 2, Out: total(3)},
			{Object: "1", Node: p, Add: 4, Call: 3, Return: -1, Effect: true, Out: total(4)},
		}},
		{"counter lost add", false, []RSMOp{
			{Object: "1", Node: p, Add: 3, Call: 1, Return: 2, Out: total(3)},
			{Object: "1", Node: p, Read: true, Call: 3, Return: 4, Out: total(0)},
		}},
	}
	for _, c := range cases {
		vs := CheckLinearizable(c.hist, time.Second)
		if ok := len(vs) == 0; ok != c.ok {
			t.Errorf("%s: linearizable=%v, want %v: %v", c.name, ok, c.ok, vs)
		}
	}
}

// TestRSMHistoryEffects: the history leaves out a command no replica
// applied, gives one a replica applied (its client got no answer) that
// replica's output and life, and keeps answered operations and reads as
// they are.
func TestRSMHistoryEffects(t *testing.T) {
	p := hwg.Process{Node: 1, Inc: 1}
	r := &rsmSim{effects: map[int]effect{1: {life: 3, out: []byte("old")}, 4: {life: 2, err: errors.New("bad")}}}
	r.ops = []RSMOp{
		{Object: "0", Node: p, Life: 1, Map: true, Key: "a", Value: "x", Call: 1, Return: -1},
		{Object: "0", Node: p, Life: 1, Map: true, Key: "a", Value: "y", Call: 2, Return: -1},
		{Object: "0", Node: p, Life: 1, Map: true, Read: true, Key: "a", Call: 3, Return: -1},
		{Object: "0", Node: p, Life: 1, Map: true, Key: "a", Value: "z", Call: 4, Return: 5, Out: []byte("old")},
		{Object: "0", Node: p, Life: 1, Map: true, Key: "a", Value: "w", Call: 6, Return: -1},
	}
	h := r.history()
	want := []RSMOp{r.ops[1], r.ops[2], r.ops[3], r.ops[4]}
	want[0].Life, want[0].Out, want[0].Effect = 3, []byte("old"), true
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("history:\n%+v\nwant\n%+v", h, want)
	}
	if op, cmd, ok := untagCmd(tagCmd(7, []byte("set a x"))); !ok || op != 7 || string(cmd) != "set a x" {
		t.Fatalf("untag: %d %q %v", op, cmd, ok)
	}
	if _, cmd, ok := untagCmd([]byte{3}); ok || string(cmd) != "\x03" {
		t.Fatalf("an untagged command: %q %v", cmd, ok)
	}
}

// TestLinearizabilityUnderFaults checks the histories of seeded runs with
// crashes, loss and membership changes (TestRSMSimulations checks more);
// here only that they are long and mix answered and unknown operations.
func TestLinearizabilityUnderFaults(t *testing.T) {
	var ops, unknown int
	for seed := uint64(1); seed <= 6; seed++ {
		r := RunRSM(rsmOptions(seed))
		for _, v := range r.Violations {
			t.Errorf("seed %d: %.2000s", seed, v)
		}
		ops += r.Stats.Operations
		unknown += r.Stats.Unknown
	}
	if ops < 300 {
		t.Errorf("only %d operations checked", ops)
	}
	t.Logf("%d operations, %d with unknown outcome", ops, unknown)
}

// TestLinearizabilityCatchesStaleRead: reads answered from the local
// replica at once (a lagging replica answers with an old value) are not
// linearizable, and porcupine says so.
func TestLinearizabilityCatchesStaleRead(t *testing.T) {
	caught := 0
	for seed := uint64(1); seed <= 3; seed++ {
		o := rsmOptions(seed)
		o.LWG.Faults, o.StaleReads, o.Reads = FaultReorder, true, 0.5
		r := RunRSM(o)
		if fired(r.Violations, nameLinearizable) {
			caught++
		}
		for _, v := range r.Violations {
			if v.Checker != nameLinearizable {
				t.Errorf("seed %d: another checker fired: %.1000s", seed, v)
			}
		}
	}
	if caught == 0 {
		t.Fatal("stale reads went unnoticed")
	}
	// The same runs with reads through the total order pass.
	o := rsmOptions(1)
	o.LWG.Faults, o.Reads = FaultReorder, 0.5
	if r := RunRSM(o); len(r.Violations) > 0 {
		t.Fatalf("linearizable reads: %v", r.Violations[0])
	}
}
