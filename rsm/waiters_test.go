package rsm

import (
	"maps"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestWaiterSetModel runs random adds, takes and lookups against a plain
// map: the set holds exactly the map's waiters, with the inline slot in
// use whenever it is not empty and the queue in seq order. Most adds come
// in seq order, as calls are numbered; some come late (the simulator's
// register numbers a call before it locks the object).
func TestWaiterSetModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var s waiterSet
		model := map[uint64]waiter{}
		var late []uint64 // numbers skipped, to be added out of order
		next := uint64(1)
		for i := range rapid.IntRange(1, 300).Draw(t, "steps") {
			switch op := rapid.IntRange(0, 5).Draw(t, "op"); {
			case op == 0 || op == 1 || len(model) == 0:
				seq := next
				next++
				switch {
				case rapid.IntRange(0, 9).Draw(t, "skip") == 0:
					late = append(late, seq) // add it later
					seq = next
					next++
				case len(late) > 0 && rapid.IntRange(0, 3).Draw(t, "late") == 0:
					next-- // not used
					seq, late = late[0], late[1:]
				}
				w := waiter{size: int(seq)}
				s.add(seq, w)
				model[seq] = w
			case op == 2:
				// The oldest, as outcomes mostly come.
				seq := slices.Min(slices.Collect(maps.Keys(model)))
				takeModel(t, i, &s, model, seq)
			default:
				// Take one held (any of them) or one not held.
				var seq uint64
				if rapid.Bool().Draw(t, "held") {
					keys := slices.Sorted(maps.Keys(model))
					seq = keys[rapid.IntRange(0, len(keys)-1).Draw(t, "key")]
				} else {
					seq = next + 7
				}
				takeModel(t, i, &s, model, seq)
			}
			if s.len() != len(model) {
				t.Fatalf("step %d: len %d, want %d", i, s.len(), len(model))
			}
			if !s.check() {
				t.Fatalf("step %d: invariant broken: slot in use %v, queue %v", i, s.hasOne, s.more[s.head:])
			}
			seen := map[uint64]bool{}
			s.each(func(w waiter) { seen[uint64(w.size)] = true })
			if len(seen) != len(model) {
				t.Fatalf("step %d: each saw %d waiters, want %d", i, len(seen), len(model))
			}
			for seq := range model {
				if !seen[seq] {
					t.Fatalf("step %d: each missed %d", i, seq)
				}
			}
			for j, e := range s.more[:s.head] {
				if e.seq != 0 || e.w.size != 0 || e.w.ch != nil || e.w.done != nil || e.w.query != nil {
					t.Fatalf("step %d: taken entry %d still holds waiter %d", i, j, e.seq)
				}
			}
		}
	})
}

func takeModel(t *rapid.T, step int, s *waiterSet, model map[uint64]waiter, seq uint64) {
	want, wok := model[seq]
	if s.has(seq) != wok {
		t.Fatalf("step %d: has(%d) = %v, want %v", step, seq, !wok, wok)
	}
	got, ok := s.take(seq)
	if ok != wok || got.size != want.size {
		t.Fatalf("step %d: take(%d) = %v %v, want %v %v", step, seq, got, ok, want, wok)
	}
	delete(model, seq)
}

// TestWaiterSetQueueBounded: a steady stream of calls, each answered in
// turn with 256 in flight (one object, many clients), keeps the queue's
// array within a small multiple of what is in flight, and a set emptied
// after a burst gives a large array back.
func TestWaiterSetQueueBounded(t *testing.T) {
	var s waiterSet
	const inFlight = 256
	seq, oldest := uint64(0), uint64(1)
	for range inFlight {
		seq++
		s.add(seq, waiter{size: int(seq)})
	}
	for range 100_000 {
		w, ok := s.take(oldest)
		if !ok || w.size != int(oldest) {
			t.Fatalf("take(%d) = %v %v", oldest, w, ok)
		}
		oldest++
		seq++
		s.add(seq, waiter{size: int(seq)})
		if cap(s.more) > 4*inFlight {
			t.Fatalf("queue array of %d entries for %d in flight", cap(s.more), inFlight)
		}
	}
	for oldest <= seq {
		if _, ok := s.take(oldest); !ok {
			t.Fatalf("take(%d) missed", oldest)
		}
		oldest++
	}
	if s.len() != 0 || s.more != nil {
		t.Fatalf("emptied set: len %d, queue array of %d kept", s.len(), cap(s.more))
	}
}

// TestWaiterSetCheckFires: check reports a queue in use beside an empty
// inline slot, and a queue out of seq order.
func TestWaiterSetCheckFires(t *testing.T) {
	s := waiterSet{more: []seqWaiter{{seq: 3}}}
	if s.check() {
		t.Fatal("check passed a set whose inline slot is empty while its queue is not")
	}
	s = waiterSet{hasOne: true, more: []seqWaiter{{seq: 5}, {seq: 4}}}
	if s.check() {
		t.Fatal("check passed a queue out of seq order")
	}
}
