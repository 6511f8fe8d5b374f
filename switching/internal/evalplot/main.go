// Command evalplot runs the switching evaluator: the default policy and
// both baselines (one HWG for everything, one HWG per LWG) on every
// workload, priced by one cost model in one run, with the lower bound. It
// prints the Markdown tables of docs/SWITCHING.md and draws its charts:
//
//	go run ./switching/internal/evalplot -out docs
//
// writes docs/switching-cost.png (each placement's total cost per
// workload, relative to the better baseline), docs/switching-hotspot.png
// (cumulative cost over the hot-spot workload) and
// docs/switching-convergence.png (the KV layout started on one HWG: LWGs
// on an HWG of exactly their members, and HWGs, round by round).
package main

import (
	"flag"
	"fmt"
	"image/color"
	"log"
	"math"
	"os"
	"path/filepath"
	"sync"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/lwgkit/lwgkit/switching"
)

func main() {
	seed := flag.Uint64("seed", 1, "workload seed")
	out := flag.String("out", "", "directory for the PNG charts (none if empty)")
	flag.Parse()
	pol := switching.NewDefault(switching.Config{})
	cs := compare(pol, switching.Workloads(*seed))
	stress := compare(pol, switching.StressWorkloads(*seed))
	fromOne := switching.Evaluate(pol, "default", switching.KVFromOneHWG(*seed), switching.CostModel{})

	fmt.Printf("## Workloads (seed %d)\n\n", *seed)
	for _, c := range append(append([]switching.Comparison{}, cs...), stress...) {
		fmt.Printf("- **%s**: %s\n", c.Workload.Name, c.Workload.Note)
	}
	fmt.Printf("\n## Total cost (copies)\n\n%s\n## Where it went\n\n%s\n## Stress cases\n\n%s\n", switching.Table(cs), switching.Breakdown(cs), switching.Table(stress))
	fmt.Printf("## KV layout from one HWG\n\n| round | switches | HWGs | LWGs on an HWG of exactly their members |\n|---|---|---|---|\n")
	for i, r := range fromOne.Series[:8] {
		fmt.Printf("| %d | %d | %d | %d |\n", i, r.Switches, r.HWGs, r.Exact)
	}
	fmt.Printf("\n%d switches in all, the last in round %d of %d; %d HWGs at the end.\n", fromOne.Switches, fromOne.LastSwitch, len(fromOne.Series), fromOne.HWGs)

	if *out == "" {
		return
	}
	for name, draw := range map[string]func(string) error{
		"switching-cost.png":        func(f string) error { return costChart(cs, f) },
		"switching-hotspot.png":     func(f string) error { return seriesChart(find(cs, "hotspot"), f) },
		"switching-convergence.png": func(f string) error { return convergenceChart(fromOne, f) },
	} {
		if err := draw(filepath.Join(*out, name)); err != nil {
			log.Fatalf("%s: %v", name, err)
		}
	}
}

// compare runs the comparison on every workload, two at a time.
func compare(p switching.Policy, ws []*switching.Workload) []switching.Comparison {
	out := make([]switching.Comparison, len(ws))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, w := range ws {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = switching.Compare(p, w, switching.CostModel{})
		})
	}
	wg.Wait()
	return out
}

func find(cs []switching.Comparison, name string) switching.Comparison {
	for _, c := range cs {
		if c.Workload.Name == name {
			return c
		}
	}
	log.Fatalf("no workload %s", name)
	return switching.Comparison{}
}

var (
	blue  = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	red   = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	green = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	grey  = color.RGBA{R: 110, G: 110, B: 110, A: 255}
)

type series struct {
	label string
	c     color.Color
	shape draw.GlyphDrawer
	dash  bool
}

// logTicks labels a log axis at 1, 2 and 5 times powers of ten.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v >= lo && v <= hi {
				out = append(out, plot.Tick{Value: v, Label: fmt.Sprintf("%g", v)})
			}
		}
	}
	return out
}

// intTicks labels a linear axis with whole numbers at a round step.
type intTicks struct{}

func (intTicks) Ticks(lo, hi float64) []plot.Tick {
	step := math.Pow(10, math.Floor(math.Log10(max(hi-lo, 1))))
	if (hi-lo)/step < 3 {
		step /= 2
	}
	step = max(step, 1)
	var out []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		out = append(out, plot.Tick{Value: v, Label: fmt.Sprintf("%.0f", v)})
	}
	return out
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// costChart: per workload, each placement's total cost over the better
// baseline's (log scale), one column of markers per workload.
func costChart(cs []switching.Comparison, file string) error {
	p := newPlot("Total cost relative to the better baseline", "workload", "cost / better baseline")
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, logTicks{}
	ss := []series{
		{"one HWG for everything", red, draw.TriangleGlyph{}, false},
		{"one HWG per LWG", grey, draw.SquareGlyph{}, false},
		{"default policy", blue, draw.CircleGlyph{}, false},
		{"lower bound", green, draw.PlusGlyph{}, false},
	}
	for k, s := range ss {
		var xys plotter.XYs
		for i, c := range cs {
			v := []float64{c.One.Cost.Total(), c.Per.Cost.Total(), c.Policy.Cost.Total(), c.Lower.Total()}[k]
			xys = append(xys, plotter.XY{X: float64(i) + 0.12*float64(k) - 0.18, Y: v / c.Best()})
		}
		pts, err := plotter.NewScatter(xys)
		if err != nil {
			return err
		}
		pts.Color, pts.Shape, pts.Radius = s.c, s.shape, vg.Points(5)
		p.Add(pts)
		p.Legend.Add(s.label, pts)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Workload.Name)
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(cs))-0.4
	p.Y.Min, p.Y.Max = 0.05, 40
	return p.Save(7*vg.Inch, 4.5*vg.Inch, file)
}

// seriesChart: cumulative cost of each placement round by round.
func seriesChart(c switching.Comparison, file string) error {
	p := newPlot(fmt.Sprintf("Cumulative cost, %s workload", c.Workload.Name), "round", "cost (copies)")
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, logTicks{}
	for _, s := range []struct {
		series
		r switching.Result
	}{
		{series{"one HWG for everything", red, nil, false}, c.One},
		{series{"one HWG per LWG", grey, nil, true}, c.Per},
		{series{"default policy", blue, nil, false}, c.Policy},
	} {
		var xys plotter.XYs
		for i, r := range s.r.Series {
			if r.Total > 0 {
				xys = append(xys, plotter.XY{X: float64(i), Y: r.Total})
			}
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		line.Color, line.Width = s.c, vg.Points(2)
		if s.dash {
			line.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
		}
		p.Add(line)
		p.Legend.Add(s.label, line)
	}
	p.Legend.Left = true
	p.X.Tick.Marker = intTicks{}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, file)
}

// convergenceChart: the KV layout started on one HWG, its first rounds.
func convergenceChart(r switching.Result, file string) error {
	p := newPlot("KV layout from one HWG (1,024 LWGs, 5 deciders)", "round", "count")
	n := min(len(r.Series), 12)
	for _, s := range []struct {
		series
		v func(switching.RoundStat) int
	}{
		{series{"LWGs on an HWG of exactly their members", blue, draw.CircleGlyph{}, false}, func(x switching.RoundStat) int { return x.Exact }},
		{series{"switches in the round", red, draw.TriangleGlyph{}, false}, func(x switching.RoundStat) int { return x.Switches }},
		{series{"HWGs ×100", grey, draw.SquareGlyph{}, true}, func(x switching.RoundStat) int { return 100 * x.HWGs }},
	} {
		var xys plotter.XYs
		for i, x := range r.Series[:n] {
			xys = append(xys, plotter.XY{X: float64(i), Y: float64(s.v(x))})
		}
		line, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		line.Color, line.Width = s.c, vg.Points(2)
		if s.dash {
			line.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
		}
		pts.Color, pts.Shape, pts.Radius = s.c, s.shape, vg.Points(4)
		p.Add(line, pts)
		p.Legend.Add(s.label, line, pts)
	}
	p.Legend.Top, p.Legend.YOffs = false, vg.Points(110)
	p.Y.Min = 0
	p.X.Tick.Marker, p.Y.Tick.Marker = intTicks{}, intTicks{}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, file)
}

func init() {
	log.SetFlags(0)
	log.SetOutput(os.Stderr)
}
