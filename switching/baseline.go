package switching

import (
	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// OneHWG is the first baseline: every LWG on one HWG, named Base ("h/all"
// if empty), which every node hosting an LWG joins. It never switches.
type OneHWG struct {
	Base hwg.GroupID
}

// Place implements Policy.
func (b OneHWG) Place(*Snapshot, LWG) hwg.GroupID {
	if b.Base == "" {
		return "h/all"
	}
	return b.Base
}

// Decide implements Policy: nothing ever moves.
func (OneHWG) Decide(*Snapshot) []Action { return nil }

// PerLWG is the second baseline: every LWG on an HWG of its own
// (lwg.PerLWG). It never switches.
type PerLWG struct{}

// Place implements Policy.
func (PerLWG) Place(_ *Snapshot, l LWG) hwg.GroupID { return lwg.PerLWG(l.ID) }

// Decide implements Policy: nothing ever moves.
func (PerLWG) Decide(*Snapshot) []Action { return nil }
