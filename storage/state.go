package storage

import "go.etcd.io/bbolt"

// SetApplied records that the object's state includes the commands up to
// index. It is group-committed: concurrent calls (one goroutine per object,
// say) share transactions and fsyncs, and each returns once its index is on
// disk. A call may thus wait up to Options.MaxBatchDelay for company.
// Calls for one object should come from one goroutine at a time: concurrent
// calls for the same object are applied in an unspecified order.
func (db *DB) SetApplied(object string, index uint64) error {
	return db.setApplied(object, index, db.batch)
}

func (db *DB) setApplied(object string, index uint64, run func(func(*bbolt.Tx) error) error) error {
	if err := checkName("object", object); err != nil {
		return err
	}
	v := encodeUint(index)
	return run(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketApplied).Put([]byte(object), v)
	})
}

// Applied returns the object's applied index recorded by SetApplied. It
// reports false, with no error, if none is.
func (db *DB) Applied(object string) (uint64, bool, error) {
	if err := checkName("object", object); err != nil {
		return 0, false, err
	}
	var (
		index uint64
		found bool
	)
	err := db.view(func(tx *bbolt.Tx) error {
		raw := tx.Bucket(bucketApplied).Get([]byte(object))
		if raw == nil {
			return nil
		}
		var ok bool
		if index, ok = decodeUint(raw); !ok {
			return db.corrupt("applied index of %q: %d bytes, want 8", object, len(raw))
		}
		found = true
		return nil
	})
	return index, found, err
}

// SavedView is the last view of a group saved by SaveView.
type SavedView struct {
	ID      uint64
	Members []byte // as the caller encoded them
}

// SaveView records that the group installed view viewID with members (the
// caller's encoding, copied). Views never go backwards: if the recorded
// view's id is higher than viewID, SaveView does nothing; an equal id
// replaces it. It is group-committed like SetApplied.
func (db *DB) SaveView(group string, viewID uint64, members []byte) error {
	if err := checkName("group", group); err != nil {
		return err
	}
	v := encodeView(SavedView{ID: viewID, Members: members})
	return db.batch(func(tx *bbolt.Tx) error {
		views := tx.Bucket(bucketViews)
		if raw := views.Get([]byte(group)); raw != nil {
			old, err := decodeView(raw)
			if err != nil {
				return db.corrupt("view of group %q: %v", group, err)
			}
			if old.ID > viewID {
				return nil
			}
		}
		return views.Put([]byte(group), v)
	})
}

// Views returns the last saved view of every group.
func (db *DB) Views() (map[string]SavedView, error) {
	views := make(map[string]SavedView)
	err := db.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketViews).ForEach(func(k, v []byte) error {
			sv, err := decodeView(v)
			if err != nil {
				return db.corrupt("view of group %q: %v", k, err)
			}
			views[string(k)] = sv
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return views, nil
}

// PutObject records that this node hosts object, with info (the caller's
// description, copied), replacing any info recorded before. It is
// group-committed like SetApplied.
func (db *DB) PutObject(object string, info []byte) error {
	if err := checkName("object", object); err != nil {
		return err
	}
	v := append([]byte{}, info...) // bbolt stores nil as an empty value anyway
	return db.batch(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketObjects).Put([]byte(object), v)
	})
}

// DeleteObject forgets object: its registry entry, applied index and every
// snapshot generation (as DeleteSnapshot), in one transaction. Deleting an
// object that is not recorded does nothing.
func (db *DB) DeleteObject(object string) error {
	if err := checkName("object", object); err != nil {
		return err
	}
	return db.update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketObjects).Delete([]byte(object)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketApplied).Delete([]byte(object)); err != nil {
			return err
		}
		return db.deleteSnapshots(tx, object)
	})
}

// DeleteUnrecorded deletes the applied index and every snapshot of each
// object that is not recorded (PutObject), in one transaction, and returns
// how many objects it cleared. A process that starts writing an object's
// state before its record is durable (rsm records an object while it
// joins) leaves such state behind if it crashes in between, where nothing
// would ever read or delete it. Call it at start, before any writer runs.
func (db *DB) DeleteUnrecorded() (int, error) {
	var n int
	err := db.update(func(tx *bbolt.Tx) error {
		objs := tx.Bucket(bucketObjects)
		// PutObject stores an empty value, never nil: Get is nil only
		// for an object not recorded.
		recorded := func(object []byte) bool { return objs.Get(object) != nil }
		seen := map[string]bool{}
		var gone []string
		for _, name := range [][]byte{bucketSnapshots, bucketApplied} {
			err := tx.Bucket(name).ForEach(func(k, _ []byte) error {
				if !recorded(k) && !seen[string(k)] {
					seen[string(k)] = true
					gone = append(gone, string(k))
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		for _, o := range gone {
			if err := tx.Bucket(bucketApplied).Delete([]byte(o)); err != nil {
				return err
			}
			if err := db.deleteSnapshots(tx, o); err != nil {
				return err
			}
		}
		n = len(gone)
		return nil
	})
	return n, err
}

// Objects returns every recorded object with its info.
func (db *DB) Objects() (map[string][]byte, error) {
	objects := make(map[string][]byte)
	err := db.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketObjects).ForEach(func(k, v []byte) error {
			objects[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return objects, nil
}

// SaveDirectory replaces the cached copy of the LWG directory with b (the
// caller's encoding, copied).
func (db *DB) SaveDirectory(b []byte) error {
	v := append([]byte{}, b...)
	return db.update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketDirectory).Put(keyDirectory, v)
	})
}

// Directory returns the cached directory saved by SaveDirectory. It
// reports false, with no error, if none was saved.
func (db *DB) Directory() ([]byte, bool, error) {
	var (
		b  []byte
		ok bool
	)
	err := db.view(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketDirectory).Get(keyDirectory); v != nil {
			b, ok = append([]byte{}, v...), true
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return b, ok, nil
}
