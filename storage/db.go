package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FormatVersion is the file format this version writes and reads. Open
// upgrades files of older versions to it.
const FormatVersion = 2

// DefaultTimeout is how long Open waits for another DB to release the file
// when Options.Timeout is zero.
const DefaultTimeout = time.Second

// Snapshot chunking defaults and limits; see Options.
const (
	DefaultChunkSize   = 1 << 20
	MaxChunkSize       = 64 << 20
	DefaultChunksPerTx = 4
	MaxChunksPerTx     = 1024
)

// DefaultMaxBatchDelay is how long a group-committed call waits for others
// to share its transaction when Options.MaxBatchDelay is zero. bbolt's own
// default, 10 ms, makes a lone caller wait 10 ms for every call;
// BenchmarkSetApplied measures the trade-off.
const DefaultMaxBatchDelay = time.Millisecond

// MaxNameLen is the longest object or group name, in bytes.
const MaxNameLen = 4096

// Options configures Open. The zero value is ready to use.
type Options struct {
	// Timeout bounds how long Open waits for the file lock held by another
	// open DB (in this process or another) before it fails with ErrLocked.
	// Zero means DefaultTimeout; negative is invalid.
	Timeout time.Duration

	// ChunkSize is the size in bytes of the chunks a SnapshotWriter cuts its
	// stream into (the last chunk may be shorter). Zero means
	// DefaultChunkSize (1 MiB); at most MaxChunkSize. Each snapshot records
	// its own chunk size, so changing it does not affect stored snapshots.
	ChunkSize int

	// ChunksPerTx is the most chunks a SnapshotWriter writes in one
	// transaction. It bounds both the writer's buffer and the dirty pages of
	// one commit to ChunksPerTx × ChunkSize bytes. Zero means
	// DefaultChunksPerTx (4); at most MaxChunksPerTx.
	ChunksPerTx int

	// MaxBatchDelay and MaxBatchSize tune group commit (bbolt's DB.Batch):
	// a group-committed call waits up to MaxBatchDelay for others to share
	// its transaction and fsync, and at most MaxBatchSize calls share one.
	// Zero means DefaultMaxBatchDelay (1 ms) and bbolt's default size
	// (1000); negative is invalid.
	MaxBatchDelay time.Duration
	MaxBatchSize  int
}

// DB is one node's storage file. Its methods are safe for concurrent use.
// A DB owns its file from Open to Close; snapshot readers and writers it
// hands out fail with ErrClosed once it is closed.
type DB struct {
	bolt        *bbolt.DB
	path        string
	chunkSize   int
	chunksPerTx int
	closed      atomic.Bool
}

// Open opens the storage file at path, creating it (mode 0600) if it does not
// exist. The directory must exist. Only one DB may have a file open at a
// time: Open fails with ErrLocked if another does not release it within
// opts.Timeout. Open fails with ErrFormat, leaving the file unchanged, if the
// file is not a storage file of FormatVersion or older.
//
// Open upgrades a file of an older format to FormatVersion, and removes the
// chunks of snapshots that were being written when the file was last
// closed or its process died, in one transaction, before it returns.
func Open(path string, opts Options) (*DB, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout})
	switch {
	case err == nil:
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s (Options.Timeout %v): %w", ErrLocked, path, timeout, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch),
		errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("%w: %s: %w", ErrFormat, path, err)
	default:
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	b.MaxBatchDelay = DefaultMaxBatchDelay
	if opts.MaxBatchDelay > 0 {
		b.MaxBatchDelay = opts.MaxBatchDelay
	}
	if opts.MaxBatchSize > 0 {
		b.MaxBatchSize = opts.MaxBatchSize
	}
	db := &DB{bolt: b, path: path, chunkSize: opts.ChunkSize, chunksPerTx: opts.ChunksPerTx}
	if db.chunkSize == 0 {
		db.chunkSize = DefaultChunkSize
	}
	if db.chunksPerTx == 0 {
		db.chunksPerTx = DefaultChunksPerTx
	}
	if err := db.prepare(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

func (o Options) check() error {
	switch {
	case o.Timeout < 0:
		return fmt.Errorf("%w: negative timeout %v", ErrInvalid, o.Timeout)
	case o.ChunkSize < 0 || o.ChunkSize > MaxChunkSize:
		return fmt.Errorf("%w: chunk size %d, want 0 to %d", ErrInvalid, o.ChunkSize, MaxChunkSize)
	case o.ChunksPerTx < 0 || o.ChunksPerTx > MaxChunksPerTx:
		return fmt.Errorf("%w: %d chunks per transaction, want 0 to %d", ErrInvalid, o.ChunksPerTx, MaxChunksPerTx)
	case o.MaxBatchDelay < 0:
		return fmt.Errorf("%w: negative batch delay %v", ErrInvalid, o.MaxBatchDelay)
	case o.MaxBatchSize < 0:
		return fmt.Errorf("%w: negative batch size %d", ErrInvalid, o.MaxBatchSize)
	}
	return nil
}

// fileState is what Open finds in a file.
type fileState struct {
	fresh   bool   // no buckets at all
	version uint64 // recorded format version, if not fresh
	pending bool   // chunks of unfinished snapshots to remove
}

func (s fileState) needsWrite() bool {
	return s.fresh || s.version < FormatVersion || s.pending
}

// prepare checks the file's format and, if needed, initializes a new file,
// upgrades an old one and removes unfinished snapshots. A file that needs
// none of that is only read, so opening never writes to a file it refuses.
func (db *DB) prepare() error {
	var st fileState
	err := db.view(func(tx *bbolt.Tx) error {
		var err error
		st, err = db.inspect(tx)
		return err
	})
	if err != nil || !st.needsWrite() {
		return err
	}
	return db.update(func(tx *bbolt.Tx) error {
		st, err := db.inspect(tx)
		if err != nil {
			return err
		}
		if st.fresh || st.version < FormatVersion {
			// Version 1 had meta and identity; version 2 adds the rest.
			meta, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return err
			}
			for _, name := range bucketsV2 {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			if err := meta.Put(keyFormat, encodeUint(FormatVersion)); err != nil {
				return err
			}
		}
		return db.removePending(tx)
	})
}

// inspect reports the state of the file tx sees, or an error if this
// version cannot use it.
func (db *DB) inspect(tx *bbolt.Tx) (fileState, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if k, _ := tx.Cursor().First(); k != nil {
			return fileState{}, fmt.Errorf("%w: %s: bbolt file without a %q bucket", ErrFormat, db.path, bucketMeta)
		}
		return fileState{fresh: true}, nil
	}
	v, err := checkVersion(meta, db.path)
	if err != nil {
		return fileState{}, err
	}
	st := fileState{version: v}
	if v < FormatVersion {
		return st, nil
	}
	for _, name := range bucketsV2 {
		if tx.Bucket(name) == nil {
			return fileState{}, fmt.Errorf("%w: %s: format version %d without a %q bucket", ErrCorrupt, db.path, v, name)
		}
	}
	k, _ := tx.Bucket(bucketPending).Cursor().First()
	st.pending = k != nil
	return st, nil
}

// checkVersion reads the format version from the meta bucket. The error,
// if any, wraps ErrFormat or ErrCorrupt, and names path if it is not empty.
func checkVersion(meta *bbolt.Bucket, path string) (uint64, error) {
	where := ""
	if path != "" {
		where = path + ": "
	}
	v, ok := decodeUint(meta.Get(keyFormat))
	switch {
	case !ok:
		return 0, fmt.Errorf("%w: %sbad or missing format version", ErrCorrupt, where)
	case v > FormatVersion:
		return 0, fmt.Errorf("%w: %sformat version %d, this version reads up to %d", ErrFormat, where, v, FormatVersion)
	case v < 1:
		return 0, fmt.Errorf("%w: %sformat version %d", ErrCorrupt, where, v)
	}
	return v, nil
}

// Close closes the file. It waits for transactions in progress. Later calls
// on the DB, and on snapshot readers and writers from it, fail with
// ErrClosed; a second Close does nothing. Snapshots being written are not
// committed; the next Open removes their chunks.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("storage: close %s: %w", db.path, err)
	}
	return nil
}

// Path returns the file's path.
func (db *DB) Path() string { return db.path }

// Bolt returns the underlying bbolt database, for tests and tools (such as
// storagetest.Check). Writing through it bypasses this package's checks.
func (db *DB) Bolt() *bbolt.DB { return db.bolt }

// view runs fn in a read-only transaction. fn's error is returned as is;
// bbolt's own are wrapped with the path, and a closed DB gives ErrClosed.
func (db *DB) view(fn func(tx *bbolt.Tx) error) error {
	if db.closed.Load() {
		return db.errClosed()
	}
	var fnErr error
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	return db.wrap(err, fnErr)
}

// update runs fn in a read-write transaction. If fn returns nil the
// transaction commits, and the commit is on disk (fsync'd) before update
// returns; otherwise nothing is written. Errors are as for view.
func (db *DB) update(fn func(tx *bbolt.Tx) error) error {
	if db.closed.Load() {
		return db.errClosed()
	}
	var fnErr error
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	return db.wrap(err, fnErr)
}

// batch is update with group commit: concurrent calls may share one
// transaction and its fsync (bbolt's DB.Batch). fn may run more than once,
// in transactions that are rolled back, so it must have no effect outside
// tx but what the last run decides. If fn returns an error nothing of it is
// written; the others in its batch are not affected.
func (db *DB) batch(fn func(tx *bbolt.Tx) error) error {
	if db.closed.Load() {
		return db.errClosed()
	}
	var fnErr error
	err := db.bolt.Batch(func(tx *bbolt.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	return db.wrap(err, fnErr)
}

func (db *DB) wrap(err, fnErr error) error {
	switch {
	case err == nil || err == fnErr:
		return err
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return db.errClosed()
	}
	return fmt.Errorf("storage: %s: %w", db.path, err)
}

func (db *DB) errClosed() error { return fmt.Errorf("%w: %s", ErrClosed, db.path) }

// corrupt returns an error wrapping ErrCorrupt that names the file.
func (db *DB) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrCorrupt, db.path, fmt.Sprintf(format, args...))
}

// checkName checks an object or group name.
func checkName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty %s name", ErrInvalid, kind)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: %s name of %d bytes, at most %d", ErrInvalid, kind, len(name), MaxNameLen)
	}
	return nil
}

// encodeUint and decodeUint store integers as 8 bytes, big-endian.
func encodeUint(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeUint(b []byte) (uint64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}
