package hwg_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/proptest"
)

// A checker that cannot fail is worse than none. These tests break the
// flush on purpose (one survivor skips the old view's tail it did not hold)
// and show the simulator finds it and rapid shrinks it.

func brokenConfig() hwg.Config {
	var c hwg.Config
	hwg.BreakFlushForTest(&c, 2)
	return c
}

func TestSimulatorFindsBrokenFlush(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		r := proptest.Run(proptest.Options{Seed: seed, Nodes: 5, Steps: 2000, Faults: proptest.FaultAll, Group: brokenConfig()})
		for _, v := range r.Violations {
			if v.Checker == "virtual-synchrony" {
				t.Logf("seed %d finds it: %v", seed, v)
				return
			}
		}
	}
	t.Fatal("200 seeded runs with a broken flush reported no virtual-synchrony violation")
}

func TestSimulatorPassesCorrectFlush(t *testing.T) {
	// The same runs without the mutation: the finding above is the
	// mutation's, not noise.
	for seed := uint64(1); seed <= 50; seed++ {
		r := proptest.Run(proptest.Options{Seed: seed, Nodes: 5, Steps: 2000, Faults: proptest.FaultAll})
		if len(r.Violations) > 0 {
			t.Fatalf("seed %d: %v", seed, r.Violations[0])
		}
	}
}

// recordingTB stands in for *testing.T under rapid.Check so the test can
// assert that the property failed, and how small rapid made it.
type recordingTB struct {
	name   string
	failed bool
	out    strings.Builder
}

func (r *recordingTB) Helper()                           {}
func (r *recordingTB) Name() string                      { return r.name }
func (r *recordingTB) Logf(format string, args ...any)   { fmt.Fprintf(&r.out, format+"\n", args...) }
func (r *recordingTB) Log(args ...any)                   { fmt.Fprintln(&r.out, args...) }
func (r *recordingTB) Skipf(string, ...any)              { panic("skip in mutation test") }
func (r *recordingTB) Skip(...any)                       { panic("skip in mutation test") }
func (r *recordingTB) SkipNow()                          { panic("skip in mutation test") }
func (r *recordingTB) Errorf(format string, args ...any) { r.failed = true; r.Logf(format, args...) }
func (r *recordingTB) Error(args ...any)                 { r.failed = true; r.Log(args...) }
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	panic(stopTest{})
}
func (r *recordingTB) Fatal(args ...any) { r.Error(args...); panic(stopTest{}) }
func (r *recordingTB) FailNow()          { r.failed = true; panic(stopTest{}) }
func (r *recordingTB) Fail()             { r.failed = true }
func (r *recordingTB) Failed() bool      { return r.failed }

type stopTest struct{}

func TestRapidShrinksBrokenFlush(t *testing.T) {
	// rapid writes a fail file under ./testdata on failure; keep it out of
	// the source tree.
	t.Chdir(t.TempDir())
	tb := &recordingTB{name: "BrokenFlush"}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(stopTest); !ok {
					panic(r)
				}
			}
		}()
		rapid.Check(tb, func(rt *rapid.T) {
			s := proptest.NewSim(proptest.Options{
				Seed:   rapid.Uint64().Draw(rt, "seed"),
				Nodes:  5,
				Faults: proptest.FaultAll,
				Group:  brokenConfig(),
			})
			actions := proptest.Actions(s)
			actions[""] = proptest.Invariant(s)
			rt.Repeat(actions)
			proptest.Finish(rt, s)
		})
	}()
	out := tb.out.String()
	if !tb.failed {
		t.Fatalf("rapid did not find the broken flush:\n%s", out)
	}
	if !strings.Contains(out, "virtual-synchrony") {
		t.Fatalf("rapid failed, but not on virtual synchrony:\n%s", out)
	}
	// The shrunk counterexample is short: a handful of actions, not the
	// hundreds a random run draws.
	actions := len(regexp.MustCompile(`draw action: `).FindAllString(out, -1))
	if actions == 0 || actions > 20 {
		t.Fatalf("shrunk counterexample has %d actions, want 1..20:\n%s", actions, out)
	}
	t.Logf("rapid shrank the broken flush to %d actions", actions)
}
