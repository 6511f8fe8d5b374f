package lwg

import (
	"fmt"
	"testing"
)

// TestEventBatchesPushFrom: a batch queued from its i-th event gives the
// rest in order, behind or ahead of whole batches, and pop hands back the
// whole batch, with its full capacity, once its last event is taken.
func TestEventBatchesPushFrom(t *testing.T) {
	batch := func(name string, n int) []Event {
		evs := make([]Event, n, n+3)
		for i := range evs {
			evs[i].LWG = ID(fmt.Sprintf("%s%d", name, i))
		}
		return evs
	}
	var q eventBatches
	a, b, c := batch("a", 5), batch("b", 2), batch("c", 3)
	q.pushFrom(a, 3) // a0..a2 went to the reader at once
	q.pushFrom(b, 0)
	q.push(c)
	var got []ID
	var done [][]Event
	for q.len() > 0 {
		got = append(got, q.peek().LWG)
		if d := q.pop(); d != nil {
			done = append(done, d)
		}
	}
	if want := fmt.Sprint([]ID{"a3", "a4", "b0", "b1", "c0", "c1", "c2"}); fmt.Sprint(got) != want {
		t.Fatalf("events %v, want %v", got, want)
	}
	if len(done) != 3 || &done[0][0] != &a[0] || len(done[0]) != 5 || cap(done[0]) != 8 || &done[1][0] != &b[0] || &done[2][0] != &c[0] {
		t.Fatalf("batches handed back: %d, the first of %d events and capacity %d", len(done), len(done[0]), cap(done[0]))
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a part of a batch was queued behind another")
		}
	}()
	q.push(batch("d", 1))
	q.pushFrom(batch("e", 2), 1)
}
