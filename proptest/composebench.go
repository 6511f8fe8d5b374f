package proptest

import (
	"fmt"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// ComposeBenchOptions configures one run of the composition experiment in
// virtual time: the application nodes 1-16 each keep Window routed
// messages outstanding (a message is complete once every member of every
// group it is addressed to delivered it); a share AllShare of them is
// addressed to every group, the rest to the sender's own group. No
// faults.
type ComposeBenchOptions struct {
	Topology string  // "flat16" or "star4x4"
	AllShare float64 // 0.1, 0.5, 1
	Messages int     // messages to complete; default 400
	Window   int     // outstanding messages per sender; default 2
	Seed     uint64
}

// ComposeBenchResult is what one run measured. Virtual time is in the
// simulator's units: a network hop takes 1-4, a tick 10.
type ComposeBenchResult struct {
	Topology string
	AllShare float64
	Messages int // completed
	// Deliveries counts routed deliveries (message × receiving member).
	Deliveries int
	// MeanLatency is the mean, over deliveries, of send → delivery.
	MeanLatency float64
	// Throughput is completed messages per 1,000 units of virtual time
	// (closed loop: bounded by latency, the simulator charges no
	// processing time).
	Throughput float64
	// MaxLoad is the LWG deliveries (application messages, forwards,
	// acknowledgements) of the busiest node per completed message: the
	// work that bounds throughput when each delivery costs a node the
	// same. MaxLoadNode is that node.
	MaxLoad     float64
	MaxLoadNode int
	Elapsed     uint64 // virtual time of the measured phase
}

type composeBench struct {
	remaining map[string]int        // message → deliveries still due
	sender    map[string]hwg.NodeID // message → its sender
	open      map[hwg.NodeID]int    // sender → outstanding messages
	load      map[hwg.NodeID]int    // node → LWG deliveries
	early     map[string]int        // deliveries before the send returned
	done      int
}

func (b *composeBench) delivered(id string) {
	r, ok := b.remaining[id]
	if !ok {
		b.early[id]++
		return
	}
	if r <= 1 {
		delete(b.remaining, id)
		b.open[b.sender[id]]--
		b.done++
		return
	}
	b.remaining[id] = r - 1
}

// RunComposeBench runs the composition experiment once.
func RunComposeBench(o ComposeBenchOptions) (ComposeBenchResult, error) {
	if o.Messages <= 0 {
		o.Messages = 400
	}
	if o.Window <= 0 {
		o.Window = 2
	}
	c, err := newComposeSim(ComposeOptions{Topology: o.Topology, LWG: LWGOptions{Seed: o.Seed, Faults: FaultNone}})
	if err != nil {
		return ComposeBenchResult{}, err
	}
	s := c.s
	c.warmUp()
	home := map[hwg.NodeID]lwg.ID{}
	for g, ms := range c.members {
		for _, m := range ms {
			if m <= 16 { // application nodes are in one group each
				home[m] = g
			}
		}
	}
	for m := hwg.NodeID(1); m <= 16; m++ {
		if home[m] == "" {
			return ComposeBenchResult{}, fmt.Errorf("proptest: node %d in no group of %s", m, o.Topology)
		}
	}
	all := 0
	for _, g := range c.topo.Groups() {
		all += len(c.members[g])
	}
	b := &composeBench{remaining: map[string]int{}, sender: map[string]hwg.NodeID{}, open: map[hwg.NodeID]int{}, load: map[hwg.NodeID]int{}, early: map[string]int{}}
	c.bench = b
	c.stats = ComposeStats{}
	start := s.now
	sent := 0
	for b.done < o.Messages {
		for m := hwg.NodeID(1); m <= 16 && sent < o.Messages; m++ {
			for b.open[m] < o.Window && sent < o.Messages {
				dst, due := home[m], len(c.members[home[m]])
				if s.rng.Float64() < o.AllShare {
					dst, due = "", all
				}
				before := len(c.routes)
				if !c.send(s.node(m), dst, "b") || len(c.routes) == before {
					return ComposeBenchResult{}, fmt.Errorf("proptest: node %d could not send", m)
				}
				id := c.routes[before].Msg
				b.sender[id] = m
				b.open[m]++
				sent++
				b.remaining[id] = due + 1
				for range b.early[id] + 1 {
					b.delivered(id)
				}
				delete(b.early, id)
			}
		}
		if !s.Step() || s.now-start > 1<<30 {
			return ComposeBenchResult{}, fmt.Errorf("proptest: %s stopped with %d of %d messages complete", o.Topology, b.done, o.Messages)
		}
	}
	elapsed := s.now - start
	res := ComposeBenchResult{Topology: o.Topology, AllShare: o.AllShare, Messages: b.done, Deliveries: c.stats.Delivered, Elapsed: elapsed}
	if c.stats.Delivered > 0 {
		res.MeanLatency = float64(c.stats.Latency) / float64(c.stats.Delivered)
	}
	if elapsed > 0 {
		res.Throughput = float64(b.done) * 1000 / float64(elapsed)
	}
	for n, l := range b.load {
		if f := float64(l) / float64(b.done); f > res.MaxLoad || f == res.MaxLoad && int(n) < res.MaxLoadNode {
			res.MaxLoad, res.MaxLoadNode = f, int(n)
		}
	}
	return res, nil
}
