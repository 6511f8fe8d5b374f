package transport

import (
	"fmt"
	"testing"
)

func TestFrameQueueDropsOldest(t *testing.T) {
	q := newFrameQueue(40)
	dropped := 0
	for i := range 100 {
		if q.push(outFrame{b: []byte(fmt.Sprint(i))}) {
			dropped++
		}
	}
	if dropped != 60 || q.len() != 40 {
		t.Fatalf("dropped %d, len %d; want 60, 40", dropped, q.len())
	}
	got := q.drainTo(nil)
	for i, f := range got {
		if want := fmt.Sprint(60 + i); string(f.b) != want {
			t.Fatalf("frame %d = %s, want %s", i, f.b, want)
		}
	}
	if q.len() != 0 {
		t.Fatalf("len after drain = %d", q.len())
	}
	// Reuse after a drain keeps the order.
	for i := range 5 {
		q.push(outFrame{b: []byte(fmt.Sprint(i))})
	}
	if n := q.clear(); n != 5 {
		t.Fatalf("clear = %d, want 5", n)
	}
	q.push(outFrame{b: []byte("x")})
	if got := q.drainTo(nil); len(got) != 1 || string(got[0].b) != "x" {
		t.Fatalf("after clear: %v", got)
	}
}

func TestFrameQueueLimitOne(t *testing.T) {
	q := newFrameQueue(1)
	q.push(outFrame{b: []byte("a")})
	if !q.push(outFrame{b: []byte("b")}) {
		t.Fatal("second push into a queue of one did not drop")
	}
	if got := q.drainTo(nil); len(got) != 1 || string(got[0].b) != "b" {
		t.Fatalf("got %v, want [b]", got)
	}
}

// A frame in parts that the queue drops or clears is released, once; one
// drained is not (its writer releases it).
func TestFrameQueueReleasesParts(t *testing.T) {
	released := map[string]int{}
	parts := func(name string) outFrame {
		return outFrame{b: []byte(name), body: [][]byte{[]byte("body")}, release: func() { released[name]++ }}
	}
	q := newFrameQueue(2)
	q.push(parts("a"))
	q.push(parts("b"))
	q.push(parts("c")) // drops a
	if released["a"] != 1 || released["b"]+released["c"] != 0 {
		t.Fatalf("after a drop: released %v, want a once", released)
	}
	got := q.drainTo(nil)
	if len(got) != 2 || string(got[0].b) != "b" || string(got[1].b) != "c" {
		t.Fatalf("drained %v", got)
	}
	if released["b"]+released["c"] != 0 {
		t.Fatalf("drained frames released: %v", released)
	}
	q.push(parts("d"))
	q.push(outFrame{b: []byte("plain")})
	if n := q.clear(); n != 2 || released["d"] != 1 {
		t.Fatalf("clear = %d, released %v; want 2 and d once", n, released)
	}
}
