package rsm

import (
	"errors"
	"fmt"

	"github.com/lwgkit/lwgkit/storage"
)

// dbStore keeps snapshots in the node's bbolt file, chunked and streamed
// (package storage), so a snapshot is never held whole in memory.
type dbStore struct{ db *storage.DB }

func newDBStore(db *storage.DB) snapStore { return dbStore{db: db} }

type dbWriter struct{ w *storage.SnapshotWriter }

func (w dbWriter) Write(p []byte) (int, error) { return w.w.Write(p) }

func (w dbWriter) commit() (snapInfo, error) {
	info, err := w.w.Commit()
	if err != nil {
		return snapInfo{}, err
	}
	return snapInfo{Gen: info.Gen, Size: info.Size}, nil
}

func (w dbWriter) abort() error { return w.w.Abort() }

func (s dbStore) create(obj ObjectID) (snapWriter, error) {
	w, err := s.db.CreateSnapshot(string(obj), nil)
	if err != nil {
		return nil, err
	}
	return dbWriter{w: w}, nil
}

func (s dbStore) current(obj ObjectID) (snapInfo, bool, error) {
	info, ok, err := s.db.Snapshot(string(obj))
	if err != nil || !ok {
		return snapInfo{}, false, err
	}
	return snapInfo{Gen: info.Gen, Size: info.Size}, true, nil
}

type dbReader struct{ *storage.SnapshotReader }

func (r dbReader) Size() int64 { return r.Info().Size }

func (s dbStore) open(obj ObjectID, gen uint64) (snapReader, error) {
	r, err := s.db.OpenSnapshot(string(obj), gen)
	if errors.Is(err, storage.ErrSnapshotGone) {
		return nil, fmt.Errorf("rsm: snapshot %s gen %d: %w: %w", obj, gen, errGone, err)
	}
	if err != nil {
		return nil, err
	}
	return dbReader{r}, nil
}

func (s dbStore) remove(obj ObjectID) error { return s.db.DeleteObject(string(obj)) }

func (s dbStore) register(obj ObjectID) error { return s.db.PutObject(string(obj), nil) }

func (s dbStore) list() ([]ObjectID, error) {
	objs, err := s.db.Objects()
	if err != nil {
		return nil, err
	}
	ids := make([]ObjectID, 0, len(objs))
	for id := range objs {
		ids = append(ids, ObjectID(id))
	}
	return ids, nil
}
