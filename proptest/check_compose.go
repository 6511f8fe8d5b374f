package proptest

import (
	"fmt"
	"slices"
)

// Names of the composition checkers.
const (
	nameComposeIntegrity = "compose-integrity"
	nameComposeNoDup     = "compose-no-dup"
	nameComposeFIFO      = "compose-fifo"
	nameComposeTotal     = "compose-total-order"
	nameComposeCausal    = "compose-causal"
	nameComposeReliable  = "compose-reliable"
)

// ComposeChecker checks one end-to-end property of a composition run.
type ComposeChecker struct {
	Name  string
	Check func(ComposeResult) []Violation
}

// ComposeCheckers returns the end-to-end checkers of routed delivery, one
// per row of the semantics table in docs/COMPOSITION.md:
//
//   - compose-integrity: a delivered message was sent, by its origin,
//     through the group named, and is delivered only in a group it was
//     addressed to;
//   - compose-no-dup: each process delivers a message at most once per
//     group;
//   - compose-fifo: each process delivers each origin's messages in the
//     order the origin sent them (FIFO per origin, every topology);
//   - compose-total-order: in each destination group, the union of the
//     members' delivery orders has no cycle (total order within the
//     destination; nothing is claimed across groups);
//   - compose-causal: a message is delivered after every message
//     addressed to the same group that causally precedes it (the causal
//     row: tree topology, single-group senders);
//   - compose-reliable: every message ordered in its source group is
//     delivered in every destination group (by at least one member; the
//     LWG checkers give virtual synchrony within the group). Liveness:
//     only for runs that converged after the heal.
func ComposeCheckers() []ComposeChecker {
	return []ComposeChecker{
		{nameComposeIntegrity, checkComposeIntegrity},
		{nameComposeNoDup, checkComposeNoDup},
		{nameComposeFIFO, checkComposeFIFO},
		{nameComposeTotal, checkComposeTotal},
		{nameComposeCausal, checkComposeCausal},
		{nameComposeReliable, checkComposeReliable},
	}
}

func composeV(name string, e RouteEvent, format string, args ...any) Violation {
	return Violation{Checker: name, T: e.T, Detail: fmt.Sprintf("n%d.i%d: ", e.Node, e.Inc) + fmt.Sprintf(format, args...)}
}

func addressed(dests []string, g string) bool { return dests == nil || slices.Contains(dests, g) }

func checkComposeIntegrity(r ComposeResult) []Violation {
	var out []Violation
	sends := map[string]RouteEvent{}
	for _, e := range r.Routes {
		switch e.Ev {
		case EvSend:
			if _, dup := sends[e.Msg]; dup {
				out = append(out, composeV(nameComposeIntegrity, e, "message %s sent twice", e.Msg))
			}
			sends[e.Msg] = e
		case EvDeliver:
			s, ok := sends[e.Msg]
			switch {
			case !ok:
				out = append(out, composeV(nameComposeIntegrity, e, "delivered %s in %s, never sent", e.Msg, e.Group))
			case !addressed(s.Dests, e.Group):
				out = append(out, composeV(nameComposeIntegrity, e, "delivered %s in %s, addressed to %v", e.Msg, e.Group, s.Dests))
			case s.Src != e.Src || s.Origin != e.Origin || s.Seq != e.Seq:
				out = append(out, composeV(nameComposeIntegrity, e, "delivered %s as from %s/%d via %s, sent by %s/%d via %s", e.Msg, e.Origin, e.Seq, e.Src, s.Origin, s.Seq, s.Src))
			}
		}
	}
	return out
}

type composeAt struct {
	node, inc uint64
	group     string
}

func checkComposeNoDup(r ComposeResult) []Violation {
	var out []Violation
	seen := map[composeAt]map[string]bool{}
	for _, e := range r.Routes {
		if e.Ev != EvDeliver {
			continue
		}
		k := composeAt{e.Node, e.Inc, e.Group}
		if seen[k] == nil {
			seen[k] = map[string]bool{}
		}
		if seen[k][e.Msg] {
			out = append(out, composeV(nameComposeNoDup, e, "delivered %s twice in %s", e.Msg, e.Group))
		}
		seen[k][e.Msg] = true
	}
	return out
}

func checkComposeFIFO(r ComposeResult) []Violation {
	var out []Violation
	type key struct {
		at     composeAt
		origin string
	}
	last := map[key]uint64{}
	for _, e := range r.Routes {
		if e.Ev != EvDeliver {
			continue
		}
		k := key{composeAt{e.Node, e.Inc, e.Group}, e.Origin}
		if l, ok := last[k]; ok && e.Seq <= l {
			out = append(out, composeV(nameComposeFIFO, e, "in %s delivered %s's message %d after its %d", e.Group, e.Origin, e.Seq, l))
		}
		last[k] = e.Seq
	}
	return out
}

// checkComposeTotal: per group, each process's delivery order is a chain;
// their union must be acyclic.
func checkComposeTotal(r ComposeResult) []Violation {
	var out []Violation
	type edge struct{ a, b string }
	edges := map[string]map[string][]string{} // group → msg → successors
	prev := map[composeAt]string{}
	var groups []string
	for _, e := range r.Routes {
		if e.Ev != EvDeliver {
			continue
		}
		if edges[e.Group] == nil {
			edges[e.Group] = map[string][]string{}
			groups = append(groups, e.Group)
		}
		k := composeAt{e.Node, e.Inc, e.Group}
		if p, ok := prev[k]; ok && !slices.Contains(edges[e.Group][p], e.Msg) {
			edges[e.Group][p] = append(edges[e.Group][p], e.Msg)
		}
		if _, ok := edges[e.Group][e.Msg]; !ok {
			edges[e.Group][e.Msg] = nil
		}
		prev[k] = e.Msg
	}
	for _, g := range groups {
		if cyc := findCycle(edges[g]); cyc != nil {
			out = append(out, Violation{Checker: nameComposeTotal, Detail: fmt.Sprintf("group %s: the members' delivery orders form a cycle %v", g, cyc)})
		}
	}
	return out
}

// findCycle returns a cycle of the directed graph, or nil (iterative DFS,
// nodes in sorted order for a deterministic answer).
func findCycle(g map[string][]string) []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	nodes := make([]string, 0, len(g))
	for n := range g {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	for _, root := range nodes {
		if color[root] != white {
			continue
		}
		type frame struct {
			n string
			i int
		}
		stack := []frame{{root, 0}}
		color[root] = grey
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if f.i < len(g[f.n]) {
				next := g[f.n][f.i]
				f.i++
				switch color[next] {
				case grey:
					var cyc []string
					for j := len(stack) - 1; j >= 0; j-- {
						cyc = append(cyc, stack[j].n)
						if stack[j].n == next {
							break
						}
					}
					slices.Reverse(cyc)
					return cyc
				case white:
					color[next] = grey
					stack = append(stack, frame{next, 0})
				}
				continue
			}
			color[f.n] = black
			stack = stack[:len(stack)-1]
		}
	}
	return nil
}

// checkComposeCausal tracks each process's causal past as a bitset of
// messages: a send takes its sender's past; a delivery adds the message
// and its past. A process delivering m in group g must not deliver later,
// in g, a message of m's past addressed to g.
func checkComposeCausal(r ComposeResult) []Violation {
	var out []Violation
	idx := map[string]int{}
	var dests [][]string
	var deps []bitset
	past := map[proc]bitset{}
	type late struct {
		at  composeAt
		msg int
	}
	overtaken := map[late]string{} // a message of the past not yet delivered → who overtook it
	delivered := map[composeAt]map[int]bool{}
	for _, e := range r.Routes {
		p := proc{e.Node, e.Inc}
		switch e.Ev {
		case EvSend:
			i := len(deps)
			idx[e.Msg] = i
			dests = append(dests, e.Dests)
			deps = append(deps, past[p].clone())
			past[p] = past[p].with(i)
		case EvDeliver:
			i, ok := idx[e.Msg]
			if !ok {
				continue
			}
			at := composeAt{e.Node, e.Inc, e.Group}
			if by, bad := overtaken[late{at, i}]; bad {
				out = append(out, composeV(nameComposeCausal, e, "in %s delivered %s after %s, which it causally precedes", e.Group, e.Msg, by))
			}
			if delivered[at] == nil {
				delivered[at] = map[int]bool{}
			}
			delivered[at][i] = true
			for _, j := range deps[i].members() {
				if !delivered[at][j] && addressed(dests[j], e.Group) {
					if _, ok := overtaken[late{at, j}]; !ok {
						overtaken[late{at, j}] = e.Msg
					}
				}
			}
			past[p] = past[p].union(deps[i]).with(i)
		}
	}
	return out
}

type bitset []uint64

func (b bitset) clone() bitset { return slices.Clone(b) }

func (b bitset) with(i int) bitset {
	for len(b) <= i/64 {
		b = append(b, 0)
	}
	b[i/64] |= 1 << (i % 64)
	return b
}

func (b bitset) union(o bitset) bitset {
	for len(b) < len(o) {
		b = append(b, 0)
	}
	for i, w := range o {
		b[i] |= w
	}
	return b
}

func (b bitset) members() []int {
	var out []int
	for i, w := range b {
		for j := range 64 {
			if w&(1<<j) != 0 {
				out = append(out, i*64+j)
			}
		}
	}
	return out
}

func checkComposeReliable(r ComposeResult) []Violation {
	var out []Violation
	sends := map[string]RouteEvent{}
	got := map[string]map[string]bool{}
	for _, e := range r.Routes {
		switch e.Ev {
		case EvSend:
			sends[e.Msg] = e
		case EvDeliver:
			if got[e.Msg] == nil {
				got[e.Msg] = map[string]bool{}
			}
			got[e.Msg][e.Group] = true
		}
	}
	var groups []string
	for g := range r.Members {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	var ids []string
	for id := range r.Ordered {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		s, ok := sends[id]
		if !ok {
			continue
		}
		for _, g := range groups {
			if addressed(s.Dests, g) && !got[id][g] {
				out = append(out, composeV(nameComposeReliable, s, "message %s was ordered in %s but never delivered in %s", id, s.Src, g))
				if len(out) >= 20 {
					return out
				}
			}
		}
	}
	return out
}
