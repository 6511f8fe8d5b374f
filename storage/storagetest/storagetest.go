// Package storagetest helps tests of packages that use storage.
package storagetest

import (
	"testing"

	"go.etcd.io/bbolt"

	"github.com/lwgkit/lwgkit/storage"
)

// Check runs bbolt's consistency check (Tx.Check) on db in a read-only
// transaction and fails the test if it finds any error. Call it from the
// test's goroutine, with db open and no writes to it in progress: bbolt's
// check in a read-only transaction is not safe alongside a writer.
func Check(t testing.TB, db *storage.DB) {
	t.Helper()
	checkBolt(t, db.Bolt(), db.Path())
}

// CheckFile opens the bbolt file at path read-only, runs Check's
// consistency check and closes it. It is for files that storage.Open
// refuses; the file must not be open elsewhere.
func CheckFile(t testing.TB, path string) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: storage.DefaultTimeout})
	if err != nil {
		t.Fatalf("storagetest: open %s: %v", path, err)
	}
	defer b.Close()
	checkBolt(t, b, path)
}

func checkBolt(t testing.TB, b *bbolt.DB, path string) {
	t.Helper()
	var errs []error
	err := b.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
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
