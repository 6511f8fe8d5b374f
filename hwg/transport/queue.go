package transport

// outFrame is a frame waiting to be written: b, or, for a frame sent in
// parts (SendParts), b followed by the body parts, whose release is called
// once the transport is done with them: written, dropped or discarded.
type outFrame struct {
	b       []byte
	body    [][]byte
	release func()
}

// discard gives up a frame that will not be written: a frame in parts is
// released (a plain frame is left to the collector, as before parts).
func (f outFrame) discard() {
	if f.release != nil {
		f.release()
	}
}

// frameQueue is a bounded FIFO of frames that drops its oldest frame to
// make room. It grows on demand up to its limit, so an idle peer costs
// almost nothing. It is not safe for concurrent use: the owner locks.
type frameQueue struct {
	buf   []outFrame // ring; len(buf) is the current capacity
	head  int        // index of the oldest frame
	n     int        // frames queued
	limit int        // maximum n
}

func newFrameQueue(limit int) frameQueue { return frameQueue{limit: max(limit, 1)} }

// push appends f, dropping (and discarding) the oldest frame if the queue
// is full. It reports whether a frame was dropped.
func (q *frameQueue) push(f outFrame) (dropped bool) {
	if q.n == q.limit {
		q.buf[q.head].discard()
		q.buf[q.head] = outFrame{}
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
	buf := make([]outFrame, size)
	for i := range q.n {
		buf[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = buf, 0
}

// drainTo appends every queued frame to dst, oldest first, and empties the
// queue.
func (q *frameQueue) drainTo(dst []outFrame) []outFrame {
	for i := range q.n {
		j := (q.head + i) % len(q.buf)
		dst = append(dst, q.buf[j])
		q.buf[j] = outFrame{}
	}
	q.head, q.n = 0, 0
	return dst
}

// clear empties the queue, discarding its frames, and returns their
// number.
func (q *frameQueue) clear() int {
	n := q.n
	for i := range q.n {
		j := (q.head + i) % len(q.buf)
		q.buf[j].discard()
		q.buf[j] = outFrame{}
	}
	q.head, q.n = 0, 0
	return n
}

// len returns the number of frames queued.
func (q *frameQueue) len() int { return q.n }
