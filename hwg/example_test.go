package hwg_test

import (
	"fmt"

	"github.com/lwgkit/lwgkit/hwg"
)

// Example shows the loop that drives Groups: feed each one's outgoing
// messages to the Group they are addressed to, and hand its events to the
// application. Here the "network" is a direct call.
func Example() {
	members := []hwg.Process{{Node: 1, Inc: 1}, {Node: 2, Inc: 1}, {Node: 3, Inc: 1}}
	groups := map[hwg.NodeID]*hwg.Group{}
	for _, p := range members {
		g, err := hwg.New(hwg.Config{Group: "h/example", Self: p})
		if err != nil {
			panic(err)
		}
		if err := g.Bootstrap(members); err != nil {
			panic(err)
		}
		groups[p.Node] = g
	}

	groups[2].Multicast([]byte("hello from 2"))
	groups[3].Multicast([]byte("hello from 3"))

	for busy := true; busy; {
		busy = false
		for _, p := range members { // a fixed order keeps the output stable
			rd := groups[p.Node].Ready()
			busy = busy || !rd.Empty()
			for _, m := range rd.Messages {
				if err := groups[m.To.Node].Step(m); err != nil {
					fmt.Println("rejected:", err) // a real node logs and drops
				}
			}
			for _, e := range rd.Events {
				if p.Node == 1 && e.Type == hwg.EventDeliver {
					fmt.Printf("deliver %s from %v\n", e.Payload, e.Msg.Sender)
				}
			}
		}
	}
	// Output:
	// deliver hello from 2 from 2.1
	// deliver hello from 3 from 3.1
}

// ExampleDetector shows a detector of node 1 watching node 2: it sends a
// heartbeat every HeartbeatTicks and suspects node 2 once it has been
// silent for more than SuspectTicks.
func ExampleDetector() {
	d := hwg.NewDetector(hwg.Process{Node: 1, Inc: 1}, hwg.DetectorConfig{HeartbeatTicks: 2, SuspectTicks: 4})
	d.Watch(2)
	d.Heard(hwg.Process{Node: 2, Inc: 1})
	for tick := 1; tick <= 6; tick++ {
		fmt.Println(tick, "heartbeat to", d.Tick(), "suspected", d.Suspected())
	}
	// Output:
	// 1 heartbeat to [] suspected []
	// 2 heartbeat to [2] suspected []
	// 3 heartbeat to [] suspected []
	// 4 heartbeat to [2] suspected []
	// 5 heartbeat to [] suspected [2.1]
	// 6 heartbeat to [2] suspected [2.1]
}
