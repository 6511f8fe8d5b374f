package switching

import (
	"fmt"
	"strings"
)

// Comparison is the default policy and the two baselines run on one
// workload, with the lower bound.
type Comparison struct {
	Workload *Workload
	Policy   Result
	One      Result // one HWG for everything
	Per      Result // one HWG per LWG
	Lower    Cost
}

// Compare runs p (named "default" in the results) and both baselines on w
// in one go, with the same cost model.
func Compare(p Policy, w *Workload, m CostModel) Comparison {
	return Comparison{
		Workload: w,
		Policy:   Evaluate(p, "default", w, m),
		One:      Evaluate(OneHWG{}, "one-hwg", w, m),
		Per:      Evaluate(PerLWG{}, "per-lwg", w, m),
		Lower:    LowerBound(w, m),
	}
}

// Best returns the better baseline's total cost.
func (c Comparison) Best() float64 { return min(c.One.Cost.Total(), c.Per.Cost.Total()) }

// Ratio is the policy's total over the better baseline's.
func (c Comparison) Ratio() float64 { return c.Policy.Cost.Total() / c.Best() }

// OverLower is the policy's total over the lower bound.
func (c Comparison) OverLower() float64 { return c.Policy.Cost.Total() / c.Lower.Total() }

// Table renders comparisons as a Markdown table: total cost of each
// placement, the policy's ratio to the better baseline and to the lower
// bound, and what the policy did.
func Table(cs []Comparison) string {
	var b strings.Builder
	b.WriteString("| workload | one HWG | HWG per LWG | default | lower bound | default / better baseline | default / lower bound | switches (most of one LWG) | last switch | HWGs (end) | HWGs per node (max, peak) | exact LWGs |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range cs {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | **%.3f** | %.2f | %d (%d) | %s | %d | %d, %d | %d / %d |\n",
			c.Workload.Name, num(c.One.Cost.Total()), num(c.Per.Cost.Total()), num(c.Policy.Cost.Total()), num(c.Lower.Total()),
			c.Ratio(), c.OverLower(), c.Policy.Switches, c.Policy.MostSwitched, lastSwitch(c.Policy.LastSwitch), c.Policy.HWGs,
			c.Policy.MaxPerNode, c.Policy.PeakPerNode, c.Policy.Exact, c.Policy.Live)
	}
	return b.String()
}

// Breakdown renders, per workload and placement, what the cost was spent
// on.
func Breakdown(cs []Comparison) string {
	var b strings.Builder
	b.WriteString("| workload | placement | interference | HWG view changes | HWG joins | LWG flushes | installs | HWG flushes (count) | LWG flushes (count) | HWGs created | HWGs per node (end, mean) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range cs {
		for _, r := range []Result{c.One, c.Per, c.Policy} {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %d | %d | %d | %.1f |\n", c.Workload.Name, r.Policy,
				num(r.Cost.Interference), num(r.Cost.ViewChanges), num(r.Cost.Joins), num(r.Cost.LWGFlushes), num(r.Cost.Installs),
				r.HWGFlushes, r.LWGFlushes, r.Creates, r.MeanPerNode)
		}
		fmt.Fprintf(&b, "| %s | lower bound | 0 | %s | %s | %s | %s | | | | |\n", c.Workload.Name,
			num(c.Lower.ViewChanges), num(c.Lower.Joins), num(c.Lower.LWGFlushes), num(c.Lower.Installs))
	}
	return b.String()
}

func lastSwitch(r int) string {
	if r < 0 {
		return "none"
	}
	return fmt.Sprint(r)
}

// num formats a cost with thousands separators.
func num(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
