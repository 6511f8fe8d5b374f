//go:build linux && !race

package rsm

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// arenasMapped: arenas are mapped memory in huge pages (not under the
// race detector, which does not see memory outside the Go heap: see
// spoolmem_race.go).
const arenasMapped = true

// haveArenas: spool pieces are carved from arenas (see piecePool).
const haveArenas = true

// mapArena maps hugeArena bytes aligned to hugeArena and asks for
// transparent huge pages on them (a system without them, or with them
// off, gives plain pages; the memory works the same).
func mapArena() ([]byte, error) {
	raw, err := unix.MmapPtr(-1, 0, nil, 2*hugeArena, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	// Keep the aligned hugeArena inside the mapping; unmap the rest.
	head := (hugeArena - uintptr(raw)%hugeArena) % hugeArena
	if head > 0 {
		unix.MunmapPtr(raw, head)
	}
	base := unsafe.Add(raw, head)
	if tail := hugeArena - head; tail > 0 {
		unix.MunmapPtr(unsafe.Add(base, hugeArena), tail)
	}
	mem := unsafe.Slice((*byte)(base), hugeArena)
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE)
	return mem, nil
}

// unmapArena unmaps an arena of mapArena. Nothing may use its memory after.
func unmapArena(mem []byte) {
	unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(mem)), uintptr(len(mem)))
}
