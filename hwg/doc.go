// Package hwg implements heavy-weight groups: primary-component virtual
// synchrony with uniform total order, as a pure, deterministic protocol core.
//
// # The core
//
// A Group is one process's membership in one group. It is driven only by
//
//   - Step(msg): a protocol message from a peer;
//   - Tick(): the passage of one tick of time (the caller chooses its length);
//   - local requests: Bootstrap, Join, Leave, Multicast (MulticastIn: only
//     in the membership of a given view), BlockOK (of a given view's Block),
//     Suspect, Probe;
//
// and it hands back what must happen through Ready: messages to send and
// events for the application (EventInstall, EventDeliver, EventBlock,
// EventSend, EventLeft, EventExcluded). A Group starts no goroutines, reads
// no clock, draws no random numbers and does no I/O, so the same inputs
// always produce the same outputs. That is what lets package proptest run a
// whole cluster in one goroutine under a seeded scheduler and replay any
// failure from its seed.
//
// # The usage loop
//
// One goroutine owns each Group (a node's event loop, or a simulator):
//
//	for {
//		select {
//		case m := <-inbound:       // frames from the transport
//			if err := g.Step(m); err != nil {
//				log(err) // rejected by rule; the group's state did not change
//			}
//		case <-ticker.C:
//			for _, p := range detector.Suspected() {
//				g.Suspect(p)
//			}
//			g.Tick()
//		case payload := <-app:     // local requests
//			g.Multicast(payload)
//		}
//		rd := g.Ready()
//		for _, m := range rd.Messages {
//			transport.Send(m.To.Node, m) // may be lost, duplicated, reordered
//		}
//		for _, e := range rd.Events {
//			deliverToApp(e) // in order
//		}
//	}
//
// Ready batches: every multicast the coordinator sequenced since the last
// Ready leaves in one Order per member, and every multicast a member made
// leaves in one Forward.
//
// # Guarantees
//
// Per group: every member installs the same views in the same order; a new
// view is decided by a majority of the previous one and keeps a majority of
// its members, so a minority partition blocks instead of diverging. Messages
// are delivered in one total order, only once a majority of the view holds
// them (uniform: no survivor can lack a message anyone delivered). Members
// that go from view V to the next deliver the same set of messages in V, and
// a message is delivered in the view it was sent in. Delivery is FIFO per
// sender, with self-delivery, no duplication and integrity.
//
// # The protocol
//
// Normal case: senders Forward multicasts to the view's first member (the
// coordinator and sequencer), which assigns sequence numbers and sends Order
// batches; members Ack the highest contiguous sequence number they hold; the
// commit point is the highest number a majority holds and is piggybacked on
// the next Order. View changes (the flush) are single-decree Paxos per view:
// a proposer with a higher ballot sends Prepare (members raise EventBlock,
// answer once BlockOK, and freeze what they hold), builds a Decision from a
// majority of answers (the old view's final tail and the next view) or
// re-proposes one already accepted, has a majority Accept it, and sends
// Commit. Members deliver the rest of the old view, then install the next.
// Joins and leaves take the same path. See docs/ARCHITECTURE.md for why each
// step is safe.
//
// # Failure detection
//
// Detector is a pure failure detector shared by every group on a node: one
// heartbeat stream per pair of nodes, however many groups they share. Its
// suspicions feed Group.Suspect. Heartbeats should carry the node's
// membership epoch (a counter bumped at every install or exclusion); when a
// peer's epoch changes, call Group.Probe for it, so a member stuck in an old
// view learns that the group moved on without per-group keepalives.
//
// # Bad input
//
// Step rejects, by rule and without changing state, messages for another
// group, node or incarnation, from processes outside the view, and messages
// that break the protocol for their sender (ErrWrongGroup, ErrWrongNode,
// ErrStaleIncarnation, ErrUnknownSender, ErrForged, ErrMalformed). Duplicates
// and messages of older views are not errors: they are expected and ignored
// or answered.
package hwg
