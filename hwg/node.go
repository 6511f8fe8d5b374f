package hwg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lwgkit/lwgkit/hwg/transport"
)

// NodeConfig configures a Node. Zero fields take the defaults shown.
type NodeConfig struct {
	// Self is this node and its incarnation, which must be new at every
	// start (see package storage).
	Self Process
	// Transport carries frames to other nodes. The Node uses it and the
	// caller closes it after Node.Close.
	Transport transport.Transport
	// TickInterval is the real time of one tick of every Group and of the
	// Detector. Default 50ms, which with the default DetectorConfig
	// suspects a silent node after 500ms and installs the view without it
	// in about a second. FastTiming gives about 200ms on loopback.
	TickInterval time.Duration
	// Detector configures the failure detector, in ticks.
	Detector DetectorConfig
	// Group is the template for every group's Config (Group and Self are
	// filled in per group; LazyAcks and LazyRetransmit are always set).
	Group Config
	// Logger receives the node's logs. Default: silent.
	Logger hclog.Logger
	// NoSendEvents drops EventSend (sent for tracing) instead of handing
	// it to the reader: a reader that ignores sends (such as lwg.Service)
	// saves a channel hand-off per multicast.
	NoSendEvents bool
	// loseFinal is a fault for tests only (set through export_test.go):
	// the messages a group makes in the step that ends this node's
	// membership are dropped, as a lost frame would be.
	loseFinal bool
}

// FastTiming returns c with timing for a fast local network: 10ms ticks and
// a node suspected after 100ms of silence.
func FastTiming(c NodeConfig) NodeConfig {
	c.TickInterval = 10 * time.Millisecond
	c.Detector = DetectorConfig{HeartbeatTicks: 2, SuspectTicks: 10}
	return c
}

// Node runs the groups of one node: one event-loop goroutine feeds every
// Group and the shared Detector with frames, ticks and requests, and
// carries out what they ask.
//
// All methods are safe for concurrent use. Blocking methods take a
// context; they return its error if it ends first, and the request they
// made stays in effect (a Join goes on; Leave undoes it).
//
// Events (views, deliveries, Block upcalls and the rest) arrive in order on
// Events. The loop never blocks on a slow reader: events wait in an
// unbounded queue, so a reader that stops reading makes memory grow.
type Node struct {
	cfg    NodeConfig
	log    hclog.Logger
	tr     transport.Transport
	reqs   chan func()
	mcast  chan multicastReq // bounded: backpressure for senders
	known  sync.Map          // GroupID → struct{}: groups with a Group on this node
	events chan Event
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	owned  []io.Closer // what Start opened, closed by Close

	direct        chan Direct
	directDropped atomic.Uint64

	// Owned by the loop goroutine.
	det    *Detector
	groups map[GroupID]*Group
	// stepped: groups given input since the last flush, which only they
	// can have made ready; allStepped: any may have (a tick, a request,
	// probes), and the flush looks at every group. Looking at every group
	// at every flush cost a node in 1,000 groups a tenth of its CPU while
	// it joined them.
	stepped      []steppedGroup
	spareStepped []steppedGroup
	allStepped   bool
	// left holds the groups this node left, until later leaves push them
	// out (see retain): they answer the members that missed the view
	// change removing it. leftFIFO holds every leave in order, some of
	// them since taken up again by a join or left again (stale);
	// leftBytes is what the kept groups hold (keptBytes).
	left      map[GroupID]leftGroup
	leftFIFO  []leftGroup
	leftSeq   uint64
	leftBytes int
	// installed: the last view installed by groups left here and no
	// longer kept, for their next membership (Config.Installed), up to
	// installedKeep of them, oldest first in installedFIFO.
	installed     map[GroupID]ViewID
	installedFIFO []GroupID
	// manual: groups whose ManualBlockOK differs from the template's
	// (SetManualBlockOK).
	manual   map[GroupID]bool
	ticks    uint64
	contacts map[GroupID][]NodeID // last view's other members, to rejoin through
	waiters  map[GroupID][]waiter
	queue    eventQueue // events not yet taken by the reader
	// backlog holds multicasts a busy group could not take yet (ErrBusy),
	// in order; while it is full the loop stops taking new ones, which
	// blocks senders: backpressure from the slowest member to the app.
	backlog     map[GroupID][]multicastReq
	backlogSize int
	maxPayload  int // the groups' MaxPendingBytes, checked at Multicast
	outbox      map[NodeID][]Message
	epoch       uint64 // bumped at every install or exclusion, sent in every frame
	peerEpoch   map[NodeID]uint64
	reprobe     map[NodeID]int
	watched     map[NodeID]int       // groups listing each node in counted (see rewatch)
	counted     map[GroupID][]NodeID // each group's contacts as counted in watched
	work        int                  // entries taken since the last flush (see drainEntries)
	dec         decodeBuffers        // what decoding keeps from one frame to the next
}

type multicastReq struct {
	group   GroupID
	payload []byte
	blockOK bool       // not a multicast: BlockOK, in order with the multicasts
	view    ViewID     // BlockOK: the view whose Block it answers; MulticastIn: the caller's view
	at      traceStamp // when queued, in hoptrace builds only (else empty)
}

// multicastQueue is how many multicasts may wait for the loop.
const multicastQueue = 8192

type waiter struct {
	until EventType // EventInstall (with self in the view) or EventLeft
	ch    chan error
}

// NewNode starts a node's event loop. Call Close to stop it.
func NewNode(cfg NodeConfig) (*Node, error) {
	if cfg.Self.Node == 0 || cfg.Self.Inc == 0 {
		return nil, fmt.Errorf("%w: Self must have a non-zero Node and Inc, got %v", ErrInvalidConfig, cfg.Self)
	}
	if cfg.Transport == nil {
		return nil, fmt.Errorf("%w: no Transport", ErrInvalidConfig)
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 50 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	// A node's groups run under load: see the two options.
	cfg.Group.LazyAcks, cfg.Group.LazyRetransmit = true, true
	n := &Node{
		cfg:       cfg,
		log:       cfg.Logger.Named("hwg").With("node", cfg.Self.String()),
		tr:        cfg.Transport,
		reqs:      make(chan func()),
		mcast:     make(chan multicastReq, multicastQueue),
		events:    make(chan Event, 1024),
		direct:    make(chan Direct, directQueue),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		det:       NewDetector(cfg.Self, cfg.Detector),
		groups:    map[GroupID]*Group{},
		left:      map[GroupID]leftGroup{},
		installed: map[GroupID]ViewID{},
		manual:    map[GroupID]bool{},
		contacts:  map[GroupID][]NodeID{},
		waiters:   map[GroupID][]waiter{},
		outbox:    map[NodeID][]Message{},
		backlog:   map[GroupID][]multicastReq{},
		peerEpoch: map[NodeID]uint64{},
		reprobe:   map[NodeID]int{},
		watched:   map[NodeID]int{},
		counted:   map[GroupID][]NodeID{},
	}
	gc := cfg.Group
	gc.Group, gc.Self = "check", cfg.Self
	d, err := gc.withDefaults()
	if err != nil {
		return nil, err
	}
	n.maxPayload = d.MaxPendingBytes
	go n.run()
	return n, nil
}

// Events returns the channel of every group's events, in order.
func (n *Node) Events() <-chan Event { return n.events }

// Self returns this node's process.
func (n *Node) Self() Process { return n.cfg.Self }

// MaxPayload returns the largest payload Multicast takes: the groups'
// Config.MaxPendingBytes.
func (n *Node) MaxPayload() int { return n.maxPayload }

// Bootstrap creates group with view 1 = members (which must include this
// node). Every initial member calls it with the same list.
func (n *Node) Bootstrap(ctx context.Context, group GroupID, members []Process) error {
	return n.do(ctx, func() error {
		g, err := n.newGroup(group, false)
		if err != nil {
			return err
		}
		if err := g.Bootstrap(members); err != nil {
			delete(n.groups, group)
			n.known.Delete(group)
			return err
		}
		return nil
	})
}

// Join asks the contacts to add this node to group and returns once a view
// that includes it is installed.
func (n *Node) Join(ctx context.Context, group GroupID, contacts []NodeID) error {
	done, err := n.JoinAsync(ctx, group, contacts)
	if err != nil {
		return err
	}
	return n.wait(ctx, done)
}

// JoinAsync asks to join like Join, but returns once the node has taken the
// request (with its error, such as ErrAlreadyMember); the channel then gets
// what Join would return. Requests from one goroutine reach the node in the
// order they are made, which two concurrent Joins and Leaves do not
// guarantee.
func (n *Node) JoinAsync(ctx context.Context, group GroupID, contacts []NodeID) (<-chan error, error) {
	ch := make(chan error, 1)
	err := n.do(ctx, func() error {
		g, err := n.newGroup(group, true)
		if err != nil {
			return err
		}
		// Counted toward the watched nodes at the install (rewatch), not
		// now: a contact that only relays the Join sends this node
		// nothing, and watched from here it would be suspected soon
		// after the install if the join took over SuspectTicks.
		n.contacts[group] = slices.Clone(contacts)
		n.waiters[group] = append(n.waiters[group], waiter{until: EventInstall, ch: ch})
		return g.Join(contacts)
	})
	if err != nil {
		return nil, err
	}
	return ch, nil
}

// Leave removes this node from group and returns once it has left.
func (n *Node) Leave(ctx context.Context, group GroupID) error {
	done, err := n.LeaveAsync(ctx, group)
	if err != nil {
		return err
	}
	return n.wait(ctx, done)
}

// LeaveAsync asks to leave like Leave, but returns once the node has taken
// the request; the channel then gets what Leave would return (nil once this
// node has left).
func (n *Node) LeaveAsync(ctx context.Context, group GroupID) (<-chan error, error) {
	ch := make(chan error, 1)
	err := n.do(ctx, func() error {
		g := n.groups[group]
		if g == nil {
			return fmt.Errorf("%w: %q", ErrUnknownGroup, group)
		}
		n.waiters[group] = append(n.waiters[group], waiter{until: EventLeft, ch: ch})
		return g.Leave()
	})
	if err != nil {
		return nil, err
	}
	return ch, nil
}

// Multicast sends payload to group in total order. It queues the message
// for the event loop and returns; it blocks (until ctx ends) only while the
// queue is full. Multicasts from one goroutine keep their order. It returns
// ErrTooLarge for a payload over the groups' MaxPendingBytes and
// ErrUnknownGroup for a group this node has not bootstrapped or joined; a
// message that reaches the group after it was left is dropped and logged.
// The payload must not be modified afterwards.
func (n *Node) Multicast(ctx context.Context, group GroupID, payload []byte) error {
	return n.enqueueMulticast(ctx, multicastReq{group: group, payload: payload})
}

// MulticastIn is Multicast for a caller that last saw view of group
// installed: the group drops the message (and logs it) if, when it gets
// there, that view belongs to an earlier membership of this node, which
// was excluded and admitted again meanwhile (see Group.MulticastIn). A
// reader behind on events multicasts what it made for the membership it
// knows; without the view, that went out in the new one.
func (n *Node) MulticastIn(ctx context.Context, group GroupID, view ViewID, payload []byte) error {
	return n.enqueueMulticast(ctx, multicastReq{group: group, payload: payload, view: view})
}

func (n *Node) enqueueMulticast(ctx context.Context, m multicastReq) error {
	group, payload := m.group, m.payload
	m.at = stamp()
	select {
	case <-n.done:
		return ErrNodeClosed
	default:
	}
	if _, ok := n.known.Load(group); !ok {
		return fmt.Errorf("%w: %q", ErrUnknownGroup, group)
	}
	if len(payload) > n.maxPayload {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(payload), n.maxPayload)
	}
	select {
	case n.mcast <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrNodeClosed
	}
}

// BlockOK answers the EventBlock of group raised in view (the event's
// View.ID; only with Config.ManualBlockOK). It takes the multicasts' path:
// every Multicast this goroutine made before it reaches the group first,
// so those are sent in the view being flushed, as the application meant.
// It returns once queued. The group ignores it if it has left that view
// by then (see Group.BlockOK).
func (n *Node) BlockOK(ctx context.Context, group GroupID, view ViewID) error {
	if _, ok := n.known.Load(group); !ok {
		return fmt.Errorf("%w: %q", ErrUnknownGroup, group)
	}
	select {
	case n.mcast <- multicastReq{group: group, blockOK: true, view: view}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrNodeClosed
	}
}

// SetManualBlockOK overrides NodeConfig.Group.ManualBlockOK for group: for
// its Group now, if the node has one (one waiting for its BlockOK is
// answered at once when manual is false), and for every Group of that id
// the node makes later. A reader that holds nothing at a Block of some
// group (such as lwg.Service's directory) sets it false there, so that a
// reader behind on events never gets this member excluded from that
// group's view changes for answering late.
func (n *Node) SetManualBlockOK(ctx context.Context, group GroupID, manual bool) error {
	return n.do(ctx, func() error {
		n.manual[group] = manual
		if g := n.groups[group]; g != nil {
			n.step(group, g)
			g.setManualBlockOK(manual)
		}
		return nil
	})
}

// Info returns a snapshot of group's state.
func (n *Node) Info(ctx context.Context, group GroupID) (Info, error) {
	// The result travels on a channel: if ctx ends first, do returns
	// while the loop may still run the closure later.
	res := make(chan Info, 1)
	err := n.do(ctx, func() error {
		g := n.groups[group]
		if g == nil {
			return fmt.Errorf("%w: %q", ErrUnknownGroup, group)
		}
		res <- g.Info()
		return nil
	})
	if err != nil {
		return Info{}, err
	}
	return <-res, nil
}

// Close stops the event loop. Waiting calls return ErrNodeClosed. It
// closes the transport and data file only if Start opened them.
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
		close(n.stop)
		<-n.done
		if hopTracing {
			traceClose(n)
		}
		for _, c := range n.owned {
			err = errors.Join(err, c.Close())
		}
	})
	<-n.done
	return err
}

// do runs f on the loop goroutine and returns its error.
func (n *Node) do(ctx context.Context, f func() error) error {
	ch := make(chan error, 1)
	select {
	case n.reqs <- func() { ch <- f() }:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrNodeClosed
	}
	return n.wait(ctx, ch)
}

func (n *Node) wait(ctx context.Context, ch <-chan error) error {
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrNodeClosed
	}
}
