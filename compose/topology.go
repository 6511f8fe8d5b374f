package compose

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/lwgkit/lwgkit/lwg"
)

// Errors of the composition layer. They are wrapped with %w; test with
// errors.Is.
var (
	// ErrUnreachable: no path of the topology joins the sender's group to
	// the target group.
	ErrUnreachable = errors.New("compose: target group unreachable")
	// ErrUnknownGroup: the group is not in the topology.
	ErrUnknownGroup = errors.New("compose: group not in the topology")
	// ErrNoLocalGroup: this node is a member of no group of the topology,
	// so it has no local group to send through.
	ErrNoLocalGroup = errors.New("compose: no local group to send through")
	// ErrInvalidTopology: a link names a group twice or is repeated.
	ErrInvalidTopology = errors.New("compose: invalid topology")
)

// Link joins two groups of a topology: messages cross it through a router,
// a process that is a member of both.
type Link struct{ A, B lwg.ID }

// Topology is a declared, immutable graph of groups and links. Routes are
// computed from it: a message from source group S follows the
// breadth-first tree of the graph rooted at S (neighbours taken in sorted
// order), so every group computes the same next hops for a message, and a
// message reaches each of its destination groups exactly once. On a tree
// that is the tree's unique path.
//
// A Topology is safe for concurrent use (its graph is never modified
// after NewTopology; the breadth-first trees are computed when first
// needed and cached, so a topology of thousands of groups, such as one
// per shard of a store, costs memory only for the sources in use).
type Topology struct {
	groups []lwg.ID
	adj    map[lwg.ID][]lwg.ID
	tree   bool

	mu sync.Mutex
	// bfs[src] is the BFS tree rooted at src (at most maxTrees kept).
	bfs map[lwg.ID]*bfsTree
}

// bfsTree: parent[g] is g's parent in the BFS tree rooted at its source
// (the source maps to itself); groups unreachable are absent.
type bfsTree struct {
	parent map[lwg.ID]lwg.ID
	dist   map[lwg.ID]int
}

// maxTrees bounds the cached BFS trees (the cache is emptied when full).
const maxTrees = 256

func (t *Topology) treeOf(src lwg.ID) *bfsTree {
	t.mu.Lock()
	defer t.mu.Unlock()
	if b := t.bfs[src]; b != nil {
		return b
	}
	par := map[lwg.ID]lwg.ID{src: src}
	d := map[lwg.ID]int{src: 0}
	q := []lwg.ID{src}
	for len(q) > 0 {
		g := q[0]
		q = q[1:]
		for _, n := range t.adj[g] {
			if _, seen := par[n]; !seen {
				par[n], d[n] = g, d[g]+1
				q = append(q, n)
			}
		}
	}
	if len(t.bfs) >= maxTrees {
		clear(t.bfs)
	}
	b := &bfsTree{parent: par, dist: d}
	t.bfs[src] = b
	return b
}

// NewTopology builds a topology of groups joined by links. Groups named
// only in links are added.
func NewTopology(groups []lwg.ID, links []Link) (*Topology, error) {
	t := &Topology{adj: map[lwg.ID][]lwg.ID{}, bfs: map[lwg.ID]*bfsTree{}}
	add := func(g lwg.ID) {
		if _, ok := t.adj[g]; !ok {
			t.adj[g] = nil
			t.groups = append(t.groups, g)
		}
	}
	for _, g := range groups {
		if g == "" {
			return nil, fmt.Errorf("%w: empty group id", ErrInvalidTopology)
		}
		add(g)
	}
	for _, l := range links {
		if l.A == "" || l.B == "" || l.A == l.B {
			return nil, fmt.Errorf("%w: link %v", ErrInvalidTopology, l)
		}
		add(l.A)
		add(l.B)
		if slices.Contains(t.adj[l.A], l.B) {
			return nil, fmt.Errorf("%w: link %v repeated", ErrInvalidTopology, l)
		}
		t.adj[l.A] = append(t.adj[l.A], l.B)
		t.adj[l.B] = append(t.adj[l.B], l.A)
	}
	slices.Sort(t.groups)
	for _, g := range t.groups {
		slices.Sort(t.adj[g])
	}
	// A forest: every component has one link fewer than groups.
	comps := 0
	seen := map[lwg.ID]bool{}
	for _, g := range t.groups {
		if seen[g] {
			continue
		}
		comps++
		seen[g] = true
		q := []lwg.ID{g}
		for len(q) > 0 {
			h := q[0]
			q = q[1:]
			for _, n := range t.adj[h] {
				if !seen[n] {
					seen[n] = true
					q = append(q, n)
				}
			}
		}
	}
	t.tree = len(links) == len(t.groups)-comps
	return t, nil
}

// Groups returns the groups, sorted.
func (t *Topology) Groups() []lwg.ID { return slices.Clone(t.groups) }

// Has reports whether g is a group of the topology.
func (t *Topology) Has(g lwg.ID) bool { _, ok := t.adj[g]; return ok }

// Neighbors returns the groups linked to g, sorted.
func (t *Topology) Neighbors(g lwg.ID) []lwg.ID { return slices.Clone(t.adj[g]) }

// IsTree reports whether the graph has no cycle (a forest). The causal row
// of the semantics table needs it.
func (t *Topology) IsTree() bool { return t.tree }

// Distance returns the number of links between a and b.
func (t *Topology) Distance(a, b lwg.ID) (int, error) {
	if !t.Has(a) {
		return 0, fmt.Errorf("%w: %s", ErrUnknownGroup, a)
	}
	if !t.Has(b) {
		return 0, fmt.Errorf("%w: %s", ErrUnknownGroup, b)
	}
	d, ok := t.treeOf(a).dist[b]
	if !ok {
		return 0, fmt.Errorf("%w: %s from %s", ErrUnreachable, b, a)
	}
	return d, nil
}

// Route returns the groups a message from src to dst passes, src and dst
// included.
func (t *Topology) Route(src, dst lwg.ID) ([]lwg.ID, error) {
	if _, err := t.Distance(src, dst); err != nil {
		return nil, err
	}
	par := t.treeOf(src).parent
	path := []lwg.ID{dst}
	for g := dst; g != src; {
		g = par[g]
		path = append(path, g)
	}
	slices.Reverse(path)
	return path, nil
}

// next returns the groups a message from src for dests (nil: every group
// reachable from src) goes to after being ordered in at: at's children in
// src's tree whose subtree holds a destination. Sorted.
func (t *Topology) next(src, at lwg.ID, dests []lwg.ID) []lwg.ID {
	if !t.Has(src) {
		return nil
	}
	par := t.treeOf(src).parent
	if _, ok := par[at]; !ok {
		return nil
	}
	var out []lwg.ID
	hop := func(d lwg.ID) {
		if _, ok := par[d]; !ok || d == at {
			return
		}
		for g := d; g != src; g = par[g] {
			if par[g] == at {
				if !slices.Contains(out, g) {
					out = append(out, g)
				}
				return
			}
		}
	}
	if dests == nil {
		for _, n := range t.adj[at] {
			if par[n] == at && n != src {
				out = append(out, n)
			}
		}
		return out
	}
	for _, d := range dests {
		hop(d)
	}
	slices.Sort(out)
	return out
}
