// Package storage will keep a node's durable state in one bbolt file:
// identity and incarnation, last installed views, snapshots and applied
// indexes.
//
// Not built yet: this package holds no code.
package storage
