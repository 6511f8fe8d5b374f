package hwg_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
)

func TestDirect(t *testing.T) {
	net := transport.NewMemNetwork()
	nodes := startNodes(t, net, 1, 2)
	a, b := nodes[1], nodes[2]
	bSelf := b.Self()

	// In order, with the sender named; a Direct for an older incarnation
	// is dropped and counted.
	for i := range 3 {
		if err := a.Send(bSelf, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Send(hwg.Process{Node: bSelf.Node, Inc: bSelf.Inc + 1}, []byte("other incarnation")); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(bSelf, []byte("last")); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{{0}, {1}, {2}, []byte("last")}
	for _, w := range want {
		select {
		case d := <-b.Direct():
			if d.From != a.Self() || !bytes.Equal(d.Payload, w) {
				t.Fatalf("got %v %q, want %v %q", d.From, d.Payload, a.Self(), w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no Direct %q", w)
		}
	}
	if got := b.DirectDropped(); got != 1 {
		t.Fatalf("DirectDropped = %d, want 1 (the other incarnation's)", got)
	}
	// Group traffic is not disturbed by Directs.
	select {
	case e := <-b.Events():
		t.Fatalf("unexpected event %v", e.Type)
	default:
	}
}

// A received Direct's payload is the reader's: Directs that follow, some
// into released (reused) frames, never change one it keeps. Large
// payloads (a snapshot chunk and its headers) arrive whole.
func TestDirectOwnershipAndRelease(t *testing.T) {
	net := transport.NewMemNetwork()
	nodes := startNodes(t, net, 1, 2)
	a, b := nodes[1], nodes[2]
	payload := func(i int) []byte { return bytes.Repeat([]byte{byte(i + 1)}, 1<<20+40) }
	var kept [][]byte
	for i := range 6 {
		if err := a.Send(b.Self(), payload(i)); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-b.Direct():
			if !bytes.Equal(d.Payload, payload(i)) {
				t.Fatalf("Direct %d: %d bytes, not the %d sent", i, len(d.Payload), len(payload(i)))
			}
			if i%2 == 0 {
				kept = append(kept, d.Payload) // kept: never released
			} else {
				d.Release()
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no Direct %d", i)
		}
	}
	for k, p := range kept {
		if !bytes.Equal(p, payload(2*k)) {
			t.Fatalf("kept payload %d changed after later Directs", 2*k)
		}
	}
	hwg.Direct{}.Release() // a Direct not received: nothing to give back
}

// SendBuffer sends a DirectBuffer's appended payload like Send, to the
// addressed incarnation only, and refuses a buffer it did not make.
func TestSendBuffer(t *testing.T) {
	net := transport.NewMemNetwork()
	nodes := startNodes(t, net, 1, 2)
	a, b := nodes[1], nodes[2]
	bSelf := b.Self()
	payload := bytes.Repeat([]byte("chunk "), 200_000) // over a megabyte
	if err := a.SendBuffer(hwg.Process{Node: bSelf.Node, Inc: bSelf.Inc + 1}, append(hwg.DirectBuffer(5), "stale"...)); err != nil {
		t.Fatal(err)
	}
	if err := a.SendBuffer(bSelf, append(hwg.DirectBuffer(len(payload)), payload...)); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-b.Direct():
		if d.From != a.Self() || !bytes.Equal(d.Payload, payload) {
			t.Fatalf("got %d bytes from %v, want the %d sent by %v", len(d.Payload), d.From, len(payload), a.Self())
		}
		d.Release()
	case <-time.After(5 * time.Second):
		t.Fatal("no Direct")
	}
	if got := b.DirectDropped(); got != 1 {
		t.Fatalf("DirectDropped = %d, want 1 (the other incarnation's)", got)
	}
	if err := a.SendBuffer(bSelf, []byte{1, 2}); !errors.Is(err, hwg.ErrMalformed) {
		t.Fatalf("SendBuffer of a foreign buffer: %v, want ErrMalformed", err)
	}
}

// plainTransport hides its transport's SendParts: SendParts copies.
type plainTransport struct{ transport.Transport }

// SendParts sends head and body as one Direct, releasing the body once,
// over a transport that writes parts (the in-memory one) and over one
// that does not; a refused message is released too.
func TestSendParts(t *testing.T) {
	for _, parts := range []bool{true, false} {
		net := transport.NewMemNetwork()
		b := startNode(t, net, hwg.Process{Node: 2, Inc: 1})
		var tr transport.Transport = net.Endpoint(transport.Peer{Node: 1, Inc: 1})
		t.Cleanup(func() { tr.Close() })
		if !parts {
			tr = plainTransport{tr}
		}
		a, err := hwg.NewNode(hwg.FastTiming(hwg.NodeConfig{Self: hwg.Process{Node: 1, Inc: 1}, Transport: tr}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		body := [][]byte{bytes.Repeat([]byte("piece "), 200_000), []byte("end")}
		released := 0
		if err := a.SendParts(b.Self(), []byte("head:"), body, func() { released++ }); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-b.Direct():
			if want := append([]byte("head:"), bytes.Join(body, nil)...); d.From != a.Self() || !bytes.Equal(d.Payload, want) {
				t.Fatalf("parts %v: got %d bytes from %v, want %d from %v", parts, len(d.Payload), d.From, len(want), a.Self())
			}
			d.Release()
		case <-time.After(5 * time.Second):
			t.Fatal("no Direct")
		}
		if released != 1 {
			t.Fatalf("parts %v: released %d times", parts, released)
		}
		err = a.SendParts(hwg.Process{Node: 9, Inc: 1}, nil, body, func() { released++ })
		if !errors.Is(err, transport.ErrUnknownPeer) || released != 2 {
			t.Fatalf("parts %v: to an unknown node: %v, released %d times", parts, err, released)
		}
	}
}
