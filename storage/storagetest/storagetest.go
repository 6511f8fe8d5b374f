// Package storagetest helps tests of packages that use storage: it checks
// the consistency of storage files, and opens files that are checked and
// closed when the test ends.
package storagetest

import (
	"errors"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/lwgkit/lwgkit/storage"
)

// Check runs bbolt's consistency check (Tx.Check) and storage's own
// (storage.VerifyTx) on db in one read-only transaction, and fails the test
// if either finds any error. Call it from the test's goroutine, with db open
// and no writes to it in progress: bbolt's check in a read-only transaction
// is not safe alongside a writer.
func Check(t testing.TB, db *storage.DB) {
	t.Helper()
	checkBolt(t, db.Bolt(), db.Path())
}

// CheckFile opens the bbolt file at path read-only, runs Check's checks and
// closes it. It is for files that are closed, or that storage.Open refuses
// (storage's own check is then skipped for a file of another format); the
// file must not be open elsewhere.
func CheckFile(t testing.TB, path string) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: storage.DefaultTimeout})
	if err != nil {
		t.Fatalf("storagetest: open %s: %v", path, err)
	}
	defer b.Close()
	checkBolt(t, b, path)
}

// Open opens the storage file at path with opts, failing the test if it
// cannot, and Tracks it.
func Open(t testing.TB, path string, opts storage.Options) *storage.DB {
	t.Helper()
	db, err := storage.Open(path, opts)
	if err != nil {
		t.Fatalf("storagetest: %v", err)
	}
	Track(t, db)
	return db
}

// Track registers a cleanup, run when the test ends, that checks db's file
// and closes db: Check if db is still open, CheckFile if the test closed it.
// Cleanups run last-registered first, so a file closed and reopened in one
// test is checked after the later DB closes, as long as that one is tracked
// too. Create the file's directory (t.TempDir) before tracking it, so that
// it is removed after the check.
func Track(t testing.TB, db *storage.DB) {
	t.Helper()
	t.Cleanup(func() {
		t.Helper()
		if err := db.Verify(); errors.Is(err, storage.ErrClosed) {
			CheckFile(t, db.Path())
			return
		}
		defer func() {
			if err := db.Close(); err != nil {
				t.Errorf("storagetest: %v", err)
			}
		}()
		Check(t, db)
	})
}

func checkBolt(t testing.TB, b *bbolt.DB, path string) {
	t.Helper()
	var errs []error
	err := b.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return nil // storage's check could trip on broken pages
		}
		if err := storage.VerifyTx(tx); err != nil && !isOtherFormat(err) {
			errs = append(errs, err)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	for _, err := range errs {
		t.Errorf("storagetest: %s: consistency check: %v", path, err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
}

// isOtherFormat reports whether VerifyTx refused the file as one of another
// format, not a corrupt one of this format.
func isOtherFormat(err error) bool {
	return errors.Is(err, storage.ErrFormat) && !errors.Is(err, storage.ErrCorrupt)
}
