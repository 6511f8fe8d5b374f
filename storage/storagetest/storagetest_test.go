package storagetest_test

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/lwgkit/lwgkit/storage"
	"github.com/lwgkit/lwgkit/storage/storagetest"
)

// recorder is a testing.TB that records failures and cleanups instead of
// acting on them. Its FailNow ends the calling goroutine, as testing's does,
// so it must run on a goroutine of its own (see run).
type recorder struct {
	testing.TB // the real test, for anything not overridden
	mu         sync.Mutex
	errs       []string
	failed     bool
	cleanups   []func()
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
	r.failed = true
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	r.FailNow()
}

func (r *recorder) FailNow() {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// run runs f with r on its own goroutine, then r's cleanups, last first,
// each on its own goroutine too.
func (r *recorder) run(f func()) {
	once := func(f func()) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			f()
		}()
		<-done
	}
	once(f)
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		once(r.cleanups[i])
	}
}

// breakChunk writes a chunk of no generation into a closed file: bbolt's
// pages stay sound, storage's invariants do not.
func breakChunk(t *testing.T, path string) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	key := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 99), 0)
	if err := b.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("chunks")).Put(key, []byte{0, 0, 0, 0}) }); err != nil {
		t.Fatal(err)
	}
}

func TestCheckPassesAndFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	db := storagetest.Open(t, path, storage.Options{})
	if err := db.SetApplied("obj", 1); err != nil {
		t.Fatal(err)
	}
	r := &recorder{TB: t}
	r.run(func() { storagetest.Check(r, db) })
	if r.failed {
		t.Fatalf("Check of a sound file failed: %q", r.errs)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	breakChunk(t, path)

	r = &recorder{TB: t}
	r.run(func() { storagetest.CheckFile(r, path) })
	if !r.failed || len(r.errs) == 0 || !strings.Contains(r.errs[0], "neither committed nor pending") {
		t.Fatalf("CheckFile of a broken file: failed %v, %q", r.failed, r.errs)
	}
	r = &recorder{TB: t}
	r.run(func() {
		db := storagetest.Open(r, path, storage.Options{})
		storagetest.Check(r, db)
	})
	if !r.failed || len(r.errs) == 0 || !strings.Contains(r.errs[0], "neither committed nor pending") {
		t.Fatalf("Check of a broken file: failed %v, %q", r.failed, r.errs)
	}
	repair(t, path)
}

// Open checks the file when the test ends, whether the test closed it or
// not, and closes it.
func TestOpenChecksAtCleanup(t *testing.T) {
	for _, closeIt := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "node.db")
		r := &recorder{TB: t}
		var db *storage.DB
		r.run(func() {
			db = storagetest.Open(r, path, storage.Options{})
			// Break the file behind the DB's back.
			key := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 99), 0)
			err := db.Bolt().Update(func(tx *bbolt.Tx) error {
				return tx.Bucket([]byte("chunks")).Put(key, []byte{0, 0, 0, 0})
			})
			if err != nil {
				t.Error(err)
			}
			if closeIt {
				if err := db.Close(); err != nil {
					t.Error(err)
				}
			}
		})
		if !r.failed || len(r.errs) == 0 || !strings.Contains(r.errs[0], "neither committed nor pending") {
			t.Errorf("closed by the test %v: cleanup failed %v, %q", closeIt, r.failed, r.errs)
		}
		if _, err := db.Objects(); err == nil {
			t.Errorf("closed by the test %v: the DB is still open after the cleanup", closeIt)
		}
		repair(t, path)
	}
}

// repair removes the stray chunk of breakChunk, and checks the file.
func repair(t *testing.T, path string) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	key := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 99), 0)
	err = b.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("chunks")).Delete(key) })
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	storagetest.CheckFile(t, path)
}
