package rsm

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"

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
	return snapInfo{Gen: info.Gen, Size: info.Size, Sum: info.Sum}, nil
}

func (w dbWriter) abort() error { return w.w.Abort() }

func (w dbWriter) progress() (uint64, int64) { return w.w.Gen(), w.w.Flushed() }

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

func (r dbReader) Sum() [sha256.Size]byte { return r.Info().Sum }

// open opens a committed generation or, so that a donor serves its
// snapshot while it writes it, one still being written here.
func (s dbStore) open(obj ObjectID, gen uint64) (snapReader, error) {
	r, err := s.db.OpenSnapshot(string(obj), gen)
	if errors.Is(err, storage.ErrSnapshotGone) {
		p, perr := s.db.OpenPending(string(obj), gen)
		if perr == nil {
			return pendingReader{p: p, s: s, obj: obj}, nil
		}
		// Committed between the two calls, or gone.
		r, err = s.db.OpenSnapshot(string(obj), gen)
	}
	if errors.Is(err, storage.ErrSnapshotGone) {
		return nil, fmt.Errorf("rsm: snapshot %s gen %d: %w: %w", obj, gen, errGone, err)
	}
	if err != nil {
		return nil, err
	}
	return dbReader{r}, nil
}

// pendingReader reads a generation being written: what its writer has
// flushed, then, once it is committed, all of it.
type pendingReader struct {
	p   *storage.PendingReader
	s   dbStore
	obj ObjectID
}

func (r pendingReader) Size() int64 { return math.MaxInt64 }

func (r pendingReader) Sum() [sha256.Size]byte { return [sha256.Size]byte{} }

func (r pendingReader) Read([]byte) (int, error) {
	return 0, fmt.Errorf("rsm: snapshot %s: a generation being written has no sequential reader", r.obj)
}

func (r pendingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.p.ReadAt(p, off)
	if !errors.Is(err, storage.ErrSnapshotGone) {
		return n, err
	}
	c, err := r.s.db.OpenSnapshot(string(r.obj), r.p.Gen())
	if err != nil {
		return 0, err
	}
	return c.ReadAt(p, off)
}

var _ io.ReaderAt = pendingReader{}

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
