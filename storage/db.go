package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FormatVersion is the file format this version writes and reads.
const FormatVersion = 1

// DefaultTimeout is how long Open waits for another DB to release the file
// when Options.Timeout is zero.
const DefaultTimeout = time.Second

// Bucket and key names. See the package documentation for the layout.
var (
	bucketMeta = []byte("meta")
	keyFormat  = []byte("format")
)

// Options configures Open.
type Options struct {
	// Timeout bounds how long Open waits for the file lock held by another
	// open DB (in this process or another) before it fails with ErrLocked.
	// Zero means DefaultTimeout; negative is invalid.
	Timeout time.Duration
}

// DB is one node's storage file. Its methods are safe for concurrent use.
type DB struct {
	bolt *bbolt.DB
	path string
}

// Open opens the storage file at path, creating it (mode 0600) if it does not
// exist. The directory must exist. Only one DB may have a file open at a
// time: Open fails with ErrLocked if another does not release it within
// opts.Timeout. Open fails with ErrFormat, leaving the file unchanged, if the
// file is not a storage file of FormatVersion or older.
func Open(path string, opts Options) (*DB, error) {
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("%w: negative timeout %v", ErrInvalid, opts.Timeout)
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
	db := &DB{bolt: b, path: path}
	if err := db.initFormat(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// initFormat checks the meta bucket and, on a new file, writes it. A file
// that is already initialized is only read, so opening never writes to a
// file it refuses.
func (db *DB) initFormat() error {
	var fresh bool
	err := db.view(func(tx *bbolt.Tx) error {
		var err error
		fresh, err = db.checkFormat(tx)
		return err
	})
	if err != nil || !fresh {
		return err
	}
	return db.update(func(tx *bbolt.Tx) error {
		fresh, err := db.checkFormat(tx)
		if err != nil || !fresh {
			return err
		}
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return meta.Put(keyFormat, encodeUint(FormatVersion))
	})
}

// checkFormat reports whether tx sees an empty file (no buckets at all), or
// checks that it holds a supported format version.
func (db *DB) checkFormat(tx *bbolt.Tx) (fresh bool, err error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if k, _ := tx.Cursor().First(); k != nil {
			return false, fmt.Errorf("%w: %s: bbolt file without a %q bucket", ErrFormat, db.path, bucketMeta)
		}
		return true, nil
	}
	v, ok := decodeUint(meta.Get(keyFormat))
	switch {
	case !ok:
		return false, fmt.Errorf("%w: %s: bad or missing format version", ErrCorrupt, db.path)
	case v > FormatVersion:
		return false, fmt.Errorf("%w: %s: format version %d, this version reads up to %d",
			ErrFormat, db.path, v, FormatVersion)
	case v < 1:
		return false, fmt.Errorf("%w: %s: format version %d", ErrCorrupt, db.path, v)
	}
	return false, nil
}

// Close closes the file. The DB must not be used afterwards.
func (db *DB) Close() error {
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
// bbolt's own (a closed DB, say) are wrapped with the path.
func (db *DB) view(fn func(tx *bbolt.Tx) error) error {
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
	var fnErr error
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	return db.wrap(err, fnErr)
}

func (db *DB) wrap(err, fnErr error) error {
	if err == nil || err == fnErr {
		return err
	}
	return fmt.Errorf("storage: %s: %w", db.path, err)
}

// encodeUint and decodeUint store integers as 8 bytes, big-endian.
func encodeUint(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeUint(b []byte) (uint64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}
