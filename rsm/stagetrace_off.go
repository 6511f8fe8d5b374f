//go:build !stagetrace

package rsm

// The stage-timing hooks of a stagetrace build (see stagetrace.go): no-ops.

func stageQueued(*Object, uint64)          {}
func stageBatch(*Object, []outgoing, bool) {}
func stageRouted(*Object)                  {}
func stageApplied(*Object, uint64)         {}
func stageReturned(*Object, uint64)        {}
func stageClose()                          {}
