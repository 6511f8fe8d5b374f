package compose_test

import (
	"fmt"

	"github.com/lwgkit/lwgkit/compose"
	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// A topology of four groups: every node computes the same routes from it.
func ExampleNewTopology() {
	topo, err := compose.NewTopology(
		[]lwg.ID{"l/a", "l/b", "l/c", "l/d"},
		[]compose.Link{{A: "l/a", B: "l/b"}, {A: "l/b", B: "l/c"}, {A: "l/b", B: "l/d"}},
	)
	if err != nil {
		panic(err)
	}
	route, _ := topo.Route("l/a", "l/d")
	dist, _ := topo.Distance("l/a", "l/d")
	fmt.Println("route:", route)
	fmt.Println("distance:", dist)
	fmt.Println("neighbours of l/b:", topo.Neighbors("l/b"))
	fmt.Println("tree:", topo.IsTree())
	// Output:
	// route: [l/a l/b l/d]
	// distance: 2
	// neighbours of l/b: [l/a l/c l/d]
	// tree: true
}

// A Router is a pure state machine: here one node, the only member of
// l/a and l/b (so their router), sends to both and plays its own LWG layer.
func ExampleRouter() {
	topo, _ := compose.NewTopology(nil, []compose.Link{{A: "l/a", B: "l/b"}})
	self := hwg.Process{Node: 1, Inc: 1}
	r, err := compose.NewRouter(compose.Config{Self: self, Topology: topo})
	if err != nil {
		panic(err)
	}
	for _, g := range []lwg.ID{"l/a", "l/b"} {
		r.LWGEvent(lwg.Event{Type: lwg.EventInstall, LWG: g,
			View: lwg.View{ID: 1, Members: []hwg.Process{self}}, Joined: []hwg.Process{self}})
	}
	r.Ready()
	if _, err := r.SendAll([]byte("hello")); err != nil {
		panic(err)
	}
	// Deliver every multicast the Router asks for back to it, in order.
	for rd := r.Ready(); !rd.Empty(); rd = r.Ready() {
		for _, s := range rd.Sends {
			info, _ := compose.Describe(s.Payload)
			fmt.Printf("multicast %s in %s (via %q)\n", info.Kind, s.Group, info.Via)
			r.LWGEvent(lwg.Event{Type: lwg.EventDeliver, LWG: s.Group,
				View: lwg.View{ID: 1}, From: self, Payload: s.Payload})
		}
		for _, d := range rd.Deliveries {
			fmt.Printf("deliver %q in %s (from %s, routed %v)\n", d.Payload, d.Group, d.Src, d.Routed)
		}
	}
	// Output:
	// multicast route in l/a (via "")
	// multicast route in l/b (via "l/a")
	// deliver "hello" in l/a (from l/a, routed true)
	// deliver "hello" in l/b (from l/a, routed true)
}
