// Command lwgsim runs seeded simulations of an HWG cluster, or with -lwgs
// of light-weight groups on HWGs, under faults and checks every
// virtual-synchrony invariant on the trace.
//
//	go run ./proptest/cmd/lwgsim -seed 7 -nodes 5 -steps 5000 -faults all -trace /tmp/t.jsonl
//	go run ./proptest/cmd/lwgsim -seeds 1-200 -nodes 5 -steps 5000 -faults all
//	go run ./proptest/cmd/lwgsim -seeds 1-200 -lwgs 1000 -switches 50 -carriers 3
//
// The same flags always give the same run and a byte-identical trace. It
// exits 1 if any run violates an invariant and 2 on bad flags.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lwgkit/lwgkit/proptest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lwgsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 1, "seed of the run")
	seeds := fs.String("seeds", "", "run a range of seeds instead, such as 1-200")
	nodes := fs.Int("nodes", 5, "nodes in the cluster")
	steps := fs.Int("steps", 2000, "scheduler steps with faults, before the heal")
	faults := fs.String("faults", "all", "none, all, or a comma list of crash,partition,drop,dup,reorder,join,leave")
	manual := fs.Bool("manual-blockok", false, "members answer Block after a delay instead of at once")
	tracePath := fs.String("trace", "", "write the trace as JSON Lines to this file (single seed only)")
	quiet := fs.Bool("q", false, "with -seeds, print only failing runs and the total")
	lwgs := fs.Int("lwgs", 0, "simulate this many LWGs on HWGs (0: a single HWG)")
	switches := fs.Int("switches", 0, "with -lwgs: switch requests during the run")
	carriers := fs.Int("carriers", 3, "with -lwgs: shared carrier HWGs the LWGs are placed on; 0 gives each LWG its own")
	size := fs.Int("lwg-size", 3, "with -lwgs: nodes each LWG is assigned to")
	async := fs.Bool("async", false, "with -lwgs: wire the layers as lwg.Service and hwg.Node do (queued events and actions, lazy acks and retransmits)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	f, err := proptest.ParseFaults(*faults)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *nodes < 1 || *steps < 1 || *lwgs < 0 || *switches < 0 || *carriers < 0 || *size < 1 {
		fmt.Fprintln(stderr, "lwgsim: -nodes, -steps and -lwg-size must be positive, -lwgs, -switches and -carriers not negative")
		return 2
	}
	from, to := *seed, *seed
	if *seeds != "" {
		if from, to, err = parseRange(*seeds); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		if *tracePath != "" {
			fmt.Fprintln(stderr, "lwgsim: -trace needs a single -seed")
			return 2
		}
	}
	failed := 0
	for s := from; s <= to; s++ {
		start := time.Now()
		var r proptest.Result
		if *lwgs > 0 {
			o := proptest.LWGOptions{Seed: s, Nodes: *nodes, LWGs: *lwgs, Size: *size, Steps: *steps,
				Carriers: *carriers, Switches: *switches, Faults: f, ManualHoldOK: *manual, Async: *async}
			o.Group.LazyAcks, o.Group.LazyRetransmit = *async, *async
			lr := proptest.RunLWG(o)
			r = proptest.Result{Trace: lr.Trace, Violations: lr.Violations}
			if len(r.Violations) > 0 {
				failed++
			}
			if !*quiet || len(r.Violations) > 0 {
				summarizeLWG(stdout, s, lr, time.Since(start))
			}
		} else {
			r = proptest.Run(proptest.Options{Seed: s, Nodes: *nodes, Steps: *steps, Faults: f, ManualBlockOK: *manual})
			if len(r.Violations) > 0 {
				failed++
			}
			if !*quiet || len(r.Violations) > 0 {
				summarize(stdout, s, r, time.Since(start))
			}
		}
		if *tracePath != "" {
			if err := writeTrace(*tracePath, r.Trace); err != nil {
				fmt.Fprintln(stderr, err)
				return 2
			}
			fmt.Fprintf(stdout, "  trace: %d events in %s\n", len(r.Trace), *tracePath)
		}
	}
	if from != to {
		fmt.Fprintf(stdout, "%d runs, %d with violations\n", to-from+1, failed)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func summarize(w io.Writer, seed uint64, r proptest.Result, elapsed time.Duration) {
	st := r.Stats
	verdict := "ok: every checker passed"
	switch {
	case len(r.Violations) > 0:
		verdict = fmt.Sprintf("VIOLATED: %d violations", len(r.Violations))
	case st.PrimaryLost:
		verdict = "ok (safety): the primary component was lost, so liveness is not owed"
	}
	fmt.Fprintf(w, "seed %d: %d steps in %v\n", seed, st.Steps, elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  views installed %d, messages sent %d, delivered %d\n", st.Installs, st.Sent, st.Delivered)
	fmt.Fprintf(w, "  faults %d: crashes %d, restarts %d, partitions %d, dropped %d, duplicated %d, joins %d, leaves %d\n",
		st.Faults(), st.Crashes, st.Restarts, st.Partitions, st.Dropped, st.Duplicated, st.Joins, st.Leaves)
	fmt.Fprintf(w, "  converged after heal: %v\n", st.Converged)
	fmt.Fprintf(w, "  verdict: %s\n", verdict)
	for _, v := range r.Violations {
		fmt.Fprintf(w, "    %s\n", v)
	}
}

func summarizeLWG(w io.Writer, seed uint64, r proptest.LWGResult, elapsed time.Duration) {
	st := r.Stats
	verdict := "ok: every checker passed"
	if len(r.Violations) > 0 {
		verdict = fmt.Sprintf("VIOLATED: %d violations", len(r.Violations))
	}
	fmt.Fprintf(w, "seed %d: %d steps in %v\n", seed, st.Steps, elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  LWG views installed %d, HWG views %d, messages sent %d, delivered %d, interference %d\n",
		st.LWGInstalls, st.HWGInstalls, st.Sent, st.Delivered, st.Interference)
	fmt.Fprintf(w, "  switches accepted %d, member moves %d; crashes %d, restarts %d, partitions %d, dropped %d, duplicated %d, joins %d, leaves %d\n",
		st.Switches, st.Moves, st.Crashes, st.Restarts, st.Partitions, st.Dropped, st.Duplicated, st.Joins, st.Leaves)
	fmt.Fprintf(w, "  converged after heal: %v\n", st.Converged)
	fmt.Fprintf(w, "  verdict: %s\n", verdict)
	for _, v := range r.Violations {
		fmt.Fprintf(w, "    %.2000s\n", v)
	}
}

func writeTrace(path string, tr proptest.Trace) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("lwgsim: %w", err)
	}
	bw := bufio.NewWriter(f)
	if err := tr.WriteJSONL(bw); err != nil {
		f.Close()
		return fmt.Errorf("lwgsim: writing %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("lwgsim: writing %s: %w", path, err)
	}
	return f.Close()
}

func parseRange(s string) (uint64, uint64, error) {
	a, b, ok := strings.Cut(s, "-")
	from, err1 := strconv.ParseUint(a, 10, 64)
	to, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || from > to {
		return 0, 0, fmt.Errorf("lwgsim: -seeds %q: want FROM-TO, such as 1-200", s)
	}
	return from, to, nil
}
