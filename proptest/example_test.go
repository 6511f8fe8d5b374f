package proptest_test

import (
	"fmt"

	"github.com/lwgkit/lwgkit/proptest"
)

// ExampleRun runs one seeded simulation with every fault and reports the
// checkers' verdict.
func ExampleRun() {
	r := proptest.Run(proptest.Options{Seed: 42, Nodes: 5, Steps: 2000, Faults: proptest.FaultAll})
	fmt.Println("violations:", len(r.Violations))
	fmt.Println("converged after the heal:", r.Stats.Converged)
	fmt.Println("faults injected:", r.Stats.Faults() > 0)
	// Output:
	// violations: 0
	// converged after the heal: true
	// faults injected: true
}

// ExampleCheckAll checks a hand-made trace in which node 2 delivers a
// message that nobody sent.
func ExampleCheckAll() {
	tr := proptest.Trace{
		{T: 0, Node: 1, Inc: 1, Ev: proptest.EvInstall, Group: "h/1", View: 1, Members: []uint64{1, 2}},
		{T: 0, Node: 2, Inc: 1, Ev: proptest.EvInstall, Group: "h/1", View: 1, Members: []uint64{1, 2}},
		{T: 1, Node: 2, Inc: 1, Ev: proptest.EvDeliver, Group: "h/1", View: 1, Msg: "ghost", From: 1},
	}
	for _, v := range proptest.CheckAll(tr) {
		fmt.Println(v.Checker)
	}
	// Output:
	// delivery-integrity
}
