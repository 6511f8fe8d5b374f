package proptest

import (
	"strings"

	"pgregory.net/rapid"

	"github.com/lwgkit/lwgkit/hwg"
)

// Actions returns rapid state-machine actions that drive s: scheduler
// steps, multicasts, and the faults enabled in s's options. Use them with
// (*rapid.T).Repeat together with Invariant, then call Finish:
//
//	s := proptest.NewSim(proptest.Options{Seed: rapid.Uint64().Draw(t, "seed"), Faults: proptest.FaultAll})
//	actions := proptest.Actions(s)
//	actions[""] = proptest.Invariant(s)
//	t.Repeat(actions)
//	proptest.Finish(t, s)
//
// rapid shrinks a failing run to a short list of these actions.
func Actions(s *Sim) map[string]func(*rapid.T) {
	n := len(s.nodes)
	node := func(t *rapid.T, label string) hwg.NodeID {
		return hwg.NodeID(rapid.IntRange(1, n).Draw(t, label))
	}
	a := map[string]func(*rapid.T){
		"step": func(t *rapid.T) {
			for range rapid.IntRange(1, 300).Draw(t, "steps") {
				if !s.Step() {
					return
				}
			}
		},
		"multicast": func(t *rapid.T) { s.Multicast(node(t, "sender")) },
	}
	f := s.opts.Faults
	if f.Has(FaultCrash) {
		a["crash"] = func(t *rapid.T) { s.Crash(node(t, "victim")) }
		a["restart"] = func(t *rapid.T) { s.Restart(node(t, "node")) }
	}
	if f.Has(FaultPartition) {
		a["partition"] = func(t *rapid.T) {
			side := rapid.SliceOfNDistinct(rapid.IntRange(1, n), 1, n-1, rapid.ID[int]).Draw(t, "side")
			ids := make([]hwg.NodeID, len(side))
			for i, id := range side {
				ids[i] = hwg.NodeID(id)
			}
			s.Partition(ids, rapid.Bool().Draw(t, "oneWay"))
		}
		a["heal-partition"] = func(*rapid.T) { s.HealPartition() }
	}
	if f.Has(FaultJoin) {
		a["join"] = func(t *rapid.T) { s.Join(node(t, "joiner")) }
	}
	if f.Has(FaultLeave) {
		a["leave"] = func(t *rapid.T) { s.Leave(node(t, "leaver")) }
	}
	return a
}

// Invariant returns the rapid invariant that runs every checker on s's
// trace so far (liveness only applies once Finish has healed the cluster).
func Invariant(s *Sim) func(*rapid.T) {
	return func(t *rapid.T) {
		if v := s.Violations(); len(v) > 0 {
			t.Fatalf("%d violations:\n%s", len(v), joinViolations(v))
		}
	}
}

// Finish heals s, lets it quiesce, and fails t on any violation, including
// liveness — unless the fault schedule cost the group its primary
// component, after which no primary-component protocol owes progress.
func Finish(t *rapid.T, s *Sim) {
	if v := s.finish(); len(v) > 0 {
		t.Fatalf("%d violations:\n%s\n%s", len(v), joinViolations(v), s.Dump())
	}
}

func safetyOnly(vs []Violation) []Violation {
	var out []Violation
	for _, v := range vs {
		if v.Checker != "liveness" {
			out = append(out, v)
		}
	}
	return out
}

func joinViolations(vs []Violation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString("  ")
		b.WriteString(v.String())
		b.WriteByte('\n')
	}
	return b.String()
}
