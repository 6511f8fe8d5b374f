package kvexample

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/redis/go-redis/v9"
)

// RESPForwarder forwards shard commands to other nodes' RESP servers
// (LWGKV.SHARD), with one pooled client per node. A request whose
// connection could not be made is known not to have been sent (ErrNotHere:
// try another replica); one that failed after it was sent has an unknown
// outcome (rsm.ErrUnknown) if it was a write.
//
// Requests for a shard with no replica here go through group composition
// (Store's Compose); RESP forwarding is the fallback when that has no
// route: this node is in no shard group yet (its shards are opening), or
// the topology does not reach the shard. Forwarding rather than
// redirecting (Redis Cluster's MOVED) keeps every node a complete
// endpoint: plain clients such as redis-benchmark and redis-cli work
// against any node.
//
// Safe for concurrent use.
type RESPForwarder struct {
	addrs map[hwg.NodeID]string

	mu      sync.Mutex
	clients map[hwg.NodeID]*redis.Client
	closed  bool
}

// NewRESPForwarder returns a forwarder to the RESP addresses of nodes.
func NewRESPForwarder(addrs map[hwg.NodeID]string) *RESPForwarder {
	m := make(map[hwg.NodeID]string, len(addrs))
	for k, v := range addrs {
		m[k] = v
	}
	return &RESPForwarder{addrs: m, clients: map[hwg.NodeID]*redis.Client{}}
}

func (f *RESPForwarder) client(n hwg.NodeID) (*redis.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	if c, ok := f.clients[n]; ok {
		return c, nil
	}
	addr, ok := f.addrs[n]
	if !ok {
		return nil, fmt.Errorf("%w: no RESP address for node %d", ErrNotHere, n)
	}
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		Protocol:              2,
		DisableIdentity:       true,
		MaxRetries:            -1, // a write retried blindly could apply twice
		DialTimeout:           time.Second,
		ReadTimeout:           -1,
		WriteTimeout:          5 * time.Second,
		ContextTimeoutEnabled: true,
		PoolSize:              256,
	})
	f.clients[n] = c
	return c, nil
}

// Forward implements Forwarder.
func (f *RESPForwarder) Forward(ctx context.Context, to hwg.NodeID, shard int, cmd []byte, read bool) ([]byte, error) {
	c, err := f.client(to)
	if err != nil {
		return nil, err
	}
	rw := "w"
	if read {
		rw = "r"
	}
	raw, err := c.Do(ctx, ForwardCommand, strconv.Itoa(shard), rw, cmd).Text()
	if err == nil {
		return []byte(raw), nil
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return nil, errorFromRESP(rerr.Error())
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return nil, fmt.Errorf("%w: node %d: %w", ErrNotHere, to, err)
	}
	if read {
		return nil, fmt.Errorf("%w: node %d: %w", ErrNotHere, to, err)
	}
	return nil, fmt.Errorf("%w: forwarded to node %d: %w", rsm.ErrUnknown, to, err)
}

// Close closes every client.
func (f *RESPForwarder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	var errs []error
	for _, c := range f.clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
