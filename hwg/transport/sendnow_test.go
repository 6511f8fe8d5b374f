package transport

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
)

// shrinkSendBuffer makes the send buffer of a's live connection to b
// small, so that a non-blocking write of a few KiB can come up short.
// (The receive buffer stays as it is: a tiny one stalls TCP in
// zero-window probes.)
func shrinkSendBuffer(t *testing.T, a, b *node) {
	t.Helper()
	c := a.current(b.Self().Node)
	if c == nil {
		t.Fatal("not connected")
	}
	if err := c.nc.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
}

// connectForSendNow connects a (node 1) to b (node 2) and waits until a's
// writer runs, so that SendNow may write inline.
func connectForSendNow(t *testing.T, editA, editB func(*TCPConfig)) (a, b *node) {
	t.Helper()
	a, b = newNode(t, 1, 1, editA), newNode(t, 2, 1, editB)
	a.AddPeer(2, b.Addr())
	sendUntil(t, a, 2, "hello", b)
	waitFor(t, "the writer to start", func() bool { c := a.current(2); return c != nil && c.writing.Load() })
	return a, b
}

// waitWriterIdle waits until c's writer has nothing to do and is not
// about to wake: a SendNow then writes inline.
func waitWriterIdle(t *testing.T, c *conn) {
	t.Helper()
	waitFor(t, "the writer to be idle", func() bool {
		if len(c.wakeCh) > 0 || !c.wmu.TryLock() {
			return false
		}
		c.wmu.Unlock()
		return true
	})
}

// TestTCPSendNowIdleWritesInline: on an idle connection each SendNow is
// one write of its own, from the caller's goroutine.
func TestTCPSendNowIdleWritesInline(t *testing.T) {
	a, b := connectForSendNow(t, nil, nil)
	s0, in0 := a.Stats(), a.stats.inlined.Load()
	for i := range 10 {
		if err := a.SendNow(2, fmt.Appendf(nil, "n%d", i)); err != nil {
			t.Fatal(err)
		}
		// Received before the next send: the writer stays idle.
		if in := recv(t, b); string(in.Frame) != fmt.Sprint("n", i) {
			t.Fatalf("got %q, want n%d", in.Frame, i)
		}
	}
	s := a.Stats()
	if s.Writes-s0.Writes != 10 || s.FramesSent-s0.FramesSent != 10 || a.stats.inlined.Load()-in0 != 10 {
		t.Fatalf("10 idle SendNows: %d writes, %d frames, %d inline; want 10 of each",
			s.Writes-s0.Writes, s.FramesSent-s0.FramesSent, a.stats.inlined.Load()-in0)
	}
}

// TestTCPSendNowShortWriteHandsOff: a SendNow that the socket does not
// take whole (the receiver stopped reading and the pipe is full) is
// finished by the writer goroutine, and the frames sent after it, with
// SendNow or Send, follow it in order once the receiver reads again.
func TestTCPSendNowShortWriteHandsOff(t *testing.T) {
	a, b := connectForSendNow(t,
		func(c *TCPConfig) { c.SendQueue = 1 << 16 },
		func(c *TCPConfig) { c.InboundBuffer = 1 })
	shrinkSendBuffer(t, a, b)
	waitWriterIdle(t, a.current(2))
	body := make([]byte, 16<<10)
	frame := func(i int) []byte { return append(fmt.Appendf(nil, "f%d|", i), body...) }
	// Until a write comes up short, every SendNow found the writer idle
	// and wrote inline; the pipe holds far less than 64 MiB.
	sent := 0
	for ; a.stats.handedOff.Load() == 0; sent++ {
		if sent == 4096 {
			t.Fatal("64 MiB written inline to a receiver that does not read")
		}
		if err := a.SendNow(2, frame(sent)); err != nil {
			t.Fatal(err)
		}
	}
	if a.stats.inlined.Load() == 0 {
		t.Fatal("no SendNow was written inline")
	}
	for i := range 300 {
		send := a.SendNow
		if i%3 == 2 {
			send = a.Send
		}
		if err := send(2, frame(sent)); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	for i := range sent {
		in := recv(t, b)
		want := fmt.Sprintf("f%d|", i)
		if !bytes.HasPrefix(in.Frame, []byte(want)) || len(in.Frame) != len(want)+len(body) {
			t.Fatalf("frame %d: got %q... (%d bytes)", i, in.Frame[:min(len(in.Frame), 12)], len(in.Frame))
		}
	}
	if a.Dropped() != 0 {
		t.Fatalf("dropped %d", a.Dropped())
	}
}

// TestTCPSendNowConcurrentSenders: many goroutines send with SendNow and
// Send at once, frames of very different sizes, through a small send
// buffer, so that inline writes, short ones and the writer goroutine all
// take turns. Every frame arrives, and each sender's in order. They send
// in rounds, each after the receiver got the previous one, so that each
// round starts with an idle writer.
func TestTCPSendNowConcurrentSenders(t *testing.T) {
	a, b := connectForSendNow(t, func(c *TCPConfig) { c.SendQueue = 1 << 16 }, nil)
	shrinkSendBuffer(t, a, b)
	const senders, rounds, per = 8, 8, 50
	done := make([]chan struct{}, rounds) // closed once round r is received
	for r := range done {
		done[r] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(s), 1))
			for i := range rounds * per {
				if i > 0 && i%per == 0 {
					<-done[i/per-1]
				}
				f := make([]byte, 8+rng.IntN(3)*rng.IntN(20<<10))
				binary.BigEndian.PutUint32(f, uint32(s))
				binary.BigEndian.PutUint32(f[4:], uint32(i))
				send := a.SendNow
				if rng.IntN(4) == 0 {
					send = a.Send
				}
				if err := send(2, f); err != nil {
					t.Errorf("sender %d frame %d: %v", s, i, err)
					return
				}
			}
		})
	}
	next := make([]uint32, senders)
	for r := range rounds {
		for range senders * per {
			in := recv(t, b)
			if len(in.Frame) < 8 {
				t.Fatalf("got a frame of %d bytes", len(in.Frame))
			}
			s, i := binary.BigEndian.Uint32(in.Frame), binary.BigEndian.Uint32(in.Frame[4:])
			if s >= senders || i != next[s] {
				t.Fatalf("sender %d: got frame %d, want %d", s, i, next[min(s, senders-1)])
			}
			next[s]++
		}
		close(done[r])
	}
	wg.Wait()
	if a.Dropped() != 0 {
		t.Fatalf("dropped %d", a.Dropped())
	}
	t.Logf("inline writes %d, handed off %d", a.stats.inlined.Load(), a.stats.handedOff.Load())
	if a.stats.inlined.Load() == 0 {
		t.Fatal("no SendNow was written inline")
	}
}
