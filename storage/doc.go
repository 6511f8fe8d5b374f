// Package storage keeps a node's durable state in one bbolt file per node:
// its identity and incarnation, the objects it hosts with their applied
// indexes and snapshots, the last installed view of each group, and a cache
// of the LWG directory.
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
// waiting forever. A DB is safe for concurrent use; Close ends it, and every
// later call, on it or on snapshot readers and writers from it, fails with
// ErrClosed.
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
// # Objects, applied indexes, views, directory
//
// PutObject records that the node hosts an object (with the caller's
// description), so that a restart can reopen it; Objects lists them;
// DeleteObject forgets one with its applied index and snapshots.
// SetApplied records how far an object's state has applied its commands.
// SaveView records a group's installed view and never goes backwards: an
// older view id than the recorded one is ignored. SaveDirectory caches the
// directory. Object and group names are non-empty strings of at most
// MaxNameLen bytes (ErrInvalid otherwise); values are the caller's bytes,
// copied in and out.
//
// # Snapshots and generations
//
// An object's snapshot is written as a stream through a SnapshotWriter
// (CreateSnapshot), which cuts it into chunks of Options.ChunkSize bytes,
// each stored as its own value with a CRC-32C, and writes them
// Options.ChunksPerTx at a time in their own transactions: a snapshot never
// is one huge value, and writing one needs at most 2 × ChunksPerTx ×
// ChunkSize bytes of memory (a batch being filled, and one being committed
// in the background meanwhile, with its SHA-256 and CRC-32Cs) and
// ChunksPerTx × ChunkSize of dirty pages however large it is. Commit then
// makes it the object's current snapshot in one transaction, recording its
// size, SHA-256 and the caller's metadata (SnapshotInfo; given to
// CreateSnapshot, or later with SetMeta when it depends on the bytes).
// OpenPending reads the batches of a snapshot still being written that are
// committed so far (SnapshotWriter.Flushed), so that a reader can follow a
// snapshot while it is written.
//
// Each snapshot is a generation: a number unique in the file, increasing
// per object, never reused. After a Commit, the generation that was current
// stays readable as the previous one until the object's next Commit
// deletes it. So a reader (a state transfer to a joiner, say) survives one
// newer snapshot; after two it gets ErrSnapshotGone. OpenSnapshot returns
// a SnapshotReader: a sequential io.Reader that checks the SHA-256 at the
// end, and an io.ReaderAt for ranges. Every Read that needs a chunk, and
// every ReadAt, runs in its own short transaction, so a long transfer pins
// no old pages of the file.
//
// A crash, or a Close, before Commit leaves the previous snapshot current.
// A generation being written is recorded as pending from CreateSnapshot on;
// Abort deletes it, and Open deletes every pending generation with its
// chunks. Of two writers of one object, the first to commit wins; the
// older generation's Commit fails with ErrSnapshotStale.
//
// # Durability rule
//
// Every change is made in a bbolt read-write transaction, and a function
// that changes the file returns only after its transaction has committed,
// and bbolt's commit fsyncs the file. So anything a caller has been told is
// on disk, including an incarnation returned by Start, survives kill -9, and
// power loss on disks that honour fsync. A change is all-or-nothing: a failed
// call, or a crash during one, leaves the file as it was. (A snapshot is one
// change made in several transactions; until its Commit none of it counts.)
// This package never sets bbolt's NoSync. Reads run in read-only
// transactions and see a consistent snapshot.
//
// # Group commit
//
// SetApplied, SaveView, PutObject, CreateSnapshot and the Commit of a
// small snapshot (the last 64 KiB or less) are group-committed with bbolt's
// DB.Batch: calls from concurrent goroutines (one per object, thousands of
// objects) share one transaction and one fsync, and each returns once its
// change is on disk. The price is that a call waits up to
// Options.MaxBatchDelay (default DefaultMaxBatchDelay, 1 ms) for company,
// even when alone; BenchmarkSetApplied measures both sides.
//
// # File layout
//
// Each concern has its own top-level bucket. Integers are 8 bytes,
// big-endian unless noted; strings are their UTF-8 bytes.
//
//	meta/                       created by the first Open
//	    format       uint64     file format version, FormatVersion (2)
//	    nextgen      uint64     next snapshot generation (absent: 1)
//	identity/                   created by the first Start
//	    node         uint64     node id, ≥ 1
//	    cluster      string     cluster name, not empty
//	    incarnation  uint64     incarnation of the latest Start, ≥ 1
//	objects/
//	    <object>     bytes      the caller's info (PutObject)
//	applied/
//	    <object>     uint64     applied index (SetApplied)
//	views/
//	    <group>      uint64 view id, then the caller's members (SaveView)
//	directory/
//	    cache        bytes      the caller's directory (SaveDirectory)
//	snapshots/
//	    <object>     uint64 current generation, uint64 previous (0: none)
//	generations/                committed generations, current or previous
//	    <gen uint64> uint64 size, uint64 chunk size, [32]byte SHA-256,
//	                 uint32 object name length, object, the caller's meta
//	chunks/
//	    <gen uint64><index uint64>  uint32 CRC-32C of the data, then the data
//	pending/                    generations being written
//	    <gen uint64> object
//
// Chunk i of a generation holds bytes [i×chunk size, (i+1)×chunk size) of
// the snapshot; all chunks but the last are full. VerifyTx documents the
// invariants that tie these buckets together and checks them.
//
// Format version 1 had only meta (without nextgen) and identity; Open
// upgrades a version-1 file to version 2 by creating the other buckets.
// Any change to the layout raises the format version. Open refuses a file
// whose version is newer than FormatVersion (ErrFormat), and a bbolt file
// with buckets but no meta bucket, without writing to it. Malformed
// contents give ErrCorrupt, naming the file and what is wrong.
//
// # Testing
//
// Package storagetest checks a file's consistency with bbolt's Tx.Check and
// this package's VerifyTx, and opens files that are checked and closed when
// a test ends. DB.Bolt exposes the bbolt database for it and for tools.
package storage
