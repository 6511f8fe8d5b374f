// Command composebench runs the composition experiment: one group of 16
// nodes ("flat16") against four groups of four joined by routers
// ("star4x4", proptest.ComposeTopology), with 10 %, 50 % and 100 % of the
// messages addressed to every group and the rest to the sender's own
// group. It measures mean delivery latency and throughput in the
// simulator (virtual time) and, with -runtime, over the real stack
// (compose.Node on lwg.Service, in one process, over loopback TCP or the
// in-memory transport). It prints Markdown tables with the ratios against
// flat16 measured in the same run, and draws docs/composition-*.png:
//
//	go run ./compose/internal/composebench -runtime tcp -out docs | tee docs/composition-bench.txt
package main

import (
	"context"
	"flag"
	"fmt"
	"image/color"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/lwgkit/lwgkit/compose"
	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/proptest"
)

var (
	topologies = []string{"flat16", "star4x4"}
	shares     = []float64{0.1, 0.5, 1}
)

// row is one measurement.
type row struct {
	topo    string
	share   float64
	latency float64 // sim: virtual units; runtime: ms
	thru    float64 // sim: messages per 1,000 units; runtime: messages/s
	load    float64 // sim: busiest node's LWG deliveries per message
	deliv   float64 // routed deliveries per message
}

func main() {
	msgs := flag.Int("messages", 1000, "messages per simulated configuration")
	seeds := flag.Int("seeds", 3, "simulator seeds per configuration (averaged)")
	rt := flag.String("runtime", "", "also run over the real stack: tcp or mem")
	rtMsgs := flag.Int("runtime-messages", 400, "messages per runtime configuration")
	noSim := flag.Bool("nosim", false, "skip the simulator")
	only := flag.String("topo", "", "runtime: only this topology")
	repeat := flag.Int("repeat", 1, "runtime: runs per cell (fresh processes), averaged")
	cell := flag.String("cell", "", "runtime: measure only topology:share and print it (used by the parent run)")
	out := flag.String("out", "docs", "directory for the PNG charts (empty: none)")
	flag.Parse()
	w := os.Stdout

	var sim []row
	for _, topo := range topologies {
		if *noSim || *cell != "" {
			break
		}
		for _, share := range shares {
			var r row
			r.topo, r.share = topo, share
			for s := 1; s <= *seeds; s++ {
				res, err := proptest.RunComposeBench(proptest.ComposeBenchOptions{Topology: topo, AllShare: share, Messages: *msgs, Seed: uint64(s)})
				if err != nil {
					log.Fatal(err)
				}
				r.latency += res.MeanLatency / float64(*seeds)
				r.thru += res.Throughput / float64(*seeds)
				r.load += res.MaxLoad / float64(*seeds)
				r.deliv += float64(res.Deliveries) / float64(res.Messages) / float64(*seeds)
			}
			sim = append(sim, r)
		}
	}
	if *cell == "" && !*noSim {
		fmt.Fprintf(w, "## Simulator (virtual time; %d messages × %d seeds per cell; window 2 per sender; a hop takes 1-4 units)\n\n", *msgs, *seeds)
		table(w, sim, "latency (units)", "throughput (msg/1k units)", true)
	}

	var real []row
	retries := 0
	if *rt != "" {
		for _, topo := range topologies {
			if *only != "" && topo != *only {
				continue
			}
			for _, share := range shares {
				if *cell != "" && *cell != fmt.Sprintf("%s:%v", topo, share) {
					continue
				}
				var r row
				var err error
				if *cell != "" {
					r, err = runtimeRun(*rt, topo, share, *rtMsgs)
					if err == nil {
						fmt.Printf("ROW %s %v %g %g %g\n", r.topo, r.share, r.latency, r.thru, r.deliv)
						return
					}
				} else {
					// Each cell in a fresh process: a stopped cluster's
					// goroutines and sockets wind down in the background and
					// disturb the next one.
					r = row{topo: topo, share: share}
					for range *repeat {
						var one row
						for attempt := 1; attempt <= 3; attempt++ {
							if one, err = subprocess(*rt, topo, share, *rtMsgs); err == nil {
								break
							}
							retries++
							log.Printf("%s %s %.0f%%: attempt %d failed (%v)", *rt, topo, share*100, attempt, err)
						}
						if err != nil {
							break
						}
						k := float64(*repeat)
						r.latency += one.latency / k
						r.thru += one.thru / k
						r.deliv += one.deliv / k
					}
				}
				if err != nil {
					log.Fatalf("%s %s %.0f%%: %v", *rt, topo, share*100, err)
				}
				real = append(real, r)
				log.Printf("%s %s %.0f%%: %.2f ms, %.0f msg/s", *rt, topo, share*100, r.latency, r.thru)
			}
		}
		fmt.Fprintf(w, "\n## Runtime over %s (compose.Node on lwg.Service, all stacks in one process, one process per run; %d messages per run, mean of %d runs per cell; window 2 per sender; %d runs repeated after a failure)\n\n", *rt, *rtMsgs, *repeat, retries)
		table(w, real, "latency (ms)", "throughput (msg/s)", false)
	}
	if *out != "" && !*noSim {
		if err := chart(sim, real, *rt, filepath.Join(*out, "composition.png")); err != nil {
			log.Fatal(err)
		}
	}
}

func find(rs []row, topo string, share float64) row {
	for _, r := range rs {
		if r.topo == topo && r.share == share {
			return r
		}
	}
	return row{}
}

func table(w io.Writer, rs []row, lat, thru string, withLoad bool) {
	head := "| to all groups | flat16 " + lat + " | star4x4 " + lat + " | ratio | flat16 " + thru + " | star4x4 " + thru + " | ratio | routed deliveries/msg flat16 / star4x4 |"
	sep := "|---|---|---|---|---|---|---|---|"
	if withLoad {
		head += " busiest node's LWG deliveries/msg flat16 / star4x4 | capacity ratio |"
		sep += "---|---|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	for _, s := range shares {
		f, c := find(rs, "flat16", s), find(rs, "star4x4", s)
		line := fmt.Sprintf("| %.0f %% | %.2f | %.2f | %.2f | %.1f | %.1f | %.2f | %.1f / %.1f |", s*100, f.latency, c.latency, c.latency/f.latency,
			f.thru, c.thru, c.thru/f.thru, f.deliv, c.deliv)
		if withLoad {
			line += fmt.Sprintf(" %.2f / %.2f | %.2f |", f.load, c.load, f.load/c.load)
		}
		fmt.Fprintln(w, line)
	}
}

// chart draws latency and throughput ratios (star4x4 / flat16) against
// the share sent to every group: one line per environment and metric.
func chart(sim, real []row, rt, file string) error {
	p := plot.New()
	p.Title.Text = "Four groups of 4 joined by routers vs one group of 16"
	p.X.Label.Text = "messages addressed to every group (%)"
	p.Y.Label.Text = "star4x4 / flat16"
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	type line struct {
		rs     []row
		label  string
		metric func(r row) float64
		c      color.Color
		dashed bool
	}
	blue := color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	red := color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	green := color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	lines := []line{
		{sim, "latency, simulator", func(r row) float64 { return r.latency }, blue, false},
		{sim, "closed-loop throughput, simulator", func(r row) float64 { return r.thru }, red, false},
		{sim, "capacity (busiest node's load), simulator", func(r row) float64 { return 1 / r.load }, green, false},
	}
	if len(real) > 0 {
		lines = append(lines,
			line{real, "latency, " + rt, func(r row) float64 { return r.latency }, blue, true},
			line{real, "throughput, " + rt, func(r row) float64 { return r.thru }, red, true})
	}
	for _, l := range lines {
		var xys plotter.XYs
		for _, s := range shares {
			f, c := find(l.rs, "flat16", s), find(l.rs, "star4x4", s)
			if l.metric(f) == 0 {
				continue
			}
			xys = append(xys, plotter.XY{X: s * 100, Y: l.metric(c) / l.metric(f)})
		}
		ln, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		ln.Color, ln.Width = l.c, vg.Points(2)
		if l.dashed {
			ln.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
		}
		pts.Color, pts.Shape, pts.Radius = l.c, draw.CircleGlyph{}, vg.Points(3)
		p.Add(ln, pts)
		p.Legend.Add(l.label, ln, pts)
	}
	one, err := plotter.NewLine(plotter.XYs{{X: 10, Y: 1}, {X: 100, Y: 1}})
	if err != nil {
		return err
	}
	one.Color = color.Gray{Y: 0x80}
	p.Add(one)
	p.Y.Min = 0
	p.Y.Max *= 1.4
	return p.Save(7*vg.Inch, 4.5*vg.Inch, file)
}

// subprocess measures one runtime cell in a fresh process.
func subprocess(kind, topo string, share float64, msgs int) (row, error) {
	cmd := exec.Command(os.Args[0], "-nosim", "-runtime", kind, "-runtime-messages", fmt.Sprint(msgs), "-cell", fmt.Sprintf("%s:%v", topo, share))
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return row{}, err
	}
	var r row
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "ROW ") {
			_, err = fmt.Sscanf(l, "ROW %s %g %g %g %g", &r.topo, &r.share, &r.latency, &r.thru, &r.deliv)
			return r, err
		}
	}
	return row{}, fmt.Errorf("no result in %q", b)
}

// stack is one node of the runtime experiment.
type stack struct {
	ep   transport.Transport
	hn   *hwg.Node
	svc  *lwg.Service
	node *compose.Node
}

func (s *stack) close() {
	s.node.Close()
	s.svc.Close()
	s.hn.Close()
	s.ep.Close()
}

// runtimeRun measures one configuration over the real stack.
func runtimeRun(kind, topo string, share float64, msgs int) (row, error) {
	links, members, err := proptest.ComposeTopology(topo)
	if err != nil {
		return row{}, err
	}
	var groups []lwg.ID
	maxNode := 0
	for g, ms := range members {
		groups = append(groups, g)
		for _, m := range ms {
			maxNode = max(maxNode, int(m))
		}
	}
	slices.Sort(groups)
	tp, err := compose.NewTopology(groups, links)
	if err != nil {
		return row{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var boot []hwg.Process
	for i := 1; i <= maxNode; i++ {
		boot = append(boot, hwg.Process{Node: hwg.NodeID(i), Inc: 1})
	}
	mem := transport.NewMemNetwork()
	stacks := map[hwg.NodeID]*stack{}
	defer func() {
		for _, s := range stacks {
			s.close()
		}
	}()
	var tcps []*transport.TCP
	for _, p := range boot {
		s := &stack{}
		if kind == "tcp" {
			t, err := transport.NewTCP(transport.TCPConfig{Cluster: fmt.Sprintf("composebench-%s-%v", topo, share), Self: transport.Peer{Node: uint64(p.Node), Inc: p.Inc}, Listen: "127.0.0.1:0"})
			if err != nil {
				return row{}, err
			}
			tcps = append(tcps, t)
			s.ep = t
		} else {
			s.ep = mem.Endpoint(transport.Peer{Node: uint64(p.Node), Inc: p.Inc})
		}
		nc := hwg.FastTiming(hwg.NodeConfig{Self: p, Transport: s.ep})
		nc.Group.ManualBlockOK = true
		// 19 nodes in one process on a small machine: a 100 ms suspicion
		// (FastTiming's) excludes live nodes under load; 1 s does not.
		nc.Detector.SuspectTicks = 100
		if s.hn, err = hwg.NewNode(nc); err != nil {
			return row{}, err
		}
		if s.svc, err = lwg.NewService(lwg.ServiceConfig{Node: s.hn, DirectoryMembers: boot, TickInterval: nc.TickInterval}); err != nil {
			return row{}, err
		}
		if s.node, err = compose.NewNode(compose.NodeConfig{Router: compose.Config{Self: p, Topology: tp}, Service: s.svc}); err != nil {
			return row{}, err
		}
		stacks[p.Node] = s
	}
	for _, a := range tcps {
		for _, b := range tcps {
			if a != b {
				a.AddPeer(b.Self().Node, b.Addr())
			}
		}
	}
	home := map[hwg.NodeID]lwg.ID{}
	due := map[lwg.ID]int{}
	all := 0
	for _, g := range groups {
		for _, m := range members[g] {
			if err := stacks[m].svc.Join(ctx, g); err != nil {
				return row{}, fmt.Errorf("node %d joining %s: %w", m, g, err)
			}
			if m <= 16 {
				home[m] = g
			}
		}
		due[g] = len(members[g])
		all += len(members[g])
	}
	for _, g := range groups {
		for _, m := range members[g] {
			for {
				ok, err := stacks[m].node.HasState(ctx, g)
				if err != nil {
					v, _, verr := stacks[m].svc.View(context.Background(), g)
					log.Printf("view error %v", verr)
					ex, rj := stacks[m].node.Excluded()
					return row{}, fmt.Errorf("node %d has no routing state of %s (view %v, excluded %d times, rejoined %d, %+v): %w", m, g, v, ex, rj, stacks[m].node.Stats(), err)
				}
				if ok {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	// Track completions: a message is complete when every member of its
	// destination groups delivered it.
	type key struct {
		o   hwg.NodeID
		src lwg.ID
		seq uint64
	}
	var (
		mu      sync.Mutex
		sentAt  = map[key]time.Time{}
		left    = map[key]int{}
		early   = map[key][]time.Time{}
		latSum  time.Duration
		latN    int
		done    int
		slots   = map[hwg.NodeID]chan struct{}{}
		allDone = make(chan struct{})
	)
	const window = 2
	for m := hwg.NodeID(1); m <= 16; m++ {
		slots[m] = make(chan struct{}, window)
		for range window {
			slots[m] <- struct{}{}
		}
	}
	complete := func(k key, at time.Time) {
		latSum += at.Sub(sentAt[k])
		latN++
		left[k]--
		if left[k] == 0 {
			delete(left, k)
			delete(sentAt, k)
			done++
			slots[k.o] <- struct{}{}
			if done == msgs {
				close(allDone)
			}
		}
	}
	for _, s := range stacks {
		go func() {
			for d := range s.node.Deliveries() {
				if !d.Routed {
					continue
				}
				now := time.Now()
				k := key{d.Origin.Node, d.Src, d.Seq}
				mu.Lock()
				if _, ok := sentAt[k]; ok {
					complete(k, now)
				} else {
					early[k] = append(early[k], now)
				}
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	var wg sync.WaitGroup
	per := msgs / 16
	msgs = per * 16
	for m := hwg.NodeID(1); m <= 16; m++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := uint64(m) * 0x9e3779b97f4a7c15
			for i := 0; i < per; i++ {
				select {
				case <-slots[m]:
				case <-ctx.Done():
					return
				}
				rng ^= rng << 13
				rng ^= rng >> 7
				rng ^= rng << 17
				dst, n := home[m], due[home[m]]
				if float64(rng%1000)/1000 < share {
					dst, n = "", all
				}
				t0 := time.Now()
				mu.Lock() // deliveries of this message wait until it is recorded
				var seq uint64
				var err error
				if dst == "" {
					seq, err = stacks[m].node.SendAll(ctx, []byte("x"))
				} else {
					seq, err = stacks[m].node.SendTo(ctx, dst, []byte("x"))
				}
				if err != nil {
					mu.Unlock()
					log.Printf("node %d: %v", m, err)
					return
				}
				k := key{m, home[m], seq}
				sentAt[k], left[k] = t0, n
				for _, at := range early[k] {
					complete(k, at)
				}
				delete(early, k)
				mu.Unlock()
			}
		}()
	}
	select {
	case <-allDone:
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		return row{}, fmt.Errorf("%d of %d messages complete", done, msgs)
	}
	elapsed := time.Since(start)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return row{topo: topo, share: share, latency: float64(latSum.Microseconds()) / 1000 / float64(latN),
		thru: float64(msgs) / elapsed.Seconds(), deliv: float64(latN) / float64(msgs)}, nil
}
