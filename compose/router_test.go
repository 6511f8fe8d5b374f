package compose

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// bus is a tiny synchronous stand-in for the LWG layer: each group has a
// view and a total order; a multicast is delivered to every member of the
// sender's current view at once. It is enough to unit-test the Router's
// logic; the simulator (proptest.RunCompose) runs it over the real cores
// with faults.
type bus struct {
	t      *testing.T
	topo   *Topology
	views  map[lwg.ID]*lwg.View
	nodes  map[hwg.NodeID]*Router
	queue  []queued
	got    map[hwg.NodeID][]Delivery
	hold   map[hwg.NodeID]bool // outputs of these nodes are dropped (crashed)
	frozen map[hwg.NodeID]bool // outputs of these nodes wait in delayed
	delay  []queued
}

type queued struct {
	from hwg.Process
	s    Send
}

func p(n int) hwg.Process { return hwg.Process{Node: hwg.NodeID(n), Inc: 1} }

func newBus(t *testing.T, topo *Topology, members map[lwg.ID][]int) *bus {
	b := &bus{t: t, topo: topo, views: map[lwg.ID]*lwg.View{}, nodes: map[hwg.NodeID]*Router{}, got: map[hwg.NodeID][]Delivery{},
		hold: map[hwg.NodeID]bool{}, frozen: map[hwg.NodeID]bool{}}
	for _, g := range slices.Sorted(func(yield func(lwg.ID) bool) {
		for g := range members {
			if !yield(g) {
				return
			}
		}
	}) {
		for i, n := range members[g] {
			if b.nodes[hwg.NodeID(n)] == nil {
				r, err := NewRouter(Config{Self: p(n), Topology: topo, AckEvery: 4})
				if err != nil {
					t.Fatal(err)
				}
				b.nodes[hwg.NodeID(n)] = r
			}
			if i == 0 {
				b.views[g] = &lwg.View{ID: 1, Members: []hwg.Process{p(n)}}
				b.event(n, lwg.Event{Type: lwg.EventInstall, LWG: g, View: b.views[g].Clone(), Joined: []hwg.Process{p(n)}})
			} else {
				b.join(g, n)
			}
		}
	}
	b.run()
	return b
}

func (b *bus) event(n int, e lwg.Event) {
	r := b.nodes[hwg.NodeID(n)]
	r.LWGEvent(e)
	b.collect(n)
}

func (b *bus) collect(n int) {
	r := b.nodes[hwg.NodeID(n)]
	rd := r.Ready()
	for _, s := range rd.Sends {
		switch {
		case b.hold[hwg.NodeID(n)]:
		case b.frozen[hwg.NodeID(n)]:
			b.delay = append(b.delay, queued{r.self, s})
		default:
			b.queue = append(b.queue, queued{r.self, s})
		}
	}
	b.got[hwg.NodeID(n)] = append(b.got[hwg.NodeID(n)], rd.Deliveries...)
}

func (b *bus) install(g lwg.ID, members []hwg.Process, joined []hwg.Process) {
	v := b.views[g]
	v.ID++
	v.Members = members
	for _, m := range members {
		b.event(int(m.Node), lwg.Event{Type: lwg.EventInstall, LWG: g, View: v.Clone(), Joined: joined})
	}
}

func (b *bus) join(g lwg.ID, n int) {
	b.install(g, append(slices.Clone(b.views[g].Members), p(n)), []hwg.Process{p(n)})
}

// crash removes n from every view; with keepSent its multicasts already
// made are still delivered (as VS allows for a crashed sender).
func (b *bus) crash(n int, keepSent bool) {
	b.hold[hwg.NodeID(n)] = true
	if !keepSent {
		b.queue = slices.DeleteFunc(b.queue, func(q queued) bool { return q.from == p(n) })
	}
	for _, g := range b.topo.Groups() {
		v := b.views[g]
		if v != nil && v.Contains(p(n)) {
			b.install(g, slices.DeleteFunc(slices.Clone(v.Members), func(x hwg.Process) bool { return x == p(n) }), nil)
		}
	}
}

func (b *bus) run() {
	for steps := 0; len(b.queue) > 0; steps++ {
		if steps > 1_000_000 {
			b.t.Fatal("bus does not quiesce")
		}
		q := b.queue[0]
		b.queue = b.queue[1:]
		v := b.views[q.s.Group]
		if !v.Contains(q.from) && !b.hold[q.from.Node] {
			continue
		}
		for _, m := range v.Members {
			b.event(int(m.Node), lwg.Event{Type: lwg.EventDeliver, LWG: q.s.Group, View: lwg.View{ID: v.ID}, From: q.from, Payload: q.s.Payload})
		}
	}
}

func (b *bus) tick() {
	for _, n := range slices.Sorted(func(yield func(hwg.NodeID) bool) {
		for n := range b.nodes {
			if !yield(n) {
				return
			}
		}
	}) {
		if !b.hold[n] {
			b.nodes[n].Tick()
			b.collect(int(n))
		}
	}
	b.run()
}

func (b *bus) send(n int, dst lwg.ID, payload string) {
	b.t.Helper()
	var err error
	if dst == "*" {
		_, err = b.nodes[hwg.NodeID(n)].SendAll([]byte(payload))
	} else {
		_, err = b.nodes[hwg.NodeID(n)].SendTo(dst, []byte(payload))
	}
	if err != nil {
		b.t.Fatal(err)
	}
	b.collect(n)
}

// routed returns n's routed deliveries in g as payload strings.
func (b *bus) routed(n int, g lwg.ID) []string {
	var out []string
	for _, d := range b.got[hwg.NodeID(n)] {
		if d.Routed && d.Group == g {
			out = append(out, string(d.Payload))
		}
	}
	return out
}

func chain(t *testing.T) (*Topology, map[lwg.ID][]int) {
	topo, err := NewTopology(nil, []Link{{"l/a", "l/b"}, {"l/b", "l/c"}})
	if err != nil {
		t.Fatal(err)
	}
	return topo, map[lwg.ID][]int{"l/a": {1, 2, 3}, "l/b": {2, 3, 4, 5}, "l/c": {4, 5, 6}}
}

func want(n int, prefix string) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func TestRouteTwoHops(t *testing.T) {
	topo, ms := chain(t)
	b := newBus(t, topo, ms)
	for i := range 50 {
		b.send(1, "l/c", fmt.Sprintf("m%d", i))
	}
	b.run()
	b.tick()
	for _, n := range []int{4, 5, 6} {
		if got := b.routed(n, "l/c"); !slices.Equal(got, want(50, "m")) {
			t.Fatalf("node %d delivered %v", n, got)
		}
	}
	// Transit groups do not deliver to the application.
	if got := b.routed(2, "l/b"); len(got) != 0 {
		t.Fatalf("transit delivered %v", got)
	}
	// Acks emptied every link queue.
	for n, r := range b.nodes {
		for _, g := range b.topo.Groups() {
			if r.Pending(g) != 0 {
				t.Fatalf("node %d still owes %d copies of %s", n, r.Pending(g), g)
			}
		}
	}
}

func TestSendAllAndLocal(t *testing.T) {
	topo, ms := chain(t)
	b := newBus(t, topo, ms)
	b.send(6, "*", "x")
	b.send(6, "l/c", "y") // to its own group: ordered there, not routed on
	b.run()
	for g, ms := range map[lwg.ID][]int{"l/a": {1, 2, 3}, "l/b": {2, 3, 4, 5}, "l/c": {4, 5, 6}} {
		for _, n := range ms {
			w := []string{"x"}
			if g == "l/c" {
				w = []string{"x", "y"}
			}
			if got := b.routed(n, g); !slices.Equal(got, w) {
				t.Fatalf("node %d in %s delivered %v", n, g, got)
			}
		}
	}
}

// The router of a→b (node 2) crashes after a delivered the messages and
// before it forwarded any: its successor (node 3) forwards them all.
func TestRouterCrashBetweenDeliveryAndForwarding(t *testing.T) {
	topo, ms := chain(t)
	b := newBus(t, topo, ms)
	b.hold[2] = true // node 2's forwards are lost
	for i := range 20 {
		b.send(1, "l/c", fmt.Sprintf("m%d", i))
	}
	b.run()
	if got := b.routed(6, "l/c"); len(got) != 0 {
		t.Fatalf("delivered before the take-over: %v", got)
	}
	b.crash(2, false)
	b.run()
	b.tick()
	for _, n := range []int{4, 5, 6} {
		if got := b.routed(n, "l/c"); !slices.Equal(got, want(20, "m")) {
			t.Fatalf("node %d delivered %v", n, got)
		}
	}
}

// The old router's copies are delivered after its successor forwarded the
// same ones: the destination drops the duplicates.
func TestTakeOverDeduplicates(t *testing.T) {
	topo, ms := chain(t)
	b := newBus(t, topo, ms)
	b.frozen[4] = true // router b→c: its copies wait
	for i := range 10 {
		b.send(1, "l/c", fmt.Sprintf("m%d", i))
	}
	b.run()
	b.crash(4, true) // node 5 takes over b→c and forwards all ten
	b.run()
	b.queue = append(b.queue, b.delay...) // then the dead router's copies arrive
	b.delay = nil
	b.run()
	b.tick()
	for _, n := range []int{5, 6} {
		if got := b.routed(n, "l/c"); !slices.Equal(got, want(10, "m")) {
			t.Fatalf("node %d delivered %v", n, got)
		}
	}
	if d := b.nodes[6].Stats().Duplicates; d != 10 {
		t.Fatalf("duplicates dropped = %d, want 10", d)
	}
	if g := b.nodes[6].Stats().Gaps; g != 0 {
		t.Fatalf("gaps = %d", g)
	}
}

// A member that joins gets the routing state and can take over as router
// once every older candidate is gone.
func TestJoinerTakesOver(t *testing.T) {
	topo, ms := chain(t)
	b := newBus(t, topo, ms)
	b.hold[2], b.hold[3] = true, true // routers of a→b forward nothing
	for i := range 5 {
		b.send(1, "l/c", fmt.Sprintf("m%d", i))
	}
	b.run()
	b.hold[2], b.hold[3] = false, false
	b.frozen[2], b.frozen[3] = true, true
	// Node 7 joins a and b (b's state comes from a continuing member).
	r, _ := NewRouter(Config{Self: p(7), Topology: b.topo})
	b.nodes[7] = r
	b.join("l/b", 7)
	b.join("l/a", 7)
	b.run()
	if !r.HasState("l/a") || r.HasState("l/b") {
		// b's state comes from node 2, which is frozen.
		t.Fatalf("joiner's state: a=%v b=%v", r.HasState("l/a"), r.HasState("l/b"))
	}
	if r.Pending("l/a") != 5 {
		t.Fatalf("joiner's copy of a's queue holds %d", r.Pending("l/a"))
	}
	// Both old candidates crash: at each install the next member not
	// waiting owes the state, so node 4 sends it.
	b.crash(2, false)
	b.crash(3, false)
	b.run()
	if !r.HasState("l/b") {
		t.Fatal("joiner never got b's state")
	}
	b.tick()
	if got := b.routed(6, "l/c"); !slices.Equal(got, want(5, "m")) {
		t.Fatalf("node 6 delivered %v", got)
	}
}

func TestSendErrors(t *testing.T) {
	topo, err := NewTopology([]lwg.ID{"l/z"}, []Link{{"l/a", "l/b"}})
	if err != nil {
		t.Fatal(err)
	}
	b := newBus(t, topo, map[lwg.ID][]int{"l/a": {1}, "l/b": {1, 2}, "l/z": {3}})
	if _, err := b.nodes[1].SendTo("l/z", nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("unreachable: %v", err)
	}
	if _, err := b.nodes[1].SendTo("l/nope", nil); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("unknown: %v", err)
	}
	r, _ := NewRouter(Config{Self: p(9), Topology: topo})
	if _, err := r.SendTo("l/a", nil); !errors.Is(err, ErrNoLocalGroup) {
		t.Fatalf("no local group: %v", err)
	}
	if _, err := NewTopology(nil, []Link{{"l/a", "l/a"}}); !errors.Is(err, ErrInvalidTopology) {
		t.Fatalf("self link: %v", err)
	}
}

func TestTopologyRoutes(t *testing.T) {
	topo, err := NewTopology(nil, []Link{{"h", "a"}, {"h", "b"}, {"b", "c"}, {"x", "y"}})
	if err != nil {
		t.Fatal(err)
	}
	if !topo.IsTree() {
		t.Fatal("a forest is a tree")
	}
	path, err := topo.Route("a", "c")
	if err != nil || !slices.Equal(path, []lwg.ID{"a", "h", "b", "c"}) {
		t.Fatalf("route a→c = %v, %v", path, err)
	}
	if got := topo.next("a", "h", nil); !slices.Equal(got, []lwg.ID{"b"}) {
		t.Fatalf("broadcast from a at h goes to %v", got)
	}
	if got := topo.next("h", "h", []lwg.ID{"a", "c"}); !slices.Equal(got, []lwg.ID{"a", "b"}) {
		t.Fatalf("h to {a,c} goes to %v", got)
	}
	if got := topo.next("h", "a", []lwg.ID{"c"}); got != nil {
		t.Fatalf("a is off the route h→c, got %v", got)
	}
	cyc, _ := NewTopology(nil, []Link{{"a", "b"}, {"b", "c"}, {"c", "a"}})
	if cyc.IsTree() {
		t.Fatal("a triangle is not a tree")
	}
	// On a cycle, a broadcast still reaches each group once: the BFS tree.
	if got := cyc.next("a", "b", nil); got != nil {
		t.Fatalf("broadcast from a at b goes to %v", got)
	}
}

// exclude removes the nodes from g's view at once; each gets
// EventExcluded (a partition cut them off).
func (b *bus) exclude(g lwg.ID, ns ...int) {
	v := b.views[g]
	for _, n := range ns {
		b.event(n, lwg.Event{Type: lwg.EventExcluded, LWG: g, View: v.Clone()})
	}
	b.install(g, slices.DeleteFunc(slices.Clone(v.Members), func(x hwg.Process) bool {
		return slices.Contains(ns, int(x.Node))
	}), nil)
}

// Every holder of a's routing state is excluded at once, with copies
// owed to b. A member that comes back alone must not start afresh: it
// waits until every holder of the best kept state is back, and the group
// continues from that state, so the owed copies arrive.
func TestEveryHolderExcludedKeepsState(t *testing.T) {
	topo, ms := chain(t)
	b := newBus(t, topo, ms)
	b.hold[2], b.hold[3] = true, true // routers of a→b forward nothing
	for i := range 5 {
		b.send(1, "l/c", fmt.Sprintf("m%d", i))
	}
	b.run()
	b.hold[2], b.hold[3] = false, false
	b.exclude("l/a", 1, 2, 3)
	if at, cur, ok := b.nodes[3].Holding("l/a"); !ok || cur || at.View == 0 {
		t.Fatalf("node 3 keeps no retired state: %v %v %v", at, cur, ok)
	}
	// Node 3 comes back alone: it holds a state, but 1 and 2 held it too
	// and may come back with a later one.
	b.install("l/a", []hwg.Process{p(3)}, []hwg.Process{p(3)})
	b.run()
	if b.nodes[3].HasState("l/a") || b.nodes[3].Stats().Restarts != 0 {
		t.Fatal("a lone member without the current state started the group afresh")
	}
	b.join("l/a", 2)
	b.run()
	if b.nodes[2].HasState("l/a") || b.nodes[3].HasState("l/a") {
		t.Fatal("the round decided while holder 1 was away")
	}
	b.join("l/a", 1)
	b.run()
	for _, n := range []int{1, 2, 3} {
		if !b.nodes[hwg.NodeID(n)].HasState("l/a") {
			t.Fatalf("node %d has no state of a after every holder came back", n)
		}
	}
	if s := b.nodes[3].Stats(); s.Seeded != 1 || s.Blocked == 0 {
		t.Fatalf("node 3 seeded %d rounds, %d blocked", s.Seeded, s.Blocked)
	}
	b.tick()
	b.tick()
	if got := b.routed(6, "l/c"); !slices.Equal(got, want(5, "m")) {
		t.Fatalf("node 6 delivered %v", got)
	}
}

// A restarted holder (a new incarnation) counts as back: what only its
// old incarnation had is gone, and the group goes on from the best state
// kept by the others.
func TestRestartedHolderCountsAsBack(t *testing.T) {
	topo, ms := chain(t)
	b := newBus(t, topo, ms)
	b.exclude("l/a", 1, 2, 3)
	b.install("l/a", []hwg.Process{p(3)}, []hwg.Process{p(3)})
	b.run()
	r1, _ := NewRouter(Config{Self: hwg.Process{Node: 1, Inc: 2}, Topology: topo})
	b.nodes[1] = r1
	b.install("l/a", []hwg.Process{p(3), {Node: 1, Inc: 2}}, []hwg.Process{{Node: 1, Inc: 2}})
	b.run()
	if b.nodes[3].HasState("l/a") {
		t.Fatal("decided while holder 2 was away")
	}
	b.join("l/a", 2)
	b.run()
	if !b.nodes[3].HasState("l/a") || !r1.HasState("l/a") || !b.nodes[2].HasState("l/a") {
		t.Fatal("no state once every holder was back or restarted")
	}
}

// A member that took part in a claim round but never got the seed's
// state (it was excluded first) must not later continue the group from
// its own older kept state: the seed may hold a later one (the seed
// goes on, alone, and sends through the group). It waits for the seed.
func TestRoundWaitsForAnEarlierSeed(t *testing.T) {
	topo, ms := chain(t)
	b := newBus(t, topo, ms)
	b.exclude("l/a", 1, 2)
	b.exclude("l/a", 3) // 3 kept the latest state, alone
	both := []hwg.Process{p(2), p(3)}
	b.frozen[2] = true // 2's outputs wait: its claim is out, its state will not be
	b.install("l/a", both, both)
	b.queue = append(b.queue, b.delay...) // the claims go out
	b.delay = nil
	b.run()
	if b.nodes[2].Stats().Seeded != 1 || b.nodes[3].HasState("l/a") {
		t.Fatalf("round: 2 seeded %d, 3 has state %v", b.nodes[2].Stats().Seeded, b.nodes[3].HasState("l/a"))
	}
	b.delay = nil // 2's state never reaches 3
	b.frozen[2] = false
	b.exclude("l/a", 3)
	// 2 goes on alone: a message through a leaves a copy owed to b.
	b.send(2, "*", "late") // through a (first of its groups), to every group
	b.run()
	b.exclude("l/a", 2) // 2 keeps a later state than 3's
	b.install("l/a", []hwg.Process{p(3)}, []hwg.Process{p(3)})
	b.run()
	if b.nodes[3].HasState("l/a") {
		t.Fatal("3 went on from its own older state while the seed of its last round was away")
	}
	b.join("l/a", 2)
	b.run()
	if !b.nodes[2].HasState("l/a") || !b.nodes[3].HasState("l/a") {
		t.Fatal("no state once the earlier seed was back")
	}
	// 3 seeded (its buffer began first) from 2's later state: the copy 2
	// queued is in it.
	if n := b.nodes[3].Pending("l/a"); n != 1 {
		t.Fatalf("a's queue holds %d copies, want the 1 queued by the earlier seed", n)
	}
	b.tick()
	b.tick()
	if got := b.routed(6, "l/c"); !slices.Equal(got, []string{"late"}) {
		t.Fatalf("node 6 delivered %v", got)
	}
}
