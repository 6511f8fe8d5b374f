// Command benchplot reads the output of the LWG benchmarks (package lwg,
// BenchmarkLWGJoin, BenchmarkLWGRecovery, BenchmarkLWGLeave,
// BenchmarkLWGIdleMemory, BenchmarkLWGData), prints their tables in
// Markdown with the derived ratios, and draws the join and recovery curves
// and the data-transfer latencies:
//
//	go test ./lwg -run '^$' -bench 'LWG(Join|Recovery|Leave|IdleMemory)|CoreJoinBurst' -benchtime 3x -timeout 60m | tee docs/lwg-bench.txt
//	go test ./lwg -run '^$' -bench LWGData -benchtime 1x -timeout 60m | tee -a docs/lwg-bench.txt
//	go run ./lwg/internal/benchplot -in docs/lwg-bench.txt -out docs
//
// It writes docs/lwg-join.png, docs/lwg-recovery.png and docs/lwg-data.png.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"image/color"
	"io"
	"log"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// result is one sub-benchmark's metrics, by unit.
type result map[string]float64

// key is experiment, n and placement ("lwg" or "hwg").
type key struct {
	exp   string
	n     int
	place string
}

var nameRE = regexp.MustCompile(`^Benchmark(LWG\w+)/n=(\d+)/(lwg|hwg)(-\d+)?$`)

// parse reads benchmark lines. Sub-benchmarks of the n/placement
// experiments are keyed; others (the memory benchmark) are kept by name.
func parse(r io.Reader) (map[key]result, map[string]result, error) {
	byKey := map[key]result{}
	byName := map[string]result{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		res := result{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			res[f[i+1]] = v
		}
		if m := nameRE.FindStringSubmatch(f[0]); m != nil {
			n, _ := strconv.Atoi(m[2])
			byKey[key{strings.TrimPrefix(m[1], "LWG"), n, m[3]}] = res
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i]
		}
		byName[name] = res
	}
	return byKey, byName, sc.Err()
}

// sizes returns the n of exp measured for both placements, ascending.
func sizes(rs map[key]result, exp, unit string) []int {
	var out []int
	for k := range rs {
		if k.exp != exp || k.place != "lwg" {
			continue
		}
		if _, ok := rs[key{exp, k.n, "hwg"}][unit]; !ok {
			continue
		}
		if _, ok := rs[k][unit]; ok {
			out = append(out, k.n)
		}
	}
	slices.Sort(out)
	return out
}

// allSizes returns every n of exp measured for either placement.
func allSizes(rs map[key]result, exp string) []int {
	var out []int
	for k := range rs {
		if k.exp == exp && !slices.Contains(out, k.n) {
			out = append(out, k.n)
		}
	}
	slices.Sort(out)
	return out
}

func cell(rs map[key]result, exp string, n int, place, unit string) string {
	return cellf(rs, exp, n, place, unit, "%.1f")
}

func cellf(rs map[key]result, exp string, n int, place, unit, format string) string {
	v, ok := rs[key{exp, n, place}][unit]
	if !ok {
		return "—"
	}
	return fmt.Sprintf(format, v)
}

// slope fits t = a + n·s by least squares over the given sizes.
func slope(rs map[key]result, exp, place, unit string, ns []int) float64 {
	var sx, sy, sxx, sxy float64
	for _, n := range ns {
		x, y := float64(n), rs[key{exp, n, place}][unit]
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	k := float64(len(ns))
	return (k*sxy - sx*sy) / (k*sxx - sx*sx)
}

func table(w io.Writer, rs map[key]result, exp, unit, title string) {
	fmt.Fprintf(w, "\n%s (%s, median)\n\n", title, unit)
	fmt.Fprintln(w, "| n | LWGs on one HWG | one HWG per LWG | LWG / HWG | LWG(n) / LWG(1) |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, n := range allSizes(rs, exp) {
		ratio, rel := "—", "—"
		l, lok := rs[key{exp, n, "lwg"}][unit]
		h, hok := rs[key{exp, n, "hwg"}][unit]
		if lok && hok {
			ratio = fmt.Sprintf("%.3f", l/h)
		}
		if one, ok := rs[key{exp, 1, "lwg"}][unit]; lok && ok {
			rel = fmt.Sprintf("%.2f", l/one)
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s |\n", n, cell(rs, exp, n, "lwg", unit), cell(rs, exp, n, "hwg", unit), ratio, rel)
	}
}

// dataTable prints the data-transfer metrics of both placements.
func dataTable(w io.Writer, rs map[key]result) {
	const exp = "Data"
	if len(allSizes(rs, exp)) == 0 {
		return
	}
	fmt.Fprintf(w, "\nData transfer: every member multicasts 32 B per group every 2 s (10 s window)\n\n")
	fmt.Fprintln(w, "| n | placement | msgs/s | CPU ms/s | frames/s | kB/s | p50 ms | p99 ms |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, n := range allSizes(rs, exp) {
		for _, place := range []string{"lwg", "hwg"} {
			if _, ok := rs[key{exp, n, place}]; !ok {
				continue
			}
			c := func(unit, format string) string { return cellf(rs, exp, n, place, unit, format) }
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s |\n", n, place, c("msgs/s", "%.0f"), c("cpu-ms/s", "%.0f"),
				c("frames/s", "%.0f"), c("kB/s", "%.0f"), c("p50-ms", "%.2f"), c("p99-ms", "%.2f"))
		}
		// The baseline the LWG run measured after itself: the same load
		// over raw TCP (no frames or bytes counted).
		if _, ok := rs[key{exp, n, "lwg"}]["tcp-p99-ms"]; ok {
			c := func(unit, format string) string { return cellf(rs, exp, n, "lwg", unit, format) }
			fmt.Fprintf(w, "| %d | raw TCP | | %s | | | %s | %s |\n", n, c("tcp-cpu-ms/s", "%.0f"), c("tcp-p50-ms", "%.2f"), c("tcp-p99-ms", "%.2f"))
		}
	}
}

// linearTicks labels round steps (1, 2 or 5 times a power of ten, about
// six of them) without decimals.
type linearTicks struct{}

func (linearTicks) Ticks(lo, hi float64) []plot.Tick {
	raw := (hi - lo) / 6
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	step := pow
	for _, m := range []float64{2, 5, 10} {
		if step >= raw {
			break
		}
		step = m * pow
	}
	var out []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		out = append(out, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	return out
}

// series is one line of a chart.
type series struct {
	place, unit, label string
	c                  color.Color
	shape              draw.GlyphDrawer
	dashed             bool
}

var (
	blue = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	red  = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	gray = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
)

func chart(rs map[key]result, exp, unit, title, ylabel, file string, logY bool) error {
	return chartSeries(rs, exp, title, ylabel, file, logY, []series{
		{"lwg", unit, "LWGs on one shared HWG", blue, draw.CircleGlyph{}, false},
		{"hwg", unit, "one HWG per LWG (baseline)", red, draw.TriangleGlyph{}, false},
	})
}

func chartSeries(rs map[key]result, exp, title, ylabel, file string, logY bool, styles []series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "n (groups of 4)"
	p.Y.Label.Text = ylabel
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	if logY {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	} else {
		p.Y.Min = 0
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(10), vg.Points(-10)
	p.Add(plotter.NewGrid())
	drawn := 0
	for _, s := range styles {
		var xys plotter.XYs
		for _, n := range allSizes(rs, exp) {
			if v, ok := rs[key{exp, n, s.place}][s.unit]; ok && v > 0 {
				xys = append(xys, plotter.XY{X: float64(n), Y: v})
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		line.Color, line.Width = s.c, vg.Points(2)
		if s.dashed {
			line.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
		}
		points.Color, points.Shape, points.Radius = s.c, s.shape, vg.Points(4)
		p.Add(line, points)
		p.Legend.Add(s.label, line, points)
		drawn++
	}
	if logY {
		// Whole decades, so that at least two are labelled and the legend
		// (top left) has room above the curves.
		p.Y.Min = 0.999 * math.Pow(10, math.Floor(math.Log10(p.Y.Min)))
		p.Y.Max = math.Pow(10, math.Ceil(math.Log10(p.Y.Max*1.5)))
	} else {
		p.Y.Max *= 1.1
		p.Y.Tick.Marker = linearTicks{}
	}
	if drawn == 0 {
		log.Printf("no %s results: %s not drawn", exp, file)
		return nil
	}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, file)
}

func main() {
	in := flag.String("in", "-", "benchmark output to read (- for stdin)")
	out := flag.String("out", "docs", "directory for the PNG charts")
	flag.Parse()
	var r io.Reader = os.Stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		r = f
	}
	rs, named, err := parse(r)
	if err != nil {
		log.Fatal(err)
	}
	w := os.Stdout
	table(w, rs, "Join", "join-ms", "Join: the 4th node joins n groups")
	if ns := sizes(rs, "Join", "join-ms"); len(ns) >= 2 {
		fit := ns[1:] // n = 1 measures the fixed cost only
		if len(fit) < 2 {
			fit = ns
		}
		l, h := slope(rs, "Join", "lwg", "join-ms", fit), slope(rs, "Join", "hwg", "join-ms", fit)
		fmt.Fprintf(w, "\nSlopes (least squares over n = %v): LWG %.3f ms/group, HWG %.3f ms/group, Flush_LWG/Flush_HWG ≈ %.3f\n", fit, l, h, l/h)
	}
	table(w, rs, "Recovery", "recovery-ms", "Recovery: a member of n groups crashes")
	table(w, rs, "Leave", "leave-ms", "Leave: one node leaves one group while in n")
	dataTable(w, rs)
	if len(named) > 0 {
		fmt.Fprintln(w)
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for k := range named {
				if !yield(k) {
					return
				}
			}
		}) {
			fmt.Fprintf(w, "%s: %v\n", name, named[name])
		}
	}
	if err := chart(rs, "Join", "join-ms", "Join: the 4th member joins n groups (loopback TCP, 4 nodes)", "time until installed in all n (ms)", filepath.Join(*out, "lwg-join.png"), true); err != nil {
		log.Fatal(err)
	}
	if err := chart(rs, "Recovery", "recovery-ms", "Recovery: a member of n groups crashes (loopback TCP, 4 nodes)", "crash to new view in all n at all survivors (ms)", filepath.Join(*out, "lwg-recovery.png"), false); err != nil {
		log.Fatal(err)
	}
	if err := chartSeries(rs, "Data", "Data transfer: delivery latency, 32 B every 2 s per member per group", "Multicast to delivery at the other members (ms)",
		filepath.Join(*out, "lwg-data.png"), true, []series{
			{"lwg", "p50-ms", "LWGs, p50", blue, draw.CircleGlyph{}, false},
			{"lwg", "p99-ms", "LWGs, p99", blue, draw.CircleGlyph{}, true},
			{"hwg", "p50-ms", "one HWG per LWG, p50", red, draw.TriangleGlyph{}, false},
			{"hwg", "p99-ms", "one HWG per LWG, p99", red, draw.TriangleGlyph{}, true},
			{"lwg", "tcp-p99-ms", "raw TCP fan-out, p99", gray, draw.SquareGlyph{}, true},
		}); err != nil {
		log.Fatal(err)
	}
}
