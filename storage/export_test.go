package storage

// SetAppliedUnbatched is SetApplied with one transaction, and one fsync, per
// call: the baseline of BenchmarkSetApplied.
func (db *DB) SetAppliedUnbatched(object string, index uint64) error {
	return db.setApplied(object, index, db.update)
}

// WaitFlushed waits until the batch a SnapshotWriter commits in the
// background, if any, is committed, and returns its error.
func (w *SnapshotWriter) WaitFlushed() error { return w.wait() }
