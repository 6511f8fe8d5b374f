package lwg

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lwgkit/lwgkit/hwg"
)

// ServiceConfig configures a Service.
type ServiceConfig struct {
	// Node runs this node's HWGs. Its groups must use
	// hwg.Config.ManualBlockOK: the Service answers a carrier's Block once
	// every LWG on it has answered Hold.up. The Service reads Node.Events;
	// nothing else may.
	Node *hwg.Node
	// Core configures the protocol core; Self is taken from Node.
	Core Config
	// DirectoryMembers, on the cluster's first start, are the initial
	// members of the directory HWG (every one of them passes the same
	// list). Otherwise Contacts are nodes to join the directory through.
	DirectoryMembers []hwg.Process
	Contacts         []hwg.NodeID
	// TickInterval is the length of a Core tick. Default 50ms.
	TickInterval time.Duration
	// Logger receives the Service's logs. Default: silent.
	Logger hclog.Logger
}

// ErrClosed is returned by calls on a closed Service.
var ErrClosed = errors.New("lwg: service closed")

// Service runs the LWG layer of one node: one goroutine feeds a Core with
// the node's HWG events, ticks and the application's requests, and carries
// out what it asks through the hwg.Node.
//
// All methods are safe for concurrent use. Blocking methods take a context;
// if it ends first they return its error and the request stays in effect
// (a Join goes on; call Leave to undo it).
//
// Events (views, deliveries, Block upcalls) of every local LWG arrive in
// order on Events. The Service never blocks on a slow reader: events wait
// in an unbounded queue.
type Service struct {
	cfg    ServiceConfig
	log    hclog.Logger
	node   *hwg.Node
	reqs   chan func()
	events chan Event
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	bg     context.Context
	cancel context.CancelFunc

	// Owned by the loop goroutine.
	core    *Core
	queue   []Event
	waiters map[ID][]svcWaiter
}

type svcWaiter struct {
	until func(Event) (bool, error)
	ch    chan error
}

// NewService starts the Service's loop and its part in the directory.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Node == nil {
		return nil, fmt.Errorf("%w: no Node", ErrInvalidConfig)
	}
	cfg.Core.Self = cfg.Node.Self()
	core, err := NewCore(cfg.Core)
	if err != nil {
		return nil, err
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 50 * time.Millisecond
	}
	if len(cfg.DirectoryMembers) > 0 {
		err = core.BootstrapDirectory(cfg.DirectoryMembers)
	} else {
		err = core.JoinDirectory(cfg.Contacts)
	}
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:     cfg,
		log:     cfg.Logger,
		node:    cfg.Node,
		reqs:    make(chan func()),
		events:  make(chan Event, 256),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		core:    core,
		waiters: map[ID][]svcWaiter{},
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	s.bg, s.cancel = context.WithCancel(context.Background())
	go s.loop()
	return s, nil
}

func (s *Service) loop() {
	defer close(s.done)
	ticker := time.NewTicker(s.cfg.TickInterval)
	defer ticker.Stop()
	hwgEvents := s.node.Events()
	s.ready()
	for {
		var out chan Event
		var next Event
		if len(s.queue) > 0 {
			out, next = s.events, s.queue[0]
		}
		select {
		case <-s.stop:
			s.shutdown()
			return
		case out <- next:
			s.queue[0] = Event{}
			s.queue = s.queue[1:]
			continue
		case e, ok := <-hwgEvents:
			if !ok {
				hwgEvents = nil // the node closed: serve requests until Close
				continue
			}
			s.core.HWGEvent(e)
		case <-ticker.C:
			s.core.Tick()
		case f := <-s.reqs:
			f()
			// Take the requests already waiting before answering, so the
			// control messages of many Joins ride in one message.
			for range maxDrain {
				select {
				case f := <-s.reqs:
					f()
					continue
				default:
				}
				break
			}
		}
		s.ready()
	}
}

// maxDrain bounds the requests the loop takes in one go.
const maxDrain = 4096

// ready carries out what the Core asks, in order.
func (s *Service) ready() {
	rd := s.core.Ready()
	for _, a := range rd.Actions {
		s.act(a)
	}
	for _, e := range rd.Events {
		s.queue = append(s.queue, e)
		s.wake(e)
	}
}

func (s *Service) act(a Action) {
	ctx := s.bg
	var err error
	switch a.Type {
	case ActBootstrap:
		err = s.node.Bootstrap(ctx, a.Group, a.Members)
	case ActJoin, ActLeave:
		// These return when the view changes; the Core learns the outcome
		// from the group's events, so the loop does not wait.
		go func() {
			var err error
			if a.Type == ActJoin {
				err = s.node.Join(ctx, a.Group, a.Contacts)
			} else {
				err = s.node.Leave(ctx, a.Group)
			}
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, hwg.ErrNodeClosed) {
				s.log.Warn("hwg request failed", "action", a.Type, "group", a.Group, "error", err)
			}
		}()
	case ActMulticast:
		err = s.node.Multicast(ctx, a.Group, a.Payload)
	case ActBlockOK:
		err = s.node.BlockOK(ctx, a.Group)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("hwg request failed", "action", a.Type, "group", a.Group, "error", err)
	}
}

func (s *Service) wake(e Event) {
	ws := s.waiters[e.LWG]
	kept := ws[:0]
	for _, w := range ws {
		if ok, err := w.until(e); ok {
			w.ch <- err
		} else {
			kept = append(kept, w)
		}
	}
	if len(kept) == 0 {
		delete(s.waiters, e.LWG)
	} else {
		s.waiters[e.LWG] = kept
	}
}

func (s *Service) shutdown() {
	s.cancel()
	for l, ws := range s.waiters {
		for _, w := range ws {
			w.ch <- ErrClosed
		}
		delete(s.waiters, l)
	}
	close(s.events)
}

// Close stops the Service. It does not close the Node.
func (s *Service) Close() error {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

// Events returns the channel of every local LWG's events, in order. It is
// closed by Close.
func (s *Service) Events() <-chan Event { return s.events }

// do runs f on the loop; f may register a waiter on ch.
func (s *Service) do(ctx context.Context, f func(ch chan error) error) error {
	ch := make(chan error, 1)
	errc := make(chan error, 1)
	select {
	case s.reqs <- func() { errc <- f(ch) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrClosed
	}
	if err := <-errc; err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrClosed
	}
}

// now completes a request at once.
func now(ch chan error) { ch <- nil }

// Join makes this node a member of l (creating it if needed) and returns
// once a view that includes it is installed.
func (s *Service) Join(ctx context.Context, l ID) error {
	return s.do(ctx, func(ch chan error) error {
		if err := s.core.Join(l); err != nil {
			return err
		}
		self := s.node.Self()
		s.waiters[l] = append(s.waiters[l], svcWaiter{ch: ch, until: func(e Event) (bool, error) {
			switch {
			case e.Type == EventInstall && e.View.Contains(self):
				return true, nil
			case e.Type == EventExcluded:
				return true, fmt.Errorf("lwg: joining %s: excluded from its carrier", l)
			}
			return false, nil
		}})
		return nil
	})
}

// Leave removes this node from l and returns once it has left.
func (s *Service) Leave(ctx context.Context, l ID) error {
	return s.do(ctx, func(ch chan error) error {
		if err := s.core.Leave(l); err != nil {
			return err
		}
		if _, _, ok := s.core.View(l); !ok {
			now(ch) // it was only joining
			return nil
		}
		s.waiters[l] = append(s.waiters[l], svcWaiter{ch: ch, until: func(e Event) (bool, error) {
			return e.Type == EventLeft || e.Type == EventExcluded, nil
		}})
		return nil
	})
}

// Multicast sends payload to l in total order: at once in the current
// view, or after HoldOK in the next. The payload must not be modified
// afterwards.
func (s *Service) Multicast(ctx context.Context, l ID, payload []byte) error {
	return s.do(ctx, func(ch chan error) error {
		if err := s.core.Multicast(l, payload); err != nil {
			return err
		}
		now(ch)
		return nil
	})
}

// HoldOK answers l's EventBlock (only with Config.ManualHoldOK).
func (s *Service) HoldOK(ctx context.Context, l ID) error {
	return s.do(ctx, func(ch chan error) error {
		if err := s.core.HoldOK(l); err != nil {
			return err
		}
		now(ch)
		return nil
	})
}

// Switch moves l to the carrier the directory resolves base to and returns
// once l installed a view there. This node must be a member of l.
func (s *Service) Switch(ctx context.Context, l ID, base hwg.GroupID) error {
	return s.do(ctx, func(ch chan error) error {
		if err := s.core.Switch(l, base); err != nil {
			return err
		}
		s.waiters[l] = append(s.waiters[l], svcWaiter{ch: ch, until: func(e Event) (bool, error) {
			switch {
			case e.Type == EventInstall && s.core.dir.carriers[e.HWG] != nil && s.core.dir.carriers[e.HWG].Base == base:
				return true, nil
			case e.Type == EventLeft || e.Type == EventExcluded:
				return true, fmt.Errorf("lwg: switching %s: %v", l, e.Type)
			}
			return false, nil
		}})
		return nil
	})
}

// View returns this node's current view of l and its carrier.
func (s *Service) View(ctx context.Context, l ID) (View, hwg.GroupID, error) {
	var v View
	var h hwg.GroupID
	err := s.do(ctx, func(ch chan error) error {
		var ok bool
		if v, h, ok = s.core.View(l); !ok {
			return ErrNotMember
		}
		now(ch)
		return nil
	})
	return v, h, err
}

// Stats returns the Core's counters.
func (s *Service) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := s.do(ctx, func(ch chan error) error {
		st = s.core.Stats()
		now(ch)
		return nil
	})
	return st, err
}

// Lookup returns the carrier this node's copy of the directory binds l to.
// It is local: the copy may be a little behind the directory's order.
func (s *Service) Lookup(ctx context.Context, l ID) (hwg.GroupID, bool, error) {
	var h hwg.GroupID
	var ok bool
	err := s.do(ctx, func(ch chan error) error {
		h, ok = s.core.Lookup(l)
		now(ch)
		return nil
	})
	return h, ok, err
}
