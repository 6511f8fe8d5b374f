package kvexample

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/lwgkit/lwgkit/switching"
)

// Defaults of Placement.
const (
	DefaultShards   = 1024
	DefaultReplicas = 3
)

// Placement maps keys to shards and shards to the nodes that replicate
// them. It is a pure function of its fields, so every node configured with
// the same node set computes the same placement without talking to anyone.
//
// A key's shard is FNV-1a of the key modulo Shards; as in Redis Cluster, if
// the key holds a non-empty "{tag}", only the tag is hashed, so keys with one
// tag share a shard (and MGET/DEL over them touch one object).
//
// A shard's replicas are the Replicas nodes with the highest rendezvous
// score hash(shard, node) among Nodes: adding or removing a node moves only
// the shards it gains or loses. Replicas is capped at len(Nodes).
type Placement struct {
	Shards   int
	Replicas int
	Nodes    []hwg.NodeID
}

// NewPlacement checks and normalises a placement (zero Shards or Replicas
// take the defaults; Nodes are sorted and must be distinct and non-zero).
func NewPlacement(shards, replicas int, nodes []hwg.NodeID) (*Placement, error) {
	if shards == 0 {
		shards = DefaultShards
	}
	if replicas == 0 {
		replicas = DefaultReplicas
	}
	if shards < 1 || shards > 1<<20 {
		return nil, fmt.Errorf("%w: shards must be in [1, 2^20], got %d", ErrInvalidConfig, shards)
	}
	if replicas < 1 {
		return nil, fmt.Errorf("%w: replicas must be at least 1, got %d", ErrInvalidConfig, replicas)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: no nodes", ErrInvalidConfig)
	}
	ns := slices.Clone(nodes)
	slices.Sort(ns)
	for i, n := range ns {
		if n == 0 {
			return nil, fmt.Errorf("%w: node id 0", ErrInvalidConfig)
		}
		if i > 0 && ns[i-1] == n {
			return nil, fmt.Errorf("%w: node %d listed twice", ErrInvalidConfig, n)
		}
	}
	return &Placement{Shards: shards, Replicas: min(replicas, len(ns)), Nodes: ns}, nil
}

// HashTag returns the part of key that is hashed: the content of the first
// "{...}" if it is not empty, else the whole key.
func HashTag(key []byte) []byte {
	for i, c := range key {
		if c == '{' {
			for j := i + 1; j < len(key); j++ {
				if key[j] == '}' {
					if j > i+1 {
						return key[i+1 : j]
					}
					return key
				}
			}
			return key
		}
	}
	return key
}

// ShardOf returns the shard of key.
func (p *Placement) ShardOf(key []byte) int {
	h := fnv.New64a()
	h.Write(HashTag(key))
	return int(mix64(h.Sum64()) % uint64(p.Shards))
}

// mix64 is the SplitMix64 finaliser: it spreads every input bit over the
// output.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func score(shard int, n hwg.NodeID) uint64 {
	return mix64(mix64(uint64(shard)+0x9e3779b97f4a7c15) ^ uint64(n))
}

// Replicas returns the shard's replicas in preference order (highest score
// first); requests go to the first live one.
func (p *Placement) ReplicasOf(shard int) []hwg.NodeID {
	ns := slices.Clone(p.Nodes)
	slices.SortFunc(ns, func(a, b hwg.NodeID) int {
		sa, sb := score(shard, a), score(shard, b)
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return int(a) - int(b)
	})
	return ns[:p.Replicas]
}

// MemberSet returns the shard's replicas sorted by node id.
func (p *Placement) MemberSet(shard int) []hwg.NodeID {
	ns := p.ReplicasOf(shard)
	slices.Sort(ns)
	return ns
}

// IsReplica reports whether node replicates shard.
func (p *Placement) IsReplica(shard int, node hwg.NodeID) bool {
	return slices.Contains(p.ReplicasOf(shard), node)
}

// LocalShards returns the shards node replicates, in order.
func (p *Placement) LocalShards(node hwg.NodeID) []int {
	var out []int
	for s := 0; s < p.Shards; s++ {
		if p.IsReplica(s, node) {
			out = append(out, s)
		}
	}
	return out
}

// CarrierName returns the HWG base named by a member set, "h/m/1.2.3"
// (switching.MemberBase): LWGs with one member set share that carrier.
func CarrierName(members []hwg.NodeID) hwg.GroupID { return switching.MemberBase(members) }

// Carrier returns the HWG a shard's LWG is created on: the one named by
// its member set, so all shards with one member set share one HWG (with 5
// nodes and 3 replicas, at most 10 HWGs) and no carrier holds a node
// outside the LWG (no interference).
func (p *Placement) Carrier(shard int) hwg.GroupID { return CarrierName(p.MemberSet(shard)) }

// ObjectID returns the rsm object of a shard: "kv/<shard>".
func ObjectID(shard int) rsm.ObjectID { return rsm.ObjectID("kv/" + strconv.Itoa(shard)) }

// ShardOfObject parses an ObjectID made by ObjectID.
func ShardOfObject(id rsm.ObjectID) (int, bool) {
	s, ok := strings.CutPrefix(string(id), "kv/")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}

// LWGPlacement is the lwg.Placement of the store (switching.ByMembers): a
// shard's LWG is created on the carrier of its member set, where the
// switching policy would move it anyway; any other LWG on the carrier of
// all nodes.
func (p *Placement) LWGPlacement() lwg.Placement {
	return switching.ByMembers(func(l lwg.ID) []hwg.NodeID {
		if id, ok := strings.CutPrefix(string(l), "l/"); ok {
			if s, ok := ShardOfObject(rsm.ObjectID(id)); ok && s < p.Shards {
				return p.MemberSet(s)
			}
		}
		return p.Nodes
	})
}
