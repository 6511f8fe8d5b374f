package lwg_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fanoutResult is what fanoutRun measured: latency from the send to the
// read at each of the three peers (zero if none was read in the window),
// and the process's CPU per second.
type fanoutResult struct {
	p50, p99, cpu float64
	delivered     int
}

// fanoutRun is BenchmarkLWGData's baseline: the same load over raw TCP,
// with no group communication. Four peers on loopback, a connection from
// each to each other, and on each connection a writer goroutine that
// writes whatever is queued in one write (what a minimal transport does);
// each peer sends one 32-byte message per group every loadPeriod, on
// loadSender's schedule, to the three others. The same machine at the
// same message rate: it shows how much of the growth of the LWG run's
// latency with n is the machine's.
// fanoutRate, set by LWGKIT_BENCH_FANOUT_X, multiplies the baseline's
// message rate: on this VM a loopback fan-out's tail jumps once its
// process uses about half a core with two Ps (docs/PERFORMANCE.md, issue 4,
// "The machine's own cliff"), so a baseline at the LWG run's rate, which
// costs a fifth of its CPU, does not show what the machine does at the
// LWG run's CPU; a multiple of the rate does.
var fanoutRate = func() int {
	s := os.Getenv("LWGKIT_BENCH_FANOUT_X")
	if s == "" {
		return 1
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		panic(fmt.Sprintf("LWGKIT_BENCH_FANOUT_X=%q: want a positive integer", s))
	}
	return v
}()

func fanoutRun(b *testing.B, n int, window time.Duration) fanoutResult {
	const k = 4
	lns := make([]net.Listener, k)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		lns[i] = ln
	}
	var (
		mu        sync.Mutex
		lats      []time.Duration
		recording atomic.Bool // the window: latencies are kept
		readers   sync.WaitGroup
	)
	accepted := make(chan net.Conn, k*(k-1))
	for _, ln := range lns {
		go func() {
			for range k - 1 {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted <- c
			}
		}()
	}
	// out[i] holds peer i's queues to the three others.
	out := make([][]chan []byte, k)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var writers sync.WaitGroup
	for i := range k {
		for j := range k {
			if i == j {
				continue
			}
			c, err := net.Dial("tcp", lns[j].Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
			q := make(chan []byte, 4096)
			out[i] = append(out[i], q)
			writers.Go(func() { fanoutWrite(c, q) })
		}
	}
	for range k * (k - 1) {
		c := <-accepted
		conns = append(conns, c)
		readers.Go(func() {
			var local []time.Duration
			r := bufio.NewReaderSize(c, 64<<10)
			m := make([]byte, loadSize)
			for {
				if _, err := io.ReadFull(r, m); err != nil {
					break
				}
				if at, ok := loadSent(m); ok && recording.Load() {
					local = append(local, time.Since(loadEpoch)-at)
				}
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		})
	}

	stop := make(chan struct{})
	var senders sync.WaitGroup
	gap := loadPeriod / time.Duration(n*fanoutRate)
	for i := range k {
		senders.Go(func() {
			t0 := time.Now().Add(time.Duration(i) * gap / 4)
			t := time.NewTimer(time.Hour)
			defer t.Stop()
			for j := 0; ; j++ {
				if d := time.Until(t0.Add(time.Duration(j) * gap)); d > 0 {
					t.Reset(d)
					select {
					case <-t.C:
					case <-stop:
						return
					}
				} else {
					select {
					case <-stop:
						return
					default:
					}
				}
				m := loadPayload(uint64(j))
				for _, q := range out[i] {
					q <- m
				}
			}
		})
	}
	time.Sleep(loadWarmUp)
	recording.Store(true)
	c0, t0 := cpuTime(), time.Now()
	time.Sleep(window)
	c1, el := cpuTime(), time.Since(t0)
	recording.Store(false)
	close(stop)
	senders.Wait()
	for i := range out {
		for _, q := range out[i] {
			close(q)
		}
	}
	writers.Wait()
	for _, c := range conns {
		c.Close()
	}
	readers.Wait()
	mu.Lock()
	defer mu.Unlock()
	r := fanoutResult{cpu: ms(c1-c0) / el.Seconds(), delivered: len(lats)}
	if len(lats) > 0 { // none at a long LWGKIT_BENCH_PERIOD and small n
		slices.Sort(lats)
		r.p50, r.p99 = ms(percentile(lats, 0.5)), ms(percentile(lats, 0.99))
	}
	return r
}

// fanoutWrite writes what q holds, all that is queued at once in one
// write, until q is closed. After a failed write it only drains q, so
// that the senders never block on it.
func fanoutWrite(c net.Conn, q chan []byte) {
	w := bufio.NewWriterSize(c, 64<<10)
	var failed error
	for m := range q {
		if failed != nil {
			continue
		}
		w.Write(m)
		for more := true; more; {
			select {
			case m, ok := <-q:
				if !ok {
					more = false
					break
				}
				w.Write(m)
			default:
				more = false
			}
		}
		failed = w.Flush()
	}
	if failed == nil {
		w.Flush()
	}
}
