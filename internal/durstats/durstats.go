// Package durstats prints tables of duration samples for lwgkit's
// build-tagged diagnostics (hwg's hoptrace, rsm's stagetrace).
package durstats

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// WriteTable writes one row per name with samples in d: how many, p50,
// p90, p99 and the mean, rounded to microseconds. label heads the first
// column. It sorts d's slices in place.
func WriteTable(w io.Writer, label string, names []string, d map[string][]time.Duration) {
	fmt.Fprintf(w, "%-8s %8s %10s %10s %10s %10s\n", label, "n", "p50", "p90", "p99", "mean")
	for _, s := range names {
		x := d[s]
		if len(x) == 0 {
			continue
		}
		slices.Sort(x)
		var sum time.Duration
		for _, v := range x {
			sum += v
		}
		p := func(q float64) time.Duration { return x[min(len(x)-1, int(q*float64(len(x))))] }
		fmt.Fprintf(w, "%-8s %8d %10v %10v %10v %10v\n", s, len(x), p(0.5).Round(time.Microsecond),
			p(0.9).Round(time.Microsecond), p(0.99).Round(time.Microsecond), (sum / time.Duration(len(x))).Round(time.Microsecond))
	}
}
