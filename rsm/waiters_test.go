package rsm

import (
	"maps"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestWaiterSetModel runs random adds, takes and lookups against a plain
// map: the set holds exactly the map's waiters, with the inline slot in
// use whenever it is not empty.
func TestWaiterSetModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var s waiterSet
		model := map[uint64]waiter{}
		next := uint64(1)
		for i := range rapid.IntRange(1, 200).Draw(t, "steps") {
			switch op := rapid.IntRange(0, 2).Draw(t, "op"); {
			case op == 0 || len(model) == 0:
				w := waiter{size: int(next)}
				s.add(next, w)
				model[next] = w
				next++
			default:
				// Take one held (any of them) or one not held.
				var seq uint64
				if rapid.Bool().Draw(t, "held") {
					keys := slices.Sorted(maps.Keys(model))
					seq = keys[rapid.IntRange(0, len(keys)-1).Draw(t, "key")]
				} else {
					seq = next + 7
				}
				want, wok := model[seq]
				if s.has(seq) != wok {
					t.Fatalf("step %d: has(%d) = %v, want %v", i, seq, !wok, wok)
				}
				got, ok := s.take(seq)
				if ok != wok || got.size != want.size {
					t.Fatalf("step %d: take(%d) = %v %v, want %v %v", i, seq, got, ok, want, wok)
				}
				delete(model, seq)
			}
			if s.len() != len(model) {
				t.Fatalf("step %d: len %d, want %d", i, s.len(), len(model))
			}
			if !s.check() {
				t.Fatalf("step %d: %d waiters in the map with the inline slot empty", i, len(s.more))
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
		}
	})
}

// TestWaiterSetCheckFires: check reports a map in use beside an empty
// inline slot.
func TestWaiterSetCheckFires(t *testing.T) {
	s := waiterSet{more: map[uint64]waiter{3: {}}}
	if s.check() {
		t.Fatal("check passed a set whose inline slot is empty while its map is not")
	}
}
