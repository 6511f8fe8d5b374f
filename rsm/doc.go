// Package rsm hosts replicated objects: deterministic state machines
// (StateMachine: Apply, Snapshot, Restore), each replicated on a few nodes
// in its own light-weight group, thousands per node.
//
// # Use
//
// A process runs one Node, usually through Start, which also starts the
// node's data file, HWG node and LWG service:
//
//	n, err := rsm.Start(ctx, rsm.StartConfig{Node: 1, Cluster: "prod", DataDir: dir,
//		Listen: ":7000", Bootstrap: true})
//	obj, err := n.Open(ctx, "accounts/42", newAccount) // on each replica node
//	res, err := obj.Propose(ctx, cmd)                  // applied in total order
//	val, err := obj.Read(ctx, query)                   // linearizable
//	err = obj.ProposeAsync(cmd, func(res []byte, err error) { ... })
//
// ProposeAsync is Propose without a goroutine waiting on each command: a
// client keeps many in flight and gets each outcome in a callback, which
// runs on one of the node's goroutines and must not block.
//
// Open is called on every node that should hold a replica (the caller, or
// its placement function, chooses them); the first Open anywhere creates
// the object's group. Close leaves it. A restarted node lists its objects
// with Stored and opens them again.
//
// # Guarantees
//
// Commands are delivered to every replica in one total order by the LWG
// layer, which delivers a message only once a majority of the carrier HWG
// holds it: an acknowledged Propose survives any minority failure. Apply
// runs on each replica in that order; Propose returns the local replica's
// result. Read places a marker in the same order and answers at it, so it
// sees every command acknowledged before it started; StaleRead answers
// from the local state at once.
//
// A Propose whose context ends returns an error wrapping ErrNotApplied if
// the command was never handed to the group (it will not be applied), or
// ErrUnknown if it was (it may be applied); ErrNotApplied is always safe to
// retry. If this node is excluded from the object's group (suspected, or
// partitioned away), waiting proposals end with ErrUnknown, and the Node
// joins again by itself as a new member. A Read never ends with
// ErrUnknown: it changes nothing, so a read without an answer wraps
// ErrNotApplied.
//
// # State transfer
//
// A joiner's state is a snapshot taken exactly at the point of the total
// order where the view that adds it is installed: the first member of the
// view that holds the state takes it there and offers it. Small states
// (up to Config.ChunkSize) travel in the offer; larger ones are written to
// the donor's data file and fetched in chunks with a window of
// Config.TransferWindow bytes, written to the joiner's data file as they
// arrive and restored from there, so the state is never held whole in
// memory. The joiner queues every delivery from its join on, applies those
// after the snapshot's point once restored, and then announces it in the
// total order. If the donor fails, the next view names another; the joiner
// can use any snapshot taken at or after its join, and asks again for what
// is lost.
//
// If every member holding an object's state leaves its group before a
// joiner restored (a lone replica excluded while its first joiners fetch,
// say), the members left run a claim round in total order: each says what
// state it has (from before an exclusion, or a local snapshot), and all
// pick the same best one to go on from; commands only the departed
// holders applied are lost. Starting over from nothing waits for a few
// rounds, in case a holder partitioned away comes back.
//
// Restart rule: a restarted node is a new incarnation, so it rejoins each
// object as a new member and always receives a full snapshot from a donor.
// Its local snapshot serves StaleRead until then, and is the state of a
// group that a restarted node creates anew (when no member survived): after
// losing every replica at once, an object is as recent as the local
// snapshot of the first node to reopen it. Local snapshots are written
// every Config.SnapshotEvery commands or Config.SnapshotInterval, by the
// worker applying the object, which holds no other object up.
//
// # Concurrency
//
// All methods are safe for concurrent use. Apply, Snapshot, Restore and
// Query of one object are never called concurrently with each other,
// except Query from StaleRead, which may run beside another object's
// calls but never beside its own object's Apply.
package rsm
