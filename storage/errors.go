package storage

import "errors"

// Errors returned by this package. They are wrapped with details (the file's
// path, the recorded and the requested values); test for them with
// errors.Is.
var (
	// ErrInvalid reports an invalid argument: node 0, an empty cluster name or
	// a negative timeout.
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
	// malformed (a missing key or a value of the wrong size).
	ErrCorrupt = errors.New("storage: corrupt file")

	// ErrWrongNode reports that the file records another node id: it is
	// someone else's data directory.
	ErrWrongNode = errors.New("storage: file belongs to another node")

	// ErrWrongCluster reports that the file records another cluster name.
	ErrWrongCluster = errors.New("storage: file belongs to another cluster")
)
