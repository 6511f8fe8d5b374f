package hwg

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// This file is a small deterministic network for focused unit tests. The
// randomized simulator with fault injection and checkers is package
// proptest.

const testGroup GroupID = "h/test"

// proc is incarnation 1 of node n.
func proc(n NodeID) Process { return Process{Node: n, Inc: 1} }

// cluster routes messages between Groups through one queue, FIFO unless
// rng is set. It fails the test on any Step error: a correct peer never
// sends input that is rejected.
type cluster struct {
	t      *testing.T
	cfg    Config // template; Self is set per process
	nodes  []NodeID
	groups map[NodeID]*Group
	down   map[NodeID]bool
	queue  []Message
	// drop, if set, discards a message before it is queued.
	drop func(Message) bool
	// rng, if set, delivers queued messages in random order.
	rng *rand.Rand

	events  map[NodeID][]Event
	sent    []Message // every message handed out by Ready, dropped or not
	readies []readyOf // every non-empty Ready, in order

	// reuse collects as the node runtime does, with TakeEvents and
	// ReadyReuse (whose slices the group refills later), copying them.
	reuse bool
	takes int
}

type readyOf struct {
	Node  NodeID
	Ready Ready
}

// newCluster creates a Group per member and bootstraps view 1 with all of
// them. cfg.Group defaults to testGroup.
func newCluster(t *testing.T, cfg Config, members ...Process) *cluster {
	t.Helper()
	if cfg.Group == "" {
		cfg.Group = testGroup
	}
	c := &cluster{t: t, cfg: cfg, groups: map[NodeID]*Group{}, down: map[NodeID]bool{}, events: map[NodeID][]Event{}}
	for _, p := range members {
		c.add(p)
	}
	for _, p := range members {
		if err := c.g(p.Node).Bootstrap(members); err != nil {
			t.Fatalf("bootstrap %v: %v", p, err)
		}
	}
	c.collect()
	return c
}

// procs returns incarnation 1 of nodes 1..n.
func procs(n int) []Process {
	out := make([]Process, n)
	for i := range out {
		out[i] = proc(NodeID(i + 1))
	}
	return out
}

// add creates an idle Group for p; call Join or Bootstrap on it.
func (c *cluster) add(p Process) *Group {
	c.t.Helper()
	cfg := c.cfg
	cfg.Self = p
	g, err := New(cfg)
	if err != nil {
		c.t.Fatalf("New(%v): %v", p, err)
	}
	if _, ok := c.groups[p.Node]; !ok {
		c.nodes = append(c.nodes, p.Node)
		slices.Sort(c.nodes)
	}
	c.groups[p.Node] = g
	return g
}

func (c *cluster) g(n NodeID) *Group { return c.groups[n] }

// crash stops node n: it gets no more messages or ticks, and what it has
// queued is lost.
func (c *cluster) crash(n NodeID) {
	c.down[n] = true
	c.queue = slices.DeleteFunc(c.queue, func(m Message) bool { return m.From.Node == n })
}

// collect drains Ready from every live group, in node order.
func (c *cluster) collect() {
	for _, n := range c.nodes {
		if c.down[n] {
			continue
		}
		rd := c.ready(c.groups[n])
		if rd.Empty() {
			continue
		}
		c.readies = append(c.readies, readyOf{n, rd})
		c.events[n] = append(c.events[n], rd.Events...)
		for _, m := range rd.Messages {
			c.sent = append(c.sent, m)
			if c.drop == nil || !c.drop(m) {
				c.queue = append(c.queue, m)
			}
		}
	}
}

// ready returns g's Ready, or with reuse the same outputs gathered through
// TakeEvents and ReadyReuse and copied out of the group's buffers.
func (c *cluster) ready(g *Group) Ready {
	if !c.reuse {
		return g.Ready()
	}
	// Both ways the runtime may take events: expanded, or as outputs whose
	// runs of deliveries it expands itself.
	var ev []Event
	if c.takes++; c.takes%2 == 0 {
		ev = slices.Clone(g.TakeEvents())
	} else {
		ev = expand(nil, g.takeOutputs())
	}
	rd := g.ReadyReuse()
	ev = append(ev, rd.Events...)
	msgs := slices.Clone(rd.Messages)
	if len(ev) == 0 {
		ev = nil
	}
	if len(msgs) == 0 {
		msgs = nil
	}
	return Ready{Messages: msgs, Events: ev}
}

// pump delivers messages until none is left.
func (c *cluster) pump() {
	c.t.Helper()
	c.collect()
	for i := 0; len(c.queue) > 0; i++ {
		if i > 100_000 {
			c.t.Fatalf("no quiescence after %d messages", i)
		}
		k := 0
		if c.rng != nil {
			k = c.rng.IntN(len(c.queue))
		}
		m := c.queue[k]
		c.queue = slices.Delete(c.queue, k, k+1)
		if g := c.groups[m.To.Node]; g != nil && !c.down[m.To.Node] {
			if err := g.Step(m); err != nil {
				c.t.Fatalf("%v: Step(%v %v→%v v%d): %v", m.To, m.Type, m.From, m.To, m.View, err)
			}
		}
		c.collect()
	}
}

// tick advances every live group n ticks, pumping after each.
func (c *cluster) tick(n int) {
	c.t.Helper()
	for range n {
		for _, id := range c.nodes {
			if !c.down[id] {
				c.groups[id].Tick()
			}
		}
		c.pump()
	}
}

// multicast sends payload from node n and fails the test on error.
func (c *cluster) multicast(n NodeID, payload string) {
	c.t.Helper()
	if err := c.g(n).Multicast([]byte(payload)); err != nil {
		c.t.Fatalf("multicast at %d: %v", n, err)
	}
}

// suspect makes every live node but p itself suspect p.
func (c *cluster) suspect(p Process) {
	for _, n := range c.nodes {
		if !c.down[n] && n != p.Node {
			c.g(n).Suspect(p)
		}
	}
}

// delivered returns the payloads node n delivered in view v (0: any view).
func (c *cluster) delivered(n NodeID, v ViewID) []string {
	var out []string
	for _, e := range c.events[n] {
		if e.Type == EventDeliver && (v == 0 || e.View.ID == v) {
			out = append(out, string(e.Payload))
		}
	}
	return out
}

// installed returns the views node n installed, in order.
func (c *cluster) installed(n NodeID) []View {
	var out []View
	for _, e := range c.events[n] {
		if e.Type == EventInstall {
			out = append(out, e.View)
		}
	}
	return out
}

// count returns how many events of type t node n emitted.
func (c *cluster) count(n NodeID, t EventType) int {
	k := 0
	for _, e := range c.events[n] {
		if e.Type == t {
			k++
		}
	}
	return k
}

// eventIndex returns the index of node n's first event matching f, or -1.
func (c *cluster) eventIndex(n NodeID, f func(Event) bool) int {
	return slices.IndexFunc(c.events[n], f)
}

// sentOf returns the messages of type t handed out so far.
func (c *cluster) sentOf(t MsgType) []Message {
	var out []Message
	for _, m := range c.sent {
		if m.Type == t {
			out = append(out, m)
		}
	}
	return out
}

func isInstall(id ViewID) func(Event) bool {
	return func(e Event) bool { return e.Type == EventInstall && e.View.ID == id }
}

func isType(t EventType) func(Event) bool {
	return func(e Event) bool { return e.Type == t }
}

func isDeliver(payload string) func(Event) bool {
	return func(e Event) bool { return e.Type == EventDeliver && string(e.Payload) == payload }
}
