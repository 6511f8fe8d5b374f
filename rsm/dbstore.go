package rsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/hashicorp/go-hclog"

	"github.com/lwgkit/lwgkit/storage"
)

// dbStore keeps snapshots in the node's bbolt file, chunked and streamed
// (package storage), so a snapshot is never held whole in memory.
//
// A snapshot larger than spoolMin is spooled: written first to memory, up to
// the node's budget (memBudget, shared by all its spools), and past it to a
// plain file in the spool directory; readable there at once (a donor serves
// it from there, a rejoiner restores from there), and copied into bbolt in
// the background, one snapshot at a time in commit order. Memory first,
// because writing a file costs a transfer more CPU than the TCP copy of the
// same bytes (the page cache takes fresh pages at about 1.8 GB/s here),
// and a spool needs no file to be durable: only its copy into bbolt is.
// Writing into bbolt runs at a tenth of the speed of a plain file here
// (every chunk is copied into fresh pages and written into new file
// space), and a state machine's Snapshot blocks its object, so the spool
// keeps both the object and a transfer off bbolt's pace. A spooled snapshot is durable once its
// copy commits; a crash before then leaves the previous one current, as a
// crash before any snapshot's commit does, and the next start empties the
// spool directory. Smaller snapshots (most objects) go into bbolt directly,
// group-committed.
type dbStore struct {
	db  *storage.DB
	dir string
	log hclog.Logger
	// spoolMin is the size from which a snapshot is spooled; spoolStep the
	// granularity at which a spool's progress is reported (each report is
	// a SNAP to every joiner fetching it).
	spoolMin, spoolStep int
	// memBudget bounds the bytes all spools hold in memory, in memChunk
	// pieces; memUsed is what they hold.
	memBudget, memChunk int
	memUsed             atomic.Int64
	// quiet and maxWait: see servedQuiet; copyStep: see copyStep.
	quiet, maxWait time.Duration
	copyStep       int
	// copied, if set (tests), hears of each step of a copy into bbolt,
	// on the copier, with the bytes copied so far.
	copied func(sp *spool, off int64)

	mu     sync.Mutex
	spools map[uint64]*spool // by generation: spooled, not yet in bbolt
	queue  []*spool          // committed, waiting for the copy into bbolt
	wake   chan struct{}     // the copier has work (capacity 1)
	// stored and superseded count spools copied into bbolt and spools
	// dropped instead, a newer one of their object being committed.
	stored, superseded atomic.Uint64
	// activity is when a spool was last written or read (Unix ns).
	activity atomic.Int64
	closing  chan struct{} // closed by Close
	giveUp   atomic.Int64  // after Close: when copies are abandoned (Unix ns)
	closed   bool
	done     chan struct{} // the copier returned
}

// The copy of a spool into bbolt gives way to transfers: it proceeds only
// while no spool of the node has been written or read for servedQuiet
// (its own commit counts), checking before each copyStep bytes, and
// regardless once servedMaxWait passed since the spool's commit. The copy
// takes far more CPU than serving (see dbStore), and on a small machine it
// would halve the speed of the transfers it shares the CPU and the disk
// with (a donor's next join, say), while the donor needs its copy only
// for a restart, and holds an older one.
//
// copyStep was 4 MiB (a storage batch, 15-25 ms of copying here): a
// copy that had begun before a join went on well into it, beside its
// donor's snapshot, and the join took up to twice as long
// (BenchmarkTransfer, whenever the join came over 100 ms after the one
// before). The batch the storage writer commits in the background still
// runs on when the copy pauses.
const (
	copyStep      = 256 << 10
	servedQuiet   = 100 * time.Millisecond
	servedMaxWait = 10 * time.Second
)

// Defaults of dbStore.spoolMin and spoolStep.
const (
	defaultSpoolMin  = 1 << 20
	defaultSpoolStep = 1 << 20
	defaultMemChunk  = 1 << 20
)

// spoolBudget is the memory budget of a store for Config.SpoolMemory.
func spoolBudget(configured int) int {
	switch {
	case configured == 0:
		return 256 << 20
	case configured < 0:
		return 0
	}
	return configured
}

// spoolPieces keeps the process's free spool pieces, by size, for the
// next spool of any store, until none was put back for memIdleRelease.
// Fresh memory costs a page fault per 4 KiB on first touch, about 15 µs
// each on the 2-vCPU VMs here: 245 ms for 64 MiB, against 5 ms in 2 MiB
// pages. So pieces are kept rather than left to the collector, which
// empties a sync.Pool within two cycles, and at most maxFreePieces bytes
// of heap pieces are kept.
//
// Pieces of a size that divides hugeArena (the default 1 MiB does) are
// carved from arenas of hugeArena bytes: mappings in transparent huge
// pages on Linux (spoolmem_linux.go), heap memory under the race detector
// (spoolmem_race.go). Elsewhere, or if mapping fails, pieces come from
// the heap one by one. An arena is unmapped at an idle release once every
// piece carved from it is free; until then its free pieces stay in the
// free list, whatever maxFreePieces says.
var spoolPieces piecePool

type piecePool struct {
	mu      sync.Mutex
	free    map[int][][]byte
	bytes   int
	release *time.Timer
	arenas  map[uintptr]*arena // by base address
	carving map[int]*arena     // the arena the next new piece of a size comes from
}

// arena is a region (see mapArena) that pieces of one size are carved from.
type arena struct {
	mem    []byte
	size   int // of its pieces
	carved int // bytes handed out so far
	free   int // bytes of its pieces in the free list
}

// hugeArena is the size and alignment of a mapped arena: one huge page.
const hugeArena = 2 << 20

// minArenaPiece is the smallest piece carved from arenas: smaller ones
// (tests') come from the heap.
const minArenaPiece = 64 << 10

const (
	memIdleRelease = 30 * time.Second
	maxFreePieces  = 256 << 20
)

// getPiece returns a free piece of size bytes, or a new one.
func getPiece(size int) []byte {
	p := &spoolPieces
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.free[size]; len(f) > 0 {
		c := f[len(f)-1]
		f[len(f)-1] = nil
		p.free[size] = f[:len(f)-1]
		p.bytes -= size
		if a := p.arenaOf(c); a != nil {
			a.free -= size
		}
		return c
	}
	if c := p.carve(size); c != nil {
		return c
	}
	return make([]byte, size)
}

// carve returns a new piece of size bytes from an arena, or nil if the
// size does not suit arenas or none can be mapped (p.mu held).
func (p *piecePool) carve(size int) []byte {
	if size < minArenaPiece || hugeArena%size != 0 {
		return nil
	}
	a := p.carving[size]
	if a == nil || a.carved == len(a.mem) {
		mem, err := mapArena()
		if err != nil {
			return nil
		}
		a = &arena{mem: mem, size: size}
		if p.arenas == nil {
			p.arenas, p.carving = map[uintptr]*arena{}, map[int]*arena{}
		}
		p.arenas[baseOf(mem)] = a
		p.carving[size] = a
	}
	c := a.mem[a.carved : a.carved+size : a.carved+size]
	a.carved += size
	return c
}

// baseOf is the address of the start of b's arena, were it carved from one.
func baseOf(b []byte) uintptr {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b))) &^ (hugeArena - 1)
}

// arenaOf returns the arena c was carved from, or nil (p.mu held).
func (p *piecePool) arenaOf(c []byte) *arena {
	if len(p.arenas) == 0 {
		return nil
	}
	return p.arenas[baseOf(c)]
}

// putPieces keeps pieces (all of size bytes) for getPiece.
func putPieces(pieces [][]byte, size int) {
	p := &spoolPieces
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.free == nil {
		p.free = map[int][][]byte{}
	}
	for _, c := range pieces {
		a := p.arenaOf(c)
		if a == nil && p.bytes+size > maxFreePieces {
			continue // a heap piece: the collector takes it
		}
		if a != nil {
			if size != a.size || cap(c) != size || a.free+size > a.carved {
				panic("rsm: spool piece put back twice or with the wrong size")
			}
			a.free += size
		}
		p.free[size] = append(p.free[size], c)
		p.bytes += size
	}
	if p.release == nil {
		p.release = time.AfterFunc(memIdleRelease, releasePieces)
	} else {
		p.release.Reset(memIdleRelease)
	}
}

// releasePieces lets the collector have the free heap pieces, and unmaps
// the arenas all of whose pieces are free.
func releasePieces() {
	p := &spoolPieces
	p.mu.Lock()
	defer p.mu.Unlock()
	kept, bytes := map[int][][]byte{}, 0
	for size, list := range p.free {
		for _, c := range list {
			if a := p.arenaOf(c); a != nil && a.free < a.carved {
				kept[size] = append(kept[size], c)
				bytes += size
			}
		}
	}
	for base, a := range p.arenas {
		if a.free < a.carved {
			continue // some of its pieces are in use
		}
		delete(p.arenas, base)
		if p.carving[a.size] == a {
			delete(p.carving, a.size)
		}
		unmapArena(a.mem)
	}
	p.free, p.bytes = kept, bytes
}

// newDBStore returns a store over db that spools large snapshots in up to
// memBudget bytes of memory and past that in dir, which it empties (the
// spool files of a process that died are garbage).
func newDBStore(db *storage.DB, dir string, memBudget int, log hclog.Logger) (*dbStore, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("rsm: emptying the spool: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("rsm: spool directory: %w", err)
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &dbStore{db: db, dir: dir, log: log, spoolMin: defaultSpoolMin, spoolStep: defaultSpoolStep,
		memBudget: max(memBudget, 0), memChunk: defaultMemChunk, quiet: servedQuiet, maxWait: servedMaxWait, copyStep: copyStep, spools: map[uint64]*spool{},
		wake: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{})}
	go s.copier()
	return s, nil
}

// Close copies every committed spool into bbolt, for at most
// closeCopyTimeout, and stops the copier. A copy not done by then is
// abandoned: the object's previous snapshot stays current, as after a
// crash. Call it before closing the DB.
func (s *dbStore) Close() error { return s.closeWithin(closeCopyTimeout) }

// closeCopyTimeout bounds how long Close spends copying spools into bbolt.
const closeCopyTimeout = 30 * time.Second

// closeWithin is Close with copies abandoned after d (at once, for 0: what
// a crash leaves).
func (s *dbStore) closeWithin(d time.Duration) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.giveUp.Store(time.Now().Add(d).UnixNano())
		close(s.closing)
	}
	s.mu.Unlock()
	<-s.done
	return nil
}

// errCopyAbandoned ends a copy into bbolt that Close gave up on.
var errCopyAbandoned = errors.New("rsm: copy of a spooled snapshot abandoned at close")

// spool is a spooled snapshot: its first bytes in memory pieces, the rest
// (once the memory budget ran out) in a file. The writer appends; readers
// read up to written, until the copy into bbolt is done (gone), and from
// bbolt after.
type spool struct {
	obj     ObjectID
	gen     uint64
	w       *storage.SnapshotWriter
	written atomic.Int64 // bytes readable
	commit  time.Time    // when its writer committed it

	mu sync.RWMutex // held for reading around reads, for writing to change mem, f or gone
	// mem holds bytes [0, fileAt) (all of them while f is nil), in pieces
	// of the store's memChunk; f holds bytes from fileAt on.
	// INVARIANT: bytes below written are never written again.
	mem    [][]byte
	f      *os.File
	fileAt int64
	size   int64 // -1 until committed
	sum    uint64
	gone   bool // dropped: read from bbolt
	// pinned counts the pieces handed out by pin and not yet unpinned
	// (chunks a transport is writing from the spool's memory); a spool
	// dropped meanwhile is held: its memory goes back at the last unpin.
	pinned atomic.Int64
	held   bool
}

// readAt reads p from off, up to written; gone reports a spool whose
// memory and file are released (read bbolt instead).
func (sp *spool) readAt(p []byte, off int64) (n int, gone bool, err error) {
	sp.mu.RLock()
	defer sp.mu.RUnlock()
	if sp.gone {
		return 0, true, nil
	}
	avail := sp.written.Load()
	if off >= avail {
		return 0, false, io.EOF
	}
	if int64(len(p)) > avail-off {
		p, err = p[:avail-off], io.EOF
	}
	memEnd := avail
	if sp.f != nil {
		memEnd = sp.fileAt
	}
	for n < len(p) && off < memEnd {
		c := sp.mem[off/int64(len(sp.mem[0]))]
		k := copy(p[n:min(len(p), n+int(memEnd-off))], c[off%int64(len(c)):])
		n, off = n+k, off+int64(k)
	}
	if n < len(p) {
		k, ferr := sp.f.ReadAt(p[n:], off-sp.fileAt)
		if n += k; ferr != nil {
			err = ferr
		}
	}
	return n, false, err
}

// pin returns the bytes [off, off+n) of the spool as slices of its memory,
// if they are all written and in memory, and keeps that memory from reuse
// until unpin (even if the spool is dropped meanwhile).
func (sp *spool) pin(off int64, n int) ([][]byte, bool) {
	sp.mu.RLock()
	defer sp.mu.RUnlock()
	memEnd := sp.written.Load()
	if sp.f != nil {
		memEnd = min(memEnd, sp.fileAt)
	}
	if sp.gone || n <= 0 || off < 0 || off+int64(n) > memEnd {
		return nil, false
	}
	size := int64(len(sp.mem[0]))
	var parts [][]byte
	for end := off + int64(n); off < end; {
		c := sp.mem[off/size][off%size:]
		c = c[:min(int64(len(c)), end-off)]
		parts = append(parts, c)
		off += int64(len(c))
	}
	sp.pinned.Add(1)
	return parts, true
}

// unpin ends a pin; the memory of a spool dropped meanwhile goes back at
// the last one.
func (sp *spool) unpin(s *dbStore) {
	if sp.pinned.Add(-1) > 0 {
		return
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.held && sp.pinned.Load() == 0 {
		sp.held = false
		sp.releaseMem(s)
	}
}

// drop releases the spool's memory (once no pin holds it) and removes its
// file.
func (sp *spool) drop(s *dbStore) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.gone {
		return
	}
	sp.gone = true
	if sp.pinned.Load() > 0 {
		sp.held = true // pin cannot add one now: gone is set
	} else {
		sp.releaseMem(s)
	}
	if sp.f != nil {
		sp.f.Close()
		os.Remove(sp.f.Name())
	}
}

// releaseMem gives the spool's memory back; the caller holds sp.mu.
func (sp *spool) releaseMem(s *dbStore) {
	putPieces(sp.mem, s.memChunk)
	s.memUsed.Add(-int64(len(sp.mem) * s.memChunk))
	clear(sp.mem)
	sp.mem = nil
}

// copier copies committed spools into bbolt, in commit order, until Close
// and the queue is empty.
func (s *dbStore) copier() {
	defer close(s.done)
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-s.wake:
			case <-s.closing:
			}
			continue
		}
		sp := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.mu.Unlock()
		if err := s.copyIn(sp); err != nil {
			sp.mu.RLock()
			removed := sp.gone // its object was removed meanwhile
			sp.mu.RUnlock()
			if removed {
				s.log.Debug("spooled snapshot of a removed object not stored", "object", sp.obj, "gen", sp.gen, "error", err)
			} else {
				s.log.Warn("storing a spooled snapshot", "object", sp.obj, "gen", sp.gen, "error", err)
			}
		}
		s.mu.Lock()
		delete(s.spools, sp.gen)
		s.mu.Unlock()
		sp.drop(s)
	}
}

// busy records that a spool was written or read now.
func (s *dbStore) busy() { s.activity.Store(time.Now().UnixNano()) }

// awaitQuiet waits until no spool has been written or read for s.quiet
// (sp's commit counts: its joiners may not have asked for a byte yet), for
// at most s.maxWait after sp's commit, or until Close.
func (s *dbStore) awaitQuiet(sp *spool) {
	for {
		last := max(s.activity.Load(), sp.commit.UnixNano())
		wait := min(s.quiet-time.Since(time.Unix(0, last)), s.maxWait-time.Since(sp.commit))
		if wait <= 0 {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.closing:
			t.Stop()
			return
		}
	}
}

// copyIn writes a committed spool into its bbolt generation and commits it.
func (s *dbStore) copyIn(sp *spool) error {
	sp.mu.RLock()
	gone, size, sum := sp.gone, sp.size, sp.sum
	sp.mu.RUnlock()
	if gone { // removed meanwhile
		return sp.w.Abort()
	}
	buf := make([]byte, s.copyStep)
	for off := int64(0); off < size; {
		s.awaitQuiet(sp)
		if g := s.giveUp.Load(); g != 0 && time.Now().UnixNano() >= g {
			sp.w.Abort()
			return errCopyAbandoned
		}
		s.mu.Lock()
		superseded := s.newerSpooled(sp.obj, sp.gen)
		s.mu.Unlock()
		if superseded {
			// A newer snapshot of the object is committed and queued
			// behind this one: storing this one would be undone at once.
			s.log.Debug("spooled snapshot superseded before it was stored", "object", sp.obj, "gen", sp.gen)
			s.superseded.Add(1)
			return sp.w.Abort()
		}
		p := buf[:min(int64(len(buf)), size-off)]
		k, err := spoolAt{sp}.ReadAt(p, off)
		switch {
		case k == len(p) && err == io.EOF:
			err = nil // the spool's last bytes
		case k < len(p) && err == nil:
			err = io.ErrUnexpectedEOF
		}
		if err == nil {
			_, err = sp.w.Write(p)
		}
		if err != nil {
			sp.w.Abort()
			return err
		}
		off += int64(k)
		if s.copied != nil {
			s.copied(sp, off)
		}
	}
	sp.w.SetMeta(encodeSumMeta(sum))
	if _, err := sp.w.Commit(); err != nil {
		return err
	}
	s.stored.Add(1)
	return nil
}

// spoolAt reads a spool for its copy into bbolt.
type spoolAt struct{ sp *spool }

func (r spoolAt) ReadAt(p []byte, off int64) (int, error) {
	n, gone, err := r.sp.readAt(p, off)
	if gone {
		return n, fmt.Errorf("rsm: spooled snapshot %s gen %d: removed", r.sp.obj, r.sp.gen)
	}
	return n, err
}

// sumMetaKind marks generation metadata holding the transfer checksum.
const sumMetaKind = 1

func encodeSumMeta(sum uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{sumMetaKind}, sum)
}

func decodeSumMeta(meta []byte) (uint64, bool) {
	if len(meta) != 9 || meta[0] != sumMetaKind {
		return 0, false
	}
	return binary.BigEndian.Uint64(meta[1:]), true
}

// dbWriter writes one generation: into memory up to spoolMin, then into a
// spool.
type dbWriter struct {
	s   *dbStore
	obj ObjectID
	w   *storage.SnapshotWriter
	buf []byte
	sp  *spool
	bw  *bufio.Writer // into sp.f, once the spool has one
	n   int64
	sum xxhash.Digest
}

func (w *dbWriter) Write(p []byte) (int, error) {
	w.sum.Write(p)
	if w.sp == nil && len(w.buf)+len(p) <= w.s.spoolMin {
		w.buf = append(w.buf, p...)
		w.n += int64(len(p))
		return len(p), nil
	}
	if w.sp == nil {
		w.sp = &spool{obj: w.obj, gen: w.w.Gen(), w: w.w, size: -1}
		w.s.mu.Lock()
		w.s.spools[w.sp.gen] = w.sp
		w.s.mu.Unlock()
		buf := w.buf
		w.buf, w.n = nil, 0 // counted again as spooled
		if err := w.spoolBytes(buf); err != nil {
			return 0, err
		}
	}
	if err := w.spoolBytes(p); err != nil {
		return 0, err
	}
	w.s.busy()
	return len(p), nil
}

// errSpoolDropped fails a Write to a spool dropped while its snapshot was
// being written (the object was removed).
var errSpoolDropped = errors.New("rsm: spool dropped while written")

// spoolBytes appends p to the spool: into its memory while the store's
// budget lasts, then into its file.
func (w *dbWriter) spoolBytes(p []byte) error {
	sp := w.sp
	for len(p) > 0 && sp.f == nil {
		size := w.s.memChunk
		at := int(w.n % int64(size))
		if at == 0 { // the last piece is full
			if w.s.memUsed.Add(int64(size)) > int64(w.s.memBudget) {
				w.s.memUsed.Add(-int64(size))
				if err := w.startFile(); err != nil {
					return err
				}
				break
			}
			c := getPiece(size)
			sp.mu.Lock()
			if sp.gone {
				sp.mu.Unlock()
				putPieces([][]byte{c}, size)
				w.s.memUsed.Add(-int64(size))
				return errSpoolDropped
			}
			sp.mem = append(sp.mem, c)
			sp.mu.Unlock()
		}
		// Under the read lock: drop (remove, at Close) waits for the copy
		// and hands the pieces back only after it, never during.
		sp.mu.RLock()
		if sp.gone {
			sp.mu.RUnlock()
			return errSpoolDropped
		}
		k := copy(sp.mem[len(sp.mem)-1][at:], p)
		sp.mu.RUnlock()
		p, w.n = p[k:], w.n+int64(k)
		sp.written.Store(w.n)
	}
	if len(p) == 0 {
		return nil
	}
	if _, err := w.bw.Write(p); err != nil {
		return fmt.Errorf("rsm: spooling a snapshot: %w", err)
	}
	w.n += int64(len(p))
	sp.written.Store(w.n - int64(w.bw.Buffered()))
	return nil
}

// startFile opens the spool's file, for the bytes from w.n on.
func (w *dbWriter) startFile() error {
	f, err := os.CreateTemp(w.s.dir, "snap-*")
	if err != nil {
		return fmt.Errorf("rsm: spooling a snapshot: %w", err)
	}
	w.sp.mu.Lock()
	if w.sp.gone { // dropped meanwhile: drop has run and will not remove f
		w.sp.mu.Unlock()
		f.Close()
		os.Remove(f.Name())
		return errSpoolDropped
	}
	w.sp.f, w.sp.fileAt = f, w.n
	w.sp.mu.Unlock()
	w.bw = bufio.NewWriterSize(f, min(256<<10, w.s.spoolStep))
	return nil
}

func (w *dbWriter) commit() (snapInfo, error) {
	info := snapInfo{Gen: w.w.Gen(), Size: w.n, Sum: w.sum.Sum64()}
	if w.sp == nil {
		if _, err := w.w.Write(w.buf); err != nil {
			w.w.Abort()
			return snapInfo{}, err
		}
		w.s.mu.Lock()
		stale := w.s.newerSpooled(w.obj, info.Gen)
		w.s.mu.Unlock()
		if stale {
			w.w.Abort()
			return snapInfo{}, fmt.Errorf("rsm: snapshot of %s gen %d: %w", w.obj, info.Gen, storage.ErrSnapshotStale)
		}
		w.w.SetMeta(encodeSumMeta(info.Sum))
		if _, err := w.w.Commit(); err != nil {
			return snapInfo{}, err
		}
		return info, nil
	}
	if w.bw != nil {
		if err := w.bw.Flush(); err != nil {
			w.abort()
			return snapInfo{}, fmt.Errorf("rsm: spooling a snapshot: %w", err)
		}
	}
	w.sp.written.Store(w.n)
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	// Read under s.mu: the copier takes a spool out of s.spools only after
	// its commit, so a newer generation is seen in one place or the other.
	cur, _, err := s.db.Snapshot(string(w.obj))
	if err != nil {
		w.dropSpool()
		w.w.Abort()
		return snapInfo{}, err
	}
	if s.closed {
		w.dropSpool()
		w.w.Abort()
		return snapInfo{}, fmt.Errorf("rsm: snapshot of %s: %w", w.obj, ErrClosed)
	}
	// As storage's Commit would: a newer generation committed first wins.
	if cur.Gen >= info.Gen || s.newerSpooled(w.obj, info.Gen) {
		w.dropSpool()
		w.w.Abort()
		return snapInfo{}, fmt.Errorf("rsm: snapshot of %s gen %d: %w", w.obj, info.Gen, storage.ErrSnapshotStale)
	}
	w.sp.mu.Lock()
	if w.sp.gone { // removed while written (see errSpoolDropped)
		w.sp.mu.Unlock()
		w.w.Abort()
		return snapInfo{}, fmt.Errorf("rsm: snapshot of %s: %w", w.obj, errSpoolDropped)
	}
	w.sp.size, w.sp.sum, w.sp.commit = w.n, info.Sum, time.Now()
	w.sp.mu.Unlock()
	s.queue = append(s.queue, w.sp)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return info, nil
}

// newerSpooled reports whether a spool of obj newer than gen is committed
// and not yet (completely) copied into bbolt. The caller holds s.mu.
func (s *dbStore) newerSpooled(obj ObjectID, gen uint64) bool {
	for _, sp := range s.spools {
		if sp.obj == obj && sp.gen > gen {
			sp.mu.RLock()
			committed := sp.size >= 0
			sp.mu.RUnlock()
			if committed {
				return true
			}
		}
	}
	return false
}

// dropSpool forgets the writer's spool; the caller holds s.mu.
func (w *dbWriter) dropSpool() {
	delete(w.s.spools, w.sp.gen)
	w.sp.drop(w.s)
}

func (w *dbWriter) abort() error {
	if w.sp != nil {
		w.s.mu.Lock()
		w.dropSpool()
		w.s.mu.Unlock()
	}
	return w.w.Abort()
}

// progress reports how much of the spool a reader can read, in whole
// steps (or all of it once committed).
func (w *dbWriter) progress() (uint64, int64) {
	if w.sp == nil {
		return w.w.Gen(), 0
	}
	step := int64(w.s.spoolStep)
	return w.w.Gen(), w.sp.written.Load() / step * step
}

func (s *dbStore) create(obj ObjectID) (snapWriter, error) {
	w, err := s.db.CreateSnapshot(string(obj), nil)
	if err != nil {
		return nil, err
	}
	dw := &dbWriter{s: s, obj: obj, w: w}
	dw.sum.Reset()
	return dw, nil
}

func (s *dbStore) current(obj ObjectID) (snapInfo, bool, error) {
	info, ok, err := s.db.Snapshot(string(obj))
	if err != nil || !ok {
		return snapInfo{}, false, err
	}
	return snapInfo{Gen: info.Gen, Size: info.Size}, true, nil
}

// dbReader reads a committed generation from bbolt.
type dbReader struct{ *storage.SnapshotReader }

func (r dbReader) Size() int64 { return r.Info().Size }

// Sum returns the generation's transfer checksum: recorded beside it, or,
// for a generation stored before it was (an older data file), computed
// from a read of its bytes.
func (r dbReader) Sum() uint64 {
	if sum, ok := decodeSumMeta(r.Info().Meta); ok {
		return sum
	}
	var d xxhash.Digest
	d.Reset()
	if _, err := io.Copy(&d, io.NewSectionReader(r, 0, r.Size())); err != nil {
		return 0 // the joiner's check fails and it asks again
	}
	return d.Sum64()
}

// open opens a generation, spooled or committed in bbolt.
func (s *dbStore) open(obj ObjectID, gen uint64) (snapReader, error) {
	s.mu.Lock()
	sp := s.spools[gen]
	s.mu.Unlock()
	if sp != nil && sp.obj == obj {
		return &spoolReader{sp: sp, s: s}, nil
	}
	r, err := s.db.OpenSnapshot(string(obj), gen)
	if errors.Is(err, storage.ErrSnapshotGone) {
		return nil, fmt.Errorf("rsm: snapshot %s gen %d: %w: %w", obj, gen, errGone, err)
	}
	if err != nil {
		return nil, err
	}
	return dbReader{r}, nil
}

// spoolReader reads a spooled generation: from its file while it is there,
// from bbolt once it was copied in. Before its commit, Size is
// math.MaxInt64 and ReadAt returns io.EOF past what is written.
type spoolReader struct {
	sp  *spool
	s   *dbStore
	off int64 // Read's position
}

func (r *spoolReader) Size() int64 {
	r.sp.mu.RLock()
	defer r.sp.mu.RUnlock()
	if r.sp.size < 0 {
		return math.MaxInt64
	}
	return r.sp.size
}

func (r *spoolReader) Sum() uint64 {
	r.sp.mu.RLock()
	defer r.sp.mu.RUnlock()
	return r.sp.sum
}

func (r *spoolReader) ReadAt(p []byte, off int64) (int, error) {
	r.s.busy()
	n, gone, err := r.sp.readAt(p, off)
	if !gone {
		return n, err
	}
	c, err := r.s.db.OpenSnapshot(string(r.sp.obj), r.sp.gen)
	if err != nil {
		return 0, fmt.Errorf("rsm: snapshot %s gen %d: %w: %w", r.sp.obj, r.sp.gen, errGone, err)
	}
	return c.ReadAt(p, off)
}

// pieces returns the bytes [off, off+n) as slices of the spool's memory,
// and the function that releases them (exactly once), if they are all
// written and in memory: a donor sends them without copying them. The
// slices stay unchanged until the release, even if the spool is copied
// into bbolt and dropped meanwhile.
func (r *spoolReader) pieces(off int64, n int) ([][]byte, func(), bool) {
	r.s.busy()
	parts, ok := r.sp.pin(off, n)
	if !ok {
		return nil, nil, false
	}
	var once sync.Once
	return parts, func() { once.Do(func() { r.sp.unpin(r.s) }) }, true
}

// Read reads a committed spool from its start; open returns a fresh
// reader, so each sequential reader has its own position.
func (r *spoolReader) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// remove forgets obj. Its spools are dropped: their copies into bbolt would
// fail anyway, the object's snapshots being deleted.
func (s *dbStore) remove(obj ObjectID) error {
	s.mu.Lock()
	for gen, sp := range s.spools {
		if sp.obj == obj {
			delete(s.spools, gen)
			sp.drop(s)
		}
	}
	s.mu.Unlock()
	return s.db.DeleteObject(string(obj))
}

func (s *dbStore) register(obj ObjectID) error { return s.db.PutObject(string(obj), nil) }

func (s *dbStore) list() ([]ObjectID, error) {
	objs, err := s.db.Objects()
	if err != nil {
		return nil, err
	}
	ids := make([]ObjectID, 0, len(objs))
	for id := range objs {
		ids = append(ids, ObjectID(id))
	}
	return ids, nil
}
