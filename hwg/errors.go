package hwg

import "errors"

// Errors returned by Group requests and by Step for rejected input. Step
// rejects a message by rule and leaves the group's state unchanged; callers
// normally log and drop it. Benign drops (duplicates, messages of an older
// view) are not errors.
var (
	ErrWrongGroup       = errors.New("hwg: message for another group")
	ErrWrongNode        = errors.New("hwg: message addressed to another node")
	ErrStaleIncarnation = errors.New("hwg: message addressed to another incarnation")
	ErrUnknownSender    = errors.New("hwg: sender is not a member of the view")
	ErrForged           = errors.New("hwg: message violates the protocol for its sender")
	ErrMalformed        = errors.New("hwg: malformed message")
	ErrNotMember        = errors.New("hwg: not a member of the group")
	ErrAlreadyMember    = errors.New("hwg: already a member or joining")
	ErrInvalidConfig    = errors.New("hwg: invalid config")
	ErrUnknownGroup     = errors.New("hwg: no such group on this node")
	ErrNodeClosed       = errors.New("hwg: node closed")
	ErrBusy             = errors.New("hwg: too many multicasts waiting; retry after some are sequenced")
	ErrTooLarge         = errors.New("hwg: payload exceeds MaxPendingBytes")
)
