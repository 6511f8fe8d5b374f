// Package rsm will provide replicated objects: deterministic state machines
// (Apply, Snapshot, Restore), each in its own light-weight group, with
// Propose, linearizable Read and state transfer.
//
// Not built yet: this package holds no code.
package rsm
