package storage

// SetAppliedUnbatched is SetApplied with one transaction, and one fsync, per
// call: the baseline of BenchmarkSetApplied.
func (db *DB) SetAppliedUnbatched(object string, index uint64) error {
	return db.setApplied(object, index, db.update)
}
