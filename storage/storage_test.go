package storage_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/lwgkit/lwgkit/storage"
	"github.com/lwgkit/lwgkit/storage/storagetest"
)

// newPath returns the path of a file that does not exist yet.
func newPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "node.db")
}

// open opens path and closes it when the test ends (Close twice is harmless).
func open(t *testing.T, path string) *storage.DB {
	t.Helper()
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustClose(t *testing.T, db *storage.DB) {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func mustIdentity(t *testing.T, db *storage.DB) (storage.Identity, bool) {
	t.Helper()
	id, ok, err := db.Identity()
	if err != nil {
		t.Fatalf("Identity: %v", err)
	}
	return id, ok
}

func TestStartFresh(t *testing.T) {
	db := open(t, newPath(t))
	if id, ok := mustIdentity(t, db); ok {
		t.Fatalf("fresh file has identity %v", id)
	}
	got, err := db.Start(7, "prod")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	want := storage.Identity{Node: 7, Cluster: "prod", Incarnation: 1}
	if got != want {
		t.Fatalf("Start = %v, want %v", got, want)
	}
	if id, ok := mustIdentity(t, db); !ok || id != want {
		t.Fatalf("Identity = %v, %v, want %v, true", id, ok, want)
	}
	storagetest.Check(t, db)
}

func TestStartRestartIncrements(t *testing.T) {
	path := newPath(t)
	for want := uint64(1); want <= 3; want++ {
		db := open(t, path)
		if id, ok := mustIdentity(t, db); ok != (want > 1) || (ok && id.Incarnation != want-1) {
			t.Fatalf("before start %d: Identity = %v, %v", want, id, ok)
		}
		id, err := db.Start(7, "prod")
		if err != nil {
			t.Fatalf("Start %d: %v", want, err)
		}
		if id.Incarnation != want || id.Node != 7 || id.Cluster != "prod" {
			t.Fatalf("Start %d = %v", want, id)
		}
		storagetest.Check(t, db)
		mustClose(t, db)
	}
	db := open(t, path)
	if id, _ := mustIdentity(t, db); id.Incarnation != 3 {
		t.Fatalf("after 3 starts: %v", id)
	}
	storagetest.Check(t, db)
}

func TestStartRejectsOtherIdentity(t *testing.T) {
	tests := []struct {
		name    string
		node    uint64
		cluster string
		want    error
		detail  []string // both the recorded and the requested value
	}{
		{"wrong node", 8, "prod", storage.ErrWrongNode, []string{"node 7", "not 8"}},
		{"wrong cluster", 7, "staging", storage.ErrWrongCluster, []string{`"prod"`, `"staging"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := newPath(t)
			db := open(t, path)
			for range 2 {
				if _, err := db.Start(7, "prod"); err != nil {
					t.Fatalf("Start: %v", err)
				}
			}
			_, err := db.Start(tt.node, tt.cluster)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Start(%d, %q) = %v, want %v", tt.node, tt.cluster, err, tt.want)
			}
			for _, s := range append(tt.detail, path) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			want := storage.Identity{Node: 7, Cluster: "prod", Incarnation: 2}
			if id, _ := mustIdentity(t, db); id != want {
				t.Fatalf("after rejected Start: %v, want %v", id, want)
			}
			// Unchanged on disk too, and the right node still starts.
			mustClose(t, db)
			db = open(t, path)
			if id, _ := mustIdentity(t, db); id != want {
				t.Fatalf("after reopen: %v, want %v", id, want)
			}
			if id, err := db.Start(7, "prod"); err != nil || id.Incarnation != 3 {
				t.Fatalf("Start after rejection = %v, %v, want incarnation 3", id, err)
			}
			storagetest.Check(t, db)
		})
	}
}

func TestInvalid(t *testing.T) {
	path := newPath(t)
	if _, err := storage.Open(path, storage.Options{Timeout: -time.Second}); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("Open with negative timeout = %v, want ErrInvalid", err)
	}
	db := open(t, path)
	check := func(when string) {
		t.Helper()
		if _, err := db.Start(0, "prod"); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("%s: Start(0, prod) = %v, want ErrInvalid", when, err)
		}
		if _, err := db.Start(7, ""); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("%s: Start(7, \"\") = %v, want ErrInvalid", when, err)
		}
	}
	check("fresh")
	if id, ok := mustIdentity(t, db); ok {
		t.Fatalf("invalid Start recorded %v", id)
	}
	if _, err := db.Start(7, "prod"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	check("started")
	if id, _ := mustIdentity(t, db); id.Incarnation != 1 {
		t.Fatalf("invalid Start changed incarnation: %v", id)
	}
	storagetest.Check(t, db)
}

func TestOpenLocked(t *testing.T) {
	path := newPath(t)
	db := open(t, path)
	if _, err := db.Start(7, "prod"); err != nil {
		t.Fatalf("Start: %v", err)
	}

	const timeout = 100 * time.Millisecond
	type result struct {
		db  *storage.DB
		err error
	}
	done := make(chan result, 1)
	begin := time.Now()
	go func() {
		db2, err := storage.Open(path, storage.Options{Timeout: timeout})
		done <- result{db2, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("second Open of a locked file hangs")
	}
	elapsed := time.Since(begin)
	if r.err == nil {
		r.db.Close()
		t.Fatal("second Open of the same file succeeded")
	}
	if !errors.Is(r.err, storage.ErrLocked) || !errors.Is(r.err, berrors.ErrTimeout) {
		t.Fatalf("second Open = %v, want ErrLocked wrapping bbolt's ErrTimeout", r.err)
	}
	if !strings.Contains(r.err.Error(), path) {
		t.Errorf("error %q does not name the file", r.err)
	}
	// bbolt polls the lock every 50ms and gives up within one poll of the
	// timeout; a generous bound shows it did not wait for the lock.
	if elapsed > 5*time.Second {
		t.Errorf("second Open took %v with a %v timeout", elapsed, timeout)
	}
	t.Logf("second Open: %v after %v", r.err, elapsed)

	// The failed Open did not disturb the first, and once it closes the
	// file opens again.
	if id, _ := mustIdentity(t, db); id.Incarnation != 1 {
		t.Fatalf("after failed Open: %v", id)
	}
	mustClose(t, db)
	db = open(t, path)
	if id, _ := mustIdentity(t, db); id.Incarnation != 1 {
		t.Fatalf("after reopen: %v", id)
	}
	storagetest.Check(t, db)
}

// setFormat overwrites the recorded format version with raw bbolt.
func setFormat(t *testing.T, path string, version uint64) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("format"), be64(version))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func be64(v uint64) []byte {
	return []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenFutureFormat(t *testing.T) {
	path := newPath(t)
	db := open(t, path)
	if _, err := db.Start(7, "prod"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	mustClose(t, db)

	// The current version opens; a newer one is refused, untouched.
	setFormat(t, path, storage.FormatVersion)
	mustClose(t, open(t, path))
	setFormat(t, path, storage.FormatVersion+1)
	before := readFile(t, path)
	_, err := storage.Open(path, storage.Options{})
	if !errors.Is(err, storage.ErrFormat) {
		t.Fatalf("Open of format %d = %v, want ErrFormat", storage.FormatVersion+1, err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("format version %d", storage.FormatVersion+1)) {
		t.Errorf("error %q does not name the version", err)
	}
	if !bytes.Equal(before, readFile(t, path)) {
		t.Error("refused Open changed the file")
	}
	storagetest.CheckFile(t, path)
}

func TestOpenForeignFile(t *testing.T) {
	t.Run("bbolt file of another program", func(t *testing.T) {
		path := newPath(t)
		b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		err = b.Update(func(tx *bbolt.Tx) error {
			bk, err := tx.CreateBucket([]byte("other"))
			if err != nil {
				return err
			}
			return bk.Put([]byte("k"), []byte("v"))
		})
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		before := readFile(t, path)
		if _, err := storage.Open(path, storage.Options{}); !errors.Is(err, storage.ErrFormat) {
			t.Fatalf("Open = %v, want ErrFormat", err)
		}
		if !bytes.Equal(before, readFile(t, path)) {
			t.Error("refused Open changed the file")
		}
		storagetest.CheckFile(t, path)
	})
	t.Run("not a bbolt file", func(t *testing.T) {
		// No consistency check here: the file is not a bbolt file at all.
		path := newPath(t)
		junk := bytes.Repeat([]byte("not a database "), 2000)
		if err := os.WriteFile(path, junk, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := storage.Open(path, storage.Options{}); !errors.Is(err, storage.ErrFormat) {
			t.Fatalf("Open = %v, want ErrFormat", err)
		}
		if !bytes.Equal(junk, readFile(t, path)) {
			t.Error("refused Open changed the file")
		}
	})
}

func TestClosed(t *testing.T) {
	path := newPath(t)
	db := open(t, path)
	if _, err := db.Start(7, "prod"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	mustClose(t, db)
	if _, err := db.Start(7, "prod"); err == nil {
		t.Error("Start on a closed DB succeeded")
	}
	if _, _, err := db.Identity(); err == nil {
		t.Error("Identity on a closed DB succeeded")
	}
	storagetest.CheckFile(t, path)
}
