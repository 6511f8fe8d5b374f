package transport

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func memNodes(t *testing.T, n *MemNetwork, ids ...uint64) []Transport {
	t.Helper()
	var ts []Transport
	for _, id := range ids {
		tr := n.Endpoint(Peer{Node: id, Inc: 1})
		t.Cleanup(func() { tr.Close() })
		ts = append(ts, tr)
	}
	return ts
}

func TestMemOrderPerSender(t *testing.T) {
	net := NewMemNetwork()
	ts := memNodes(t, net, 1, 2, 3)
	const n = 2000
	var wg sync.WaitGroup
	for i, x := range ts {
		for j := range ts {
			if i != j {
				wg.Go(func() { sendN(t, x, uint64(j+1), fmt.Sprintf("%d>", i+1), n) })
			}
		}
	}
	wg.Wait()
	for j, y := range ts {
		next := map[uint64]int{}
		for range 2 * n {
			in := recv(t, y)
			if want := fmt.Sprintf("%d>%d", in.From.Node, next[in.From.Node]); string(in.Frame) != want || in.From.Inc != 1 {
				t.Fatalf("node %d: got %q from %v, want %q", j+1, in.Frame, in.From, want)
			}
			next[in.From.Node]++
		}
	}
	s := ts[0].Stats()
	want := Stats{FramesSent: 2 * n, FramesReceived: 2 * n, Writes: 2 * n}
	if s.FramesSent != want.FramesSent || s.FramesReceived != want.FramesReceived || s.Writes != want.Writes ||
		s.BytesSent == 0 || s.BytesSent != s.BytesReceived {
		t.Fatalf("stats %+v", s)
	}
}

func TestMemErrors(t *testing.T) {
	net := NewMemNetwork()
	ts := memNodes(t, net, 1, 2)
	if err := ts[0].Send(9, []byte("x")); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("Send to unknown = %v", err)
	}
	if err := ts[0].Send(1, []byte("x")); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("Send to self = %v", err)
	}
	if err := ts[0].Send(2, make([]byte, DefaultMaxFrame+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Send too large = %v", err)
	}
	ts[0].AddPeer(9, "anything") // no effect
	if err := ts[0].Close(); err != nil {
		t.Fatal(err)
	}
	if err := ts[0].Close(); err != nil {
		t.Fatal(err)
	}
	if err := ts[0].Send(2, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
	if _, ok := <-ts[0].Inbound(); ok {
		t.Fatal("Inbound open after Close")
	}
	// A closed node is known: frames to it are lost, not refused.
	if err := ts[1].Send(1, []byte("x")); err != nil {
		t.Fatalf("Send to a closed node = %v", err)
	}
}

func TestMemPartition(t *testing.T) {
	net := NewMemNetwork()
	ts := memNodes(t, net, 1, 2, 3)
	net.Partition(2, 1, true)
	ts[0].Send(2, []byte("lost"))
	ts[1].Send(1, []byte("lost"))
	ts[0].Send(3, []byte("to 3"))
	ts[1].Send(3, []byte("to 3"))
	for range 2 {
		if in := recv(t, ts[2]); string(in.Frame) != "to 3" {
			t.Fatalf("got %q", in.Frame)
		}
	}
	expectNothing(t, ts[0], 20*time.Millisecond)
	expectNothing(t, ts[1], 0)

	net.Partition(1, 2, false)
	ts[0].Send(2, []byte("healed"))
	if in := recv(t, ts[1]); string(in.Frame) != "healed" || in.From.Node != 1 {
		t.Fatalf("got %q from %v", in.Frame, in.From)
	}
	net.Partition(1, 3, true)
	net.Partition(2, 3, true)
	net.Heal()
	ts[2].Send(1, []byte("all healed"))
	if in := recv(t, ts[0]); string(in.Frame) != "all healed" {
		t.Fatalf("got %q", in.Frame)
	}
}

func TestMemDrop(t *testing.T) {
	net := NewMemNetwork()
	ts := memNodes(t, net, 1, 2)
	calls := 0 // SetDrop calls f one at a time: no lock needed
	net.SetDrop(func(from, to uint64) bool {
		calls++
		return from == 1 && calls%2 == 0
	})
	sendN(t, ts[0], 2, "f", 10)
	for i := 0; i < 10; i += 2 {
		if in := recv(t, ts[1]); string(in.Frame) != fmt.Sprint("f", i) {
			t.Fatalf("got %q, want f%d", in.Frame, i)
		}
	}
	expectNothing(t, ts[1], 20*time.Millisecond)
	ts[1].Send(1, []byte("back"))
	recv(t, ts[0])
	net.SetDrop(nil)
	sendN(t, ts[0], 2, "g", 3)
	expectInOrder(t, ts[1], Peer{1, 1}, "g", 3)
}

func TestMemCloseAndRestart(t *testing.T) {
	net := NewMemNetwork()
	ts := memNodes(t, net, 1, 2)
	// Frames queued for a node that closes are never delivered; a new
	// incarnation gets what is sent after it attaches.
	ts[0].Send(2, []byte("old"))
	ts[1].Close()
	for range ts[1].Inbound() {
	}
	ts[0].Send(2, []byte("into the void"))
	b2 := net.Endpoint(Peer{Node: 2, Inc: 2})
	t.Cleanup(func() { b2.Close() })
	ts[0].Send(2, []byte("new"))
	if in := recv(t, b2); string(in.Frame) != "new" || in.From != (Peer{1, 1}) {
		t.Fatalf("got %q from %v", in.Frame, in.From)
	}
	b2.Send(1, []byte("hi"))
	if in := recv(t, ts[0]); in.From != (Peer{2, 2}) {
		t.Fatalf("from %v", in.From)
	}
	// Attaching the same node again closes the previous endpoint.
	b3 := net.Endpoint(Peer{Node: 2, Inc: 3})
	t.Cleanup(func() { b3.Close() })
	if err := b2.Send(1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("replaced endpoint Send = %v", err)
	}
}

// Sends, faults and closes from many goroutines at once (run with -race).
func TestMemConcurrent(t *testing.T) {
	net := NewMemNetwork()
	ts := memNodes(t, net, 1, 2, 3, 4)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i, x := range ts {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				x.Send(uint64((i+k)%4+1), []byte("x"))
			}
		})
		wg.Go(func() {
			for range x.Inbound() {
			}
		})
	}
	wg.Go(func() {
		for k := 0; k < 200; k++ {
			net.Partition(uint64(k%4+1), uint64((k+1)%4+1), k%3 == 0)
			net.SetDrop(func(from, to uint64) bool { return from == uint64(k%4+1) })
		}
	})
	time.Sleep(20 * time.Millisecond)
	close(stop)
	for _, x := range ts {
		x.Close()
	}
	wg.Wait()
}
