package switching_test

import (
	"math"
	"reflect"
	"sync"
	"testing"

	"github.com/lwgkit/lwgkit/switching"
)

// compareAll runs the evaluator's comparison on every workload, two at a
// time.
func compareAll(ws []*switching.Workload) []switching.Comparison {
	out := make([]switching.Comparison, len(ws))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, w := range ws {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = switching.Compare(switching.NewDefault(switching.Config{}), w, switching.CostModel{})
		})
	}
	wg.Wait()
	return out
}

var (
	evalOnce sync.Once
	evalRes  []switching.Comparison
	fromOne  switching.Result
)

// evaluation is the comparison on the evaluator's workloads (seed 1),
// computed once per test binary, with the default policy's run of the KV
// layout started on one HWG (where the baselines mean nothing: every
// placement starts there).
func evaluation() ([]switching.Comparison, switching.Result) {
	evalOnce.Do(func() {
		var wg sync.WaitGroup
		wg.Go(func() {
			fromOne = switching.Evaluate(switching.NewDefault(switching.Config{}), "default", switching.KVFromOneHWG(1), switching.CostModel{})
		})
		evalRes = compareAll(switching.Workloads(1))
		wg.Wait()
	})
	return evalRes, fromOne
}

// TestKVLayoutEndsExact: on the KV layout (5 nodes, R = 3, 1,024 shards by
// rendezvous hashing) the default policy ends with every LWG on an HWG of
// exactly its members, at most 10 HWGs, and no switch once it got there;
// also when every shard starts on one HWG.
func TestKVLayoutEndsExact(t *testing.T) {
	cs, one := evaluation()
	var rs []switching.Result
	for _, c := range cs {
		if c.Workload.Name == "kv" {
			rs = append(rs, c.Policy)
		}
	}
	if len(rs) != 1 {
		t.Fatal("no kv workload")
	}
	rounds := switching.KVLayout(1).Rounds
	for _, r := range append(rs, one) {
		t.Logf("%s: %d switches, the last in round %d of %d; %d HWGs; %d of %d LWGs exact", r.Workload, r.Switches, r.LastSwitch, rounds, r.HWGs, r.Exact, r.Live)
		if r.Live != 1024 || r.Exact != r.Live {
			t.Errorf("%s: %d of %d LWGs on an HWG of exactly their members, want all 1,024", r.Workload, r.Exact, r.Live)
		}
		if r.HWGs > 10 {
			t.Errorf("%s: %d HWGs, want at most 10", r.Workload, r.HWGs)
		}
		// Converged early: no switch in the last 90% of the run (which
		// holds the crash and restart of node 4).
		if r.LastSwitch < 0 || r.LastSwitch >= rounds/10 {
			t.Errorf("%s: last switch in round %d, want one early and none after", r.Workload, r.LastSwitch)
		}
		if r.Switches > 1024+10 {
			t.Errorf("%s: %d switches for 1,024 LWGs", r.Workload, r.Switches)
		}
	}
}

// TestPolicyAgainstBaselines: on every workload the default policy costs
// at most 1.2 times the better baseline, and less than both on the mixed
// ones; the lower bound is below everything.
func TestPolicyAgainstBaselines(t *testing.T) {
	cs, _ := evaluation()
	t.Logf("\n%s", switching.Table(cs))
	for _, c := range cs {
		p, one, per := c.Policy.Cost.Total(), c.One.Cost.Total(), c.Per.Cost.Total()
		if c.Ratio() > 1.2 {
			t.Errorf("%s: default %.0f, %.2f times the better baseline (one HWG %.0f, one per LWG %.0f)", c.Workload.Name, p, c.Ratio(), one, per)
		}
		if c.Workload.Mixed && (p >= one || p >= per) {
			t.Errorf("%s (mixed): default %.0f not below both baselines (%.0f, %.0f)", c.Workload.Name, p, one, per)
		}
		// No flapping: an LWG switches again only when its members or
		// traffic change (churn replaces nodes in an LWG up to 4 times).
		if c.Policy.MostSwitched > 5 {
			t.Errorf("%s: an LWG switched %d times", c.Workload.Name, c.Policy.MostSwitched)
		}
		for _, r := range []switching.Result{c.Policy, c.One, c.Per} {
			if lb := c.Lower.Total(); r.Cost.Total() < lb {
				t.Errorf("%s: %s costs %.0f, below the lower bound %.0f", c.Workload.Name, r.Policy, r.Cost.Total(), lb)
			}
		}
	}
}

// TestBaselinesBehave: the evaluator prices the baselines as they are: one
// HWG filters every message at the nodes outside its LWG and never has
// more than one HWG; one HWG per LWG filters nothing and makes one per LWG.
func TestBaselinesBehave(t *testing.T) {
	cs, _ := evaluation()
	for _, c := range cs {
		if c.Workload.Name != "kv" {
			continue
		}
		// 1,024 shards × 2 messages × 300 rounds (jitter averages out),
		// 2 outside nodes each, a little less while node 4 is down.
		want := 1024 * 2.0 * 300 * 2
		if got := c.One.Filtered; math.Abs(got-want)/want > 0.05 {
			t.Errorf("one HWG filtered %.0f copies, want about %.0f", got, want)
		}
		if c.One.HWGs != 1 || c.One.Switches != 0 {
			t.Errorf("one HWG: %d HWGs, %d switches", c.One.HWGs, c.One.Switches)
		}
		if c.Per.Filtered != 0 || c.Per.Creates != 1024 || c.Per.HWGs != 1024 || c.Per.MaxPerNode < 500 {
			t.Errorf("one per LWG: filtered %.0f, created %d, %d at the end, %d per node", c.Per.Filtered, c.Per.Creates, c.Per.HWGs, c.Per.MaxPerNode)
		}
		return
	}
	t.Fatal("no kv workload")
}

func TestEvaluateDeterministic(t *testing.T) {
	w := switching.HotSpot(7)
	a := switching.Evaluate(switching.NewDefault(switching.Config{}), "d", w, switching.CostModel{})
	b := switching.Evaluate(switching.NewDefault(switching.Config{}), "d", w, switching.CostModel{})
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two evaluations of one workload differ")
	}
}

// TestStressCasesBounded: on cases built for one baseline to be right, the
// default policy stays within twice it (docs/SWITCHING.md explains where
// and why it loses: an LWG whose traffic is unknown shares first).
func TestStressCasesBounded(t *testing.T) {
	for _, c := range compareAll(switching.StressWorkloads(1)) {
		t.Logf("%s: default %.0f, one HWG %.0f, one per LWG %.0f: %.2f of the better", c.Workload.Name, c.Policy.Cost.Total(), c.One.Cost.Total(), c.Per.Cost.Total(), c.Ratio())
		if c.Ratio() > 2 {
			t.Errorf("%s: %.2f times the better baseline", c.Workload.Name, c.Ratio())
		}
	}
}
