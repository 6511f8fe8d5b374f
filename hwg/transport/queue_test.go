package transport

import (
	"fmt"
	"testing"
)

func TestFrameQueueDropsOldest(t *testing.T) {
	q := newFrameQueue(40)
	dropped := 0
	for i := range 100 {
		if q.push([]byte(fmt.Sprint(i))) {
			dropped++
		}
	}
	if dropped != 60 || q.len() != 40 {
		t.Fatalf("dropped %d, len %d; want 60, 40", dropped, q.len())
	}
	got := q.drainTo(nil)
	for i, f := range got {
		if want := fmt.Sprint(60 + i); string(f) != want {
			t.Fatalf("frame %d = %s, want %s", i, f, want)
		}
	}
	if q.len() != 0 {
		t.Fatalf("len after drain = %d", q.len())
	}
	// Reuse after a drain keeps the order.
	for i := range 5 {
		q.push([]byte(fmt.Sprint(i)))
	}
	if n := q.clear(); n != 5 {
		t.Fatalf("clear = %d, want 5", n)
	}
	q.push([]byte("x"))
	if got := q.drainTo(nil); len(got) != 1 || string(got[0]) != "x" {
		t.Fatalf("after clear: %q", got)
	}
}

func TestFrameQueueLimitOne(t *testing.T) {
	q := newFrameQueue(1)
	q.push([]byte("a"))
	if !q.push([]byte("b")) {
		t.Fatal("second push into a queue of one did not drop")
	}
	if got := q.drainTo(nil); len(got) != 1 || string(got[0]) != "b" {
		t.Fatalf("got %q, want [b]", got)
	}
}
