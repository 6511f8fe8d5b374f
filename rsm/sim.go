package rsm

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/go-hclog"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// SimHost is what a SimNode asks of a deterministic simulator. Every call
// comes from inside a SimNode method, on the simulator's goroutine.
type SimHost interface {
	// Multicast sends payload in object's LWG (through the node's
	// lwg.Core), in call order.
	Multicast(object ObjectID, payload []byte)
	// Send sends a transfer message to another process: the simulated
	// network may lose, delay, duplicate or reorder it.
	Send(to hwg.Process, payload []byte)
	// Observe reports an Event.
	Observe(e Event)
	// Result reports the outcome of a SimNode.Propose or Read.
	Result(object ObjectID, req uint64, val []byte, err error)
	// Applied reports that object applied a command (its Index-th) on
	// this node; Digest is for the simulator's checkers.
	Applied(object ObjectID, index uint64)
}

// SimNode runs one node's replicas synchronously, for deterministic
// simulation (package proptest): the simulator feeds it the node's LWG
// events, transfer messages and ticks, and it calls the SimHost. It keeps
// snapshots in memory. Not safe for concurrent use.
type SimNode struct {
	self    hwg.Process
	cfg     Config
	host    SimHost
	objects map[lwg.ID]*Object
	store   *memStore
}

// NewSimNode makes a SimNode for process self. Of cfg only SnapshotEvery,
// SnapshotInterval, TickInterval, ChunkSize, TransferWindow and
// MaxCommandBytes count.
func NewSimNode(self hwg.Process, cfg Config, host SimHost) (*SimNode, error) {
	cfg.Service, cfg.HWG = nil, nil
	store := newMemStore()
	cfg.snaps = store
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	c, err := cfg.withDefaults(false)
	if err != nil {
		return nil, err
	}
	return &SimNode{self: self, cfg: c, host: host, objects: map[lwg.ID]*Object{}, store: store}, nil
}

// Open makes the replica of object id on this node; the simulator then
// joins its LWG. A replica already open is returned as it is.
func (s *SimNode) Open(id ObjectID, f Factory) (*Object, error) {
	if o := s.objects[id.LWG()]; o != nil {
		return o, nil
	}
	sm, err := f(id)
	if err != nil {
		return nil, err
	}
	o := newObject(id, s.self, &s.cfg, simHost{s}, simHost{s}, sm)
	s.objects[id.LWG()] = o
	return o, nil
}

// Object returns the replica of id, if open.
func (s *SimNode) Object(id ObjectID) (*Object, bool) {
	o := s.objects[id.LWG()]
	return o, o != nil
}

// LWGEvent steps an event of the node's LWG layer.
func (s *SimNode) LWGEvent(e lwg.Event) {
	if o := s.objects[e.LWG]; o != nil {
		o.onEvent(&e)
	}
}

// Direct steps a transfer message from another process.
func (s *SimNode) Direct(from hwg.Process, payload []byte) error {
	d, err := decodeDirect(payload)
	if err != nil {
		return err
	}
	if d.kind == kindFetch {
		s.serveFetch(from, d)
		return nil
	}
	if o := s.objects[d.object.LWG()]; o != nil {
		o.onDirect(from, d)
	}
	return nil
}

func (s *SimNode) serveFetch(to hwg.Process, d direct) {
	if reply, wire, _, _, _ := answerFetch(s.store, d, s.cfg.ChunkSize, nil); reply.kind != 0 {
		s.host.Send(to, wire) // already encoded
	}
}

// Tick sends every object's queued requests and advances every
// replica's timers by one TickInterval.
func (s *SimNode) Tick() {
	// In id order: the simulation must not depend on map order.
	for _, l := range slices.Sorted(maps.Keys(s.objects)) {
		o := s.objects[l]
		for o.flush() {
		}
		o.onTick(1)
	}
}

// Propose queues cmd (as Object.Propose) and returns the request number
// that SimHost.Result will report. Flush or Tick sends it.
func (s *SimNode) Propose(id ObjectID, cmd []byte) (uint64, error) {
	return s.request(id, cmd, false)
}

// Read queues a linearizable read of q (as Object.Read).
func (s *SimNode) Read(id ObjectID, q []byte) (uint64, error) {
	return s.request(id, q, true)
}

// ForgotView returns the view in which id's replica, without the state,
// took a ForgetAbsent last (0: never), for the simulator's checkers: a
// state it seeds in that view may have given up absent holders' commands.
func (s *SimNode) ForgotView(id ObjectID) uint64 {
	if o := s.objects[id.LWG()]; o != nil {
		return o.forgotView
	}
	return 0
}

// ForgetAbsent multicasts FORGET for id's replica (as
// Object.ForgetAbsent).
func (s *SimNode) ForgetAbsent(id ObjectID) error {
	o := s.objects[id.LWG()]
	if o == nil {
		return fmt.Errorf("%w: %s not open", ErrClosed, id)
	}
	s.host.Multicast(id, encodeForget())
	return nil
}

func (s *SimNode) request(id ObjectID, b []byte, read bool) (uint64, error) {
	o := s.objects[id.LWG()]
	if o == nil {
		return 0, fmt.Errorf("%w: %s", ErrNotOpen, id)
	}
	if !o.ready {
		return 0, fmt.Errorf("%w: %s", ErrNotReady, id)
	}
	var seq uint64
	w := waiter{query: b, read: read, done: func(val []byte, err error) { s.host.Result(id, seq, val, err) }}
	out := outgoing{kind: kindPropose, cmd: b}
	if read {
		out = outgoing{kind: kindRead}
	}
	seq, _, _, err := o.enqueueCall(w, out)
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// Queued returns how many of id's requests wait to be sent.
func (s *SimNode) Queued(id ObjectID) int {
	if o := s.objects[id.LWG()]; o != nil {
		return len(o.outbox)
	}
	return 0
}

// Flush sends id's queued requests, as one message if there are several
// (as a runtime Node does with what callers queue while it sends).
func (s *SimNode) Flush(id ObjectID) {
	if o := s.objects[id.LWG()]; o != nil {
		for o.flush() {
		}
	}
}

// State returns id's state machine and applied index, for checkers. ok is
// false while the replica does not hold the state.
func (s *SimNode) State(id ObjectID) (sm StateMachine, index uint64, ok bool) {
	o := s.objects[id.LWG()]
	if o == nil || !o.ready {
		return nil, 0, false
	}
	return o.sm, o.index, true
}

// Holds reports whether this node's replica of id has a state (at index),
// ready or not: one excluded, or joining again, keeps the state it had.
func (s *SimNode) Holds(id ObjectID) (index uint64, ok bool) {
	o := s.objects[id.LWG()]
	if o == nil || !o.hasState {
		return 0, false
	}
	return o.index, true
}

// Crash forgets every replica, as a crashed process does.
func (s *SimNode) Crash() {
	s.objects = map[lwg.ID]*Object{}
	s.store = newMemStore()
	s.cfg.snaps = s.store
}

func (s *SimNode) send(to hwg.Process, d direct) { s.host.Send(to, encodeDirect(d)) }

// simHost adapts a SimNode to the replicas' host and submitter.
type simHost struct{ s *SimNode }

func (h simHost) multicast(o *Object, payload []byte) { h.s.host.Multicast(o.id, payload) }
func (h simHost) send(to hwg.Process, d direct)       { h.s.send(to, d) }
func (h simHost) store() snapStore                    { return h.s.store }
func (h simHost) logger() hclog.Logger                { return h.s.cfg.Logger }
func (h simHost) observe(e Event)                     { h.s.host.Observe(e) }
func (h simHost) watch(*Object, bool)                 {}
func (h simHost) applied(o *Object)                   { h.s.host.Applied(o.id, o.index) }
func (h simHost) ended(*Object, lwg.EventType)        {}
func (h simHost) kick(*Object)                        {}
func (h simHost) forget(_ context.Context, o *Object) error {
	h.s.host.Multicast(o.id, encodeForget())
	return nil
}
func (h simHost) submit(o *Object, payload []byte, _, _ int) error {
	h.s.host.Multicast(o.id, payload)
	return nil
}
