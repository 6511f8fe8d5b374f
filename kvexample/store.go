package kvexample

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/prometheus/client_golang/prometheus"
)

// Replica is one shard's replicated object as the store uses it;
// *rsm.Object implements it. Propose returns once the command is applied
// here in the object's total order; Read is linearizable.
type Replica interface {
	Propose(ctx context.Context, cmd []byte) ([]byte, error)
	Read(ctx context.Context, q []byte) ([]byte, error)
}

// Forwarder runs an encoded command on another node's replica of a shard.
// It returns the encoded Result, or an error wrapping ErrNotHere (the node
// has no ready replica: try another), rsm.ErrNotApplied (not applied, safe
// to retry elsewhere), rsm.ErrUnknown (it may have been applied) or
// another error.
type Forwarder interface {
	Forward(ctx context.Context, to hwg.NodeID, shard int, cmd []byte, read bool) ([]byte, error)
}

// StoreConfig configures a Store.
type StoreConfig struct {
	// Placement is the cluster's shard placement; Self this node.
	Placement *Placement
	Self      hwg.NodeID
	// Local returns this node's replica of a shard once it is ready.
	Local func(shard int) (Replica, bool)
	// Compose, if set, runs a command on a shard with no ready replica
	// here through group composition (Node.composeCall): the shard's
	// replicas apply it once, by the request's origin id, and send the
	// result back. It fails with ErrNoRoute when nothing could be sent;
	// the store then uses Forward. A read gets half of its context's time
	// here, and Forward the rest if that ran out.
	Compose func(ctx context.Context, shard int, cmd []byte, read bool) ([]byte, error)
	// Forward reaches other nodes; nil means a shard with no local
	// replica (and no composition route) is unavailable.
	Forward Forwarder
	// Live, if set, says whether a node is believed up (in the cluster's
	// current view); forwarding tries live replicas first, so a request
	// does not wait out its timeout on a crashed or cut-off node.
	Live func(hwg.NodeID) bool
	// MaxValueBytes bounds a value. Default 1 MiB.
	MaxValueBytes int
}

// DefaultMaxValueBytes is the default value size limit.
const DefaultMaxValueBytes = 1 << 20

// Store is the key-value API over the cluster's shards: it routes each
// key to its shard and runs the shard's command on the local replica, or
// forwards it to a replica node. Commands over keys of several shards
// (MGET, DEL and EXISTS of many keys) run one command per shard: each is
// atomic, the whole is not.
//
// Store is safe for concurrent use.
type Store struct {
	cfg StoreConfig

	requests  *prometheus.CounterVec
	forwarded prometheus.Counter
	composed  prometheus.Counter
	nComposed atomic.Uint64
	nForward  atomic.Uint64
	latency   *prometheus.HistogramVec
	byOp      [opEnd]opMetrics // resolved label values, per op
}

type opMetrics struct {
	latency prometheus.Observer
	ok      prometheus.Counter
}

// NewStore returns a Store.
func NewStore(cfg StoreConfig) (*Store, error) {
	if cfg.Placement == nil || cfg.Local == nil || cfg.Self == 0 {
		return nil, fmt.Errorf("%w: Placement, Self and Local are required", ErrInvalidConfig)
	}
	if cfg.MaxValueBytes == 0 {
		cfg.MaxValueBytes = DefaultMaxValueBytes
	}
	if cfg.MaxValueBytes < 0 {
		return nil, fmt.Errorf("%w: MaxValueBytes %d", ErrInvalidConfig, cfg.MaxValueBytes)
	}
	node := prometheus.Labels{"node": fmt.Sprint(cfg.Self)}
	s := &Store{
		cfg: cfg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kv_shard_commands_total", Help: "Shard commands run for clients of this node, by op and outcome.",
			ConstLabels: node,
		}, []string{"op", "outcome"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kv_forwarded_total", Help: "Shard commands forwarded to another node over RESP.", ConstLabels: node,
		}),
		composed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kv_composed_total", Help: "Shard commands sent through group composition to a shard with no replica here.", ConstLabels: node,
		}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kv_shard_command_seconds", Help: "Latency of shard commands, by op.", ConstLabels: node,
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"op"}),
	}
	for op := OpGet; op < opEnd; op++ {
		s.byOp[op] = opMetrics{latency: s.latency.WithLabelValues(op.String()), ok: s.requests.WithLabelValues(op.String(), "ok")}
	}
	return s, nil
}

// Placement returns the store's placement.
func (s *Store) Placement() *Placement { return s.cfg.Placement }

// MaxValueBytes returns the value size limit.
func (s *Store) MaxValueBytes() int { return s.cfg.MaxValueBytes }

// Collectors returns the store's Prometheus metrics.
func (s *Store) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.requests, s.forwarded, s.composed, s.latency}
}

// Routed returns how many shard commands this store sent through group
// composition and how many it forwarded over RESP.
func (s *Store) Routed() (composed, forwarded uint64) { return s.nComposed.Load(), s.nForward.Load() }

// Get returns the value of key, and whether it exists.
func (s *Store) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	r, err := s.run(ctx, Command{Op: OpGet, Args: [][]byte{key}})
	if err != nil {
		return nil, false, err
	}
	return r.Bytes, r.Kind == KindBytes, nil
}

// Set sets key to value. With SetNX or SetXX it reports whether it did.
func (s *Store) Set(ctx context.Context, key, value []byte, flags uint8) (bool, error) {
	if len(value) > s.cfg.MaxValueBytes {
		return false, fmt.Errorf("%w: %d bytes, the limit is %d", ErrValueTooLarge, len(value), s.cfg.MaxValueBytes)
	}
	r, err := s.run(ctx, Command{Op: OpSet, Flags: flags, Args: [][]byte{key, value}})
	if err != nil {
		return false, err
	}
	return r.Kind == KindInt, nil
}

// IncrBy adds delta to the integer at key (0 if missing) and returns the
// new value. Errors: ErrNotInteger, ErrOverflow.
func (s *Store) IncrBy(ctx context.Context, key []byte, delta int64) (int64, error) {
	r, err := s.run(ctx, Command{Op: OpIncrBy, Delta: delta, Args: [][]byte{key}})
	if err != nil {
		return 0, err
	}
	return r.Int, nil
}

// Del deletes keys and returns how many existed.
func (s *Store) Del(ctx context.Context, keys ...[]byte) (int64, error) {
	return s.count(ctx, OpDel, keys)
}

// Exists returns how many of keys exist (a key listed twice counts twice).
func (s *Store) Exists(ctx context.Context, keys ...[]byte) (int64, error) {
	return s.count(ctx, OpExists, keys)
}

// MGet returns the values of keys, nil for missing ones.
func (s *Store) MGet(ctx context.Context, keys ...[]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	err := s.perShard(ctx, OpMGet, keys, func(idx []int, r Result) error {
		if r.Kind != KindArray || len(r.Array) != len(idx) {
			return fmt.Errorf("%w: mget result", ErrMalformed)
		}
		for i, j := range idx {
			out[j] = r.Array[i]
		}
		return nil
	})
	return out, err
}

func (s *Store) count(ctx context.Context, op Op, keys [][]byte) (int64, error) {
	var mu sync.Mutex
	var n int64
	err := s.perShard(ctx, op, keys, func(_ []int, r Result) error {
		mu.Lock()
		n += r.Int
		mu.Unlock()
		return nil
	})
	return n, err
}

// perShard runs op once per shard over that shard's keys, concurrently,
// and hands each result with the keys' indexes to merge.
func (s *Store) perShard(ctx context.Context, op Op, keys [][]byte, merge func(idx []int, r Result) error) error {
	if len(keys) == 0 {
		return fmt.Errorf("%w: no keys", ErrMalformed)
	}
	groups := map[int][]int{}
	var order []int
	for i, k := range keys {
		sh := s.cfg.Placement.ShardOf(k)
		if _, ok := groups[sh]; !ok {
			order = append(order, sh)
		}
		groups[sh] = append(groups[sh], i)
	}
	one := func(sh int) error {
		idx := groups[sh]
		args := make([][]byte, len(idx))
		for i, j := range idx {
			args[i] = keys[j]
		}
		r, err := s.runShard(ctx, sh, Command{Op: op, Args: args})
		if err != nil {
			return err
		}
		return merge(idx, r)
	}
	if len(order) == 1 {
		return one(order[0])
	}
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for i, sh := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = one(sh)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Store) run(ctx context.Context, c Command) (Result, error) {
	return s.runShard(ctx, s.cfg.Placement.ShardOf(c.Args[0]), c)
}

// runShard runs c on shard: locally if this node has a ready replica,
// else on the first replica node that takes it.
func (s *Store) runShard(ctx context.Context, shard int, c Command) (Result, error) {
	start := time.Now()
	raw, err := s.route(ctx, shard, c)
	var r Result
	if err == nil {
		r, err = DecodeResult(raw)
		if err == nil && r.Kind == KindError {
			err = r.Code.Err()
		}
	}
	if c.Op == 0 || c.Op >= opEnd {
		return r, err
	}
	m := &s.byOp[c.Op]
	m.latency.Observe(time.Since(start).Seconds())
	if err == nil {
		m.ok.Inc()
	} else {
		s.requests.WithLabelValues(c.Op.String(), outcome(err)).Inc()
	}
	return r, err
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNotInteger), errors.Is(err, ErrOverflow):
		return "refused"
	case errors.Is(err, rsm.ErrUnknown):
		return "unknown"
	}
	return "failed"
}

func (s *Store) route(ctx context.Context, shard int, c Command) ([]byte, error) {
	enc, err := EncodeCommand(c)
	if err != nil {
		return nil, err
	}
	read := c.Op.IsRead()
	if r, ok := s.cfg.Local(shard); ok {
		return runLocal(ctx, r, enc, read)
	}
	if s.cfg.Compose != nil {
		cctx := ctx
		fallback := read && s.cfg.Forward != nil
		if dl, ok := ctx.Deadline(); ok && fallback {
			// A group on the route may have lost its majority (two
			// failures among a hub's replicas, say) while the shard is
			// up: give composition half the time, and a read, which has
			// no effect, the rest over RESP. A write cannot go twice.
			var cancel context.CancelFunc
			cctx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/2))
			defer cancel()
		}
		raw, err := s.cfg.Compose(cctx, shard, enc, read)
		if !errors.Is(err, ErrNoRoute) {
			s.composed.Inc()
			s.nComposed.Add(1)
			if err == nil || cctx.Err() == nil || ctx.Err() != nil {
				return raw, err
			}
			// Composition's half ran out: forward the read.
		}
	}
	if s.cfg.Forward == nil {
		return nil, fmt.Errorf("%w: shard %d has no ready replica here", ErrUnavailable, shard)
	}
	var errs []error
	for _, n := range s.forwardOrder(shard) {
		s.forwarded.Inc()
		s.nForward.Add(1)
		raw, err := s.cfg.Forward.Forward(ctx, n, shard, enc, read)
		if err == nil {
			return raw, nil
		}
		// Try the next replica only when this one surely did nothing
		// (or the command is a read).
		if !read && !errors.Is(err, ErrNotHere) && !errors.Is(err, rsm.ErrNotApplied) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: shard %d: %w", rsm.ErrNotApplied, shard, ctx.Err())
		}
		errs = append(errs, fmt.Errorf("node %d: %w", n, err))
	}
	return nil, fmt.Errorf("%w: shard %d: %v", ErrUnavailable, shard, errors.Join(errs...))
}

// forwardOrder returns the other replicas of shard, live ones first, each
// group in preference order.
func (s *Store) forwardOrder(shard int) []hwg.NodeID {
	var live, rest []hwg.NodeID
	for _, n := range s.cfg.Placement.ReplicasOf(shard) {
		switch {
		case n == s.cfg.Self:
		case s.cfg.Live == nil || s.cfg.Live(n):
			live = append(live, n)
		default:
			rest = append(rest, n)
		}
	}
	return append(live, rest...)
}

// checkShard refuses c unless every key of it belongs to shard under p:
// a command that crossed nodes whose placements differ would otherwise
// land in the wrong shard.
func checkShard(p *Placement, c Command, shard int) error {
	if shard < 0 || shard >= p.Shards {
		return fmt.Errorf("%w: no shard %d", ErrMalformed, shard)
	}
	for _, k := range c.Args[:keyArgs(c)] {
		if p.ShardOf(k) != shard {
			return fmt.Errorf("%w: key of shard %d sent to shard %d (placements differ?)", ErrMalformed, p.ShardOf(k), shard)
		}
	}
	return nil
}

func runLocal(ctx context.Context, r Replica, enc []byte, read bool) ([]byte, error) {
	if read {
		return r.Read(ctx, enc)
	}
	return r.Propose(ctx, enc)
}

// ExecLocal runs an encoded command on this node's replica of shard: what
// a Forwarder's target does. It fails with ErrNotHere if there is none
// ready, and with ErrMalformed if cmd does not decode or read does not
// match its op.
func (s *Store) ExecLocal(ctx context.Context, shard int, cmd []byte, read bool) ([]byte, error) {
	c, err := DecodeCommand(cmd)
	if err != nil {
		return nil, err
	}
	if c.Op.IsRead() != read {
		return nil, fmt.Errorf("%w: %s sent as read=%v", ErrMalformed, c.Op, read)
	}
	if err := checkShard(s.cfg.Placement, c, shard); err != nil {
		return nil, err
	}
	r, ok := s.cfg.Local(shard)
	if !ok {
		return nil, fmt.Errorf("%w: shard %d on node %d", ErrNotHere, shard, s.cfg.Self)
	}
	return runLocal(ctx, r, cmd, read)
}

func keyArgs(c Command) int {
	if c.Op == OpSet {
		return 1
	}
	return len(c.Args)
}
