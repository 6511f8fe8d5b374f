package kvexample

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/lwgkit/lwgkit/compose"
	"github.com/lwgkit/lwgkit/hwg"
)

// shared returns how many replica nodes shards a and b have in common.
func shared(p *Placement, a, b int) int {
	n := 0
	for _, x := range p.MemberSet(a) {
		if p.IsReplica(b, x) {
			n++
		}
	}
	return n
}

// pathFromHub returns the shards on the topology's route from shard 0 to
// shard s (both included), or nil if there is none.
func pathFromHub(t interface {
	Fatal(...any)
	Fatalf(string, ...any)
}, p *Placement, s int) []int {
	topo, err := p.ComposeTopology()
	if err != nil {
		t.Fatal(err)
	}
	route, err := topo.Route(ObjectID(0).LWG(), ObjectID(s).LWG())
	if err != nil {
		return nil
	}
	out := make([]int, len(route))
	for i, g := range route {
		obj, _ := compose.ObjectOf(g)
		sh, ok := ShardOfObject(obj)
		if !ok {
			t.Fatalf("route %v names %s", route, g)
		}
		out[i] = sh
	}
	return out
}

// With 5 nodes and 3 replicas, every link of the topology shares two
// replica nodes, so no single node's failure cuts a shard off: each
// link keeps a router. (A star around shard 0 links every shard sharing
// one node with it through that node alone.) Every shard is reached, no
// route is longer than 4 links, and the topology is a tree.
func TestComposeTopologySurvivesOneFailure(t *testing.T) {
	for _, shards := range []int{16, 64, 1024} {
		p, err := NewPlacement(shards, 3, []hwg.NodeID{1, 2, 3, 4, 5})
		if err != nil {
			t.Fatal(err)
		}
		topo, err := p.ComposeTopology()
		if err != nil {
			t.Fatal(err)
		}
		if !topo.IsTree() {
			t.Fatalf("shards=%d: not a tree", shards)
		}
		weakToHub := 0
		for s := 1; s < shards; s++ {
			if shared(p, 0, s) == 1 {
				weakToHub++
			}
			for _, n := range topo.Neighbors(ObjectID(s).LWG()) {
				obj, _ := compose.ObjectOf(n)
				o, _ := ShardOfObject(obj)
				if k := shared(p, s, o); k < 2 {
					t.Fatalf("shards=%d: link %d–%d shares %d replica node(s) (%v, %v)", shards, s, o, k, p.MemberSet(s), p.MemberSet(o))
				}
			}
			for _, o := range []int{0, shards / 2, shards - 1} {
				d, err := topo.Distance(ObjectID(o).LWG(), ObjectID(s).LWG())
				if err != nil || d > 4 {
					t.Fatalf("shards=%d: %d to %d: %d links, %v", shards, o, s, d, err)
				}
			}
		}
		// The case the topology must handle is present: shards sharing one
		// node with the hub (a star would hang them on that node).
		if weakToHub == 0 {
			t.Fatalf("shards=%d: no shard shares a single node with shard 0; the test shows nothing", shards)
		}
	}
}

// For any placement, the route from shard 0 to every shard has the fewest
// links sharing a single node that any chain of shards has, then the
// fewest links; every link shares a node; and exactly the shards
// connected to shard 0 by shared nodes are reached. The reference is a
// plain Dijkstra over every pair of shards.
func TestComposeTopologyMinimisesWeakLinks(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		nodes := rapid.IntRange(1, 9).Draw(rt, "nodes")
		ids := make([]hwg.NodeID, nodes)
		for i := range ids {
			ids[i] = hwg.NodeID(rapid.IntRange(1, 1000).Filter(func(v int) bool { return !slices.Contains(ids[:i], hwg.NodeID(v)) }).Draw(rt, fmt.Sprintf("node%d", i)))
		}
		p, err := NewPlacement(rapid.IntRange(1, 120).Draw(rt, "shards"), rapid.IntRange(1, nodes).Draw(rt, "replicas"), ids)
		if err != nil {
			rt.Fatal(err)
		}
		cost := func(a, b int) int64 {
			switch shared(p, a, b) {
			case 0:
				return -1
			case 1:
				return weakCost
			}
			return 1
		}
		// Reference distances from shard 0.
		dist := make([]int64, p.Shards)
		for i := range dist {
			dist[i] = -1
		}
		dist[0] = 0
		done := make([]bool, p.Shards)
		for {
			x := -1
			for i := range dist {
				if !done[i] && dist[i] >= 0 && (x < 0 || dist[i] < dist[x]) {
					x = i
				}
			}
			if x < 0 {
				break
			}
			done[x] = true
			for y := range dist {
				if c := cost(x, y); c > 0 && !done[y] && (dist[y] < 0 || dist[x]+c < dist[y]) {
					dist[y] = dist[x] + c
				}
			}
		}
		for s := 0; s < p.Shards; s++ {
			path := pathFromHub(rt, p, s)
			if dist[s] < 0 {
				if path != nil {
					rt.Fatalf("shard %d shares no node with shard 0's component, yet the route is %v", s, path)
				}
				continue
			}
			if path == nil {
				rt.Fatalf("shard %d is connected to shard 0 (cost %d) but has no route", s, dist[s])
			}
			var got int64
			for i := 1; i < len(path); i++ {
				c := cost(path[i-1], path[i])
				if c < 0 {
					rt.Fatalf("link %d–%d shares no node", path[i-1], path[i])
				}
				got += c
			}
			if got != dist[s] {
				rt.Fatalf("shard %d: route %v costs %d (weak links %d), the best chain %d (weak links %d)",
					s, path, got, got/weakCost, dist[s], dist[s]/weakCost)
			}
		}
	})
}
