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

// A Switch call must return when the Core ends the switch without moving
// the LWG, not wait for an install on the new carrier that will not come
// (switching.TestRebalancerConvergesLive: in CI, every switch to one slow
// new carrier, 21-26 of 256, was abandoned by the Core after
// SwitchTimeoutTicks and its Switch call hung until the caller's timeout).

// soloService starts a one-node cluster whose LWGs are created on h/a.
func soloService(t *testing.T, cfg Config) *Service {
	t.Helper()
	self := hwg.Process{Node: 1, Inc: 1}
	net := transport.NewMemNetwork()
	ep := net.Endpoint(transport.Peer{Node: 1, Inc: 1})
	ncfg := hwg.FastTiming(hwg.NodeConfig{Self: self, Transport: ep})
	ncfg.Group.ManualBlockOK = true
	node, err := hwg.NewNode(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Place = Shared("h/a")
	svc, err := NewService(ServiceConfig{Node: node, Core: cfg, DirectoryMembers: []hwg.Process{self}, TickInterval: 10 * time.Millisecond, NoSendEvents: true})
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
	return svc
}

// switchPromptly calls Switch with a deadline well beyond what the switch
// needs, and fails if it is the deadline that ended the call.
func switchPromptly(t *testing.T, svc *Service, l ID, base hwg.GroupID) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	err := svc.Switch(ctx, l, base)
	if ctx.Err() != nil {
		t.Fatalf("Switch(%s, %s) did not return: %v after %v", l, base, err, time.Since(start).Round(time.Millisecond))
	}
	return err
}

// TestSwitchThereAlready: a switch to the carrier the LWG is on ends at once
// in the Core (nothing to move), and Switch returns nil.
func TestSwitchThereAlready(t *testing.T) {
	svc := soloService(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const l ID = "l/here"
	if err := svc.Join(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := switchPromptly(t, svc, l, "h/a"); err != nil {
		t.Fatalf("Switch to the carrier it is on: %v", err)
	}
}

// TestSwitchAbandoned: a switch whose target carrier this node cannot join
// (its creator, per the directory, is a node that does not exist) is
// abandoned by the Core after SwitchTimeoutTicks; Switch returns
// ErrSwitchTimeout, and the LWG stays on its carrier.
func TestSwitchAbandoned(t *testing.T) {
	svc := soloService(t, Config{SwitchTimeoutTicks: 20})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const l ID = "l/stuck"
	if err := svc.Join(ctx, l); err != nil {
		t.Fatal(err)
	}
	v0, from, err := svc.View(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	// The directory creates h/b's carrier for process 9.1, which no node
	// runs: this node registers and asks to join it through 9, and is
	// never admitted, so it never acknowledges the switch's flush.
	ghost := hwg.Process{Node: 9, Inc: 1}
	bind := encodeControl(&control{Kind: kBind, Items: []item{{Group: "h/b"}}})
	err = svc.do(ctx, func(ch chan error) error {
		svc.core.HWGEvent(hwg.Event{Type: hwg.EventDeliver, Group: "h/dir", Msg: hwg.MsgID{Sender: ghost}, Payload: bind})
		if rec := svc.core.dir.carriers[svc.core.dir.bases["h/b"]]; rec == nil || rec.Creator != ghost {
			t.Errorf("h/b's carrier: %+v, want one created by %v", rec, ghost)
		}
		now(ch)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = switchPromptly(t, svc, l, "h/b")
	if !errors.Is(err, ErrSwitchTimeout) {
		t.Fatalf("Switch to a carrier it cannot join: %v, want ErrSwitchTimeout", err)
	}
	// The abort ends the flush: the LWG installs its next view where it was.
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, h, err := svc.View(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		if h != from || !strings.HasPrefix(string(h), "h/a#") {
			t.Fatalf("after the abandoned switch %s is on %s, want %s", l, h, from)
		}
		if v.ID > v0.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no view after the abort: %v", v)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
