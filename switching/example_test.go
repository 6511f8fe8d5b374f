package switching_test

import (
	"fmt"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/switching"
)

// LWGs with one member set name one carrier base, whatever the order.
func ExampleMemberBase() {
	fmt.Println(switching.MemberBase([]hwg.NodeID{3, 1, 2}))
	fmt.Println(switching.MemberBase([]hwg.NodeID{1, 2, 3}))
	// Output:
	// h/m/1.2.3
	// h/m/1.2.3
}

// Two busy LWGs of nodes 1-3 on a carrier of five nodes: the default
// policy creates the carrier of their member set and moves both there.
func ExampleDefault_Decide() {
	all := switching.HWG{ID: "h/all#1", Base: "h/all", Members: []hwg.NodeID{1, 2, 3, 4, 5}, Stable: 1000}
	var lwgs []switching.LWG
	for _, id := range []string{"l/a", "l/b"} {
		lwgs = append(lwgs, switching.LWG{
			ID: lwg.ID(id), Members: []hwg.NodeID{1, 2, 3}, HWG: all.ID,
			Rate: 5, Observed: true, SinceSwitch: 1000, Decide: true,
		})
	}
	p := switching.NewDefault(switching.Config{})
	for _, a := range p.Decide(&switching.Snapshot{LWGs: lwgs, HWGs: []switching.HWG{all}}) {
		fmt.Println(a)
	}
	// Output:
	// create h/m/1.2.3 [1 2 3] (share)
	// switch l/a h/all#1→h/m/1.2.3 (share, gain 2744.0)
	// switch l/b h/all#1→h/m/1.2.3 (share, gain 2744.0)
}

// The offline evaluator runs the default policy and both baselines on a
// small workload: eight busy LWGs on two member sets, and a crash.
func ExampleCompare() {
	w := &switching.Workload{Name: "tiny", Nodes: 5, Rounds: 100, Events: []switching.Event{
		{Round: 40, Kind: switching.EvNodeDown, Node: 3},
		{Round: 60, Kind: switching.EvNodeUp, Node: 3},
	}}
	for i := range 4 {
		w.LWGs = append(w.LWGs,
			switching.LWGSpec{ID: lwg.ID(fmt.Sprintf("l/a%d", i)), Members: []hwg.NodeID{1, 2, 3}, Rate: 5},
			switching.LWGSpec{ID: lwg.ID(fmt.Sprintf("l/b%d", i)), Members: []hwg.NodeID{3, 4, 5}, Rate: 5})
	}
	c := switching.Compare(switching.NewDefault(switching.Config{}), w, switching.DefaultCost)
	for _, r := range []switching.Result{c.Policy, c.One, c.Per} {
		fmt.Printf("%s: cost %.0f, %d HWGs, %d switches, %d of %d LWGs exact\n",
			r.Policy, r.Cost.Total(), r.HWGs, r.Switches, r.Exact, r.Live)
	}
	fmt.Printf("lower bound: %.0f\n", c.Lower.Total())
	// Output:
	// default: cost 1764, 2 HWGs, 8 switches, 8 of 8 LWGs exact
	// one-hwg: cost 8830, 1 HWGs, 0 switches, 0 of 8 LWGs exact
	// per-lwg: cost 2296, 8 HWGs, 0 switches, 8 of 8 LWGs exact
	// lower bound: 734
}
