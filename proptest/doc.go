// Package proptest is a deterministic cluster simulator and a set of
// checkers for virtual-synchrony invariants, for this repository and for
// users who want to property-test what they build on lwgkit.
//
// # The simulator
//
// Sim runs N nodes, each with the real hwg cores and failure detector, in
// one goroutine over a simulated network with virtual time: messages in
// flight with delays, loss, duplication and reordering; symmetric and
// one-way partitions; crashes and restarts (a restarted node is a new
// incarnation that rejoins); voluntary leaves and joins. All randomness
// comes from Options.Seed, so a run is replayed exactly from its seed, and
// the same Options give a byte-identical trace.
//
// Run performs a whole seeded run: Steps scheduler steps with a random
// workload and random faults, then Heal (every fault stops, crashed nodes
// restart, nodes that left rejoin) and a quiescent phase in which the
// cluster must converge on one view and deliver a final round of
// multicasts. Crashes are planned so that every view a live node is in or
// may install keeps a live majority; a run can still lose its primary
// component when a member's vote is counted after it crashed. Such runs are
// flagged in Stats.PrimaryLost, and only then is liveness not owed.
//
// For rapid state-machine tests, Actions gives the steps and faults as
// rapid actions, Invariant checks the trace after each, and Finish heals and
// checks liveness; rapid then shrinks a failure to a short list of actions.
// The command proptest/cmd/lwgsim runs seeded simulations from the shell.
//
// # Traces
//
// A Trace is a list of events in global order, written as JSON Lines:
//
//	every line: "t" (global step, non-decreasing), "node", "inc" (≥ 1), "ev"
//	"install":  "group" (HWG ids begin h/, LWG ids l/), "view", "members",
//	            "incs" (incarnation of each member), "left" (nodes of the
//	            previous view that left voluntarily); l/ groups also carry
//	            "hwg" and "hwgview"
//	"send":     "group", "view", "msg" (unique id)
//	"deliver":  "group", "view", "msg", "from"
//	"crash":    the process stopped; its state is gone
//	"leave":    "group", "view": the process left voluntarily
//	"apply":    "group", "index", "digest" (replicated objects)
//	"state":    "group", "index", "digest", "from" (the donor's node, absent
//	            when the replica created the state): a replica got the
//	            object's state and applies from index+1 on; "branch" true
//	            when it went on from a kept state after ForgetAbsent (a
//	            life of its own)
//	"heal":     no node; no fault follows it
//
// "incs", "left" and "leave" extend the base schema so checkers can tell
// incarnations apart and can count voluntary leavers on any prefix.
//
// # Checkers
//
// CheckAll runs every checker: self-inclusion, local-monotonicity,
// initial-view, view-agreement, primary-component (HWGs only),
// lwg-carrier, one-carrier, delivery-integrity, no-duplication,
// sending-view, virtual-synchrony (with self-delivery), fifo, total-order
// (no cycle in the union of all processes' delivery orders, not merely
// pairwise agreement) and liveness (after a heal, every live node ends in
// one view with all of them and delivers everything sent in it). Each
// checker has a negative test that feeds it a trace breaking exactly its
// property. Traces from real processes, written in the same schema, are
// checked the same way.
//
// The per-group checkers treat LWGs (ids beginning l/) like HWGs, with two
// differences. LWG view ids increase but may skip values, so where a checker
// needs the view after v (virtual-synchrony) an LWG's is the next higher id
// any process installed, where an HWG's is v+1. And primary-component skips
// LWGs: the carrier HWG is the primary component, and when a member crashes
// an LWG keeps the old members that are in the new HWG view, however few.
// Two checkers tie LWGs to their carriers. lwg-carrier: every LWG install
// names "hwg" and "hwgview", and at that point the installing process's
// latest installed view of hwg is hwgview and contains every member of the
// LWG view (by node, and by incarnation when both installs name them).
// one-carrier: all installs of one LWG view name the same hwg, and a process
// sends and delivers in an LWG only while its latest install of the carrier
// named by its latest install of the LWG is that install's hwgview and it
// has not left the carrier since; so every change of the carrier's view
// must be followed by a new LWG view before the LWG is used again.
//
// Beside the trace, the LWG simulator checks the nodes' state once a run
// has converged, settling on while they fail: lwg-directory-regs (every
// live node holds the directory, all copies agree, and a carrier's
// registered members are exactly the nodes that hold its table) and
// lwg-directory-binding (each LWG a node is in is bound to the live
// carrier its endpoint is on, with no flush or switch left unfinished) and
// lwg-table-agreement (the holders of a carrier's table agree on the
// carrier's view and on every LWG's view in it).
package proptest
