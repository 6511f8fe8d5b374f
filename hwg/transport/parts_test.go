package transport

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// partsFrame returns the body of the i-th frame in parts of
// TestTCPSendParts: every fourth one a megabyte (written through the
// connection's buffer), the others a few bytes in up to three parts.
func partsFrame(i int) (head []byte, body [][]byte) {
	head = fmt.Appendf(GetBuffer(16), "h%d:", i)
	switch i % 4 {
	case 0:
		big := bytes.Repeat([]byte{byte(i)}, 1<<20)
		return head, [][]byte{big[:1000], big[1000:]}
	case 1:
		return head, nil
	default:
		for k := range i % 4 {
			body = append(body, fmt.Appendf(nil, "[%d.%d]", i, k))
		}
		return head, body
	}
}

func joinParts(head []byte, body [][]byte) []byte {
	return append(bytes.Clone(head), bytes.Join(body, nil)...)
}

// Frames in parts arrive whole, in order with plain frames, and each body
// is released once, after its write: release scribbles over the body, and
// the receiver still gets the bytes sent.
func TestTCPSendParts(t *testing.T) {
	a := newNode(t, 1, 1, nil)
	b := newNode(t, 2, 1, nil)
	a.AddPeer(2, b.Addr())
	const n = 200
	var released atomic.Int64
	var want [][]byte
	for i := range n {
		if i%3 == 0 {
			f := fmt.Appendf(nil, "plain%d", i)
			want = append(want, f)
			if err := a.Send(2, bytes.Clone(f)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		head, body := partsFrame(i)
		want = append(want, joinParts(head, body))
		var once atomic.Bool
		err := a.SendParts(2, head, body, func() {
			if !once.CompareAndSwap(false, true) {
				t.Errorf("frame %d released twice", i)
			}
			for _, p := range body {
				for j := range p {
					p[j] = 0xee
				}
			}
			released.Add(1)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		in := recv(t, b)
		if in.From != a.Self() || !bytes.Equal(in.Frame, want[i]) {
			t.Fatalf("frame %d: got %d bytes %.20q from %v, want %d bytes %.20q", i, len(in.Frame), in.Frame, in.From, len(want[i]), want[i])
		}
	}
	waitFor(t, "every body released", func() bool { return released.Load() == n-(n+2)/3 })
}

// A frame in parts that is dropped (a full queue, a failed dial), refused
// or still queued at Close is released once, and never written.
func TestTCPSendPartsReleasedWhenDropped(t *testing.T) {
	a := newNode(t, 1, 1, func(c *TCPConfig) { c.SendQueue = 2; c.MaxFrame = 1 << 20 })
	b := newNode(t, 2, 1, nil)
	a.AddPeer(2, b.Addr())
	released := make([]atomic.Int32, 10)
	send := func(to uint64, i int, body [][]byte) error {
		return a.SendParts(to, fmt.Appendf(nil, "f%d", i), body, func() { released[i].Add(1) })
	}
	// Queue while no connection can exist yet: hold a's dial back.
	a.mu.RLock()
	r := a.peers[2]
	a.mu.RUnlock()
	r.mu.Lock()
	r.nextDial = time.Now().Add(100 * time.Millisecond)
	r.mu.Unlock()
	for i := range 5 {
		if err := send(2, i, [][]byte{[]byte("-body")}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if released[i].Load() != 1 {
			t.Fatalf("frame %d, dropped from the full queue, released %d times", i, released[i].Load())
		}
	}
	for i := 3; i < 5; i++ {
		if in := recv(t, b); string(in.Frame) != fmt.Sprintf("f%d-body", i) {
			t.Fatalf("got %q, want f%d-body", in.Frame, i)
		}
	}
	waitFor(t, "the written frames released", func() bool { return released[3].Load() == 1 && released[4].Load() == 1 })

	// Refused: too large, unknown peer.
	if err := send(2, 5, [][]byte{make([]byte, 1<<20)}); !errors.Is(err, ErrFrameTooLarge) || released[5].Load() != 1 {
		t.Fatalf("too large: %v, released %d", err, released[5].Load())
	}
	if err := send(99, 6, nil); !errors.Is(err, ErrUnknownPeer) || released[6].Load() != 1 {
		t.Fatalf("unknown peer: %v, released %d", err, released[6].Load())
	}
	// Queued for a peer that is not dialed yet when a closes.
	a.AddPeer(3, "127.0.0.1:1")
	a.mu.RLock()
	r = a.peers[3]
	a.mu.RUnlock()
	r.mu.Lock()
	r.nextDial = time.Now().Add(time.Hour)
	r.mu.Unlock()
	if err := send(3, 7, [][]byte{[]byte("x")}); err != nil {
		t.Fatal(err)
	}
	if released[7].Load() != 0 {
		t.Fatal("a queued frame released before Close")
	}
	a.Close()
	if released[7].Load() != 1 {
		t.Fatalf("a frame queued at Close released %d times, want 1", released[7].Load())
	}
	if err := send(2, 8, nil); !errors.Is(err, ErrClosed) || released[8].Load() != 1 {
		t.Fatalf("after Close: %v, released %d", err, released[8].Load())
	}
	for i := range 9 {
		if got := released[i].Load(); got != 1 {
			t.Fatalf("frame %d released %d times", i, got)
		}
	}
}

// The in-memory transport delivers a frame in parts as one frame and
// releases its body at once.
func TestMemSendParts(t *testing.T) {
	net := NewMemNetwork()
	a, b := net.Endpoint(Peer{Node: 1, Inc: 1}), net.Endpoint(Peer{Node: 2, Inc: 1})
	defer a.Close()
	defer b.Close()
	released := 0
	if err := a.(PartsSender).SendParts(2, []byte("head:"), [][]byte{[]byte("b1"), []byte("b2")}, func() { released++ }); err != nil {
		t.Fatal(err)
	}
	if released != 1 {
		t.Fatalf("released %d times", released)
	}
	if in := recv(t, b); string(in.Frame) != "head:b1b2" {
		t.Fatalf("got %q", in.Frame)
	}
}
