package storage_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/lwgkit/lwgkit/storage"
	"github.com/lwgkit/lwgkit/storage/storagetest"
)

func mustApplied(t *testing.T, db *storage.DB, object string) (uint64, bool) {
	t.Helper()
	index, ok, err := db.Applied(object)
	if err != nil {
		t.Fatalf("Applied(%q): %v", object, err)
	}
	return index, ok
}

// Many goroutines, one per object, set applied indexes concurrently; each
// index is there once its call returns, and after a reopen.
func TestSetAppliedConcurrent(t *testing.T) {
	path := newPath(t)
	db := storagetest.Open(t, path, storage.Options{})
	if _, ok := mustApplied(t, db, "obj-0"); ok {
		t.Fatal("applied index of a new object")
	}
	const objects, rounds = 200, 5
	var wg sync.WaitGroup
	errs := make(chan error, objects)
	for i := range objects {
		wg.Go(func() {
			object := fmt.Sprintf("obj-%d", i)
			for r := uint64(1); r <= rounds; r++ {
				index := uint64(i)*100 + r
				if err := db.SetApplied(object, index); err != nil {
					errs <- err
					return
				}
				got, ok, err := db.Applied(object)
				if err != nil || !ok || got != index {
					errs <- fmt.Errorf("%s: Applied = %d, %v, %v after SetApplied(%d)", object, got, ok, err, index)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	storagetest.Check(t, db)
	mustClose(t, db)
	db = storagetest.Open(t, path, storage.Options{})
	for i := range objects {
		object := fmt.Sprintf("obj-%d", i)
		if got, ok := mustApplied(t, db, object); !ok || got != uint64(i)*100+rounds {
			t.Fatalf("after reopen: Applied(%q) = %d, %v", object, got, ok)
		}
	}
	// Applied indexes are set, not maxed: a restore may go back.
	if err := db.SetApplied("obj-1", 3); err != nil {
		t.Fatal(err)
	}
	if got, _ := mustApplied(t, db, "obj-1"); got != 3 {
		t.Fatalf("Applied = %d after SetApplied(3)", got)
	}
}

func TestSaveView(t *testing.T) {
	path := newPath(t)
	db := storagetest.Open(t, path, storage.Options{})
	views, err := db.Views()
	if err != nil || len(views) != 0 {
		t.Fatalf("Views of a new file = %v, %v", views, err)
	}
	steps := []struct {
		group   string
		id      uint64
		members string
		want    storage.SavedView // of group afterwards
	}{
		{"g1", 5, "a,b,c", storage.SavedView{ID: 5, Members: []byte("a,b,c")}},
		{"g1", 7, "a,b", storage.SavedView{ID: 7, Members: []byte("a,b")}},
		{"g1", 6, "stale", storage.SavedView{ID: 7, Members: []byte("a,b")}}, // older: no-op
		{"g1", 0, "zero", storage.SavedView{ID: 7, Members: []byte("a,b")}},  // older: no-op
		{"g1", 7, "a,b,d", storage.SavedView{ID: 7, Members: []byte("a,b,d")}},
		{"g2", 1, "", storage.SavedView{ID: 1}},
	}
	for _, s := range steps {
		if err := db.SaveView(s.group, s.id, []byte(s.members)); err != nil {
			t.Fatalf("SaveView(%q, %d): %v", s.group, s.id, err)
		}
		views, err := db.Views()
		if err != nil {
			t.Fatal(err)
		}
		if got := views[s.group]; got.ID != s.want.ID || !bytes.Equal(got.Members, s.want.Members) {
			t.Fatalf("after SaveView(%q, %d, %q): %+v, want %+v", s.group, s.id, s.members, got, s.want)
		}
	}
	if err := db.SaveView("", 1, nil); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("SaveView(\"\") = %v, want ErrInvalid", err)
	}
	// Concurrent saves of one group keep the highest id.
	var wg sync.WaitGroup
	for id := uint64(100); id < 150; id++ {
		wg.Go(func() {
			if err := db.SaveView("g3", id, []byte(fmt.Sprint(id))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	storagetest.Check(t, db)
	mustClose(t, db)
	db = storagetest.Open(t, path, storage.Options{})
	views, err = db.Views()
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 3 || views["g1"].ID != 7 || string(views["g1"].Members) != "a,b,d" ||
		views["g2"].ID != 1 || views["g3"].ID != 149 || string(views["g3"].Members) != "149" {
		t.Fatalf("after reopen: %+v", views)
	}
}

func TestObjects(t *testing.T) {
	path := newPath(t)
	db := storagetest.Open(t, path, smallChunks)
	for i := range 3 {
		object := fmt.Sprintf("obj-%d", i)
		if err := db.PutObject(object, []byte("v1 "+object)); err != nil {
			t.Fatal(err)
		}
		if err := db.SetApplied(object, uint64(10+i)); err != nil {
			t.Fatal(err)
		}
		writeSnapshot(t, db, object, nil, payload(uint64(i), 300))
		writeSnapshot(t, db, object, nil, payload(uint64(i+10), 300))
	}
	if err := db.PutObject("obj-1", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"obj-0": []byte("v1 obj-0"), "obj-1": []byte("v2"), "obj-2": []byte("v1 obj-2")}
	if got, err := db.Objects(); err != nil || !maps.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("Objects = %q, %v, want %q", got, err, want)
	}
	w, err := db.CreateSnapshot("obj-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(payload(5, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteObject("obj-1"); err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	delete(want, "obj-1")
	if got, err := db.Objects(); err != nil || !maps.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("after DeleteObject: Objects = %q, %v, want %q", got, err, want)
	}
	if _, ok := mustApplied(t, db, "obj-1"); ok {
		t.Error("DeleteObject kept the applied index")
	}
	if info, ok := mustCurrent(t, db, "obj-1"); ok {
		t.Errorf("DeleteObject kept snapshot %+v", info)
	}
	if _, err := w.Commit(); !errors.Is(err, storage.ErrSnapshotGone) {
		t.Errorf("Commit of a deleted object's snapshot = %v, want ErrSnapshotGone", err)
	}
	for _, object := range []string{"obj-0", "obj-2"} {
		if _, ok := mustApplied(t, db, object); !ok {
			t.Errorf("DeleteObject(obj-1) deleted %s's applied index", object)
		}
		if _, ok := mustCurrent(t, db, object); !ok {
			t.Errorf("DeleteObject(obj-1) deleted %s's snapshot", object)
		}
	}
	if err := db.DeleteObject("never"); err != nil {
		t.Errorf("DeleteObject of an unknown object: %v", err)
	}
	for what, err := range map[string]error{
		"PutObject":    db.PutObject("", nil),
		"DeleteObject": db.DeleteObject(""),
		"SetApplied":   db.SetApplied("", 1),
		"Applied":      func() error { _, _, err := db.Applied(""); return err }(),
	} {
		if !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("%s(\"\") = %v, want ErrInvalid", what, err)
		}
	}
	storagetest.Check(t, db)
	mustClose(t, db)
	db = storagetest.Open(t, path, smallChunks)
	if got, err := db.Objects(); err != nil || !maps.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("after reopen: Objects = %q, %v, want %q", got, err, want)
	}
}

func TestDirectory(t *testing.T) {
	path := newPath(t)
	db := storagetest.Open(t, path, storage.Options{})
	if b, ok, err := db.Directory(); ok || err != nil {
		t.Fatalf("Directory of a new file = %q, %v, %v", b, ok, err)
	}
	for _, s := range []string{"first", "second", ""} {
		if err := db.SaveDirectory([]byte(s)); err != nil {
			t.Fatal(err)
		}
		if b, ok, err := db.Directory(); !ok || err != nil || string(b) != s {
			t.Fatalf("Directory = %q, %v, %v, want %q", b, ok, err, s)
		}
	}
	if err := db.SaveDirectory([]byte("kept")); err != nil {
		t.Fatal(err)
	}
	mustClose(t, db)
	db = storagetest.Open(t, path, storage.Options{})
	if b, ok, err := db.Directory(); !ok || err != nil || string(b) != "kept" {
		t.Fatalf("after reopen: Directory = %q, %v, %v", b, ok, err)
	}
}

func TestStateClosed(t *testing.T) {
	db := storagetest.Open(t, newPath(t), storage.Options{})
	mustClose(t, db)
	for what, err := range map[string]error{
		"SetApplied":    db.SetApplied("o", 1),
		"Applied":       func() error { _, _, err := db.Applied("o"); return err }(),
		"SaveView":      db.SaveView("g", 1, nil),
		"Views":         func() error { _, err := db.Views(); return err }(),
		"PutObject":     db.PutObject("o", nil),
		"DeleteObject":  db.DeleteObject("o"),
		"Objects":       func() error { _, err := db.Objects(); return err }(),
		"SaveDirectory": db.SaveDirectory(nil),
		"Directory":     func() error { _, _, err := db.Directory(); return err }(),
		"Start":         func() error { _, err := db.Start(7, "prod"); return err }(),
		"Verify":        db.Verify(),
	} {
		if !errors.Is(err, storage.ErrClosed) || !strings.Contains(err.Error(), db.Path()) {
			t.Errorf("%s after Close = %v, want ErrClosed naming the file", what, err)
		}
	}
}

// writeV1 writes a format-1 file as the first version of this package did:
// meta/format = 1 and a started identity.
func writeV1(t *testing.T, path string) {
	t.Helper()
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		if err := meta.Put([]byte("format"), be64(1)); err != nil {
			return err
		}
		id, err := tx.CreateBucket([]byte("identity"))
		if err != nil {
			return err
		}
		for k, v := range map[string][]byte{"node": be64(7), "cluster": []byte("prod"), "incarnation": be64(4)} {
			if err := id.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestUpgradeFromV1(t *testing.T) {
	path := newPath(t)
	writeV1(t, path)
	storagetest.CheckFile(t, path) // VerifyTx reads version 1 too

	db := storagetest.Open(t, path, smallChunks)
	err := db.Bolt().View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket([]byte("meta")).Get([]byte("format")); !bytes.Equal(v, be64(storage.FormatVersion)) {
			t.Errorf("format after upgrade: %x", v)
		}
		for _, name := range []string{"objects", "applied", "views", "directory", "snapshots", "generations", "chunks", "pending"} {
			if tx.Bucket([]byte(name)) == nil {
				t.Errorf("no %q bucket after upgrade", name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := db.Start(7, "prod"); err != nil || id.Incarnation != 5 {
		t.Fatalf("Start after upgrade = %v, %v, want incarnation 5", id, err)
	}
	if err := db.SetApplied("obj", 9); err != nil {
		t.Fatal(err)
	}
	writeSnapshot(t, db, "obj", nil, payload(1, 200))
	storagetest.Check(t, db)
	mustClose(t, db)

	// Opening an up-to-date file with nothing to clean up does not write.
	before := readFile(t, path)
	mustClose(t, storagetest.Open(t, path, storage.Options{}))
	if !bytes.Equal(before, readFile(t, path)) {
		t.Error("Open of a format-2 file with nothing to do changed it")
	}
}

func TestOpenMissingBucket(t *testing.T) {
	path := newPath(t)
	mustClose(t, open(t, path))
	rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte("applied")) })
	before := readFile(t, path)
	_, err := storage.Open(path, storage.Options{})
	if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), `"applied"`) {
		t.Fatalf("Open without the applied bucket = %v, want ErrCorrupt naming it", err)
	}
	if !bytes.Equal(before, readFile(t, path)) {
		t.Error("refused Open changed the file")
	}
	rawUpdate(t, path, func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("applied")); return err })
	storagetest.Open(t, path, storage.Options{})
}

// Malformed records give ErrCorrupt naming what is wrong, from the calls
// that read them and from Verify. Each case is repaired afterwards, and
// the file checked.
func TestCorruptRecords(t *testing.T) {
	type kv struct{ bucket, key string }
	tests := []struct {
		name string
		at   kv
		bad  []byte
		read func(db *storage.DB) error
	}{
		{"applied index", kv{"applied", "obj"}, []byte{1, 2, 3},
			func(db *storage.DB) error { _, _, err := db.Applied("obj"); return err }},
		{"view", kv{"views", "g"}, []byte{1},
			func(db *storage.DB) error { _, err := db.Views(); return err }},
		{"heads", kv{"snapshots", "obj"}, make([]byte, 16), // current 0
			func(db *storage.DB) error { _, _, err := db.Snapshot("obj"); return err }},
		{"generation record", kv{"generations", "\x00\x00\x00\x00\x00\x00\x00\x01"}, make([]byte, 60), // chunk size 0
			func(db *storage.DB) error { _, _, err := db.Snapshot("obj"); return err }},
		{"next generation", kv{"meta", "nextgen"}, []byte{0},
			func(db *storage.DB) error { _, err := db.CreateSnapshot("obj", nil); return err }},
		{"identity", kv{"identity", "node"}, []byte{1},
			func(db *storage.DB) error { _, _, err := db.Identity(); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := newPath(t)
			db, err := storage.Open(path, smallChunks)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Start(7, "prod"); err != nil {
				t.Fatal(err)
			}
			if err := db.SetApplied("obj", 1); err != nil {
				t.Fatal(err)
			}
			if err := db.SaveView("g", 1, []byte("m")); err != nil {
				t.Fatal(err)
			}
			writeSnapshot(t, db, "obj", nil, payload(1, 100))
			mustClose(t, db)
			var good []byte
			rawUpdate(t, path, func(tx *bbolt.Tx) error {
				b := tx.Bucket([]byte(tt.at.bucket))
				good = bytes.Clone(b.Get([]byte(tt.at.key)))
				if good == nil {
					t.Fatalf("no %s/%q to corrupt", tt.at.bucket, tt.at.key)
				}
				return b.Put([]byte(tt.at.key), tt.bad)
			})
			db, err = storage.Open(path, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			err = tt.read(db)
			if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Errorf("read = %v, want ErrCorrupt naming the file", err)
			}
			t.Log(err)
			if err := db.Verify(); !errors.Is(err, storage.ErrCorrupt) {
				t.Errorf("Verify = %v, want ErrCorrupt", err)
			}
			mustClose(t, db)
			rawUpdate(t, path, func(tx *bbolt.Tx) error {
				return tx.Bucket([]byte(tt.at.bucket)).Put([]byte(tt.at.key), good)
			})
			db = storagetest.Open(t, path, storage.Options{})
			if err := tt.read(db); err != nil {
				t.Errorf("after repair: %v", err)
			}
		})
	}
}

// VerifyTx finds broken invariants that no read path looks at: each case
// breaks one with raw bbolt, checks that Verify reports it, and repairs it.
func TestVerifyFindsBrokenInvariants(t *testing.T) {
	key := func(gen, idx uint64) []byte {
		return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, gen), idx)
	}
	tests := []struct {
		name    string
		breakIt func(tx *bbolt.Tx) error
		want    string
	}{
		{"orphan chunk", func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte("chunks")).Put(key(1000, 0), []byte{0, 0, 0, 0})
		}, "neither committed nor pending"},
		{"missing chunk", func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte("chunks")).Delete(key(2, 1))
		}, "chunk 2 after 1 chunks"},
		{"extra chunk", func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte("chunks")).Put(key(2, 4), []byte{0, 0, 0, 0})
		}, "beyond its"},
		{"unnamed generation", func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte("snapshots")).Put([]byte("obj"), append(be64(2), be64(0)...))
		}, "neither current nor previous"},
		{"generation at nextgen", func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte("meta")).Put([]byte("nextgen"), be64(2))
		}, "not below the next generation"},
		{"pending gap", func(tx *bbolt.Tx) error {
			if err := tx.Bucket([]byte("meta")).Put([]byte("nextgen"), be64(4)); err != nil {
				return err
			}
			if err := tx.Bucket([]byte("pending")).Put(be64(3), []byte("obj")); err != nil {
				return err
			}
			return tx.Bucket([]byte("chunks")).Put(key(3, 1), []byte{0, 0, 0, 0})
		}, "chunk 1 after 0 chunks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := newPath(t)
			db, err := storage.Open(path, smallChunks)
			if err != nil {
				t.Fatal(err)
			}
			g1 := writeSnapshot(t, db, "obj", nil, payload(1, 100))
			g2 := writeSnapshot(t, db, "obj", nil, payload(2, 200))
			if g1.Gen != 1 || g2.Gen != 2 {
				t.Fatalf("generations %d, %d, want 1, 2", g1.Gen, g2.Gen)
			}
			if err := db.Verify(); err != nil {
				t.Fatalf("Verify before breaking: %v", err)
			}
			err = db.Bolt().Update(tt.breakIt)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Verify()
			if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v, want ErrCorrupt with %q", err, tt.want)
			}
			t.Log(err)
			mustClose(t, db)
			// Repair by deleting every snapshot: a file without snapshots
			// passes again.
			rawUpdate(t, path, func(tx *bbolt.Tx) error {
				for _, name := range []string{"snapshots", "generations", "chunks", "pending"} {
					if err := tx.DeleteBucket([]byte(name)); err != nil {
						return err
					}
					if _, err := tx.CreateBucket([]byte(name)); err != nil {
						return err
					}
				}
				return tx.Bucket([]byte("meta")).Put([]byte("nextgen"), be64(10))
			})
			storagetest.Open(t, path, storage.Options{})
		})
	}
}

// TestDeleteUnrecorded: the state of objects that were never recorded (a
// crash between the first snapshot and the record) goes; recorded
// objects keep theirs, whatever their info (empty included).
func TestDeleteUnrecorded(t *testing.T) {
	db := storagetest.Open(t, newPath(t), smallChunks)
	for _, o := range []string{"kept", "kept-empty"} {
		info := []byte("info")
		if o == "kept-empty" {
			info = nil
		}
		if err := db.PutObject(o, info); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []string{"kept", "kept-empty", "orphan"} {
		writeSnapshot(t, db, o, nil, payload(1, 700))
		writeSnapshot(t, db, o, nil, payload(2, 700))
		if err := db.SetApplied(o, 9); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SetApplied("applied-only", 3); err != nil {
		t.Fatal(err)
	}
	n, err := db.DeleteUnrecorded()
	if err != nil || n != 2 {
		t.Fatalf("DeleteUnrecorded = %d, %v; want 2 (orphan, applied-only)", n, err)
	}
	for _, o := range []string{"kept", "kept-empty"} {
		if _, ok := mustCurrent(t, db, o); !ok {
			t.Errorf("%s lost its snapshot", o)
		}
		if _, ok := mustApplied(t, db, o); !ok {
			t.Errorf("%s lost its applied index", o)
		}
	}
	for _, o := range []string{"orphan", "applied-only"} {
		if _, ok := mustCurrent(t, db, o); ok {
			t.Errorf("%s kept a snapshot", o)
		}
		if _, ok := mustApplied(t, db, o); ok {
			t.Errorf("%s kept its applied index", o)
		}
	}
	if n, err := db.DeleteUnrecorded(); err != nil || n != 0 {
		t.Errorf("a second DeleteUnrecorded = %d, %v; want 0", n, err)
	}
	storagetest.Check(t, db)
}
