package lwg_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/internal/testproc"
	"github.com/lwgkit/lwgkit/lwg"
)

// BenchmarkLWGDataProcs is BenchmarkLWGData with each of the four nodes
// in a process of its own (this test binary, started again), as they are
// deployed: four Go runtimes, each scheduling only its own node's
// goroutines, instead of one runtime scheduling all four nodes' 40 on its
// Ps. The load, the window and the metrics are BenchmarkLWGData's;
// "cpu-ms/s" sums the four processes. Send times in the payloads are
// offsets from one wall-clock instant the parent hands every process, read
// on each process's monotonic clock, so latencies compare across them.
//
// The profiles of LWGKIT_BENCH_CPUPROFILE and friends are not taken here.
func BenchmarkLWGDataProcs(b *testing.B) {
	runData(b, func(b *testing.B, place string, _ lwg.Placement, n int) dataResult { return dataRunProcs(b, place, n) })
}

// The environment of a node process of BenchmarkLWGDataProcs.
const (
	envProcNode  = "LWGKIT_BENCHPROC_NODE"  // its node number, 1..k
	envProcK     = "LWGKIT_BENCHPROC_K"     // the number of nodes, k
	envProcAddrs = "LWGKIT_BENCHPROC_ADDRS" // the addresses of nodes 1..node-1, comma-separated
	envProcN     = "LWGKIT_BENCHPROC_N"     // the number of groups
	envProcPlace = "LWGKIT_BENCHPROC_PLACE" // "lwg" or "hwg" (see placements)
	envProcEpoch = "LWGKIT_BENCHPROC_EPOCH" // the wall-clock instant of loadEpoch, Unix ns
	envProcOut   = "LWGKIT_BENCHPROC_OUT"   // where it writes its procResult (JSON)
)

// procResult is what a node process measured over the window.
type procResult struct {
	Lats, Sents          []time.Duration // as installWatch records them
	CPU, Elapsed, Lag    time.Duration
	Frames, Writes, Byts uint64
	Reads                uint64
	Sent                 int // multicasts in the window
}

// exitFormTimeout is a node process's exit code when it could not form
// its groups in time: the parent skips the run then, as BenchmarkLWGData
// does.
const exitFormTimeout = 3

func TestMain(m *testing.M) {
	if os.Getenv(envProcNode) != "" {
		if err := runBenchProc(); err != nil {
			fmt.Fprintln(os.Stderr, "bench node:", err)
			if errors.Is(err, context.DeadlineExceeded) {
				os.Exit(exitFormTimeout)
			}
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runBenchProc is a node process: it listens on a port of its own and
// says "addr <address>" (nodes after it dial it there), starts its node,
// forms its part of the groups, says "formed", and on "go <ns>" (the
// load's start as an offset from loadEpoch) sends its load, measures the
// window, writes its result, says "done" and waits for "exit" (so that no
// node leaves while another still measures).
func runBenchProc() error {
	var i, k, n int
	for _, v := range []struct {
		name string
		to   *int
	}{{envProcNode, &i}, {envProcK, &k}, {envProcN, &n}} {
		x, err := strconv.Atoi(os.Getenv(v.name))
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		*v.to = x
	}
	epoch, err := strconv.ParseInt(os.Getenv(envProcEpoch), 10, 64)
	if err != nil {
		return fmt.Errorf("%s: %w", envProcEpoch, err)
	}
	// One instant for every process: this process's monotonic clock,
	// set from the wall clock once.
	now := time.Now()
	loadEpoch = now.Add(-time.Duration(now.UnixNano() - epoch))
	var peers []string
	if a := os.Getenv(envProcAddrs); a != "" {
		peers = strings.Split(a, ",")
	}
	var place lwg.Placement
	for _, p := range placements {
		if p.name == os.Getenv(envProcPlace) {
			place = p.place
		}
	}
	if place == nil {
		return fmt.Errorf("unknown placement %q", os.Getenv(envProcPlace))
	}
	var members []hwg.Process
	for j := 1; j <= k; j++ {
		members = append(members, hwg.Process{Node: hwg.NodeID(j), Inc: 1})
	}
	bn, err := newBenchNode(i, "127.0.0.1:0", peers, place, members, 0)
	if err != nil {
		return err
	}
	defer bn.close()
	fmt.Println("addr", bn.tr.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), benchDeadline)
	defer cancel()
	ls := benchLWGs(n)
	if err := formOf(ctx, []*benchNode{bn}, ls, k); err != nil {
		return err
	}
	fmt.Println("formed")
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		return fmt.Errorf("no go from the parent")
	}
	at, err := strconv.ParseInt(strings.TrimPrefix(in.Text(), "go "), 10, 64)
	if err != nil {
		return fmt.Errorf("go line %q: %w", in.Text(), err)
	}
	start := loadEpoch.Add(time.Duration(at))
	time.Sleep(time.Until(start))

	// The load's own context: forming may have used most of ctx.
	lctx, stop := context.WithTimeout(context.Background(), loadWarmUp+loadWindow+time.Minute)
	defer stop()
	s := &loadSender{}
	errc := make(chan error, 1)
	go func() { errc <- s.run(lctx, bn, i-1, ls) }()
	time.Sleep(time.Until(start.Add(loadWarmUp)))
	_, sent0 := s.lag()
	bn.w.record(true)
	w0, c0, r0, t0 := wireStats([]*benchNode{bn}), cpuTime(), readCalls(), time.Now()
	time.Sleep(time.Until(start.Add(loadWarmUp + loadWindow)))
	w1, c1, r1, el := wireStats([]*benchNode{bn}), cpuTime(), readCalls(), time.Since(t0)
	lats, sents := bn.w.recordSent(false)
	lag, sent1 := s.lag()
	stop()
	if err := <-errc; err != nil {
		return fmt.Errorf("sending the load: %w", err)
	}
	res, err := json.Marshal(procResult{Lats: lats, Sents: sents, CPU: c1 - c0, Elapsed: el, Lag: lag,
		Frames: w1.FramesSent - w0.FramesSent, Writes: w1.Writes - w0.Writes, Byts: w1.BytesSent - w0.BytesSent,
		Reads: r1 - r0, Sent: sent1 - sent0})
	if err != nil {
		return err
	}
	if err := os.WriteFile(os.Getenv(envProcOut), res, 0o644); err != nil {
		return err
	}
	fmt.Println("done")
	in.Scan() // "exit", or the parent is gone
	return nil
}

// benchProc is a node process as its parent sees it.
type benchProc struct {
	node  int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // its stdout, closed when it exits
	out   string
}

// await waits for a line from p that is word or starts with word and a
// space, and returns the rest of it; or why it did not come. A process
// that exited because it could not form its groups in time gives an
// error wrapping context.DeadlineExceeded.
func (p *benchProc) await(ctx context.Context, word string) (string, error) {
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				err := p.cmd.Wait()
				if p.cmd.ProcessState != nil && p.cmd.ProcessState.ExitCode() == exitFormTimeout {
					return "", fmt.Errorf("node process %d: forming the groups: %w", p.node, context.DeadlineExceeded)
				}
				return "", fmt.Errorf("node process %d exited before %q: %v", p.node, word, err)
			}
			if l == word {
				return "", nil
			}
			if rest, ok := strings.CutPrefix(l, word+" "); ok {
				return rest, nil
			}
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %q from node process %d: %w", word, p.node, ctx.Err())
		}
	}
}

// awaitAll waits for word from every process at once, so that one that
// failed is noticed without waiting for the others.
func awaitAll(ctx context.Context, procs []*benchProc, word string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(procs))
	for _, p := range procs {
		go func() {
			_, err := p.await(ctx, word)
			errs <- err
		}()
	}
	var first error
	for range procs {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel() // the rest return at once
		}
	}
	return first
}

func dataRunProcs(b *testing.B, place string, n int) dataResult {
	const k = 4
	ctx, cancel := context.WithTimeout(context.Background(), benchDeadline+loadWarmUp+loadWindow+time.Minute)
	defer cancel()
	dir := b.TempDir()
	epoch := time.Now()
	var procs []*benchProc
	defer func() {
		for _, p := range procs {
			p.stdin.Close()
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	}()
	// One at a time, as startBenchCluster does: each listens on a port
	// of its own and dials the ones before it.
	var addrs []string
	for i := 1; i <= k; i++ {
		p := &benchProc{node: i, out: filepath.Join(dir, fmt.Sprintf("node-%d.json", i)), lines: make(chan string, 16)}
		p.cmd = exec.Command(os.Args[0], "-test.run=^$")
		testproc.DieWithParent(p.cmd)
		p.cmd.Env = append(os.Environ(),
			envProcNode+"="+strconv.Itoa(i),
			envProcK+"="+strconv.Itoa(k),
			envProcAddrs+"="+strings.Join(addrs, ","),
			envProcN+"="+strconv.Itoa(n),
			envProcPlace+"="+place,
			envProcEpoch+"="+strconv.FormatInt(epoch.UnixNano(), 10),
			envProcOut+"="+p.out)
		p.cmd.Stderr = os.Stderr
		var err error
		if p.stdin, err = p.cmd.StdinPipe(); err != nil {
			b.Fatal(err)
		}
		stdout, err := p.cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := p.cmd.Start(); err != nil {
			b.Fatal(err)
		}
		procs = append(procs, p)
		go func() {
			defer close(p.lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				p.lines <- sc.Text()
			}
		}()
		addr, err := p.await(ctx, "addr")
		if err != nil {
			b.Fatal(err)
		}
		addrs = append(addrs, addr)
	}
	if err := awaitAll(ctx, procs, "formed"); err != nil {
		skipOrFatal(b, err)
	}
	// Start the load a moment from now in every process at once.
	at := time.Since(epoch) + 100*time.Millisecond
	for _, p := range procs {
		fmt.Fprintf(p.stdin, "go %d\n", int64(at))
	}
	if err := awaitAll(ctx, procs, "done"); err != nil {
		b.Fatal(err)
	}
	var all []procResult
	for _, p := range procs {
		raw, err := os.ReadFile(p.out)
		if err != nil {
			b.Fatal(err)
		}
		var r procResult
		if err := json.Unmarshal(raw, &r); err != nil {
			b.Fatal(err)
		}
		all = append(all, r)
	}
	for _, p := range procs {
		fmt.Fprintln(p.stdin, "exit")
	}

	var lats, sents []time.Duration
	var cpu, el, lag time.Duration
	var frames, writes, byts, reads uint64
	sent := 0
	for _, r := range all {
		lats, sents = append(lats, r.Lats...), append(sents, r.Sents...)
		cpu, el, lag = cpu+r.CPU, max(el, r.Elapsed), max(lag, r.Lag)
		frames, writes, byts, reads = frames+r.Frames, writes+r.Writes, byts+r.Byts, reads+r.Reads
		sent += r.Sent
	}
	if benchTail {
		logTail(b, lats, sents)
	}
	return dataOf(b, n, k, ", a process per node", lats, sent, lag, el, cpu, frames, writes, byts, reads)
}
