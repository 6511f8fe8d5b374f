package proptest

import (
	"fmt"
	"slices"
	"strings"
)

func checkFIFO(tr []Event) []Violation {
	r := reporter{name: nameFIFO}
	// A stream is one sender's sends in one view of one group.
	type stream struct {
		sender proc
		group  string
		view   uint64
	}
	type position struct {
		s   stream
		idx int // the message is the idx-th send of the stream
	}
	pos := make(map[string]position)
	sends := make(map[stream][]string)
	for i := range tr {
		e := &tr[i]
		if e.Ev != EvSend {
			continue
		}
		if _, ok := pos[e.Msg]; ok { // duplicate send: no-duplication's business
			continue
		}
		s := stream{e.proc(), e.Group, e.View}
		pos[e.Msg] = position{s, len(sends[s])}
		sends[s] = append(sends[s], e.Msg)
	}
	type receiver struct {
		p proc
		s stream
	}
	next := make(map[receiver]int) // index of the next send the receiver may deliver
	seen := make(map[procGroupMsg]bool)
	for i := range tr {
		e := &tr[i]
		if e.Ev != EvDeliver {
			continue
		}
		ps, ok := pos[e.Msg]
		if !ok || ps.s.group != e.Group { // delivery-integrity's business
			continue
		}
		if k := (procGroupMsg{e.proc(), e.Group, e.Msg}); seen[k] {
			continue // no-duplication's business
		} else {
			seen[k] = true
		}
		rk := receiver{e.proc(), ps.s}
		want := next[rk]
		switch {
		case ps.idx > want:
			r.add(e.Group, e.T, "%s delivered %s, send #%d of %s in view %d, before send #%d (%s)",
				rk.p, e.Msg, ps.idx+1, ps.s.sender, ps.s.view, want+1, sends[ps.s][want])
		case ps.idx < want:
			r.add(e.Group, e.T, "%s delivered %s, send #%d of %s in view %d, after send #%d (%s)",
				rk.p, e.Msg, ps.idx+1, ps.s.sender, ps.s.view, want, sends[ps.s][want-1])
		}
		next[rk] = max(want, ps.idx+1)
	}
	return r.result()
}

// orderGraph is the union of all processes' delivery orders in one group:
// nodes are message ids, and an edge a→b means some process delivered a
// immediately before b.
type orderGraph struct {
	ids      map[string]int32
	names    []string
	from, to []int32
	at       []int // trace index of the delivery of b that made each edge
}

func (g *orderGraph) id(msg string) int32 {
	if n, ok := g.ids[msg]; ok {
		return n
	}
	n := int32(len(g.names))
	g.ids[msg] = n
	g.names = append(g.names, msg)
	return n
}

func checkTotalOrder(tr []Event) []Violation {
	r := reporter{name: nameTotalOrder}
	graphs := make(map[string]*orderGraph)
	last := make(map[procGroup]int32) // previous delivery of each process
	seen := make(map[procGroupMsg]bool)
	for i := range tr {
		e := &tr[i]
		if e.Ev != EvDeliver {
			continue
		}
		k := procGroupMsg{e.proc(), e.Group, e.Msg}
		if seen[k] { // redelivery would fake a cycle; no-duplication reports it
			continue
		}
		seen[k] = true
		g := graphs[e.Group]
		if g == nil {
			g = &orderGraph{ids: make(map[string]int32)}
			graphs[e.Group] = g
		}
		b := g.id(e.Msg)
		pg := procGroup{k.p, e.Group}
		if a, ok := last[pg]; ok {
			g.from = append(g.from, a)
			g.to = append(g.to, b)
			g.at = append(g.at, i)
		}
		last[pg] = b
	}
	for _, group := range sortedKeys(graphs) {
		if cycle := graphs[group].findCycle(); cycle != nil {
			if !r.room() {
				continue
			}
			t, detail := graphs[group].describeCycle(tr, cycle)
			r.put(group, t, detail)
		}
	}
	return r.result()
}

// csr builds compressed adjacency lists: the neighbours of node n are
// adj[start[n]:start[n+1]].
func csr(n int, src, dst []int32) (start, adj []int32) {
	start = make([]int32, n+1)
	for _, s := range src {
		start[s+1]++
	}
	for i := range n {
		start[i+1] += start[i]
	}
	adj = make([]int32, len(src))
	fill := slices.Clone(start[:n])
	for i, s := range src {
		adj[fill[s]] = dst[i]
		fill[s]++
	}
	return start, adj
}

// findCycle returns the nodes of one cycle in edge order, or nil if the
// graph is acyclic. Kahn's algorithm strips every node not on or downstream
// of a cycle; each remaining node keeps a remaining predecessor, so walking
// predecessors from any of them must revisit a node.
func (g *orderGraph) findCycle() []int32 {
	n := len(g.names)
	outStart, out := csr(n, g.from, g.to)
	indeg := make([]int32, n)
	for _, b := range g.to {
		indeg[b]++
	}
	queue := make([]int32, 0, n)
	for v := range int32(n) {
		if indeg[v] == 0 {
			queue = append(queue, v)
		}
	}
	for i := 0; i < len(queue); i++ {
		v := queue[i]
		for _, w := range out[outStart[v]:outStart[v+1]] {
			if indeg[w]--; indeg[w] == 0 {
				queue = append(queue, w)
			}
		}
	}
	if len(queue) == n {
		return nil
	}
	inStart, in := csr(n, g.to, g.from)
	onPath := make(map[int32]int)
	var path []int32
	v := slices.IndexFunc(indeg, func(d int32) bool { return d > 0 })
	for cur := int32(v); ; {
		onPath[cur] = len(path)
		path = append(path, cur)
		var pred int32 = -1
		for _, u := range in[inStart[cur]:inStart[cur+1]] {
			if indeg[u] > 0 {
				pred = u
				break
			}
		}
		if at, ok := onPath[pred]; ok {
			cycle := path[at:]
			slices.Reverse(cycle) // path follows edges backwards
			return cycle
		}
		cur = pred
	}
}

// describeCycle names the messages of a cycle and, for its first edges, a
// process that delivered them in that order.
func (g *orderGraph) describeCycle(tr []Event, cycle []int32) (uint64, string) {
	const show = 6
	type edge struct{ a, b int32 }
	want := make(map[edge]bool)
	for i := range min(len(cycle), show) {
		want[edge{cycle[i], cycle[(i+1)%len(cycle)]}] = true
	}
	witness := make(map[edge]int)
	for i := range g.from {
		e := edge{g.from[i], g.to[i]}
		if _, ok := witness[e]; !ok && want[e] {
			witness[e] = g.at[i]
		}
	}
	names := make([]string, 0, min(len(cycle), show)+1)
	var t uint64
	var why []string
	for i := range min(len(cycle), show) {
		e := edge{cycle[i], cycle[(i+1)%len(cycle)]}
		names = append(names, g.names[e.a])
		d := &tr[witness[e]]
		t = max(t, d.T)
		why = append(why, fmt.Sprintf("%s delivered %s before %s (t=%d)", d.proc(), g.names[e.a], g.names[e.b], d.T))
	}
	chain := strings.Join(names, " -> ")
	if len(cycle) <= show {
		chain += " -> " + g.names[cycle[0]]
	} else {
		chain += fmt.Sprintf(" -> ... (%d more)", len(cycle)-show)
	}
	return t, fmt.Sprintf("delivery orders form a cycle of %d messages: %s; %s",
		len(cycle), chain, strings.Join(why, "; "))
}
