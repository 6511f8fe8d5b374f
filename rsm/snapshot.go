package rsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/internal/wirecheck"
	"github.com/lwgkit/lwgkit/lwg"
)

// A snapshot is one byte stream: a uvarint length, a msgpack header, the
// ProposeFrom record of each source (header.Sources of them, each a
// uvarint length and a msgpack sourceRecord), then the state machine's
// own bytes. The header carries what a restoring replica needs besides
// the state: where in the delivery stream the snapshot was taken, the
// applied index, and the group's transfer table. The same stream is kept
// locally and sent to joiners.

// snapshotFormat is the layout of the snapshots this build writes, in
// header.Format; readHeader refuses a higher one (ErrSnapshotFormat)
// instead of misreading what follows the header as state. Raise it with
// any change that an older reader would misread.
//
//	0 (no field): written before the field existed, with the ProposeFrom
//	  records inside the header or after it; both load.
//	1: the records after the header (header.Sources).
const snapshotFormat = 1

// header opens every snapshot.
type header struct {
	// Format is snapshotFormat when written. readHeader decodes and
	// checks it before the rest, whose shape it decides.
	Format uint64      `msgpack:"f,omitempty"`
	Object ObjectID    `msgpack:"o"`
	At     point       `msgpack:"a"`
	Index  uint64      `msgpack:"i"`
	View   lwg.View    `msgpack:"v"`
	Table  table       `msgpack:"t"`
	Digest []byte      `msgpack:"d,omitempty"` // reserved
	Taker  hwg.Process `msgpack:"k"`
	// Lineage is the view id where this branch of the state began: the
	// first view of a life, or the view of a claim round (see claim).
	Lineage uint64 `msgpack:"l"`
	// Once is the de-duplication record of ProposeFrom, per source. Only
	// snapshots written before Sources carry it here; readHeader fills it
	// from the records that follow the header.
	Once map[string]onceRecord `msgpack:"n,omitempty"`
	// Sources is how many sourceRecords follow the header. They are
	// apart, each bounded, so that the header stays small however many
	// sources an object has seen (records are never removed).
	Sources uint64 `msgpack:"s,omitempty"`
}

// sourceRecord is one source's ProposeFrom record in a snapshot.
type sourceRecord struct {
	Source string     `msgpack:"s"`
	Record onceRecord `msgpack:"r"`
}

// maxHeader bounds a snapshot header (its table names at most the view's
// members) and each sourceRecord after it.
const maxHeader = 1 << 20

// table is the replicated record of which members hold the object's state
// and which wait for it, and from whom. Every ready replica keeps it alike:
// it changes only at installs and at RESTORED messages, both in the
// object's total order, and it travels in snapshots.
type table struct {
	Restored []hwg.Process `msgpack:"r"`
	Pending  []pending     `msgpack:"p"`
}

type pending struct {
	Member hwg.Process `msgpack:"m"`
	Donor  hwg.Process `msgpack:"d"` // zero while no member holding the state is in the view
}

func (t *table) clone() table {
	return table{Restored: slices.Clone(t.Restored), Pending: slices.Clone(t.Pending)}
}

func (t *table) isRestored(p hwg.Process) bool { return slices.Contains(t.Restored, p) }

// install applies view v (whose new members are joined) to the table and
// returns the members this replica must now serve, as self.
//
// INVARIANT: a donor holds the state (it is in Restored), and every
// pending member and donor is in the current view.
func (t *table) install(v lwg.View, joined []hwg.Process, self hwg.Process) (serve []hwg.Process) {
	t.Restored = slices.DeleteFunc(t.Restored, func(p hwg.Process) bool { return !v.Contains(p) })
	t.Pending = slices.DeleteFunc(t.Pending, func(p pending) bool { return !v.Contains(p.Member) })
	for _, j := range joined {
		if !slices.ContainsFunc(t.Pending, func(p pending) bool { return p.Member == j }) {
			t.Pending = append(t.Pending, pending{Member: j})
		}
	}
	var donor hwg.Process
	for _, m := range v.Members {
		if t.isRestored(m) {
			donor = m
			break
		}
	}
	for i := range t.Pending {
		p := &t.Pending[i]
		if p.Donor == (hwg.Process{}) || !v.Contains(p.Donor) {
			p.Donor = donor
		}
		if p.Donor == self && self != (hwg.Process{}) {
			serve = append(serve, p.Member)
		}
	}
	return serve
}

// restoredBy records that m holds the state now.
func (t *table) restoredBy(m hwg.Process) {
	t.Pending = slices.DeleteFunc(t.Pending, func(p pending) bool { return p.Member == m })
	if !t.isRestored(m) {
		t.Restored = append(t.Restored, m)
	}
}

// restoredIn records that from, a member of v, holds the state now, and
// makes it the donor of every pending member whose donor is not in v (it
// left when no member held the state, so install found none to give), and
// returns those this replica must now serve, as self. Without this such a
// joiner waited for a later view change: the member that got the state
// ignored its WANTs (not its donor), and answered its claims with HOLD.
func (t *table) restoredIn(v lwg.View, from, self hwg.Process) (serve []hwg.Process) {
	t.restoredBy(from)
	for i := range t.Pending {
		p := &t.Pending[i]
		if p.Donor == (hwg.Process{}) || !v.Contains(p.Donor) {
			p.Donor = from
			if from == self {
				serve = append(serve, p.Member)
			}
		}
	}
	return serve
}

func (t *table) donorOf(m hwg.Process) (hwg.Process, bool) {
	for _, p := range t.Pending {
		if p.Member == m {
			return p.Donor, true
		}
	}
	return hwg.Process{}, false
}

// errHeaderTooLarge refuses to write a snapshot whose header or one of
// whose source records readHeader would refuse: the snapshot fails (and is
// logged; the caller aborts what was written) instead of replacing a
// loadable one with one that no restart or joiner can read. A source
// record is over the limit only if the result of the source's highest Seq
// (kept whatever its size) nearly is.
var errHeaderTooLarge = errors.New("rsm: snapshot header or source record over the limit")

// writeSnapshot writes the header, the source records and then the state
// machine's bytes to w. A refused header writes nothing; a refused record
// returns the error after the records before it, and the caller aborts
// the snapshot.
func writeSnapshot(w io.Writer, h *header, sm StateMachine) error {
	hc := *h
	hc.Format, hc.Once, hc.Sources = snapshotFormat, nil, uint64(len(h.Once))
	hb, err := msgpack.Marshal(&hc)
	if err != nil {
		return fmt.Errorf("rsm: encoding snapshot header: %w", err)
	}
	if len(hb) > maxHeader {
		return fmt.Errorf("%w: header of %d bytes, limit %d", errHeaderTooLarge, len(hb), maxHeader)
	}
	b := binary.AppendUvarint(make([]byte, 0, len(hb)+binary.MaxVarintLen64), uint64(len(hb)))
	if _, err := w.Write(append(b, hb...)); err != nil {
		return err
	}
	// One at a time, so that the records are not held twice; in the
	// order of their sources, so that equal states make equal bytes.
	for _, src := range slices.Sorted(maps.Keys(h.Once)) {
		rb, err := msgpack.Marshal(&sourceRecord{Source: src, Record: h.Once[src]})
		if err != nil {
			return fmt.Errorf("rsm: encoding the record of source %q: %w", src, err)
		}
		if len(rb) > maxHeader {
			return fmt.Errorf("%w: the record of source %q is %d bytes, limit %d", errHeaderTooLarge, src, len(rb), maxHeader)
		}
		b = binary.AppendUvarint(b[:0], uint64(len(rb)))
		if _, err := w.Write(append(b, rb...)); err != nil {
			return err
		}
	}
	return sm.Snapshot(w)
}

// readHeader reads a snapshot's header and source records from r, leaving
// r at the state machine's bytes.
func readHeader(r *bufio.Reader) (header, error) {
	b, err := readFramed(r, "snapshot header")
	if err != nil {
		return header{}, err
	}
	h, err := decodeHeader(b)
	if err != nil {
		return header{}, err
	}
	if h.Sources > 0 && len(h.Once) > 0 {
		return header{}, fmt.Errorf("%w: snapshot header with ProposeFrom records both inside and after it", errMalformed)
	}
	// The count is not trusted for an allocation: a short stream ends
	// the loop at its first missing record.
	for i := uint64(0); i < h.Sources; i++ {
		var sr sourceRecord
		if err := readItem(r, &sr, "ProposeFrom source record"); err != nil {
			return header{}, err
		}
		if _, dup := h.Once[sr.Source]; dup {
			return header{}, fmt.Errorf("%w: two records of ProposeFrom source %q", errMalformed, sr.Source)
		}
		if h.Once == nil {
			h.Once = map[string]onceRecord{}
		}
		h.Once[sr.Source] = sr.Record
	}
	h.Format, h.Sources = 0, 0
	return h, nil
}

// decodeHeader decodes a snapshot header from its msgpack bytes, its
// format first (checkFormat).
func decodeHeader(b []byte) (header, error) {
	if err := checkFormat(b); err != nil {
		return header{}, err
	}
	var h header
	if err := wirecheck.Unmarshal(b, &h); err != nil {
		return header{}, fmt.Errorf("%w: snapshot header: %w", errMalformed, err)
	}
	return h, nil
}

// checkFormat decodes the format of a snapshot header (its msgpack bytes)
// on its own, before the rest: a later format may give the other fields
// another shape, which must not read as a malformed header. It refuses
// one newer than this build's (ErrSnapshotFormat).
func checkFormat(b []byte) error {
	var f struct {
		Format uint64 `msgpack:"f"`
	}
	if err := wirecheck.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("%w: snapshot header: %w", errMalformed, err)
	}
	if f.Format > snapshotFormat {
		return fmt.Errorf("%w: format %d, this build reads up to %d", ErrSnapshotFormat, f.Format, snapshotFormat)
	}
	return nil
}

// readItem reads one uvarint-length-prefixed msgpack value of at most
// maxHeader bytes from r into v.
func readItem(r *bufio.Reader, v any, what string) error {
	b, err := readFramed(r, what)
	if err != nil {
		return err
	}
	if err := wirecheck.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %w", errMalformed, what, err)
	}
	return nil
}

// readFramed reads the bytes of one uvarint-length-prefixed item of at
// most maxHeader bytes from r.
func readFramed(r *bufio.Reader, what string) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %s length: %w", errMalformed, what, err)
	}
	if n > maxHeader {
		return nil, fmt.Errorf("%w: %s of %d bytes", errMalformed, what, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errMalformed, what, err)
	}
	return b, nil
}

// sumOf is a snapshot's transfer checksum: XXH64 of its bytes. A joiner
// checks it end to end (every chunk at its offset, from the generation it
// asked for). It guards against bugs and torn reads, not against an
// adversary, so it need not be cryptographic; SHA-256 cost more than the
// TCP copy of the bytes (about 1 GB/s against 1.6 here). The storage layer
// keeps its own SHA-256 and per-chunk CRCs for what is on disk.
func sumOf(b []byte) uint64 { return xxhash.Sum64(b) }

// errGone: a snapshot generation was replaced twice since it was offered.
var errGone = errors.New("rsm: snapshot generation gone")

// snapStore keeps each object's latest snapshot (and the one before, so a
// transfer in progress survives one newer snapshot). Safe for concurrent
// use.
type snapStore interface {
	create(obj ObjectID) (snapWriter, error)
	current(obj ObjectID) (snapInfo, bool, error)
	open(obj ObjectID, gen uint64) (snapReader, error)
	// remove forgets obj: its snapshots and its registration.
	remove(obj ObjectID) error
	// register records that obj is open here; list returns those recorded.
	register(obj ObjectID) error
	list() ([]ObjectID, error)
}

type snapInfo struct {
	Gen  uint64
	Size int64
	Sum  uint64 // the snapshot's transfer checksum (see sumOf)
}

type snapWriter interface {
	io.Writer
	commit() (snapInfo, error)
	abort() error
	// progress reports the generation being written and how many of its
	// first bytes a reader from open can already read (0 for a store
	// that shows nothing before the commit).
	progress() (gen uint64, readable int64)
}

// snapReader reads a stored snapshot. A reader of a generation still being
// written (see snapWriter.progress) has Size math.MaxInt64 and no Sum; its
// ReadAt returns io.EOF past what is readable yet.
type snapReader interface {
	io.Reader
	io.ReaderAt
	Size() int64
	Sum() uint64
}

// memStore is a snapStore in memory, for nodes without a data file and for
// the simulator.
type memStore struct {
	mu   sync.Mutex
	objs map[ObjectID]*memSnaps
	reg  map[ObjectID]bool
}

type memSnaps struct {
	gen        uint64
	cur, prev  []byte
	curG, prvG uint64
	curS, prvS uint64
}

func newMemStore() *memStore {
	return &memStore{objs: map[ObjectID]*memSnaps{}, reg: map[ObjectID]bool{}}
}

func (s *memStore) register(obj ObjectID) error {
	s.mu.Lock()
	s.reg[obj] = true
	s.mu.Unlock()
	return nil
}

func (s *memStore) list() ([]ObjectID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]ObjectID, 0, len(s.reg))
	for id := range s.reg {
		ids = append(ids, id)
	}
	return ids, nil
}

type memWriter struct {
	s   *memStore
	obj ObjectID
	buf []byte
}

func (w *memWriter) Write(p []byte) (int, error) { w.buf = append(w.buf, p...); return len(p), nil }

func (w *memWriter) commit() (snapInfo, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	o := w.s.objs[w.obj]
	if o == nil {
		o = &memSnaps{}
		w.s.objs[w.obj] = o
	}
	o.gen++
	o.prev, o.prvG, o.prvS = o.cur, o.curG, o.curS
	o.cur, o.curG, o.curS = w.buf, o.gen, sumOf(w.buf)
	return snapInfo{Gen: o.gen, Size: int64(len(w.buf)), Sum: o.curS}, nil
}

func (w *memWriter) abort() error { w.buf = nil; return nil }

func (w *memWriter) progress() (uint64, int64) { return 0, 0 }

func (s *memStore) create(obj ObjectID) (snapWriter, error) { return &memWriter{s: s, obj: obj}, nil }

func (s *memStore) current(obj ObjectID) (snapInfo, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objs[obj]
	if o == nil || o.curG == 0 {
		return snapInfo{}, false, nil
	}
	return snapInfo{Gen: o.curG, Size: int64(len(o.cur))}, true, nil
}

func (s *memStore) open(obj ObjectID, gen uint64) (snapReader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objs[obj]
	switch {
	case o == nil:
	case gen == o.curG && gen != 0:
		return memReader{bytesReader(o.cur), o.curS}, nil
	case gen == o.prvG && gen != 0:
		return memReader{bytesReader(o.prev), o.prvS}, nil
	}
	return nil, fmt.Errorf("rsm: snapshot %s gen %d: %w", obj, gen, errGone)
}

func (s *memStore) remove(obj ObjectID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objs, obj)
	delete(s.reg, obj)
	return nil
}

type memReader struct {
	*io.SectionReader
	sum uint64
}

func (r memReader) Sum() uint64 { return r.sum }

func bytesReader(b []byte) *io.SectionReader {
	return io.NewSectionReader(readerAtBytes(b), 0, int64(len(b)))
}

type readerAtBytes []byte

func (b readerAtBytes) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
