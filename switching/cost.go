package switching

// CostModel prices what a placement makes the system do. The unit is one
// data message delivered at one node (a "copy"): interference is priced in
// copies delivered at nodes outside the LWG, and every other price says how
// many copies cost as much. The defaults come from BenchmarkCostModel, which
// measures all of them in one run (docs/SWITCHING.md, "Cost model").
type CostModel struct {
	// ViewChange is the price of one HWG view change (its flush: Block,
	// the ballot's two rounds, commit), per member of the view being
	// flushed.
	ViewChange float64
	// Join is what a node joining an HWG costs beyond the view change:
	// the directory registration and the carrier table's snapshot.
	Join float64
	// LWGFlush is the price of one LWG flush: a join, a leave, or either
	// half of a switch (the flush on the old HWG and the announcement on
	// the new one).
	LWGFlush float64
	// LWGInstall is the price of one LWG view installed at one member when
	// its carrier changes view (failure multiplexing raises Hold.up and
	// installs in every LWG of the carrier, at each of its members).
	LWGInstall float64
}

// DefaultCost is the measured cost model (docs/SWITCHING.md).
var DefaultCost = CostModel{ViewChange: 6, Join: 40, LWGFlush: 25, LWGInstall: 2.5}

func (m CostModel) withDefaults() CostModel {
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&m.ViewChange, DefaultCost.ViewChange)
	def(&m.Join, DefaultCost.Join)
	def(&m.LWGFlush, DefaultCost.LWGFlush)
	def(&m.LWGInstall, DefaultCost.LWGInstall)
	return m
}

// viewChange prices one view change of an HWG whose flushed view has k
// members.
func (m CostModel) viewChange(k int) float64 { return m.ViewChange * float64(max(k, 1)) }

// join prices one node joining an HWG that has k members after the join.
func (m CostModel) join(k int) float64 { return m.viewChange(k) + m.Join }

// create prices an HWG brought up to k members, one join after the other
// (the first bootstraps it).
func (m CostModel) create(k int) float64 {
	c := 0.0
	for i := 1; i <= k; i++ {
		c += m.join(i)
	}
	return c
}

// switchFlushes prices the two LWG flushes of a switch.
func (m CostModel) switchFlushes() float64 { return 2 * m.LWGFlush }

// standing is what an HWG of k members carrying LWGs with m members in
// all costs per round when each node has churn membership events per
// round: each event is a view change of the HWG, with an install of every
// LWG at each of its members.
func (m CostModel) standing(k, members int, churn float64) float64 {
	return churn * float64(k) * (m.viewChange(k) + m.LWGInstall*float64(members))
}
