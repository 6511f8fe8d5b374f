package storage

import "errors"

// Errors returned by this package. They are wrapped with details (the file's
// path, the object, the recorded and the requested values); test for them
// with errors.Is.
var (
	// ErrInvalid reports an invalid argument: node 0, an empty cluster,
	// object or group name, a name longer than MaxNameLen, a negative offset
	// or an out-of-range option.
	ErrInvalid = errors.New("storage: invalid argument")

	// ErrLocked reports that the file is held by another open DB, in this
	// process or another, and did not come free within Options.Timeout. The
	// error also wraps bbolt's ErrTimeout.
	ErrLocked = errors.New("storage: file is locked by another open DB")

	// ErrFormat reports a file this version cannot use: not a bbolt file, a
	// bbolt file without this package's layout, or a format version newer
	// than FormatVersion. The file is left unchanged.
	ErrFormat = errors.New("storage: unsupported file format")

	// ErrCorrupt reports a file with this package's layout whose contents are
	// malformed: a missing bucket or key, a value of the wrong size, a
	// snapshot chunk whose checksum does not match, or a snapshot whose bytes
	// do not match its recorded SHA-256.
	ErrCorrupt = errors.New("storage: corrupt file")

	// ErrWrongNode reports that the file records another node id: it is
	// someone else's data directory.
	ErrWrongNode = errors.New("storage: file belongs to another node")

	// ErrWrongCluster reports that the file records another cluster name.
	ErrWrongCluster = errors.New("storage: file belongs to another cluster")

	// ErrClosed reports the use of a closed DB, or of a SnapshotWriter after
	// its Commit or Abort.
	ErrClosed = errors.New("storage: closed")

	// ErrSnapshotGone reports a snapshot generation that cannot be read or
	// committed: it was retired by later commits of its object, deleted
	// (DeleteSnapshot, DeleteObject) or never committed.
	ErrSnapshotGone = errors.New("storage: snapshot generation is gone")

	// ErrSnapshotStale reports a Commit of a generation older than the
	// object's current one: a SnapshotWriter created later committed first.
	// The stale generation is discarded.
	ErrSnapshotStale = errors.New("storage: a newer snapshot was committed first")
)
