package transport

import (
	"math/bits"
	"sync"
)

// Frame buffers of poolMin bytes and more are pooled by power-of-two
// capacity up to poolMax. A busy connection reads and writes frames of
// tens of kilobytes many times a second; allocating each afresh (zeroed)
// cost more than the copying, and on a VM the page faults of a growing
// heap cost more again. Under a load of many small messages it is the
// other way round: tens of thousands of frames a second of a few hundred
// bytes each (an Order or two, an Ack) were most of what an hwg node
// allocated once its decoding stopped allocating (BenchmarkLWGData at
// n = 10,000), hence the small classes. A reader that never returns its
// frames gets a buffer at most twice the frame's size, as for large ones;
// the smallest frames (heartbeats) are allocated exactly.
const (
	poolMinShift = 7  // 128 bytes
	poolMaxShift = 21 // 2 MiB: a 1 MiB snapshot chunk and its headers
	poolMin      = 1 << poolMinShift
	poolMax      = 1 << poolMaxShift
)

var pools [poolMaxShift - poolMinShift + 1]sync.Pool

// GetBuffer returns an empty buffer with room for at least n bytes, reused
// from frames returned with PutBuffer when there is one.
func GetBuffer(n int) []byte {
	if n < poolMin || n > poolMax {
		return make([]byte, 0, n)
	}
	c := bits.Len(uint(n-1)) - poolMinShift // smallest class that holds n
	if p, ok := pools[c].Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, 1<<(c+poolMinShift))
}

// PutBuffer gives b back for reuse by GetBuffer. Neither b nor any slice
// of it may be used afterwards. The transport puts every frame it has
// written; a receiver that is done with an Inbound frame may put it.
func PutBuffer(b []byte) {
	size := cap(b)
	if size < poolMin || size >= 2*poolMax {
		// A larger array would pin its whole size in the poolMax class.
		return
	}
	c := min(bits.Len(uint(size))-1, poolMaxShift) - poolMinShift // largest class b fills
	b = b[: 0 : 1<<(c+poolMinShift)]
	pools[c].Put(&b)
}
