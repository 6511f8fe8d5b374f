package kvexample_test

import (
	"fmt"

	"github.com/lwgkit/lwgkit/compose"
	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/kvexample"
)

// Every node computes the same placement from the node list: a key's
// shard, its replicas, the carrier they share and the shard's object.
// Keys with one "{tag}" land on one shard.
func ExamplePlacement() {
	p, err := kvexample.NewPlacement(64, 3, []hwg.NodeID{1, 2, 3, 4, 5})
	if err != nil {
		panic(err)
	}
	s := p.ShardOf([]byte("user:42"))
	fmt.Println("shard:", s)
	fmt.Println("replicas:", p.MemberSet(s))
	fmt.Println("carrier:", p.Carrier(s))
	fmt.Println("object:", kvexample.ObjectID(s), "in", kvexample.ObjectID(s).LWG())
	fmt.Println("shards of {user:42}.name and {user:42}.email:",
		p.ShardOf([]byte("{user:42}.name")), p.ShardOf([]byte("{user:42}.email")))
	// Output:
	// shard: 52
	// replicas: [1 2 3]
	// carrier: h/m/1.2.3
	// object: kv/52 in l/kv/52
	// shards of {user:42}.name and {user:42}.email: 52 52
}

// The shards' groups form one composition tree; a request for a shard
// with no replica here follows a route whose neighbours share nodes.
func ExamplePlacement_ComposeTopology() {
	p, _ := kvexample.NewPlacement(64, 3, []hwg.NodeID{1, 2, 3, 4, 5})
	topo, err := p.ComposeTopology()
	if err != nil {
		panic(err)
	}
	fmt.Println("groups:", len(topo.Groups()), "tree:", topo.IsTree())
	route, _ := topo.Route(kvexample.ObjectID(1).LWG(), kvexample.ObjectID(2).LWG())
	for _, g := range route {
		obj, _ := compose.ObjectOf(g)
		s, _ := kvexample.ShardOfObject(obj)
		fmt.Println(g, p.MemberSet(s))
	}
	// Output:
	// groups: 64 tree: true
	// l/kv/1 [1 2 3]
	// l/kv/0 [1 3 5]
	// l/kv/2 [1 2 5]
}

// A shard's state machine applies encoded commands and returns encoded
// results, the same at every replica.
func ExampleMachine() {
	m := kvexample.NewMachine()
	run := func(c kvexample.Command) {
		b, err := kvexample.EncodeCommand(c)
		if err != nil {
			panic(err)
		}
		out, err := m.Apply(b)
		if err != nil {
			panic(err)
		}
		r, _ := kvexample.DecodeResult(out)
		switch r.Kind {
		case kvexample.KindBytes:
			fmt.Printf("%s: %q\n", c.Op, r.Bytes)
		case kvexample.KindInt:
			fmt.Printf("%s: %d\n", c.Op, r.Int)
		case kvexample.KindNil:
			fmt.Printf("%s: nil\n", c.Op)
		case kvexample.KindError:
			fmt.Printf("%s: error %v\n", c.Op, r.Code.Err())
		}
	}
	run(kvexample.Command{Op: kvexample.OpSet, Args: [][]byte{[]byte("n"), []byte("41")}})
	run(kvexample.Command{Op: kvexample.OpIncrBy, Delta: 1, Args: [][]byte{[]byte("n")}})
	run(kvexample.Command{Op: kvexample.OpGet, Args: [][]byte{[]byte("n")}})
	run(kvexample.Command{Op: kvexample.OpSet, Flags: kvexample.SetNX, Args: [][]byte{[]byte("n"), []byte("x")}})
	run(kvexample.Command{Op: kvexample.OpSet, Args: [][]byte{[]byte("s"), []byte("abc")}})
	run(kvexample.Command{Op: kvexample.OpIncrBy, Delta: 1, Args: [][]byte{[]byte("s")}})
	fmt.Println("keys:", m.Len())
	// Output:
	// set: 1
	// incrby: 42
	// get: "42"
	// set: nil
	// set: 1
	// incrby: error value is not an integer or out of range
	// keys: 2
}
