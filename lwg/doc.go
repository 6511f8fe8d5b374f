// Package lwg will host light-weight groups on heavy-weight groups: the
// LWG→HWG directory, <DATA, lwgid, payload> multiplexing, the LWG flush,
// failure multiplexing and switching between HWGs.
//
// Not built yet: this package holds no code. See docs/ARCHITECTURE.md for
// the plan and the issue tracker for its status.
package lwg
