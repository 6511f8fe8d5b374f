package transport

// frameQueue is a bounded FIFO of frames that drops its oldest frame to
// make room. It grows on demand up to its limit, so an idle peer costs
// almost nothing. It is not safe for concurrent use: the owner locks.
type frameQueue struct {
	buf   [][]byte // ring; len(buf) is the current capacity
	head  int      // index of the oldest frame
	n     int      // frames queued
	limit int      // maximum n
}

func newFrameQueue(limit int) frameQueue { return frameQueue{limit: max(limit, 1)} }

// push appends f, dropping the oldest frame if the queue is full. It
// reports whether a frame was dropped.
func (q *frameQueue) push(f []byte) (dropped bool) {
	if q.n == q.limit {
		q.buf[q.head] = nil
		q.head = (q.head + 1) % len(q.buf)
		q.n--
		dropped = true
	}
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = f
	q.n++
	return dropped
}

func (q *frameQueue) grow() {
	size := min(max(2*len(q.buf), 16), q.limit)
	buf := make([][]byte, size)
	for i := range q.n {
		buf[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = buf, 0
}

// drainTo appends every queued frame to dst, oldest first, and empties the
// queue.
func (q *frameQueue) drainTo(dst [][]byte) [][]byte {
	for i := range q.n {
		j := (q.head + i) % len(q.buf)
		dst = append(dst, q.buf[j])
		q.buf[j] = nil
	}
	q.head, q.n = 0, 0
	return dst
}

// clear empties the queue and returns the number of frames discarded.
func (q *frameQueue) clear() int {
	n := q.n
	for i := range q.n {
		q.buf[(q.head+i)%len(q.buf)] = nil
	}
	q.head, q.n = 0, 0
	return n
}

// len returns the number of frames queued.
func (q *frameQueue) len() int { return q.n }
