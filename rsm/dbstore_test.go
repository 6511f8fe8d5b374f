package rsm

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/storage"
	"github.com/lwgkit/lwgkit/storage/storagetest"
)

// openSpooling opens a dbStore over a fresh data file that spools
// snapshots from 100 bytes on.
func openSpooling(t *testing.T) (*dbStore, *storage.DB, string) {
	t.Helper()
	db := storagetest.Open(t, filepath.Join(t.TempDir(), "node.db"), storage.Options{ChunkSize: 64, ChunksPerTx: 2})
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := newDBStore(db, dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // before the DB's own cleanup closes it
	s.spoolMin, s.spoolStep = 100, 10
	return s, db, dir
}

func writeStore(t *testing.T, s snapStore, obj ObjectID, data []byte) snapInfo {
	t.Helper()
	w, err := s.create(obj)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	info, err := w.commit()
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func readAll(t *testing.T, s snapStore, obj ObjectID, gen uint64) ([]byte, uint64) {
	t.Helper()
	r, err := s.open(obj, gen)
	if err != nil {
		t.Fatalf("open gen %d: %v", gen, err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading gen %d: %v", gen, err)
	}
	return b, r.Sum()
}

// A large snapshot is readable from its spool as it is written and once
// committed, then lands in bbolt with its checksum, and the spool file is
// removed; a small one goes to bbolt directly.
func TestSpoolLifecycle(t *testing.T) {
	s, db, dir := openSpooling(t)
	big := bytes.Repeat([]byte("spooled snapshot "), 40) // 680 bytes
	w, err := s.create("o")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(big[:95]); err != nil {
		t.Fatal(err)
	}
	if gen, readable := w.progress(); readable != 0 {
		t.Fatalf("gen %d: %d bytes readable while under spoolMin, want 0", gen, readable)
	}
	if _, err := w.Write(big[95:333]); err != nil {
		t.Fatal(err)
	}
	gen, readable := w.progress()
	if readable < 320 || readable%10 != 0 {
		t.Fatalf("%d bytes readable after 333 spooled, want at least 320 in steps of 10", readable)
	}
	r, err := s.open("o", gen)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != math.MaxInt64 {
		t.Fatalf("Size of a spool being written = %d", r.Size())
	}
	p := make([]byte, 50)
	if n, err := r.ReadAt(p, 200); n != 50 || err != nil || !bytes.Equal(p, big[200:250]) {
		t.Fatalf("ReadAt(200) = %d, %v, %q", n, err, p[:n])
	}
	if n, err := r.ReadAt(p, 500); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt past what is written = %d, %v, want io.EOF", n, err)
	}
	if _, err := w.Write(big[333:]); err != nil {
		t.Fatal(err)
	}
	info, err := w.commit()
	if err != nil {
		t.Fatal(err)
	}
	if info.Gen != gen || info.Size != int64(len(big)) || info.Sum != sumOf(big) {
		t.Fatalf("commit = %+v, want gen %d, %d bytes, sum %x", info, gen, len(big), sumOf(big))
	}
	if got, sum := readAll(t, s, "o", gen); !bytes.Equal(got, big) || sum != info.Sum {
		t.Fatalf("read back %d bytes, sum %x", len(got), sum)
	}
	small := []byte("small")
	sinfo := writeStore(t, s, "p", small)
	if cur, ok, err := s.current("p"); err != nil || !ok || cur.Gen != sinfo.Gen {
		t.Fatalf("a small snapshot is current at once: %+v %v %v", cur, ok, err)
	}
	// Close waits for the copy into bbolt.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cur, ok, err := db.Snapshot("o")
	if err != nil || !ok || cur.Gen != gen || cur.Size != int64(len(big)) {
		t.Fatalf("in bbolt after Close: %+v %v %v", cur, ok, err)
	}
	if sum, ok := decodeSumMeta(cur.Meta); !ok || sum != info.Sum {
		t.Fatalf("checksum recorded as %x (%v), want %x", cur.Meta, ok, info.Sum)
	}
	if got, sum := readAll(t, s, "o", gen); !bytes.Equal(got, big) || sum != info.Sum {
		t.Fatalf("read back from bbolt: %d bytes, sum %x", len(got), sum)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("spool files left: %v", left)
	}
}

// A reader of a spool keeps reading, from bbolt, after the spool was
// copied in and its file removed.
func TestSpoolReaderOutlivesCopy(t *testing.T) {
	s, _, _ := openSpooling(t)
	big := bytes.Repeat([]byte{1, 2, 3, 4, 5}, 100)
	info := writeStore(t, s, "o", big)
	r, err := s.open("o", info.Gen)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(*spoolReader); !ok {
		t.Fatalf("open gave a %T, want the spool's reader", r)
	}
	s.Close()
	p := make([]byte, 100)
	if n, err := r.ReadAt(p, 400); n != 100 || (err != nil && err != io.EOF) || !bytes.Equal(p, big[400:]) {
		t.Fatalf("ReadAt after the copy = %d, %v", n, err)
	}
}

// Commits keep storage's rule: the first of two writers to commit wins,
// even while the newer one waits in the spool, and a removed object's
// spools are dropped.
func TestSpoolStaleAndRemove(t *testing.T) {
	s, db, dir := openSpooling(t)
	big := bytes.Repeat([]byte("x"), 300)
	older, err := s.create("o")
	if err != nil {
		t.Fatal(err)
	}
	newer := writeStore(t, s, "o", big) // spooled, queued
	if _, err := older.Write([]byte("small and late")); err != nil {
		t.Fatal(err)
	}
	if _, err := older.commit(); !errors.Is(err, storage.ErrSnapshotStale) {
		t.Fatalf("committing an older generation after a newer one: %v, want ErrSnapshotStale", err)
	}
	older2, err := s.create("o")
	if err != nil {
		t.Fatal(err)
	}
	newer2 := writeStore(t, s, "o", big)
	if _, err := older2.Write(big); err != nil {
		t.Fatal(err)
	}
	if _, err := older2.commit(); !errors.Is(err, storage.ErrSnapshotStale) {
		t.Fatalf("committing an older spool after a newer one: %v, want ErrSnapshotStale", err)
	}
	if newer2.Gen <= newer.Gen {
		t.Fatalf("generations %d then %d", newer.Gen, newer2.Gen)
	}
	gone := writeStore(t, s, "gone", big)
	if err := s.remove("gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.open("gone", gone.Gen); !errors.Is(err, errGone) {
		t.Fatalf("open of a removed object's spool: %v, want errGone", err)
	}
	s.Close()
	if cur, ok, err := db.Snapshot("o"); err != nil || !ok || cur.Gen != newer2.Gen {
		t.Fatalf("current of o = %+v %v %v, want gen %d", cur, ok, err, newer2.Gen)
	}
	if _, ok, _ := db.Snapshot("gone"); ok {
		t.Fatal("a removed object's spool reached bbolt")
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("spool files left: %v", left)
	}
}

// A generation stored without the checksum (by an older version) still
// offers the right one, computed from its bytes.
func TestSumOfGenerationWithoutMeta(t *testing.T) {
	s, db, _ := openSpooling(t)
	data := bytes.Repeat([]byte("legacy"), 50)
	w, err := db.CreateSnapshot("o", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	info, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if got, sum := readAll(t, s, "o", info.Gen); !bytes.Equal(got, data) || sum != sumOf(data) {
		t.Fatalf("legacy generation: %d bytes, sum %x, want %x", len(got), sum, sumOf(data))
	}
}

// The spool directory of a process that died is emptied at the next
// start, and a crash before the copy leaves the previous snapshot current.
func TestSpoolAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	dir := filepath.Join(t.TempDir(), "spool")
	db, err := storage.Open(path, storage.Options{ChunkSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	s, err := newDBStore(db, dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.spoolMin, s.spoolStep = 100, 10
	first := writeStore(t, s, "o", []byte("the first, small"))
	// A spool whose copy never runs: written, not committed (the copier
	// only takes committed ones), as a crash leaves it.
	w, err := s.create("o")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte("y"), 500)); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Fatalf("spool files while writing: %v, want 1", left)
	}
	s.Close()
	db.Close() // the process dies: the pending generation stays in the file

	db = storagetest.Open(t, path, storage.Options{ChunkSize: 64})
	s, err = newDBStore(db, dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("spool files after a restart: %v", left)
	}
	if cur, ok, err := s.current("o"); err != nil || !ok || cur.Gen != first.Gen {
		t.Fatalf("current after the crash = %+v %v %v, want gen %d", cur, ok, err, first.Gen)
	}
}

// The copy into bbolt waits while spools are busy (here: for an hour) and
// Close makes it happen at once.
func TestSpoolCopyWaitsForQuiet(t *testing.T) {
	s, db, _ := openSpooling(t)
	s.quiet, s.maxWait = time.Hour, time.Hour
	big := bytes.Repeat([]byte("z"), 400)
	info := writeStore(t, s, "o", big)
	r, err := s.open("o", info.Gen)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(make([]byte, 10), 0); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.Snapshot("o"); ok {
		t.Fatal("copied into bbolt while its transfer is under way")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if cur, ok, err := db.Snapshot("o"); err != nil || !ok || cur.Gen != info.Gen {
		t.Fatalf("after Close: %+v %v %v, want gen %d current", cur, ok, err, info.Gen)
	}
}

// A copy into bbolt that has begun gives way to a snapshot spooled after
// it within one copyStep, not at the end of a storage batch: before, a
// copy begun before a join went on for 15-25 ms into it.
func TestSpoolCopyYieldsWithinStep(t *testing.T) {
	s, db, _ := openSpooling(t)
	s.quiet, s.maxWait, s.copyStep = 0, time.Hour, 16 // the copy starts at once
	yieldsWithinStep(t, s, db, 400)
	// The same with the default step, for a spool of 2 MiB (half a batch
	// of a data file's default chunks; the 4 MiB step copied it at once).
	db = storagetest.Open(t, filepath.Join(t.TempDir(), "node.db"), storage.Options{})
	s, err := newDBStore(db, filepath.Join(t.TempDir(), "spool"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.quiet, s.maxWait = 0, time.Hour
	yieldsWithinStep(t, s, db, 2<<20)
}

func yieldsWithinStep(t *testing.T, s *dbStore, db *storage.DB, size int) {
	t.Helper()
	big := bytes.Repeat([]byte("y"), size)
	began := make(chan struct{})
	var other snapWriter
	first := true
	s.copied = func(sp *spool, off int64) { // on the copier
		select {
		case <-s.closing:
			return // Close: the copy goes on regardless
		default:
		}
		if !first {
			t.Errorf("copied %d bytes of gen %d while another snapshot was being spooled", off, sp.gen)
			return
		}
		first = false
		if off >= sp.size {
			t.Errorf("the whole spool (%d bytes) copied in one step", off)
		}
		// Another large snapshot is spooled meanwhile (a join's donor).
		s.quiet = time.Hour
		w, err := s.create("p")
		if err == nil {
			_, err = w.Write(bytes.Repeat([]byte("p"), 200))
		}
		if err != nil {
			t.Error(err)
		}
		other = w
		close(began)
	}
	info := writeStore(t, s, "o", big)
	<-began
	if other == nil {
		t.FailNow()
	}
	if _, ok, _ := db.Snapshot("o"); ok {
		t.Fatal("the copy into bbolt went on to its commit")
	}
	if _, err := other.commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if cur, ok, err := db.Snapshot("o"); err != nil || !ok || cur.Gen != info.Gen {
		t.Fatalf("after Close: %+v %v %v, want gen %d current", cur, ok, err, info.Gen)
	}
	if got, _ := readAll(t, s, "o", info.Gen); !bytes.Equal(got, big) {
		t.Fatalf("stored %d bytes, want the %d spooled", len(got), len(big))
	}
}

// A donor lends the bytes of a spool in memory (pieces) for a transport to
// write; they stay as they were, and out of the free pieces, until the
// last release, even after the spool is copied into bbolt and dropped.
func TestSpoolPiecesPinned(t *testing.T) {
	s, db, _ := openSpooling(t)
	s.memBudget, s.memChunk = 1<<20, 64
	s.quiet, s.maxWait = time.Hour, time.Hour // the copy waits for Close
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	info := writeStore(t, s, "o", data)
	r, err := s.open("o", info.Gen)
	if err != nil {
		t.Fatal(err)
	}
	pr := r.(pieceReader)
	if _, _, ok := pr.pieces(900, 101); ok {
		t.Fatal("lent bytes past the end")
	}
	parts, release, ok := pr.pieces(100, 200) // across pieces of 64 bytes
	if !ok {
		t.Fatal("bytes in memory not lent")
	}
	if got := bytes.Join(parts, nil); !bytes.Equal(got, data[100:300]) {
		t.Fatalf("lent %d bytes, not the spool's", len(got))
	}
	_, release2, _ := pr.pieces(0, 64)
	free := freePieces(64)
	s.Close() // copies the spool into bbolt and drops it
	if cur, ok, err := db.Snapshot("o"); err != nil || !ok || cur.Gen != info.Gen {
		t.Fatalf("after Close: %+v %v %v", cur, ok, err)
	}
	// Another spool of the same piece size must not get the lent memory.
	if got := freePieces(64); got != free {
		t.Fatalf("%d free pieces while lent, want %d", got, free)
	}
	if got := bytes.Join(parts, nil); !bytes.Equal(got, data[100:300]) {
		t.Fatal("lent bytes changed")
	}
	release()
	release() // a second call does nothing
	if got := freePieces(64); got != free {
		t.Fatalf("%d free pieces while one lending is out, want %d", got, free)
	}
	release2()
	if got, want := freePieces(64), free+16; got != want {
		t.Fatalf("%d free pieces after the releases, want %d (the spool's 16)", got, want)
	}
	if used := s.memUsed.Load(); used != 0 {
		t.Fatalf("%d bytes still counted in memory", used)
	}
}

// A crash (Close with no time to copy) abandons the spools not yet in
// bbolt: the previous snapshot stays current and no spool file is left.
func TestSpoolAbandonedAtCrash(t *testing.T) {
	s, db, dir := openSpooling(t)
	first := writeStore(t, s, "o", []byte("small, in bbolt at once"))
	s.quiet, s.maxWait = time.Hour, time.Hour // the copy waits
	writeStore(t, s, "o", bytes.Repeat([]byte("w"), 500))
	if err := s.closeWithin(0); err != nil {
		t.Fatal(err)
	}
	if cur, ok, err := db.Snapshot("o"); err != nil || !ok || cur.Gen != first.Gen {
		t.Fatalf("current after a crash = %+v %v %v, want gen %d", cur, ok, err, first.Gen)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("spool files left: %v", left)
	}
}

// A spool keeps its first bytes in memory while the store's budget lasts
// and the rest in a file: every byte reads back the same from either side
// of the boundary, as written and once committed, the budget is never
// exceeded, and the copy into bbolt gives the memory back.
func TestSpoolMemoryThenFile(t *testing.T) {
	big := make([]byte, 680)
	for i := range big {
		big[i] = byte(i*7 + i/13)
	}
	for _, budget := range []int{0, 128, 4096} {
		s, db, dir := openSpooling(t)
		s.memBudget, s.memChunk = budget, 64
		w, err := s.create("o")
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(big); off += 37 {
			if _, err := w.Write(big[off:min(off+37, len(big))]); err != nil {
				t.Fatal(err)
			}
			if used := s.memUsed.Load(); used > int64(budget) {
				t.Fatalf("budget %d: %d bytes in memory", budget, used)
			}
		}
		gen, readable := w.progress()
		r, err := s.open("o", gen)
		if err != nil {
			t.Fatal(err)
		}
		checkReads(t, r, big[:readable], budget)
		files, _ := os.ReadDir(dir)
		if wantFile := budget < len(big); (len(files) == 1) != wantFile {
			t.Fatalf("budget %d: spool files %v, want a file: %v", budget, files, wantFile)
		}
		info, err := w.commit()
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != int64(len(big)) || info.Sum != sumOf(big) {
			t.Fatalf("budget %d: commit = %+v", budget, info)
		}
		checkReads(t, r, big, budget)
		if got, sum := readAll(t, s, "o", gen); !bytes.Equal(got, big) || sum != info.Sum {
			t.Fatalf("budget %d: read back %d bytes, sum %x", budget, len(got), sum)
		}
		s.Close()
		if used := s.memUsed.Load(); used != 0 {
			t.Fatalf("budget %d: %d bytes still in memory after the copy", budget, used)
		}
		cur, ok, err := db.Snapshot("o")
		if err != nil || !ok || cur.Gen != gen || cur.Size != int64(len(big)) {
			t.Fatalf("budget %d: in bbolt: %+v %v %v", budget, cur, ok, err)
		}
		if got, _ := readAll(t, s, "o", gen); !bytes.Equal(got, big) {
			t.Fatalf("budget %d: bbolt holds other bytes", budget)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("budget %d: spool files left: %v", budget, left)
		}
	}
}

// checkReads reads want back from r at every offset, in sizes that cross
// the memory pieces and the memory-file boundary.
func checkReads(t *testing.T, r snapReader, want []byte, budget int) {
	t.Helper()
	for _, size := range []int{1, 63, 64, 65, 200, len(want) + 10} {
		p := make([]byte, size)
		for off := 0; off < len(want); off += 11 {
			n, err := r.ReadAt(p, int64(off))
			end := min(off+size, len(want))
			if n != end-off || !bytes.Equal(p[:n], want[off:end]) {
				t.Fatalf("budget %d: ReadAt(%d bytes at %d) = %d, %v", budget, size, off, n, err)
			}
			if short := end-off < size; short != (err != nil) {
				t.Fatalf("budget %d: ReadAt(%d bytes at %d of %d) err = %v", budget, size, off, len(want), err)
			}
		}
	}
}

// The memory budget is the node's, shared by its spools: a second spool
// written while the first holds the budget goes to a file, and removing an
// object gives its spools' memory back, and the pieces are reused.
func TestSpoolMemoryShared(t *testing.T) {
	releasePieces() // the free pieces are the process's: start with none
	s, _, dir := openSpooling(t)
	s.memBudget, s.memChunk = 512, 64
	s.quiet, s.maxWait = time.Hour, time.Hour     // the copies wait: the memory stays held
	big := bytes.Repeat([]byte("0123456789"), 60) // 600 bytes: 512 in memory, 88 in a file
	first := writeStore(t, s, "a", big)
	if used := s.memUsed.Load(); used != 512 {
		t.Fatalf("first spool holds %d bytes of memory, want the whole budget (512)", used)
	}
	second := writeStore(t, s, "b", big)
	if used := s.memUsed.Load(); used != 512 {
		t.Fatalf("after a second spool %d bytes in memory, want 512", used)
	}
	if files, _ := os.ReadDir(dir); len(files) != 2 {
		t.Fatalf("spool files %v, want the first's tail and all of the second", files)
	}
	for _, g := range []struct {
		obj ObjectID
		gen uint64
	}{{"a", first.Gen}, {"b", second.Gen}} {
		if got, _ := readAll(t, s, g.obj, g.gen); !bytes.Equal(got, big) {
			t.Fatalf("%s reads back %d other bytes", g.obj, len(got))
		}
	}
	if err := s.remove("a"); err != nil {
		t.Fatal(err)
	}
	if used, free := s.memUsed.Load(), freePieces(s.memChunk); used != 0 || free != 8 {
		t.Fatalf("after removing a: %d bytes in memory, %d free pieces; want 0 and a's 8", used, free)
	}
	third := writeStore(t, s, "c", big[:300])
	if used, free := s.memUsed.Load(), freePieces(s.memChunk); used != 320 || free != 3 {
		t.Fatalf("third spool holds %d bytes of memory, %d pieces free; want 320 (5 of a's 8 pieces of 64) and 3", used, free)
	}
	if got, _ := readAll(t, s, "c", third.Gen); !bytes.Equal(got, big[:300]) {
		t.Fatalf("c reads back other bytes")
	}
	releasePieces()
	if free := freePieces(s.memChunk); free != 0 {
		t.Fatalf("%d pieces free after releasePieces", free)
	}
}

// A spool superseded by a newer committed one of its object, before its
// copy into bbolt started, is dropped instead of stored.
func TestSpoolSupersededNotStored(t *testing.T) {
	s, db, dir := openSpooling(t)
	s.memBudget, s.memChunk = 1<<20, 64
	s.quiet, s.maxWait = time.Hour, time.Hour // the copies wait until Close
	big := bytes.Repeat([]byte("superseded "), 50)
	writeStore(t, s, "o", big)
	other := writeStore(t, s, "p", big)
	newer := writeStore(t, s, "o", append(big, "and newer"...))
	s.Close()
	if got, want := s.superseded.Load(), uint64(1); got != want {
		t.Fatalf("%d spools superseded, want %d", got, want)
	}
	if got, want := s.stored.Load(), uint64(2); got != want {
		t.Fatalf("%d spools stored, want %d (p's and o's newer)", got, want)
	}
	for _, c := range []struct {
		obj ObjectID
		gen uint64
	}{{"o", newer.Gen}, {"p", other.Gen}} {
		if cur, ok, err := db.Snapshot(string(c.obj)); err != nil || !ok || cur.Gen != c.gen {
			t.Fatalf("current of %s = %+v %v %v, want gen %d", c.obj, cur, ok, err, c.gen)
		}
	}
	if used := s.memUsed.Load(); used != 0 {
		t.Fatalf("%d bytes still in memory", used)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("spool files left: %v", left)
	}
}

// freePieces is how many free spool pieces of size bytes are kept.
func freePieces(size int) int {
	p := &spoolPieces
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free[size])
}

// TestSpoolPiecesFromArenas: pieces of a size that divides hugeArena are
// carved from arenas (mapped in huge pages on Linux, so a spool's first
// touch costs a fault per 2 MiB, not per 4 KiB; heap memory under -race);
// an idle release unmaps an arena only once every piece carved from it
// is free, and keeps the free pieces of one still in use; a piece put
// back twice panics rather than let its arena be unmapped under a user.
func TestSpoolPiecesFromArenas(t *testing.T) {
	if !haveArenas {
		t.Skip("no spool arenas on this system: pieces come from the heap one by one")
	}
	t.Logf("arenas mapped in huge pages: %v (else heap arenas, carved alike)", arenasMapped)
	const size = 1 << 20
	releasePieces()
	p := &spoolPieces
	p.mu.Lock()
	delete(p.carving, size) // a fresh arena, whatever earlier tests left
	p.mu.Unlock()
	a, b := getPiece(size), getPiece(size)
	p.mu.Lock()
	ar := p.arenaOf(a)
	p.mu.Unlock()
	if ar == nil || len(a) != size || cap(a) != size {
		t.Fatalf("a 1 MiB piece: arena %v, len %d cap %d; want one from an arena, capped at its size", ar, len(a), cap(a))
	}
	if baseOf(a) != baseOf(b) {
		t.Fatalf("two pieces carved one after the other are in different arenas")
	}
	for i := range a {
		a[i], b[i] = 1, 2
	}
	putPieces([][]byte{a}, size)
	releasePieces()
	p.mu.Lock()
	mapped := p.arenas[baseOf(b)] != nil
	p.mu.Unlock()
	if !mapped || freePieces(size) != 1 {
		t.Fatalf("after a release with one of two pieces in use: arena mapped %v, %d free pieces; want mapped, 1", mapped, freePieces(size))
	}
	for i := range b { // still ours: a fault here means it was unmapped
		b[i] = 3
	}
	putPieces([][]byte{b}, size)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a piece put back twice was taken")
			}
		}()
		putPieces([][]byte{b}, size)
	}()
	releasePieces()
	p.mu.Lock()
	mapped = p.arenas[baseOf(b)] != nil
	p.mu.Unlock()
	if mapped || freePieces(size) != 0 {
		t.Fatalf("after a release with every piece free: arena mapped %v, %d free pieces; want unmapped, 0", mapped, freePieces(size))
	}
	c := getPiece(64)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.arenaOf(c) != nil {
		t.Fatal("a 64-byte piece came from an arena")
	}
}

// TestSpoolDroppedWhileWriting: remove (Object.Close) can drop a spool
// whose snapshot is still being written. Its memory goes back at once,
// and the writer's later Writes and its commit fail instead of writing
// into pieces handed back to the pool (before: an index out of range).
func TestSpoolDroppedWhileWriting(t *testing.T) {
	s, _, _ := openSpooling(t)
	s.memBudget, s.memChunk = 1<<10, 64
	free := freePieces(64)
	w, err := s.create("o")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte("a"), 150)); err != nil { // spooled: 3 pieces
		t.Fatal(err)
	}
	if err := s.remove("o"); err != nil {
		t.Fatal(err)
	}
	if got := freePieces(64); got != free+3 {
		t.Fatalf("%d free pieces after the drop, want %d", got, free+3)
	}
	for _, n := range []int{10, 100} { // within the last piece, then new ones
		if _, err := w.Write(bytes.Repeat([]byte("b"), n)); !errors.Is(err, errSpoolDropped) {
			t.Fatalf("a Write of %d bytes to a dropped spool: %v, want errSpoolDropped", n, err)
		}
	}
	if _, err := w.commit(); err == nil {
		t.Fatal("a dropped spool committed")
	}
	if used, got := s.memUsed.Load(), freePieces(64); used != 0 || got != free+3 {
		t.Fatalf("after the writer ended: %d bytes in memory, %d free pieces; want 0, %d", used, got, free+3)
	}
}

// TestSpoolFileAfterDrop: a spool dropped while written whose writer then
// needs a file (memory budget spent) makes no file: drop has run and
// would never remove it.
func TestSpoolFileAfterDrop(t *testing.T) {
	s, _, _ := openSpooling(t)
	s.memBudget, s.memChunk = 1<<10, 64
	w, err := s.create("o")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte("a"), 192)); err != nil {
		t.Fatal(err)
	}
	if err := s.remove("o"); err != nil {
		t.Fatal(err)
	}
	s.memUsed.Add(1 << 20) // another object's spools fill the budget
	defer s.memUsed.Add(-1 << 20)
	if _, err := w.Write(bytes.Repeat([]byte("b"), 100)); !errors.Is(err, errSpoolDropped) {
		t.Errorf("Write after the drop: %v, want errSpoolDropped", err)
	}
	if _, err := w.commit(); err == nil {
		t.Error("a dropped spool committed")
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("spool files left: %v", ents)
	}
}
