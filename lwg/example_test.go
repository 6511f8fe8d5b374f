package lwg_test

import (
	"context"
	"fmt"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/lwg"
)

// Example runs three nodes in one process over the in-memory transport:
// each hosts a Service, all three join one LWG, and one multicasts.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	net := transport.NewMemNetwork()
	members := []hwg.Process{{Node: 1, Inc: 1}, {Node: 2, Inc: 1}, {Node: 3, Inc: 1}}
	var svcs []*lwg.Service
	for _, p := range members {
		ep := net.Endpoint(transport.Peer{Node: uint64(p.Node), Inc: p.Inc})
		cfg := hwg.FastTiming(hwg.NodeConfig{Self: p, Transport: ep})
		cfg.Group.ManualBlockOK = true // the Service answers Block for its LWGs
		node, err := hwg.NewNode(cfg)
		if err != nil {
			panic(err)
		}
		defer ep.Close()
		defer node.Close()
		svc, err := lwg.NewService(lwg.ServiceConfig{Node: node, DirectoryMembers: members})
		if err != nil {
			panic(err)
		}
		defer svc.Close()
		svcs = append(svcs, svc)
	}
	for _, svc := range svcs {
		if err := svc.Join(ctx, "l/counter"); err != nil {
			panic(err)
		}
	}
	// Wait until node 3 sees all three members, then send.
	for e := range svcs[2].Events() {
		if e.Type == lwg.EventInstall && len(e.View.Members) == 3 {
			break
		}
	}
	if err := svcs[0].Multicast(ctx, "l/counter", []byte("+1")); err != nil {
		panic(err)
	}
	for e := range svcs[2].Events() {
		if e.Type == lwg.EventDeliver {
			fmt.Printf("node 3 delivered %q from node %d\n", e.Payload, e.From.Node)
			break
		}
	}
	// Output: node 3 delivered "+1" from node 1
}

// An application that keeps an object per LWG tags each LWG with its
// object: deliveries carry it, so the reader needs no lookup by ID.
func ExampleService_SetTag() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	net := transport.NewMemNetwork()
	self := hwg.Process{Node: 1, Inc: 1}
	ep := net.Endpoint(transport.Peer{Node: 1, Inc: 1})
	defer ep.Close()
	cfg := hwg.FastTiming(hwg.NodeConfig{Self: self, Transport: ep})
	cfg.Group.ManualBlockOK = true
	node, err := hwg.NewNode(cfg)
	if err != nil {
		panic(err)
	}
	defer node.Close()
	svc, err := lwg.NewService(lwg.ServiceConfig{Node: node, DirectoryMembers: []hwg.Process{self}})
	if err != nil {
		panic(err)
	}
	defer svc.Close()

	type counter struct{ name string }
	objects := map[lwg.ID]*counter{"l/a": {"a"}, "l/b": {"b"}}
	for id, o := range objects {
		if err := svc.SetTag(ctx, id, o); err != nil {
			panic(err)
		}
		// Join returns once this node is in the LWG; read its events
		// meanwhile (the Service hands them out in order).
		done := make(chan error, 1)
		go func() { done <- svc.Join(ctx, id) }()
		for joined := false; !joined; {
			select {
			case err := <-done:
				if err != nil {
					panic(err)
				}
				joined = true
			case <-svc.Events():
			}
		}
	}
	if err := svc.Multicast(ctx, "l/b", []byte("+1")); err != nil {
		panic(err)
	}
	for e := range svc.Events() {
		if e.Type == lwg.EventDeliver {
			fmt.Printf("%q for counter %s\n", e.Payload, e.Tag.(*counter).name)
			break
		}
	}
	// Output: "+1" for counter b
}
