package rsm_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/lwgkit/lwgkit/rsm/rsmtest"
)

// One node over the in-memory transport opens a replicated counter,
// proposes to it and reads it back linearizably.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	self := hwg.Process{Node: 1, Inc: 1}
	ep := transport.NewMemNetwork().Endpoint(transport.Peer{Node: 1, Inc: 1})
	defer ep.Close()
	nc := hwg.FastTiming(hwg.NodeConfig{Self: self, Transport: ep})
	nc.Group.ManualBlockOK = true // the LWG service answers carrier flushes
	hn, _ := hwg.NewNode(nc)
	defer hn.Close()
	svc, _ := lwg.NewService(lwg.ServiceConfig{Node: hn, DirectoryMembers: []hwg.Process{self}})
	defer svc.Close()
	n, err := rsm.New(rsm.Config{Service: svc, HWG: hn})
	if err != nil {
		panic(err)
	}
	defer n.Close()

	obj, err := n.Open(ctx, "counter", rsmtest.NewCounter)
	if err != nil {
		panic(err)
	}
	for _, v := range []uint64{2, 3} {
		if _, err := obj.Propose(ctx, rsmtest.Add(v)); err != nil {
			panic(err)
		}
	}
	total, err := obj.Read(ctx, []byte("total"))
	if err != nil {
		panic(err)
	}
	fmt.Println("total:", binary.BigEndian.Uint64(total), "applied:", obj.Applied())
	// Output: total: 5 applied: 2
}

// ProposeAsync keeps many proposals in flight from one goroutine; each
// outcome comes to its callback, in the object's order for one node's
// proposals.
func ExampleObject_ProposeAsync() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "rsm-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	n, err := rsm.Start(ctx, rsm.StartConfig{Node: 1, Cluster: "example", DataDir: dir, Listen: "127.0.0.1:0", Bootstrap: true})
	if err != nil {
		panic(err)
	}
	defer n.Close()
	obj, err := n.Open(ctx, "counter", rsmtest.NewCounter)
	if err != nil {
		panic(err)
	}
	var wg sync.WaitGroup
	totals := make([]uint64, 5)
	for i := range totals {
		wg.Add(1)
		err := obj.ProposeAsync(rsmtest.Add(1), func(res []byte, err error) {
			defer wg.Done() // must not block: it runs on the node's goroutine
			if err == nil {
				totals[i] = binary.BigEndian.Uint64(res)
			}
		})
		if err != nil {
			wg.Done()
		}
	}
	wg.Wait()
	fmt.Println("totals:", totals)
	// Output: totals: [1 2 3 4 5]
}
