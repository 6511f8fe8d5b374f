package proptest

import (
	"testing"

	"pgregory.net/rapid"
)

// TestClusterStateful drives a 5-node cluster with rapid-chosen steps,
// multicasts and faults, checking every invariant after each action and
// liveness after a final heal. Failures found once are kept as fail files
// under testdata/rapid/TestClusterStateful and replayed first on every run.
func TestClusterStateful(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := NewSim(Options{
			Seed:          rapid.Uint64().Draw(t, "seed"),
			Nodes:         rapid.IntRange(3, 6).Draw(t, "nodes"),
			Faults:        FaultAll,
			ManualBlockOK: rapid.Bool().Draw(t, "manualBlockOK"),
		})
		actions := Actions(s)
		actions[""] = Invariant(s)
		t.Repeat(actions)
		Finish(t, s)
	})
}
