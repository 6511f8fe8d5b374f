package storage_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/lwgkit/lwgkit/storage"
	"github.com/lwgkit/lwgkit/storage/storagetest"
)

// Small chunks, few per transaction: every test snapshot spans several
// chunks and transactions.
var smallChunks = storage.Options{ChunkSize: 64, ChunksPerTx: 3}

// payload returns n deterministic pseudo-random bytes for seed.
func payload(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// writeSnapshot writes data in pieces of random sizes and commits it.
func writeSnapshot(t *testing.T, db *storage.DB, object string, meta, data []byte) storage.SnapshotInfo {
	t.Helper()
	w, err := db.CreateSnapshot(object, meta)
	if err != nil {
		t.Fatalf("CreateSnapshot(%q): %v", object, err)
	}
	defer w.Abort()
	rng := rand.New(rand.NewPCG(uint64(len(data)), 2))
	for rest := data; len(rest) > 0; {
		k := min(1+rng.IntN(150), len(rest))
		if n, err := w.Write(rest[:k]); n != k || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", k, n, err)
		}
		rest = rest[k:]
	}
	info, err := w.Commit()
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return info
}

// readAll reads a snapshot generation with Read and returns its bytes.
func readAll(t *testing.T, db *storage.DB, object string, gen uint64) ([]byte, error) {
	t.Helper()
	r, err := db.OpenSnapshot(object, gen)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func mustCurrent(t *testing.T, db *storage.DB, object string) (storage.SnapshotInfo, bool) {
	t.Helper()
	info, ok, err := db.Snapshot(object)
	if err != nil {
		t.Fatalf("Snapshot(%q): %v", object, err)
	}
	return info, ok
}

func infoEqual(a, b storage.SnapshotInfo) bool {
	return a.Object == b.Object && a.Gen == b.Gen && a.Size == b.Size && a.Sum == b.Sum && bytes.Equal(a.Meta, b.Meta)
}

func TestSnapshotRoundTrip(t *testing.T) {
	db := storagetest.Open(t, newPath(t), smallChunks)
	const cs = 64
	for i, size := range []int{0, 1, cs - 1, cs, cs + 1, 3 * cs, 3*cs + 1, 10*cs + 3} {
		object := fmt.Sprintf("obj-%d", i)
		data := payload(uint64(i), size)
		meta := []byte(fmt.Sprintf("index %d", i))
		info := writeSnapshot(t, db, object, meta, data)
		want := storage.SnapshotInfo{Object: object, Gen: info.Gen, Size: int64(size), Sum: sha256.Sum256(data), Meta: meta}
		if !infoEqual(info, want) {
			t.Fatalf("size %d: Commit = %+v, want %+v", size, info, want)
		}
		if cur, ok := mustCurrent(t, db, object); !ok || !infoEqual(cur, want) {
			t.Fatalf("size %d: Snapshot = %+v, %v, want %+v", size, cur, ok, want)
		}
		r, err := db.OpenSnapshot(object, info.Gen)
		if err != nil {
			t.Fatalf("OpenSnapshot: %v", err)
		}
		if got := r.Info(); !infoEqual(got, want) {
			t.Fatalf("Info = %+v, want %+v", got, want)
		}
		// Sequential Read in odd-sized pieces.
		var got []byte
		buf := make([]byte, 37)
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("size %d: Read: %v", size, err)
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("size %d: Read returned %d bytes that differ from the %d written", size, len(got), len(data))
		}
		if n, err := r.Read(buf); n != 0 || err != io.EOF {
			t.Fatalf("Read after EOF = %d, %v", n, err)
		}
		// ReadAt across chunk boundaries, and past the end.
		rng := rand.New(rand.NewPCG(uint64(size), 3))
		for range 50 {
			off := rng.IntN(size + 2)
			p := make([]byte, rng.IntN(3*cs))
			n, err := r.ReadAt(p, int64(off))
			wantN := max(0, min(len(p), size-off))
			switch {
			case n != wantN:
				t.Fatalf("ReadAt(%d bytes, %d) = %d, %v, want %d", len(p), off, n, err, wantN)
			case n < len(p) && err != io.EOF:
				t.Fatalf("short ReadAt(%d bytes, %d) = %d, %v, want io.EOF", len(p), off, n, err)
			case n == len(p) && err != nil && !(err == io.EOF && off+n == size):
				t.Fatalf("ReadAt(%d bytes, %d) = %d, %v", len(p), off, n, err)
			case n > 0 && !bytes.Equal(p[:n], data[off:off+n]):
				t.Fatalf("ReadAt(%d bytes, %d) returned other bytes", len(p), off)
			}
		}
	}
	storagetest.Check(t, db)
}

// chunksOf counts the chunks of gen in the file, and reports whether it is
// recorded as being written.
func chunksOf(t *testing.T, db *storage.DB, gen uint64) (n int, pending bool) {
	t.Helper()
	prefix := binary.BigEndian.AppendUint64(nil, gen)
	err := db.Bolt().View(func(tx *bbolt.Tx) error {
		c := tx.Bucket([]byte("chunks")).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			n++
		}
		pending = tx.Bucket([]byte("pending")).Get(prefix) != nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, pending
}

// A writer writes ChunksPerTx chunks per transaction as it goes, not all at
// Commit, and nothing is visible before Commit.
func TestSnapshotWritesAsItGoes(t *testing.T) {
	db := storagetest.Open(t, newPath(t), smallChunks)
	w, err := db.CreateSnapshot("obj", nil)
	if err != nil {
		t.Fatal(err)
	}
	data := payload(1, 7*64+1)
	// After 7 full chunks, the first 6 are written (two transactions of 3,
	// the second perhaps still in flight); the 7th is buffered with room
	// for 2 more.
	if _, err := w.Write(data[:7*64]); err != nil {
		t.Fatal(err)
	}
	if n, _ := chunksOf(t, db, w.Gen()); n != 3 && n != 6 || w.Flushed() < 3*64 || w.Flushed() > int64(n)*64 {
		t.Fatalf("after 7 chunks: %d chunks in the file, %d bytes flushed; want 3 or 6 chunks and from 3 chunks' bytes flushed to as many as are in the file", n, w.Flushed())
	}
	if err := w.WaitFlushed(); err != nil {
		t.Fatal(err)
	}
	if n, pending := chunksOf(t, db, w.Gen()); n != 6 || !pending || w.Flushed() != 6*64 {
		t.Fatalf("after 7 chunks: %d chunks in the file (pending %v), %d bytes flushed, want 6 and %d", n, pending, w.Flushed(), 6*64)
	}
	if _, ok := mustCurrent(t, db, "obj"); ok {
		t.Fatal("a snapshot is current before Commit")
	}
	if _, err := db.OpenSnapshot("obj", w.Gen()); !errors.Is(err, storage.ErrSnapshotGone) {
		t.Fatalf("OpenSnapshot of an uncommitted generation = %v, want ErrSnapshotGone", err)
	}
	storagetest.Check(t, db) // a file with a snapshot being written is consistent
	if _, err := w.Write(data[7*64:]); err != nil {
		t.Fatal(err)
	}
	info, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if n, pending := chunksOf(t, db, w.Gen()); n != 8 || pending {
		t.Fatalf("after Commit: %d chunks (pending %v), want 8", n, pending)
	}
	if got, err := readAll(t, db, "obj", info.Gen); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %d bytes, %v", len(got), err)
	}
	storagetest.Check(t, db)
}

// The generation before the current one stays readable until the next
// Commit: a reader survives one newer snapshot, not two.
func TestSnapshotGenerations(t *testing.T) {
	db := storagetest.Open(t, newPath(t), smallChunks)
	data := [][]byte{payload(1, 300), payload(2, 200), payload(3, 100)}
	g1 := writeSnapshot(t, db, "obj", nil, data[0])
	r1, err := db.OpenSnapshot("obj", g1.Gen)
	if err != nil {
		t.Fatal(err)
	}
	// Read part of g1, then commit g2.
	part := make([]byte, 100)
	if _, err := io.ReadFull(r1, part); err != nil {
		t.Fatal(err)
	}
	g2 := writeSnapshot(t, db, "obj", nil, data[1])
	if g2.Gen <= g1.Gen {
		t.Fatalf("generation %d after %d", g2.Gen, g1.Gen)
	}
	if cur, _ := mustCurrent(t, db, "obj"); cur.Gen != g2.Gen {
		t.Fatalf("current %d, want %d", cur.Gen, g2.Gen)
	}
	rest, err := io.ReadAll(r1)
	if err != nil || !bytes.Equal(append(part, rest...), data[0]) {
		t.Fatalf("reading g1 after g2's commit: %d bytes, %v", len(rest), err)
	}
	r1b, err := db.OpenSnapshot("obj", g1.Gen)
	if err != nil {
		t.Fatalf("OpenSnapshot of the previous generation: %v", err)
	}
	r2, err := db.OpenSnapshot("obj", g2.Gen)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r1b.Read(part); err != nil {
		t.Fatal(err)
	}

	g3 := writeSnapshot(t, db, "obj", nil, data[2])
	if g3.Gen <= g2.Gen {
		t.Fatalf("generation %d after %d", g3.Gen, g2.Gen)
	}
	// g1 is gone: for a reader in progress, a new one, and ReadAt.
	if _, err := io.ReadAll(r1b); !errors.Is(err, storage.ErrSnapshotGone) {
		t.Errorf("Read of g1 after g3's commit = %v, want ErrSnapshotGone", err)
	}
	if _, err := r1.ReadAt(part, 0); !errors.Is(err, storage.ErrSnapshotGone) {
		t.Errorf("ReadAt of g1 after g3's commit = %v, want ErrSnapshotGone", err)
	}
	if _, err := db.OpenSnapshot("obj", g1.Gen); !errors.Is(err, storage.ErrSnapshotGone) {
		t.Errorf("OpenSnapshot of g1 after g3's commit = %v, want ErrSnapshotGone", err)
	}
	// g2 survives g3.
	if got, err := io.ReadAll(r2); err != nil || !bytes.Equal(got, data[1]) {
		t.Errorf("reading g2 after g3's commit: %d bytes, %v", len(got), err)
	}
	if n, _ := chunksOf(t, db, g1.Gen); n != 0 {
		t.Errorf("g1 still has %d chunks", n)
	}
	// Generations are the object's, not another's.
	writeSnapshot(t, db, "other", nil, data[0])
	if _, err := db.OpenSnapshot("other", g3.Gen); !errors.Is(err, storage.ErrSnapshotGone) {
		t.Errorf("OpenSnapshot of another object's generation = %v, want ErrSnapshotGone", err)
	}
	storagetest.Check(t, db)
}

func TestSnapshotAbort(t *testing.T) {
	db := storagetest.Open(t, newPath(t), smallChunks)
	old := writeSnapshot(t, db, "obj", []byte("old"), payload(1, 500))
	w, err := db.CreateSnapshot("obj", []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(payload(2, 1000)); err != nil {
		t.Fatal(err)
	}
	if n, _ := chunksOf(t, db, w.Gen()); n == 0 {
		t.Fatal("no chunks written before Abort: the test tests nothing")
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if n, pending := chunksOf(t, db, w.Gen()); n != 0 || pending {
		t.Fatalf("after Abort: %d chunks, pending %v", n, pending)
	}
	if cur, _ := mustCurrent(t, db, "obj"); !infoEqual(cur, old) {
		t.Fatalf("after Abort the current snapshot is %+v, want %+v", cur, old)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("second Abort: %v", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Write after Abort = %v, want ErrClosed", err)
	}
	if _, err := w.Commit(); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Commit after Abort = %v, want ErrClosed", err)
	}
	// Abort after Commit does nothing.
	w, err = db.CreateSnapshot("obj", nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
	if cur, _ := mustCurrent(t, db, "obj"); !infoEqual(cur, info) {
		t.Errorf("Abort after Commit changed the current snapshot to %+v", cur)
	}
	storagetest.Check(t, db)
}

// A writer that is never committed (its process died, or it was dropped)
// leaves chunks that the next Open removes; the previous snapshot stays
// current and its generation is never handed out again.
func TestSnapshotOrphansRemovedByOpen(t *testing.T) {
	path := newPath(t)
	db := storagetest.Open(t, path, smallChunks)
	old := writeSnapshot(t, db, "obj", nil, payload(1, 500))
	w, err := db.CreateSnapshot("obj", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(payload(2, 1000)); err != nil {
		t.Fatal(err)
	}
	orphan := w.Gen()
	// Check the file with no batch in flight: bbolt's Tx.Check reads the
	// freelist unsynchronised with a writer's transaction.
	if err := w.WaitFlushed(); err != nil {
		t.Fatal(err)
	}
	if n, pending := chunksOf(t, db, orphan); n < 2*smallChunks.ChunksPerTx || !pending {
		t.Fatalf("%d chunks (pending %v) before the crash, want several transactions' worth", n, pending)
	}
	storagetest.Check(t, db)
	mustClose(t, db) // as a crash would: the writer is neither committed nor aborted
	if _, err := w.Commit(); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Commit after Close = %v, want ErrClosed", err)
	}

	db = storagetest.Open(t, path, smallChunks)
	if n, pending := chunksOf(t, db, orphan); n != 0 || pending {
		t.Fatalf("after reopening: %d chunks of the unfinished generation, pending %v", n, pending)
	}
	if cur, _ := mustCurrent(t, db, "obj"); !infoEqual(cur, old) {
		t.Fatalf("current snapshot %+v, want %+v", cur, old)
	}
	if got, err := readAll(t, db, "obj", old.Gen); err != nil || !bytes.Equal(got, payload(1, 500)) {
		t.Fatalf("reading the current snapshot: %d bytes, %v", len(got), err)
	}
	next := writeSnapshot(t, db, "obj", nil, nil)
	if next.Gen <= orphan {
		t.Fatalf("generation %d handed out again after %d", next.Gen, orphan)
	}
}

func TestSnapshotStale(t *testing.T) {
	db := storagetest.Open(t, newPath(t), smallChunks)
	older, err := db.CreateSnapshot("obj", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := older.Write(payload(1, 400)); err != nil {
		t.Fatal(err)
	}
	newer := writeSnapshot(t, db, "obj", nil, payload(2, 100))
	if newer.Gen <= older.Gen() {
		t.Fatalf("generation %d created after %d", newer.Gen, older.Gen())
	}
	if _, err := older.Commit(); !errors.Is(err, storage.ErrSnapshotStale) {
		t.Fatalf("Commit of an older generation = %v, want ErrSnapshotStale", err)
	}
	if n, pending := chunksOf(t, db, older.Gen()); n != 0 || pending {
		t.Fatalf("stale generation left %d chunks, pending %v", n, pending)
	}
	if cur, _ := mustCurrent(t, db, "obj"); !infoEqual(cur, newer) {
		t.Fatalf("current %+v, want %+v", cur, newer)
	}
	storagetest.Check(t, db)
}

func TestDeleteSnapshot(t *testing.T) {
	db := storagetest.Open(t, newPath(t), smallChunks)
	g1 := writeSnapshot(t, db, "obj", nil, payload(1, 300))
	g2 := writeSnapshot(t, db, "obj", nil, payload(2, 300))
	other := writeSnapshot(t, db, "other", nil, payload(3, 300))
	r, err := db.OpenSnapshot("obj", g2.Gen)
	if err != nil {
		t.Fatal(err)
	}
	w, err := db.CreateSnapshot("obj", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(payload(4, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSnapshot("obj"); err != nil {
		t.Fatalf("DeleteSnapshot: %v", err)
	}
	if info, ok := mustCurrent(t, db, "obj"); ok {
		t.Fatalf("after DeleteSnapshot: current %+v", info)
	}
	for _, gen := range []uint64{g1.Gen, g2.Gen, w.Gen()} {
		if n, pending := chunksOf(t, db, gen); n != 0 || pending {
			t.Errorf("generation %d: %d chunks left, pending %v", gen, n, pending)
		}
	}
	if _, err := io.ReadAll(r); !errors.Is(err, storage.ErrSnapshotGone) {
		t.Errorf("Read of a deleted snapshot = %v, want ErrSnapshotGone", err)
	}
	if _, err := w.Write(payload(5, 1000)); !errors.Is(err, storage.ErrSnapshotGone) {
		t.Errorf("Write to a deleted snapshot = %v, want ErrSnapshotGone", err)
	}
	if _, err := w.Commit(); !errors.Is(err, storage.ErrSnapshotGone) {
		t.Errorf("Commit of a deleted snapshot = %v, want ErrSnapshotGone", err)
	}
	if cur, _ := mustCurrent(t, db, "other"); !infoEqual(cur, other) {
		t.Errorf("another object's snapshot changed: %+v", cur)
	}
	if err := db.DeleteSnapshot("nothing"); err != nil {
		t.Errorf("DeleteSnapshot of an object without snapshots: %v", err)
	}
	// Generations are not reused after a delete.
	if g := writeSnapshot(t, db, "obj", nil, nil); g.Gen <= w.Gen() {
		t.Errorf("generation %d after deleting up to %d", g.Gen, w.Gen())
	}
	storagetest.Check(t, db)
}

// A deletion between CreateSnapshot and the writer's first write to the
// file also makes the writer fail.
func TestDeleteSnapshotBeforeFirstFlush(t *testing.T) {
	db := storagetest.Open(t, newPath(t), smallChunks)
	w, err := db.CreateSnapshot("obj", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSnapshot("obj"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("small")); err != nil {
		t.Fatal(err) // buffered: the writer cannot know yet
	}
	if _, err := w.Commit(); !errors.Is(err, storage.ErrSnapshotGone) {
		t.Fatalf("Commit = %v, want ErrSnapshotGone", err)
	}
	if _, ok := mustCurrent(t, db, "obj"); ok {
		t.Fatal("a deleted writer's snapshot became current")
	}
	storagetest.Check(t, db)
}

// rawUpdate changes a closed storage file directly with bbolt.
func rawUpdate(t *testing.T, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotCorrupt(t *testing.T) {
	path := newPath(t)
	// Not storagetest.Open: the file is corrupt on purpose until repaired.
	db, err := storage.Open(path, smallChunks)
	if err != nil {
		t.Fatal(err)
	}
	data := payload(1, 500)
	info := writeSnapshot(t, db, "obj", nil, data)
	mustClose(t, db)
	key := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, info.Gen), 2)
	var saved []byte
	setChunk := func(v []byte) {
		rawUpdate(t, path, func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte("chunks"))
			if saved == nil {
				saved = bytes.Clone(b.Get(key))
			}
			return b.Put(key, v)
		})
	}
	readBack := func(what string) {
		t.Helper()
		db := open(t, path)
		defer db.Close()
		r, err := db.OpenSnapshot("obj", info.Gen)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("%s: Read = %d bytes, %v, want ErrCorrupt", what, len(got), err)
		}
		if err := db.Verify(); !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("%s: Verify = %v, want ErrCorrupt", what, err)
		}
		t.Logf("%s: %v", what, err)
	}

	// A flipped bit: the chunk's checksum catches it, in Read and ReadAt.
	t.Run("bit flip", func(t *testing.T) {
		setChunk(nil)
		if len(saved) != 4+64 {
			t.Fatalf("chunk 2 of %d bytes", len(saved))
		}
		v := bytes.Clone(saved)
		v[10] ^= 1
		setChunk(v)
		readBack("bit flip")
		db := open(t, path)
		defer db.Close()
		r, err := db.OpenSnapshot("obj", info.Gen)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadAt(make([]byte, 10), 2*64+5); !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("ReadAt of a corrupt chunk = %v, want ErrCorrupt", err)
		}
		if _, err := r.ReadAt(make([]byte, 10), 0); err != nil {
			t.Errorf("ReadAt of a sound chunk = %v", err)
		}
	})
	// A chunk replaced whole, checksum and all: only the snapshot's SHA-256
	// catches it, at the end of a sequential Read.
	t.Run("replaced chunk", func(t *testing.T) {
		v := bytes.Clone(saved)
		v[10] ^= 1
		binary.BigEndian.PutUint32(v, crc32.Checksum(v[4:], crc32.MakeTable(crc32.Castagnoli)))
		setChunk(v)
		readBack("replaced chunk")
	})
	t.Run("short chunk", func(t *testing.T) {
		v := bytes.Clone(saved[:20])
		binary.BigEndian.PutUint32(v, crc32.Checksum(v[4:], crc32.MakeTable(crc32.Castagnoli)))
		setChunk(v)
		readBack("short chunk")
	})

	setChunk(saved)
	db = open(t, path)
	if got, err := readAll(t, db, "obj", info.Gen); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after repair: %d bytes, %v", len(got), err)
	}
	storagetest.Check(t, db)
}

func TestSnapshotInvalid(t *testing.T) {
	db := storagetest.Open(t, newPath(t), smallChunks)
	info := writeSnapshot(t, db, "obj", nil, payload(1, 10))
	if _, err := db.CreateSnapshot("", nil); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("CreateSnapshot(\"\") = %v", err)
	}
	if _, _, err := db.Snapshot(""); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("Snapshot(\"\") = %v", err)
	}
	if _, err := db.OpenSnapshot("", 1); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("OpenSnapshot(\"\") = %v", err)
	}
	if err := db.DeleteSnapshot(""); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("DeleteSnapshot(\"\") = %v", err)
	}
	long := string(make([]byte, storage.MaxNameLen+1))
	if _, err := db.CreateSnapshot(long, nil); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("CreateSnapshot(long name) = %v", err)
	}
	r, err := db.OpenSnapshot("obj", info.Gen)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(make([]byte, 1), -1); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("ReadAt at -1 = %v", err)
	}
	for _, opts := range []storage.Options{{ChunkSize: -1}, {ChunkSize: storage.MaxChunkSize + 1},
		{ChunksPerTx: -1}, {ChunksPerTx: storage.MaxChunksPerTx + 1}, {MaxBatchDelay: -1}, {MaxBatchSize: -1}} {
		if _, err := storage.Open(newPath(t), opts); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Open(%+v) = %v, want ErrInvalid", opts, err)
		}
	}
	storagetest.Check(t, db)
}

// After Close, the DB and the readers and writers it handed out fail with
// ErrClosed.
func TestSnapshotClosed(t *testing.T) {
	path := newPath(t)
	db := storagetest.Open(t, path, smallChunks)
	info := writeSnapshot(t, db, "obj", nil, payload(1, 300))
	r, err := db.OpenSnapshot("obj", info.Gen)
	if err != nil {
		t.Fatal(err)
	}
	w, err := db.CreateSnapshot("obj", nil)
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, db)
	for what, err := range map[string]error{
		"Read":    func() error { _, err := r.Read(make([]byte, 10)); return err }(),
		"ReadAt":  func() error { _, err := r.ReadAt(make([]byte, 10), 0); return err }(),
		"Write":   func() error { _, err := w.Write(make([]byte, 1000)); return err }(),
		"Commit":  func() error { _, err := w.Commit(); return err }(),
		"Create":  func() error { _, err := db.CreateSnapshot("obj", nil); return err }(),
		"Open":    func() error { _, err := db.OpenSnapshot("obj", info.Gen); return err }(),
		"Current": func() error { _, _, err := db.Snapshot("obj"); return err }(),
		"Delete":  db.DeleteSnapshot("obj"),
	} {
		if !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", what, err)
		} else if what == "Read" {
			t.Logf("%s after Close: %v", what, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// A generation being written can be read as far as it is flushed, and no
// further; once committed or aborted it is gone for OpenPending.
func TestOpenPendingReadsWhatIsFlushed(t *testing.T) {
	db := storagetest.Open(t, newPath(t), smallChunks)
	w, err := db.CreateSnapshot("obj", nil)
	if err != nil {
		t.Fatal(err)
	}
	data := payload(2, 7*64+5)
	if _, err := w.Write(data[:7*64]); err != nil {
		t.Fatal(err)
	}
	if err := w.WaitFlushed(); err != nil {
		t.Fatal(err)
	}
	r, err := db.OpenPending("obj", w.Gen())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6*64)
	if n, err := r.ReadAt(buf, 0); n != 6*64 || err != nil || !bytes.Equal(buf, data[:6*64]) {
		t.Fatalf("ReadAt(0) of the 6 flushed chunks: %d, %v", n, err)
	}
	if n, err := r.ReadAt(buf[:100], 5*64+10); n != 54 || err != io.EOF || !bytes.Equal(buf[:54], data[5*64+10:6*64]) {
		t.Fatalf("ReadAt across the flushed end: %d, %v; want 54, EOF", n, err)
	}
	if n, err := r.ReadAt(buf, 6*64); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt past the flushed end: %d, %v; want 0, EOF", n, err)
	}
	if _, err := r.ReadAt(buf, -1); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("ReadAt(-1) = %v, want ErrInvalid", err)
	}
	for _, c := range []struct {
		object string
		gen    uint64
	}{{"other", w.Gen()}, {"obj", w.Gen() + 1}} {
		if _, err := db.OpenPending(c.object, c.gen); !errors.Is(err, storage.ErrSnapshotGone) {
			t.Fatalf("OpenPending(%q, %d) = %v, want ErrSnapshotGone", c.object, c.gen, err)
		}
	}
	storagetest.Check(t, db)
	if _, err := w.Write(data[7*64:]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(buf, 0); !errors.Is(err, storage.ErrSnapshotGone) {
		t.Fatalf("ReadAt after Commit = %v, want ErrSnapshotGone", err)
	}
	if _, err := db.OpenPending("obj", w.Gen()); !errors.Is(err, storage.ErrSnapshotGone) {
		t.Fatalf("OpenPending after Commit = %v, want ErrSnapshotGone", err)
	}
	// An aborted generation is gone too.
	w2, err := db.CreateSnapshot("obj", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Write(data); err != nil {
		t.Fatal(err)
	}
	r2, err := db.OpenPending("obj", w2.Gen())
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.ReadAt(buf, 0); !errors.Is(err, storage.ErrSnapshotGone) {
		t.Fatalf("ReadAt after Abort = %v, want ErrSnapshotGone", err)
	}
	storagetest.Check(t, db)
}

// A chunk of a generation being written whose CRC does not match is
// reported as corrupt, not served.
func TestOpenPendingChecksChunks(t *testing.T) {
	db := storagetest.Open(t, newPath(t), smallChunks)
	w, err := db.CreateSnapshot("obj", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write(payload(3, 4*64)); err != nil {
		t.Fatal(err)
	}
	if err := w.WaitFlushed(); err != nil {
		t.Fatal(err)
	}
	key := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, w.Gen()), 1)
	err = db.Bolt().Update(func(tx *bbolt.Tx) error {
		v := bytes.Clone(tx.Bucket([]byte("chunks")).Get(key))
		v[len(v)-1] ^= 1
		return tx.Bucket([]byte("chunks")).Put(key, v)
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := db.OpenPending("obj", w.Gen())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3*64)
	if _, err := r.ReadAt(buf, 0); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("ReadAt over a bad chunk = %v, want ErrCorrupt", err)
	}
	if n, err := r.ReadAt(buf[:64], 0); n != 64 || err != nil {
		t.Fatalf("ReadAt of the good chunk before it: %d, %v", n, err)
	}
}

// SetMeta replaces the metadata given to CreateSnapshot; what Commit
// records is the last one set, and the caller's slice is copied.
func TestSnapshotSetMeta(t *testing.T) {
	db := storagetest.Open(t, newPath(t), smallChunks)
	w, err := db.CreateSnapshot("obj", []byte("first"))
	if err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	defer w.Abort()
	if _, err := w.Write(payload(1, 300)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	meta := []byte("the sum, known only now")
	w.SetMeta(meta)
	meta[0] = 'X' // the writer holds its own copy
	info, err := w.Commit()
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if string(info.Meta) != "the sum, known only now" {
		t.Fatalf("Commit's Meta = %q", info.Meta)
	}
	if cur, ok := mustCurrent(t, db, "obj"); !ok || !infoEqual(cur, info) {
		t.Fatalf("Snapshot = %+v, %v, want %+v", cur, ok, info)
	}
}
