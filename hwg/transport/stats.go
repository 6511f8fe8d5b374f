package transport

import "sync/atomic"

// counters is the lock-free form of Stats, shared by the goroutines of one
// transport.
type counters struct {
	framesSent, framesReceived atomic.Uint64
	bytesSent, bytesReceived   atomic.Uint64
	writes                     atomic.Uint64
	dropped                    atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		FramesSent:     c.framesSent.Load(),
		FramesReceived: c.framesReceived.Load(),
		BytesSent:      c.bytesSent.Load(),
		BytesReceived:  c.bytesReceived.Load(),
		Writes:         c.writes.Load(),
	}
}

func (c *counters) sent(frames int, bytes uint64) {
	c.framesSent.Add(uint64(frames))
	c.bytesSent.Add(bytes)
}

func (c *counters) received(frameLen int) {
	c.framesReceived.Add(1)
	c.bytesReceived.Add(uint64(HeaderSize + frameLen))
}
