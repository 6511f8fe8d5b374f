// Package storage keeps a node's durable state in one bbolt file per node.
// Today that is the node's identity and incarnation; later it will also hold
// the last installed views, snapshots and applied indexes.
//
// # Use
//
// A node runtime opens its file and starts a new incarnation before it does
// anything else:
//
//	db, err := storage.Open(path, storage.Options{})
//	id, err := db.Start(node, cluster) // id.Incarnation is new and durable
//
// Open takes bbolt's file lock. A second Open of the same file, from this
// process or another, fails with ErrLocked after Options.Timeout rather than
// waiting forever.
//
// # Identity and incarnations
//
// The first Start on a file records the node id, the cluster name and
// incarnation 1. Every later Start must name the same node and cluster
// (ErrWrongNode: someone else's data directory; ErrWrongCluster: wrong
// cluster name) and records the next incarnation. A process that restarts is
// thus always a new incarnation (an hwg.Process with a higher Inc), which is
// what the protocol needs to tell a restarted node from its old self.
//
// # Durability rule
//
// Every change is made in one bbolt read-write transaction, and a function
// that changes the file returns only after the transaction has committed,
// and bbolt's commit fsyncs the file. So anything a caller has been told is
// on disk, including an incarnation returned by Start, survives kill -9, and
// power loss on disks that honour fsync. A change is all-or-nothing: a failed
// call, or a crash during one, leaves the file as it was. This package never
// sets bbolt's NoSync.
// Reads run in read-only transactions and see a consistent snapshot.
//
// # File layout
//
// Each concern has its own top-level bucket. Integers are 8 bytes,
// big-endian; strings are their UTF-8 bytes.
//
//	meta/                   created by the first Open
//	    format       uint64 file format version, FormatVersion (1)
//	identity/               created by the first Start
//	    node         uint64 node id, ≥ 1
//	    cluster      string cluster name, not empty
//	    incarnation  uint64 incarnation of the latest Start, ≥ 1
//
// Later formats add top-level buckets beside these (views per group,
// snapshots, applied indexes), each keyed so that it can be read and
// replaced on its own. Any change to the layout raises the format version.
// Open refuses a file whose version is newer than FormatVersion (ErrFormat),
// and a bbolt file with buckets but no meta bucket, without writing to it; a
// newer version of this package will upgrade older files when it opens
// them.
//
// # Testing
//
// Package storagetest checks a file's consistency with bbolt's Tx.Check.
// DB.Bolt exposes the bbolt database for it and for tools.
package storage
