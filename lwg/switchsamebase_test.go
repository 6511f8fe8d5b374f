package lwg

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
)

// A base can have an older live carrier beside its current one: a bind of
// an LWG whose move to a now-dead carrier the directory never learnt of
// creates a new carrier for the base when the base resolves to the LWG's
// old carrier (directory.apply, kBind), and the old one lives on with its
// other LWGs (CarrierObservation.Current). Switch(l, base) for an LWG on
// the older carrier moves it to the new one, and must not take an install
// of l on the older carrier (a carrier view change, failure multiplexing)
// for the end of the switch, although its base is the target's.

// clusterServices starts an n-node cluster whose LWGs are created on h/a;
// node i runs with cfgs[i].
func clusterServices(t *testing.T, cfgs ...Config) []*Service {
	t.Helper()
	net := transport.NewMemNetwork()
	var boot []hwg.Process
	for i := range cfgs {
		boot = append(boot, hwg.Process{Node: hwg.NodeID(i + 1), Inc: 1})
	}
	var out []*Service
	for i, cfg := range cfgs {
		ep := net.Endpoint(transport.Peer{Node: uint64(i + 1), Inc: 1})
		ncfg := hwg.FastTiming(hwg.NodeConfig{Self: boot[i], Transport: ep})
		ncfg.Group.ManualBlockOK = true
		node, err := hwg.NewNode(ncfg)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Place = Shared("h/a")
		svc, err := NewService(ServiceConfig{Node: node, Core: cfg, DirectoryMembers: boot, TickInterval: 10 * time.Millisecond, NoSendEvents: true})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for range svc.Events() {
			}
		}()
		t.Cleanup(func() {
			svc.Close()
			node.Close()
			ep.Close()
		})
		out = append(out, svc)
	}
	return out
}

// TestSwitchIgnoresInstallOnOlderCarrierOfBase: l is on h/a#1 while node
// 1's directory resolves h/a to a newer carrier, which nobody can join (its
// creator is a process no node runs), so the switch never reaches its
// switch point. A carrier view change of h/a#1 while it waits (node 2
// joins h/a#1 for another LWG) installs l's next view there: Switch must
// go on waiting, not return nil with l still on h/a#1.
func TestSwitchIgnoresInstallOnOlderCarrierOfBase(t *testing.T) {
	svcs := clusterServices(t, Config{SwitchTimeoutTicks: 1 << 30}, Config{})
	s1, s2 := svcs[0], svcs[1]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const l, other ID = "l/moving", "l/other"
	for _, id := range []ID{l, other} {
		if err := s1.Join(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	v0, old, err := s1.View(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	// Node 1's copy of the directory applies a bind of other, from a
	// process that does not exist, that says other moved to a carrier now
	// dead: the directory binds it afresh, and as h/a resolves to the
	// carrier it moved from, on a new carrier of h/a, created by that
	// process. (Node 1's copy only: node 2 never looks h/a up again, the
	// LWG it joins is bound already.)
	ghost := hwg.Process{Node: 9, Inc: 1}
	var newer hwg.GroupID
	onLoop(t, ctx, s1, func() {
		b := s1.core.dir.lwgs[other]
		bind := encodeControl(&control{Kind: kBind, Items: []item{{LWG: other, Ver: b.Ver, Group: "h/a", From: "h/gone#1"}}})
		s1.core.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: "h/dir", Msg: hwg.MsgID{Sender: ghost}, Payload: bind})
		newer = s1.core.dir.bases["h/a"]
		if rec := s1.core.dir.carriers[newer]; rec == nil || rec.Creator != ghost || !s1.core.dir.alive(old) {
			t.Errorf("h/a resolves to %s (%+v), want a carrier created by %v beside the live %s", newer, rec, ghost, old)
		}
	})
	if carrierBase(newer) != carrierBase(old) || newer == old {
		t.Fatalf("the newer carrier %s and %s's %s: want two carriers of one base", newer, l, old)
	}

	swctx, swcancel := context.WithCancel(ctx)
	defer swcancel()
	res := make(chan error, 1)
	go func() { res <- s1.Switch(swctx, l, "h/a") }()
	for pending := false; !pending; {
		onLoop(t, ctx, s1, func() { pending = s1.core.switches[l] != nil })
		select {
		case err := <-res:
			t.Fatalf("Switch to the newer carrier returned at once: %v", err)
		default:
		}
	}
	// Node 2 joins h/a#1: l installs its next view there.
	if err := s2.Join(ctx, other); err != nil {
		t.Fatal(err)
	}
	for {
		v, h, err := s1.View(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		if h != old {
			t.Fatalf("%s moved to %s: the switch to %s cannot complete", l, h, newer)
		}
		if v.ID > v0.ID {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// With the bug, the install woke the Switch at once (same loop step).
	select {
	case err := <-res:
		_, h, _ := s1.View(ctx, l)
		t.Fatalf("Switch(%s, h/a) returned %v after an install on %s, with %s still on %s (target %s)", l, err, old, l, h, newer)
	case <-time.After(300 * time.Millisecond):
	}
	swcancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("Switch after its context ended: %v, want context.Canceled", err)
	}
}

// holdOKUntil answers svc's EventBlocks of l (Config.ManualHoldOK) until
// done returns true, or until it is blocked for a flush that stop accepts,
// which it leaves unanswered.
func holdOKUntil(t *testing.T, ctx context.Context, svc *Service, l ID, done func() bool, stop func(*flush) bool) {
	t.Helper()
	for !done() {
		blocked, stopped := false, false
		onLoop(t, ctx, svc, func() {
			ep := svc.core.eps[l]
			if ep == nil || !ep.blocked {
				return
			}
			blocked = true
			if e := svc.core.carriers[ep.h].entries[l]; e != nil && e.Fl != nil && stop(e.Fl) {
				stopped = true
			}
		})
		switch {
		case stopped:
			return
		case blocked:
			if err := svc.HoldOK(ctx, l); err != nil {
				t.Fatal(err)
			}
		case ctx.Err() != nil:
			t.Fatalf("%s: %v", l, ctx.Err())
		default:
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// TestSwitchMovedElsewhereFirst: node 1 asks to switch l while another
// member's switch of l to another base is flushing; that switch moves l,
// which ends node 1's request in the Core (Core.moved). Node 1's Switch
// returns an error naming where l went, instead of waiting for an install
// on its base that will not come.
func TestSwitchMovedElsewhereFirst(t *testing.T) {
	svcs := clusterServices(t, Config{ManualHoldOK: true, SwitchTimeoutTicks: 1 << 30}, Config{})
	s1, s2 := svcs[0], svcs[1]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const l ID = "l/contested"
	if err := s1.Join(ctx, l); err != nil {
		t.Fatal(err)
	}
	joined := make(chan error, 1)
	go func() { joined <- s2.Join(ctx, l) }()
	var joinErr error
	holdOKUntil(t, ctx, s1, l, func() bool {
		select {
		case joinErr = <-joined:
			return true
		default:
			return false
		}
	}, func(*flush) bool { return false })
	if joinErr != nil {
		t.Fatal(joinErr)
	}

	theirs := make(chan error, 1)
	go func() { theirs <- s2.Switch(ctx, l, "h/c") }()
	never := func() bool { return false }
	holdOKUntil(t, ctx, s1, l, never, func(fl *flush) bool { return carrierBase(fl.To) == "h/c" })
	swctx, swcancel := context.WithTimeout(ctx, 5*time.Second)
	defer swcancel()
	mine := make(chan error, 1)
	go func() { mine <- s1.Switch(swctx, l, "h/b") }()
	for pending := false; !pending; {
		onLoop(t, ctx, s1, func() { pending = s1.core.switches[l] != nil })
	}
	// Node 2's switch goes on (and so do any blocks on h/c).
	var theirErr error
	holdOKUntil(t, ctx, s1, l, func() bool {
		select {
		case theirErr = <-theirs:
			return true
		default:
			return false
		}
	}, func(*flush) bool { return false })
	if err := theirErr; err != nil {
		t.Fatalf("node 2's Switch to h/c: %v", err)
	}
	err := <-mine
	if err == nil || swctx.Err() != nil || !strings.Contains(err.Error(), "h/c#") {
		_, h, _ := s1.View(ctx, l)
		t.Fatalf("node 1's Switch to h/b, with %s moved to %s by node 2's: %v, want an error naming the carrier of h/c", l, h, err)
	}
}
