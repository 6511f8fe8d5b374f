//go:build !linux && !race

package rsm

import "errors"

// arenasMapped: no arenas on this system; spool pieces come from the
// heap one by one.
const arenasMapped = false

// haveArenas: spool pieces are carved from arenas (see piecePool).
const haveArenas = false

func mapArena() ([]byte, error) { return nil, errors.ErrUnsupported }

func unmapArena([]byte) {}
