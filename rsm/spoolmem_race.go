//go:build race

package rsm

import "unsafe"

// arenasMapped: arenas are mapped memory in huge pages. Not under the race
// detector, which does not see memory outside the Go heap and so could not
// check the spools' writers and readers: here arenas are heap memory,
// carved and accounted for the same way (twice their size is allocated
// to align them, which only a test build pays).
const arenasMapped = false

// haveArenas: spool pieces are carved from arenas (see piecePool).
const haveArenas = true

// mapArena returns hugeArena bytes of the heap aligned to hugeArena.
func mapArena() ([]byte, error) {
	b := make([]byte, 2*hugeArena)
	off := (hugeArena - uintptr(unsafe.Pointer(unsafe.SliceData(b)))%hugeArena) % hugeArena
	return b[off : off+hugeArena : off+hugeArena], nil
}

// unmapArena: the collector takes the arena once nothing refers to it.
func unmapArena([]byte) {}
