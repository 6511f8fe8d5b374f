// Package switching decides where every light-weight group lives: on which
// heavy-weight group (carrier) of package lwg. It has three parts.
//
// Policies. A Policy is a pure function from a Snapshot (LWG members and
// traffic, carriers and their members, a little history) to Actions:
// create an HWG for a member set, switch an LWG to an HWG, retire an empty
// HWG, merge identical ones. NewDefault returns the default policy, with
// the rules of the design (share, interference, minimality, hysteresis);
// OneHWG and PerLWG are the two baselines. Policies have no goroutines,
// clocks, randomness or I/O, so every node that sees the same snapshot
// decides alike, and the offline evaluator replays them exactly.
//
// The runtime. A Planner turns one node's lwg.Observation into a Snapshot
// (rates from the LWG layer's traffic counters) and asks the policy; the
// node decides only for the LWGs whose view it heads (View.Members[0]), so
// no two nodes switch one LWG. A Rebalancer runs a Planner every Interval
// against a Layer (an *lwg.Service) and carries the switches out with
// Layer.Switch. "Create an HWG with members M" needs no call of its own: a
// switch to a base the directory does not know creates its carrier, and
// MemberBase(M) names the same base for every LWG of M, so they share it.
//
//	reb, err := switching.NewRebalancer(switching.RebalancerConfig{Layer: svc})
//	if err != nil { ... }
//	go reb.Run(ctx) // one per node; returns when ctx ends
//
// The evaluator. Evaluate runs a policy over a Workload (LWG member sets,
// traffic, churn, round by round), prices what it does with a CostModel
// (interference copies, HWG view changes and joins, LWG flushes and
// switches, installs), and Compare sets the default policy beside both
// baselines and a LowerBound. The workloads of docs/SWITCHING.md are
// KVLayout, RandomOverlap, Churn and HotSpot; switching/internal/evalplot
// prints the tables and draws the charts.
//
// The thresholds, the cost model's measured prices and the results are in
// docs/SWITCHING.md.
package switching
