package kvexample

import "errors"

// Errors of the store. Functions wrap them with %w.
var (
	// ErrInvalidConfig: a configuration field is out of range.
	ErrInvalidConfig = errors.New("kvexample: invalid config")
	// ErrNotHere: the shard has no ready replica on the node asked.
	ErrNotHere = errors.New("kvexample: shard not served here")
	// ErrUnavailable: no replica of the shard could be reached.
	ErrUnavailable = errors.New("kvexample: shard unavailable")
	// ErrValueTooLarge: a value over Config.MaxValueBytes.
	ErrValueTooLarge = errors.New("kvexample: value too large")
	// ErrNoRoute: a request could not be sent through group composition
	// (nothing was sent); the store forwards it over RESP instead.
	ErrNoRoute = errors.New("kvexample: no composition route")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("kvexample: closed")
)
