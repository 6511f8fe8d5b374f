package lwg

import "errors"

// Errors returned by Core requests. Decoding failures of payloads from the
// carrier are counted (Stats.Malformed), not returned: a payload is the
// whole group's input and one bad one must not stop the others.
var (
	ErrInvalidConfig = errors.New("lwg: invalid config")
	ErrNotMember     = errors.New("lwg: not a member of the LWG")
	ErrAlreadyMember = errors.New("lwg: already a member or joining")
	ErrBadID         = errors.New("lwg: LWG ids must be non-empty and at most 255 bytes")
	ErrNotHolding    = errors.New("lwg: no Block to answer")
	ErrMalformed     = errors.New("lwg: malformed payload")
	ErrSwitching     = errors.New("lwg: the LWG is flushing; retry the switch after its next view")
	// ErrSwitchTimeout: the switch did not reach its switch point within
	// Config.SwitchTimeoutTicks and was abandoned. The LWG may move all the
	// same: if its switch point was ordered before the abort, or if its
	// SWITCH was still in flight (nobody aborts that one).
	ErrSwitchTimeout = errors.New("lwg: switch timed out and was abandoned")
)
