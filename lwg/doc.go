// Package lwg implements light-weight groups (LWGs): many small virtually
// synchronous groups that share a few heavy-weight groups (HWGs, package
// hwg) as carriers, after Rodrigues, Guo et al., "A Transparent Light-Weight
// Group Service".
//
// An LWG offers the interface of an HWG: Join, Leave, Multicast, and the
// upcalls View (EventInstall, with Joined and Left), Deliver and Block
// (Hold.up, answered with HoldOK). Per LWG: every member installs the same
// views in the same order; deliveries are totally ordered, FIFO per sender,
// in the view they were sent in; members that move from one view to the
// next delivered the same messages. Each LWG view is a subset of the view of
// its carrier it was installed in, and an LWG has one carrier at a time.
//
// # The core
//
// Core hosts every LWG endpoint of one node. Like hwg.Group it is a pure,
// deterministic state machine: it is driven only by
//
//   - HWGEvent(e): every event of every HWG on the node, in order;
//   - Tick(): the passage of one tick;
//   - requests: BootstrapDirectory, JoinDirectory, Join, Leave, Multicast,
//     HoldOK, Switch, SetTag;
//
// and hands back, through Ready, Actions for the node's HWGs (bootstrap,
// join, leave, multicast, BlockOK) and Events for the application. It
// starts no goroutines, reads no clock and does no I/O, so package
// proptest runs whole clusters of Cores over real hwg cores in one
// goroutine and replays any run from its seed. Service is the runtime that
// drives a Core from an hwg.Node.
//
// The usage loop (what Service does):
//
//	for {
//		select {
//		case e := <-node.Events():
//			core.HWGEvent(e)
//		case <-ticker.C:
//			core.Tick()
//		case req := <-app:
//			req(core) // core.Join(l), core.Multicast(l, p), ...
//		}
//		rd := core.Ready()
//		for _, a := range rd.Actions {
//			do(node, a) // in order: multicasts and BlockOKs of one group stay ordered
//		}
//		for _, e := range rd.Events {
//			deliverToApp(e)
//		}
//	}
//
// # How it works
//
// Directory. Every node is a member of one cluster-wide HWG, the directory
// ("h/dir"). Its ordered updates bind each LWG to a carrier (one binding per
// LWG at any point of the directory's order, with a version that every
// rebinding names), create carriers for placement bases, and register which
// processes are members of each carrier. Every node holds a copy and reads
// it locally.
//
// Carrier tables. The members of a carrier keep, replicated by its total
// order, the table of every LWG on it: its view and any flush in progress.
// A node that joins a carrier gets the table in a snapshot taken at the
// install that admitted it.
//
// Multiplexing. An application multicast travels as <DATA, lwg, view,
// payload> in the carrier; a member with no endpoint for the LWG drops it
// and counts it (Stats.Interference).
//
// LWG flush. A join or leave, ordered in the carrier, starts the flush of
// the LWG's view: each member raises Hold.up, and once the application
// answers, multicasts FLUSH_OK, which the total order places after its
// earlier messages. The new view installs where the last FLUSH_OK is
// delivered, a point every member computes alike, so the paper's NEWVIEW
// message is implicit. Joins of many LWGs ride in one message, and so do
// the FLUSH_OKs a member owes at once. No HWG view change happens.
//
// Failure multiplexing. A view change of a carrier is the flush of every
// LWG on it: the Core raises Hold.up in each, answers the carrier's Block
// once all have answered, and at the new carrier view installs in each the
// old members that are still in the carrier (completing the joins and
// leaves its own flush had collected). One HWG flush serves n LWGs.
//
// Switch. Switch(l, base) moves an LWG to another carrier: the members join
// it, the LWG flushes on the old carrier with the target named, and the
// point where the flush completes is the switch point in the old carrier's
// order. The first member still in the new carrier then announces the LWG
// there (ADOPT), and the members install its next view there. A member that
// reaches the switch point late replays what the LWG did on the new carrier
// meanwhile. The coordinator then corrects the directory. A view change of
// the old carrier before the switch point cancels the switch, and one
// whose members cannot all join the new carrier in time is abandoned
// (Service.Switch then returns ErrSwitchTimeout).
//
// Tags. An application that keeps an object per LWG attaches it with
// SetTag; the LWG's deliveries carry it in Event.Tag, which spares a lookup
// by ID per message (at 10,000 LWGs, a cache miss or two each).
//
// See docs/ARCHITECTURE.md for the protocol's invariants and its limits.
package lwg
