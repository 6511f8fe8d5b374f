package switching

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// Rendezvous returns the r nodes of 1..nodes with the highest rendezvous
// (highest random weight) score for key, highest first: the placement of a
// sharded store, where every shard of a member set has the same r nodes.
func Rendezvous(key string, nodes, r int) []hwg.NodeID {
	type scored struct {
		n hwg.NodeID
		s uint64
	}
	var all []scored
	for i := 1; i <= nodes; i++ {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s|%d", key, i)
		all = append(all, scored{hwg.NodeID(i), mix64(h.Sum64())})
	}
	slices.SortFunc(all, func(a, b scored) int { return -cmp.Compare(a.s, b.s) })
	out := make([]hwg.NodeID, 0, r)
	for _, x := range all[:min(r, len(all))] {
		out = append(out, x.n)
	}
	return out
}

// mix64 is a finalizer that spreads FNV's low-entropy high bits.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// KVShardID names shard i of the KV layout.
func KVShardID(i int) lwg.ID { return lwg.ID(fmt.Sprintf("l/kv/%04d", i)) }

// KVLayout is the example KV store's layout: 5 nodes, R = 3, 1,024 shards
// placed by rendezvous hashing (10 member sets), each shard carrying 2
// messages per round ±50%; node 4 crashes at round 100 and restarts at
// round 130; 300 rounds.
func KVLayout(seed uint64) *Workload {
	w := &Workload{Name: "kv", Note: "5 nodes, R=3, 1,024 shards by rendezvous hashing; one crash and restart",
		Nodes: 5, Rounds: 300, Jitter: 0.5, Seed: seed}
	for i := range 1024 {
		id := KVShardID(i)
		w.LWGs = append(w.LWGs, LWGSpec{ID: id, Members: Rendezvous(string(id), 5, 3), Rate: 2})
	}
	w.Events = []Event{{Round: 100, Kind: EvNodeDown, Node: 4}, {Round: 130, Kind: EvNodeUp, Node: 4}}
	return w
}

// KVFromOneHWG is KVLayout with every shard starting on one HWG of all
// nodes, as a cluster that ran with lwg.Shared before switching: the
// policy must find the 10 member sets itself.
func KVFromOneHWG(seed uint64) *Workload {
	w := KVLayout(seed)
	w.Name, w.Note, w.Start = "kv-from-one", "KV layout, every shard starting on one HWG", "h/shared"
	return w
}

// randomSubset returns k distinct nodes of 1..n, in random order.
func randomSubset(rng *rand.Rand, n, k int) []hwg.NodeID {
	perm := rng.Perm(n)[:k]
	out := make([]hwg.NodeID, k)
	for i, p := range perm {
		out[i] = hwg.NodeID(p + 1)
	}
	return out
}

// crashes adds k crash-and-restart pairs of random nodes, down for `down`
// rounds, starting at random rounds of [from, to).
func crashes(w *Workload, rng *rand.Rand, k, from, to, down int) {
	for range k {
		n := hwg.NodeID(rng.IntN(w.Nodes) + 1)
		r := from + rng.IntN(to-from)
		w.Events = append(w.Events, Event{Round: r, Kind: EvNodeDown, Node: n}, Event{Round: r + down, Kind: EvNodeUp, Node: n})
	}
}

func sortEvents(w *Workload) {
	slices.SortStableFunc(w.Events, func(a, b Event) int { return cmp.Compare(a.Round, b.Round) })
}

// RandomOverlap has 16 nodes and 400 LWGs of 2 to 5 random members,
// created over the first 30 rounds: 15% hot (2 to 10 messages per round),
// the rest nearly idle (under 0.05); 40 membership changes (a member
// replaced by another node) and 4 crashes of 20 rounds; 300 rounds.
func RandomOverlap(seed uint64) *Workload {
	rng := rand.New(rand.NewPCG(seed, 1))
	w := &Workload{Name: "random", Note: "16 nodes, 400 LWGs of 2-5 random members, 15% hot, member changes, crashes",
		Mixed: true, Nodes: 16, Rounds: 300, Jitter: 0.3, Seed: seed}
	for i := range 400 {
		rate := rng.Float64() * 0.05
		if rng.Float64() < 0.15 {
			rate = 2 + 8*rng.Float64()
		}
		w.LWGs = append(w.LWGs, LWGSpec{ID: lwg.ID(fmt.Sprintf("l/r/%03d", i)), Members: randomSubset(rng, 16, 2+rng.IntN(4)), Rate: rate, Create: rng.IntN(30)})
	}
	for range 40 {
		l := &w.LWGs[rng.IntN(len(w.LWGs))]
		r := 30 + rng.IntN(240)
		out := l.Members[rng.IntN(len(l.Members))]
		in := hwg.NodeID(rng.IntN(16) + 1)
		if slices.Contains(l.Members, in) {
			continue
		}
		w.Events = append(w.Events, Event{Round: r, Kind: EvLeave, LWG: l.ID, Node: out}, Event{Round: r, Kind: EvJoin, LWG: l.ID, Node: in})
	}
	crashes(w, rng, 4, 40, 260, 20)
	sortEvents(w)
	return w
}

// Churn has 12 nodes, 10 of them hosting 200 LWGs of 3 (30% busy: 1 to 4
// messages per round; the rest under 0.1). Every 30 rounds a node is
// decommissioned: in each of its LWGs another node (one of the two spares
// first) takes its place, and it becomes a spare; a node crashes for 10
// rounds every 40 rounds; 300 rounds.
func Churn(seed uint64) *Workload {
	rng := rand.New(rand.NewPCG(seed, 2))
	w := &Workload{Name: "churn", Note: "12 nodes, 200 LWGs of 3, a node replaced every 30 rounds, crashes",
		Mixed: true, Nodes: 12, Rounds: 300, Jitter: 0.3, Seed: seed}
	members := map[lwg.ID][]hwg.NodeID{}
	for i := range 200 {
		rate := rng.Float64() * 0.1
		if rng.Float64() < 0.3 {
			rate = 1 + 3*rng.Float64()
		}
		id := lwg.ID(fmt.Sprintf("l/c/%03d", i))
		ms := randomSubset(rng, 10, 3)
		members[id] = slices.Clone(ms)
		w.LWGs = append(w.LWGs, LWGSpec{ID: id, Members: ms, Rate: rate})
	}
	active := []hwg.NodeID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	spares := []hwg.NodeID{11, 12}
	for r := 20; r < w.Rounds; r += 30 {
		i := rng.IntN(len(active))
		out := active[i]
		in := spares[0]
		active = append(slices.Delete(active, i, i+1), in)
		spares = append(spares[1:], out)
		for _, s := range w.LWGs {
			ms := members[s.ID]
			if !slices.Contains(ms, out) {
				continue
			}
			repl := in
			if slices.Contains(ms, repl) {
				for _, c := range rng.Perm(len(active)) {
					if !slices.Contains(ms, active[c]) {
						repl = active[c]
						break
					}
				}
			}
			ms = slices.DeleteFunc(ms, func(n hwg.NodeID) bool { return n == out })
			members[s.ID] = append(ms, repl)
			w.Events = append(w.Events, Event{Round: r, Kind: EvLeave, LWG: s.ID, Node: out}, Event{Round: r, Kind: EvJoin, LWG: s.ID, Node: repl})
		}
	}
	for r := 35; r+10 < w.Rounds; r += 40 {
		n := active[rng.IntN(len(active))]
		w.Events = append(w.Events, Event{Round: r, Kind: EvNodeDown, Node: n}, Event{Round: r + 10, Kind: EvNodeUp, Node: n})
	}
	sortEvents(w)
	return w
}

// HotSpot has 10 nodes and 300 LWGs of 3 random members, nearly idle (0.02
// messages per round) except a hot set of 30 (8 per round); at round 150
// the hot set goes cold and another 30 get hot; two crashes of 15 rounds;
// 300 rounds.
func HotSpot(seed uint64) *Workload {
	rng := rand.New(rand.NewPCG(seed, 3))
	w := &Workload{Name: "hotspot", Note: "10 nodes, 300 LWGs of 3, 30 hot; the hot set moves at round 150",
		Mixed: true, Nodes: 10, Rounds: 300, Jitter: 0.3, Seed: seed}
	for i := range 300 {
		w.LWGs = append(w.LWGs, LWGSpec{ID: lwg.ID(fmt.Sprintf("l/h/%03d", i)), Members: randomSubset(rng, 10, 3), Rate: 0.02})
	}
	perm := rng.Perm(300)
	for _, i := range perm[:30] {
		w.LWGs[i].Rate = 8
		w.Events = append(w.Events, Event{Round: 150, Kind: EvRate, LWG: w.LWGs[i].ID, Rate: 0.02})
	}
	for _, i := range perm[30:60] {
		w.Events = append(w.Events, Event{Round: 150, Kind: EvRate, LWG: w.LWGs[i].ID, Rate: 8})
	}
	w.Events = append(w.Events, Event{Round: 80, Kind: EvNodeDown, Node: 3}, Event{Round: 95, Kind: EvNodeUp, Node: 3},
		Event{Round: 220, Kind: EvNodeDown, Node: 7}, Event{Round: 235, Kind: EvNodeUp, Node: 7})
	sortEvents(w)
	return w
}

// Workloads returns the evaluator's workloads: the KV layout, random
// overlapping groups, churn and a hot-spot shift.
func Workloads(seed uint64) []*Workload {
	return []*Workload{KVLayout(seed), RandomOverlap(seed), Churn(seed), HotSpot(seed)}
}

// StressWorkloads are cases built for one baseline to be right, beyond the
// evaluator's workloads: every LWG spanning every node (one HWG is
// optimal), hot LWGs of unique member sets born at once with no churn
// (one HWG per LWG is optimal, and a policy that measures before it
// places pays a round of sharing and a switch for each), and cold LWGs of
// unique member sets (sharing one HWG is nearly optimal).
func StressWorkloads(seed uint64) []*Workload {
	rng := rand.New(rand.NewPCG(seed, 4))
	span := &Workload{Name: "all-span", Note: "6 nodes, 200 LWGs of all 6, one crash", Nodes: 6, Rounds: 300, Jitter: 0.3, Seed: seed}
	all := []hwg.NodeID{1, 2, 3, 4, 5, 6}
	for i := range 200 {
		span.LWGs = append(span.LWGs, LWGSpec{ID: lwg.ID(fmt.Sprintf("l/s/%03d", i)), Members: all, Rate: 1})
	}
	span.Events = []Event{{Round: 100, Kind: EvNodeDown, Node: 2}, {Round: 120, Kind: EvNodeUp, Node: 2}}
	hot := &Workload{Name: "unique-hot", Note: "16 nodes, 100 LWGs of 3 unique members, all hot from round 0, no churn", Nodes: 16, Rounds: 300, Jitter: 0.3, Seed: seed}
	cold := &Workload{Name: "unique-cold", Note: "16 nodes, 100 LWGs of 3 unique members, all nearly idle, no churn", Nodes: 16, Rounds: 300, Jitter: 0.3, Seed: seed}
	for i := range 100 {
		hot.LWGs = append(hot.LWGs, LWGSpec{ID: lwg.ID(fmt.Sprintf("l/u/%03d", i)), Members: randomSubset(rng, 16, 3), Rate: 5})
		cold.LWGs = append(cold.LWGs, LWGSpec{ID: lwg.ID(fmt.Sprintf("l/c/%03d", i)), Members: randomSubset(rng, 16, 3), Rate: 0.01})
	}
	return []*Workload{span, hot, cold}
}
