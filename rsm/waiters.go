package rsm

// waiterSet holds an object's calls awaiting their outcome, by request
// seq. Most objects have at most one call in flight (a client per object,
// or thousands of objects each proposed to now and then), so the first
// waiter is kept inline and the map is made only when a second one
// comes: at 10,000 objects the map's insert, lookup and delete missed the
// cache and cost 6-7% of a proposal's CPU (BenchmarkPropose's profile).
//
// INVARIANT: the inline slot is used whenever the set is not empty and
// the map holds only waiters added while the slot was taken (checked by
// the tests through check).
type waiterSet struct {
	oneSeq uint64
	one    waiter
	hasOne bool
	more   map[uint64]waiter // nil until needed
}

func (s *waiterSet) len() int {
	if !s.hasOne {
		return 0
	}
	return 1 + len(s.more)
}

func (s *waiterSet) add(seq uint64, w waiter) {
	if !s.hasOne {
		s.oneSeq, s.one, s.hasOne = seq, w, true
		return
	}
	if s.more == nil {
		s.more = make(map[uint64]waiter)
	}
	s.more[seq] = w
}

func (s *waiterSet) has(seq uint64) bool {
	if s.hasOne && s.oneSeq == seq {
		return true
	}
	_, ok := s.more[seq]
	return ok
}

// take removes and returns the waiter of seq.
func (s *waiterSet) take(seq uint64) (waiter, bool) {
	if s.hasOne && s.oneSeq == seq {
		w := s.one
		s.one, s.hasOne = waiter{}, false
		// Keep the slot in use while the map has waiters: move one in.
		for k, m := range s.more {
			delete(s.more, k)
			s.oneSeq, s.one, s.hasOne = k, m, true
			break
		}
		s.shrink()
		return w, true
	}
	w, ok := s.more[seq]
	if ok {
		delete(s.more, seq)
		s.shrink()
	}
	return w, ok
}

// shrink drops an empty map: Go maps never shrink, and moving an entry
// into the slot iterates the map, which after a burst of calls would
// scan a large empty table at every take.
func (s *waiterSet) shrink() {
	if len(s.more) == 0 {
		s.more = nil
	}
}

// each calls f for every waiter, in no particular order.
func (s *waiterSet) each(f func(waiter)) {
	if !s.hasOne {
		return
	}
	f(s.one)
	for _, w := range s.more {
		f(w)
	}
}

// check verifies the INVARIANT.
func (s *waiterSet) check() bool {
	return s.hasOne || len(s.more) == 0
}
