package rsm

import (
	"cmp"
	"slices"
)

// waiterSet holds an object's calls awaiting their outcome, by request
// seq. Most objects have at most one call in flight (a client per object,
// or thousands of objects each proposed to now and then), so the first
// waiter is kept inline: at 10,000 objects a map's insert, lookup and
// delete missed the cache and cost 6-7% of a proposal's CPU
// (BenchmarkPropose's profile). The others wait in a queue in seq order,
// which is the order their outcomes come in (a node's requests are
// numbered as they are queued, sent in that order and applied in the
// object's total order), so a take is almost always of the oldest. A map
// there was made for each second waiter and dropped when the object had
// none again: at 100 objects and 256 clients, allocating its table was
// 3.5% of the CPU.
//
// INVARIANT: the inline slot is used whenever the set is not empty, and
// more[head:] is in ascending seq order (checked by the tests through
// check).
type waiterSet struct {
	oneSeq uint64
	one    waiter
	hasOne bool
	more   []seqWaiter // live from head on; cleared below it
	head   int
}

type seqWaiter struct {
	seq uint64
	w   waiter
}

// keepQueue is the largest queue array an emptied set keeps for its next
// burst; a larger one (after a burst of calls) goes to the collector.
const keepQueue = 64

func (s *waiterSet) len() int {
	if !s.hasOne {
		return 0
	}
	return 1 + len(s.more) - s.head
}

func (s *waiterSet) add(seq uint64, w waiter) {
	if !s.hasOne {
		s.oneSeq, s.one, s.hasOne = seq, w, true
		return
	}
	if s.head > 0 && len(s.more) == cap(s.more) && 2*s.head >= len(s.more) {
		// At least half the array is taken entries: move the live ones
		// down rather than grow it (amortised O(1) per add).
		n := copy(s.more, s.more[s.head:])
		clear(s.more[n:])
		s.more, s.head = s.more[:n], 0
	}
	// Calls are numbered as they are added (under the object's mu), so
	// this appends; the simulator's register numbers them before it
	// locks, and two of its calls may come in either order.
	i := len(s.more)
	for i > s.head && s.more[i-1].seq > seq {
		i--
	}
	s.more = slices.Insert(s.more, i, seqWaiter{seq, w})
}

// find returns the index in more of seq's waiter, or -1.
func (s *waiterSet) find(seq uint64) int {
	live := s.more[s.head:]
	i, ok := slices.BinarySearchFunc(live, seq, func(e seqWaiter, seq uint64) int { return cmp.Compare(e.seq, seq) })
	if !ok {
		return -1
	}
	return s.head + i
}

func (s *waiterSet) has(seq uint64) bool {
	return (s.hasOne && s.oneSeq == seq) || s.find(seq) >= 0
}

// take removes and returns the waiter of seq.
func (s *waiterSet) take(seq uint64) (waiter, bool) {
	if s.hasOne && s.oneSeq == seq {
		w := s.one
		s.one, s.hasOne = waiter{}, false
		// Keep the slot in use while the queue has waiters: move the
		// oldest in, the next one expected.
		if s.head < len(s.more) {
			e := s.more[s.head]
			s.oneSeq, s.one, s.hasOne = e.seq, e.w, true
			s.more[s.head] = seqWaiter{}
			s.head++
			s.shrink()
		}
		return w, true
	}
	i := s.find(seq)
	if i < 0 {
		return waiter{}, false
	}
	w := s.more[i].w
	if i == s.head {
		s.more[i] = seqWaiter{}
		s.head++
	} else {
		s.more = slices.Delete(s.more, i, i+1) // zeroes the vacated end
	}
	s.shrink()
	return w, true
}

// shrink empties a queue with nothing left in it, keeping a small array
// for the next calls and dropping a large one.
func (s *waiterSet) shrink() {
	if s.head < len(s.more) {
		return
	}
	if cap(s.more) > keepQueue {
		s.more = nil
	} else {
		s.more = s.more[:0]
	}
	s.head = 0
}

// each calls f for every waiter, in no particular order.
func (s *waiterSet) each(f func(waiter)) {
	if !s.hasOne {
		return
	}
	f(s.one)
	for _, e := range s.more[s.head:] {
		f(e.w)
	}
}

// check verifies the INVARIANT.
func (s *waiterSet) check() bool {
	if !s.hasOne && len(s.more) > s.head {
		return false
	}
	live := s.more[s.head:]
	return slices.IsSortedFunc(live, func(a, b seqWaiter) int { return cmp.Compare(a.seq, b.seq) })
}
