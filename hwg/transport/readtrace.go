//go:build hoptrace

package transport

// A diagnostic, built only with -tags hoptrace, for transports that share
// one process (BenchmarkLWGData): where a frame waits between a node's
// Send and the peer node's loop taking it. Sampled, in microseconds:
//
//	queue     Send → taken from the queue by the connection's writer
//	readWake  bytes written → read by the peer's reader, for the first
//	          read after its buffer ran dry (the network poller noticing
//	          the socket, the reader getting a CPU); readBusy for others
//	inbound   frame read → taken from Inbound by the node's loop (hwg)
//	turn      one loop turn, from after its first input to the end of its
//	          flush (hwg; turnIn the inputs, turnFl the flush)
//
// Every transport's Close writes the table to $HOPTRACE_TR_OUT (default
// /tmp/readtrace.txt), over the last $HOPTRACE_WINDOW of samples if set.
// The bookkeeping is global and locked: it slows a run at n = 10,000 down
// (p99 up to 50-170 ms), so compare its rows with each other, not with
// untraced runs.

import (
	"net"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwgkit/lwgkit/internal/durstats"
)

const readTracing = true

type wrec struct {
	end int64 // stream offset after the write
	at  time.Time
}

type stream struct {
	mu      sync.Mutex
	written int64
	writes  []wrec
	read    int64
}

type sample struct {
	at  time.Time
	d   time.Duration
	key string
}

var rt struct {
	reads, frames atomic.Uint64 // sampling counters: every 8th is recorded
	sync.Mutex
	streams map[string]*stream
	samples []sample
}

func streamOf(local, remote net.Addr, sending bool) *stream {
	k := remote.String() + ">" + local.String()
	if sending {
		k = local.String() + ">" + remote.String()
	}
	rt.Lock()
	defer rt.Unlock()
	if rt.streams == nil {
		rt.streams = map[string]*stream{}
	}
	s := rt.streams[k]
	if s == nil {
		s = &stream{}
		rt.streams[k] = s
	}
	return s
}

func traceWrote(c *conn, n int) {
	if n <= 0 {
		return
	}
	s := streamOf(c.nc.LocalAddr(), c.nc.RemoteAddr(), true)
	now := time.Now()
	s.mu.Lock()
	s.written += int64(n)
	s.writes = append(s.writes, wrec{s.written, now})
	s.mu.Unlock()
}

// traceRead records, for a read of n bytes, the time since the first of
// them was written; dry marks the first read after the reader's buffer
// ran dry, which may have waited for the socket.
func traceRead(c *conn, n int, dry bool) {
	if n <= 0 {
		return
	}
	sampled := rt.reads.Add(1)%8 == 0
	s := streamOf(c.nc.LocalAddr(), c.nc.RemoteAddr(), false)
	now := time.Now()
	s.mu.Lock()
	start := s.read
	s.read += int64(n)
	i := sort.Search(len(s.writes), func(i int) bool { return s.writes[i].end > start })
	var at time.Time
	if i < len(s.writes) {
		at = s.writes[i].at
	}
	// Forget writes read in full.
	j := sort.Search(len(s.writes), func(i int) bool { return s.writes[i].end > s.read })
	s.writes = slices.Delete(s.writes, 0, j)
	s.mu.Unlock()
	if at.IsZero() || !sampled {
		return
	}
	key := "readBusy"
	if dry {
		key = "readWake"
	}
	rt.Lock()
	rt.samples = append(rt.samples, sample{now, now.Sub(at), key})
	rt.Unlock()
}

// traceTaken records how long the k frames taken from r's queue waited
// there (every 8th). r.mu is held. r.traceQ has a time per queued frame;
// frames discarded with a failed dial misalign it (the benchmark has
// none).
func traceTaken(r *remote, k int) {
	k = min(k, len(r.traceQ))
	now := time.Now()
	rt.Lock()
	for _, at := range r.traceQ[:k] {
		if rt.frames.Add(1)%8 == 0 {
			rt.samples = append(rt.samples, sample{now, now.Sub(at), "queue"})
		}
	}
	rt.Unlock()
	r.traceQ = slices.Delete(r.traceQ, 0, k)
}

func writeReadTrace() {
	rt.Lock()
	defer rt.Unlock()
	if len(rt.samples) == 0 {
		return
	}
	window, err := time.ParseDuration(os.Getenv("HOPTRACE_WINDOW"))
	if err != nil || window <= 0 {
		window = 1 << 62
	}
	last := rt.samples[len(rt.samples)-1].at
	d := map[string][]time.Duration{}
	for _, s := range rt.samples {
		if last.Sub(s.at) <= window {
			d[s.key] = append(d[s.key], s.d)
		}
	}
	out := os.Getenv("HOPTRACE_TR_OUT")
	if out == "" {
		out = "/tmp/readtrace.txt"
	}
	f, err := os.Create(out)
	if err != nil {
		return
	}
	defer f.Close()
	durstats.WriteTable(f, "stage", []string{"queue", "readWake", "readBusy", "inbound", "turn", "turnIn", "turnFl"}, d)
}

var readAt sync.Map // *byte (a frame's first byte) → time read

// traceFrameRead notes when every 8th frame was read (readLoop).
func traceFrameRead(frame []byte) {
	if len(frame) > 0 && rt.frames.Add(1)%8 == 0 {
		readAt.Store(&frame[0], time.Now())
	}
}

// TraceTaken records how long frame waited between its reader reading it
// and the node's loop taking it (hwg, under its hoptrace tag).
func TraceTaken(frame []byte) {
	if len(frame) == 0 {
		return
	}
	if v, ok := readAt.LoadAndDelete(&frame[0]); ok {
		TraceSample("inbound", time.Since(v.(time.Time)))
	}
}

// TraceSample records one duration under label.
func TraceSample(label string, d time.Duration) {
	now := time.Now()
	rt.Lock()
	rt.samples = append(rt.samples, sample{now, d, label})
	rt.Unlock()
}
