package storage

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"math"
	"sync/atomic"

	"go.etcd.io/bbolt"
)

// SnapshotInfo describes one committed snapshot generation of an object.
type SnapshotInfo struct {
	Object string
	// Gen is the generation: unique in the file and increasing per object,
	// never reused (not even after DeleteSnapshot or DeleteObject).
	Gen  uint64
	Size int64 // bytes
	// Sum is the SHA-256 of the snapshot's bytes. A full sequential Read
	// checks it.
	Sum [sha256.Size]byte
	// Meta is the caller's metadata given to CreateSnapshot (the applied
	// index, say); nil if empty.
	Meta []byte
}

// batchCommitMax is the most bytes a SnapshotWriter's Commit may still
// have to write for it to be group-committed; a Commit that writes more
// has its own transaction, so that a batch of commits stays small.
const batchCommitMax = 64 << 10

// CreateSnapshot starts a new snapshot generation of object, with meta (the
// caller's metadata, copied) recorded beside it. Write the snapshot's bytes
// to the returned SnapshotWriter, then Commit or Abort it. The generation
// is allocated, and recorded as being written, in a group-committed
// transaction.
//
// Several writers may be open for one object; the first to Commit wins
// over the older ones (ErrSnapshotStale), see SnapshotWriter.Commit.
func (db *DB) CreateSnapshot(object string, meta []byte) (*SnapshotWriter, error) {
	if err := checkName("object", object); err != nil {
		return nil, err
	}
	w := &SnapshotWriter{
		db:        db,
		object:    object,
		meta:      append([]byte(nil), meta...),
		chunkSize: db.chunkSize,
		perTx:     db.chunksPerTx,
		sum:       sha256.New(),
	}
	err := db.batch(func(tx *bbolt.Tx) error {
		gen, err := db.nextGen(tx)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketMeta).Put(keyNextGen, encodeUint(gen+1)); err != nil {
			return err
		}
		w.gen = gen
		return tx.Bucket(bucketPending).Put(encodeUint(gen), []byte(object))
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// nextGen returns the next generation to allocate.
//
// INVARIANT: every generation in the generations, pending and chunks
// buckets is below meta/nextgen, so none is ever allocated twice (VerifyTx).
func (db *DB) nextGen(tx *bbolt.Tx) (uint64, error) {
	raw := tx.Bucket(bucketMeta).Get(keyNextGen)
	if raw == nil {
		return 1, nil
	}
	gen, ok := decodeUint(raw)
	if !ok || gen == 0 {
		return 0, db.corrupt("malformed next snapshot generation")
	}
	if gen == math.MaxUint64 {
		return 0, db.corrupt("snapshot generations exhausted")
	}
	return gen, nil
}

// Snapshot returns the object's current snapshot. It reports false, with
// no error, if the object has none.
func (db *DB) Snapshot(object string) (SnapshotInfo, bool, error) {
	if err := checkName("object", object); err != nil {
		return SnapshotInfo{}, false, err
	}
	var (
		info SnapshotInfo
		ok   bool
	)
	err := db.view(func(tx *bbolt.Tx) error {
		raw := tx.Bucket(bucketSnapshots).Get([]byte(object))
		if raw == nil {
			return nil
		}
		h, err := decodeHeads(raw)
		if err != nil {
			return db.corrupt("snapshots of %q: %v", object, err)
		}
		rec, err := db.readGen(tx, object, h.current)
		if err != nil {
			return err
		}
		info, ok = rec.info, true
		return nil
	})
	return info, ok, err
}

// readGen reads the record of a committed generation of object. A missing
// record, or one of another object, is ErrSnapshotGone.
func (db *DB) readGen(tx *bbolt.Tx, object string, gen uint64) (genRecord, error) {
	raw := tx.Bucket(bucketGenerations).Get(encodeUint(gen))
	if raw == nil {
		return genRecord{}, fmt.Errorf("%w: %s: snapshot %q generation %d", ErrSnapshotGone, db.path, object, gen)
	}
	rec, err := decodeGenRecord(gen, raw)
	if err != nil {
		return genRecord{}, db.corrupt("snapshot generation %d: %v", gen, err)
	}
	if rec.info.Object != object {
		return genRecord{}, fmt.Errorf("%w: %s: snapshot %q generation %d (it is %q's)",
			ErrSnapshotGone, db.path, object, gen, rec.info.Object)
	}
	return rec, nil
}

// DeleteSnapshot deletes every generation of the object's snapshot: the
// current one, the one before it, and those being written (their writers
// fail with ErrSnapshotGone). Readers of deleted generations fail with
// ErrSnapshotGone. Deleting an object without snapshots does nothing.
func (db *DB) DeleteSnapshot(object string) error {
	if err := checkName("object", object); err != nil {
		return err
	}
	return db.update(func(tx *bbolt.Tx) error { return db.deleteSnapshots(tx, object) })
}

func (db *DB) deleteSnapshots(tx *bbolt.Tx, object string) error {
	snaps := tx.Bucket(bucketSnapshots)
	if raw := snaps.Get([]byte(object)); raw != nil {
		h, err := decodeHeads(raw)
		if err != nil {
			return db.corrupt("snapshots of %q: %v", object, err)
		}
		for _, gen := range []uint64{h.current, h.previous} {
			if gen == 0 {
				continue
			}
			if err := deleteGen(tx, gen); err != nil {
				return err
			}
		}
		if err := snaps.Delete([]byte(object)); err != nil {
			return err
		}
	}
	return db.removePendingOf(tx, func(o string) bool { return o == object })
}

// deleteGen deletes a committed generation's record and chunks.
func deleteGen(tx *bbolt.Tx, gen uint64) error {
	if err := tx.Bucket(bucketGenerations).Delete(encodeUint(gen)); err != nil {
		return err
	}
	return deleteChunks(tx, gen)
}

// deleteChunks deletes every chunk of gen.
func deleteChunks(tx *bbolt.Tx, gen uint64) error {
	prefix := encodeUint(gen)
	c := tx.Bucket(bucketChunks).Cursor()
	// Seek again after each Delete: a bbolt cursor's Next after Delete can
	// skip a key.
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// removePending deletes the chunks of every snapshot being written, and
// the record that it was. Open calls it, when no writer can exist.
func (db *DB) removePending(tx *bbolt.Tx) error {
	return db.removePendingOf(tx, func(string) bool { return true })
}

// removePendingOf deletes the snapshots being written for the objects
// that match: their chunks and the record that they were.
func (db *DB) removePendingOf(tx *bbolt.Tx, match func(object string) bool) error {
	pending := tx.Bucket(bucketPending)
	var gens []uint64
	err := pending.ForEach(func(k, v []byte) error {
		if !match(string(v)) {
			return nil
		}
		gen, ok := decodeUint(k)
		if !ok {
			return db.corrupt("pending snapshot key of %d bytes", len(k))
		}
		gens = append(gens, gen)
		return nil
	})
	if err != nil {
		return err
	}
	for _, gen := range gens {
		if err := deleteChunks(tx, gen); err != nil {
			return err
		}
		if err := pending.Delete(encodeUint(gen)); err != nil {
			return err
		}
	}
	return nil
}

// SnapshotWriter writes one snapshot generation. It is an io.Writer that
// cuts the stream into chunks of Options.ChunkSize bytes and writes them
// ChunksPerTx at a time, each batch in its own transaction, so a snapshot
// of any size needs at most 2 × ChunksPerTx × ChunkSize bytes of buffers
// and ChunksPerTx × ChunkSize of dirty pages. Nothing of it is visible
// until Commit (but see OpenPending).
//
// A batch's transaction runs in the background while Write fills the next
// batch: the writer waits for a batch's commit (its fsync) only when the
// next one is full, or at Commit or Abort. A batch that failed in the
// background is reported then: by the Write that fills the next batch, or
// by Commit; the Writes in between succeed without writing anything that
// Commit would keep.
//
// A SnapshotWriter is not safe for concurrent use. The caller owns it and
// must end it with Commit or Abort; one that is dropped, or whose process
// dies, leaves chunks in the file until the next Open removes them.
type SnapshotWriter struct {
	db        *DB
	object    string
	gen       uint64
	meta      []byte
	chunkSize int
	perTx     int

	// buf holds the chunks not yet written, each chunkCRCLen+chunkSize
	// bytes but the last, which may be partial. At most perTx of them.
	buf []byte
	// spare is the buffer of the batch in flight, if any, else free.
	spare    []byte
	inflight chan error    // the batch being committed, if any: its result
	queued   uint64        // chunks handed to batches (committed or in flight)
	flushed  atomic.Uint64 // chunks in committed batches
	size     int64
	sum      hash.Hash
	err      error // the first failure; every later call returns it
	done     bool  // committed or aborted
}

// Gen returns the generation being written.
func (w *SnapshotWriter) Gen() uint64 { return w.gen }

// SetMeta replaces the metadata given to CreateSnapshot (copied), for a
// caller that knows it only once the bytes are written (a checksum of its
// own, say). It must come before Commit.
func (w *SnapshotWriter) SetMeta(meta []byte) { w.meta = append([]byte(nil), meta...) }

// Flushed returns how many of the snapshot's first bytes are in
// transactions already committed: an OpenPending reader can read them
// (they are not yet durable: a crash discards the whole generation).
// Only whole chunks are flushed before Commit.
func (w *SnapshotWriter) Flushed() int64 { return int64(w.flushed.Load()) * int64(w.chunkSize) }

// Write appends p to the snapshot. It writes buffered chunks to the file
// when ChunksPerTx of them are full, so a Write may block on a commit. If a
// write to the file fails, the error is returned now and by every later
// call; Abort then discards what was written.
func (w *SnapshotWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, w.errDone()
	}
	if w.err != nil {
		return 0, w.err
	}
	seg := chunkCRCLen + w.chunkSize
	n := 0
	for len(p) > 0 {
		if len(w.buf)%seg == 0 { // no partial chunk: start one
			if len(w.buf) == w.perTx*seg {
				if err := w.flush(); err != nil {
					w.err = err
					return n, err
				}
			}
			w.grow(chunkCRCLen)
			w.buf = w.buf[:len(w.buf)+chunkCRCLen] // sealChunk fills it in
		}
		k := min(seg-len(w.buf)%seg, len(p))
		w.grow(k)
		w.buf = append(w.buf, p[:k]...)
		w.size += int64(k)
		n += k
		p = p[k:]
	}
	return n, nil
}

// grow makes room for k more bytes in buf, never beyond what perTx chunks
// need, so a small snapshot has a small buffer and a large one a bounded
// one.
func (w *SnapshotWriter) grow(k int) {
	if len(w.buf)+k <= cap(w.buf) {
		return
	}
	limit := w.perTx * (chunkCRCLen + w.chunkSize)
	c := min(max(2*cap(w.buf), len(w.buf)+k, 4096), limit)
	nb := make([]byte, len(w.buf), c)
	copy(nb, w.buf)
	w.buf = nb
}

// chunkValues returns the buffered chunks as chunk values (slices of buf),
// not sealed yet.
func (w *SnapshotWriter) chunkValues() [][]byte {
	seg := chunkCRCLen + w.chunkSize
	var vs [][]byte
	for off := 0; off < len(w.buf); off += seg {
		vs = append(vs, w.buf[off:min(off+seg, len(w.buf))])
	}
	return vs
}

// seal adds chunk values, in the snapshot's order, to its SHA-256 and
// fills in their CRC-32C. Batches are sealed one at a time, in order (in
// the background for all but the last).
func (w *SnapshotWriter) seal(vs [][]byte) {
	for _, v := range vs {
		w.sum.Write(v[chunkCRCLen:])
		sealChunk(v)
	}
}

// putChunks writes chunks base, base+1, ... in tx, after checking that the
// generation is still being written.
func (w *SnapshotWriter) putChunks(tx *bbolt.Tx, base uint64, vs [][]byte) error {
	if string(tx.Bucket(bucketPending).Get(encodeUint(w.gen))) != w.object {
		return fmt.Errorf("%w: %s: snapshot %q generation %d was deleted while being written",
			ErrSnapshotGone, w.db.path, w.object, w.gen)
	}
	chunks := tx.Bucket(bucketChunks)
	for i, v := range vs {
		if err := chunks.Put(chunkKey(w.gen, base+uint64(i)), v); err != nil {
			return err
		}
	}
	return nil
}

// flush starts writing the buffered chunks in one transaction, in the
// background, once the batch before is committed, and gives Write the
// other buffer.
func (w *SnapshotWriter) flush() error {
	if err := w.wait(); err != nil {
		return err
	}
	vs := w.chunkValues()
	base := w.queued
	w.queued += uint64(len(vs))
	done := make(chan error, 1)
	go func() {
		w.seal(vs)
		err := w.db.update(func(tx *bbolt.Tx) error { return w.putChunks(tx, base, vs) })
		if err == nil {
			w.flushed.Store(base + uint64(len(vs)))
		}
		done <- err
	}()
	w.inflight = done
	w.buf, w.spare = w.spare[:0], w.buf
	return nil
}

// wait waits for the batch in flight, if any, and returns its error.
func (w *SnapshotWriter) wait() error {
	if w.inflight == nil {
		return nil
	}
	err := <-w.inflight
	w.inflight = nil
	return err
}

// Commit writes what is buffered and makes this generation the object's
// current snapshot, atomically: a crash before Commit returns leaves the
// previous one current. The generation that was current stays readable as
// the previous one until the object's next Commit, which deletes it. Small
// commits (the last 64 KiB or less) are group-committed.
//
// Commit fails with ErrSnapshotStale, discarding this generation, if a
// newer generation of the object was committed first, and with
// ErrSnapshotGone if the object's snapshots were deleted meanwhile. After a
// failure the writer is discarded as by Abort; after Commit the writer is
// done.
func (w *SnapshotWriter) Commit() (SnapshotInfo, error) {
	if w.done {
		return SnapshotInfo{}, w.errDone()
	}
	if w.err != nil {
		return SnapshotInfo{}, w.fail(w.err)
	}
	if err := w.wait(); err != nil {
		return SnapshotInfo{}, w.fail(err)
	}
	rec := genRecord{
		info: SnapshotInfo{
			Object: w.object,
			Gen:    w.gen,
			Size:   w.size,
			Meta:   w.meta,
		},
		chunkSize: uint64(w.chunkSize),
	}
	vs := w.chunkValues()
	w.seal(vs)
	w.sum.Sum(rec.info.Sum[:0])
	encoded := rec.encode()
	commit := func(tx *bbolt.Tx) error {
		if err := w.putChunks(tx, w.queued, vs); err != nil {
			return err
		}
		snaps := tx.Bucket(bucketSnapshots)
		var old heads
		if raw := snaps.Get([]byte(w.object)); raw != nil {
			var err error
			if old, err = decodeHeads(raw); err != nil {
				return w.db.corrupt("snapshots of %q: %v", w.object, err)
			}
		}
		if old.current >= w.gen {
			return fmt.Errorf("%w: %s: snapshot %q generation %d, but %d is current",
				ErrSnapshotStale, w.db.path, w.object, w.gen, old.current)
		}
		// The generation before the current one is retired: its readers
		// get ErrSnapshotGone from now on.
		if old.previous != 0 {
			if err := deleteGen(tx, old.previous); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketGenerations).Put(encodeUint(w.gen), encoded); err != nil {
			return err
		}
		if err := snaps.Put([]byte(w.object), heads{current: w.gen, previous: old.current}.encode()); err != nil {
			return err
		}
		return tx.Bucket(bucketPending).Delete(encodeUint(w.gen))
	}
	var err error
	if len(w.buf) <= batchCommitMax {
		err = w.db.batch(commit)
	} else {
		err = w.db.update(commit)
	}
	if err != nil {
		return SnapshotInfo{}, w.fail(err)
	}
	w.done, w.buf, w.spare = true, nil, nil
	return rec.info, nil
}

// Abort discards the generation: its chunks are deleted and it never
// becomes current. Abort after Commit or Abort does nothing, so a deferred
// Abort is safe. If the deletion fails (the DB was closed, say), the next
// Open removes the chunks.
func (w *SnapshotWriter) Abort() error {
	if w.done {
		return nil
	}
	w.wait() // its error, if any, does not matter now
	w.done, w.buf, w.spare = true, nil, nil
	return w.db.update(func(tx *bbolt.Tx) error {
		pending := tx.Bucket(bucketPending)
		if string(pending.Get(encodeUint(w.gen))) != w.object {
			return nil // deleted with the object's snapshots
		}
		if err := deleteChunks(tx, w.gen); err != nil {
			return err
		}
		return pending.Delete(encodeUint(w.gen))
	})
}

// fail aborts the writer after err and returns err.
func (w *SnapshotWriter) fail(err error) error {
	w.err = err
	w.Abort() // best effort: the next Open removes what remains
	return err
}

func (w *SnapshotWriter) errDone() error {
	if w.err != nil {
		return w.err
	}
	return fmt.Errorf("%w: snapshot writer of %q generation %d is committed or aborted", ErrClosed, w.object, w.gen)
}

// OpenSnapshot opens a committed generation of the object's snapshot for
// reading. A generation stays readable while it is the object's current
// one and, after the next Commit, as the previous one; the Commit after
// that, DeleteSnapshot and DeleteObject make it gone. A generation that is
// gone, or was never committed, gives ErrSnapshotGone, here or in a later
// Read or ReadAt.
func (db *DB) OpenSnapshot(object string, gen uint64) (*SnapshotReader, error) {
	if err := checkName("object", object); err != nil {
		return nil, err
	}
	var rec genRecord
	err := db.view(func(tx *bbolt.Tx) error {
		var err error
		rec, err = db.readGen(tx, object, gen)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &SnapshotReader{db: db, rec: rec, sum: sha256.New()}, nil
}

// SnapshotReader reads one snapshot generation. It is an io.Reader, for a
// full sequential read, and an io.ReaderAt, for reads of ranges. Each Read
// that needs a new chunk, and each ReadAt, runs in its own short read
// transaction, so a reader held for minutes pins no old pages; the
// generation may therefore be retired between two calls, which then fail
// with ErrSnapshotGone. Every chunk's CRC-32C is checked when it is read.
//
// Read keeps one chunk in memory and is not safe for concurrent use;
// ReadAt and Info are, also alongside Read. A reader holds no resources
// beyond that chunk and needs no closing.
type SnapshotReader struct {
	db  *DB
	rec genRecord

	// Read's state.
	off      int64  // offset of the next byte Read returns
	cur      []byte // data of chunk curIdx, if not nil
	curIdx   uint64
	hashed   uint64 // chunks added to sum, in order
	sum      hash.Hash
	verified bool
	err      error // sticky error of Read
}

// Info describes the generation being read.
func (r *SnapshotReader) Info() SnapshotInfo {
	info := r.rec.info
	info.Meta = append([]byte(nil), info.Meta...)
	return info
}

// Read reads the snapshot's next bytes. At the end, once every byte has
// been read, it checks the snapshot's SHA-256 and returns io.EOF, or an
// error wrapping ErrCorrupt if the sum does not match (before returning the
// last chunk's bytes). An error is returned by every later call.
func (r *SnapshotReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.off >= r.rec.info.Size {
		if err := r.verify(); err != nil {
			r.err = err
			return 0, err
		}
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	idx := uint64(r.off) / r.rec.chunkSize
	if r.cur == nil || r.curIdx != idx {
		if err := r.load(idx); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.cur[uint64(r.off)-idx*r.rec.chunkSize:])
	r.off += int64(n)
	return n, nil
}

// load reads chunk idx into cur, in its own transaction.
func (r *SnapshotReader) load(idx uint64) error {
	err := r.db.view(func(tx *bbolt.Tx) error {
		data, err := r.chunk(tx, idx)
		if err != nil {
			return err
		}
		r.cur = append(r.cur[:0], data...)
		return nil
	})
	if err != nil {
		return err
	}
	r.curIdx = idx
	if idx == r.hashed { // Read is sequential: every chunk comes once, in order
		r.sum.Write(r.cur)
		r.hashed++
	}
	if r.hashed == r.rec.chunks() {
		return r.verify()
	}
	return nil
}

// verify checks the sum once every chunk has been hashed.
func (r *SnapshotReader) verify() error {
	if r.verified {
		return nil
	}
	var got [sha256.Size]byte
	r.sum.Sum(got[:0])
	if got != r.rec.info.Sum {
		return r.db.corrupt("snapshot %q generation %d: SHA-256 %x, want %x",
			r.rec.info.Object, r.rec.info.Gen, got, r.rec.info.Sum)
	}
	r.verified = true
	return nil
}

// chunk returns chunk idx's data (bbolt memory, valid in tx), after
// checking that the generation is still there and the chunk's checksum and
// length.
func (r *SnapshotReader) chunk(tx *bbolt.Tx, idx uint64) ([]byte, error) {
	info := r.rec.info
	if tx.Bucket(bucketGenerations).Get(encodeUint(info.Gen)) == nil {
		return nil, fmt.Errorf("%w: %s: snapshot %q generation %d", ErrSnapshotGone, r.db.path, info.Object, info.Gen)
	}
	v := tx.Bucket(bucketChunks).Get(chunkKey(info.Gen, idx))
	if v == nil {
		return nil, r.db.corrupt("snapshot %q generation %d: chunk %d of %d missing", info.Object, info.Gen, idx, r.rec.chunks())
	}
	data, err := openChunk(v)
	if err != nil {
		return nil, r.db.corrupt("snapshot %q generation %d chunk %d: %v", info.Object, info.Gen, idx, err)
	}
	if want := r.rec.chunkLen(idx); len(data) != want {
		return nil, r.db.corrupt("snapshot %q generation %d chunk %d: %d bytes, want %d", info.Object, info.Gen, idx, len(data), want)
	}
	return data, nil
}

// ReadAt reads len(p) bytes at offset off, as io.ReaderAt, in one read
// transaction. It checks the checksums of the chunks it touches but not the
// snapshot's SHA-256, which only a full Read can. ReadAt is safe for
// concurrent use.
func (r *SnapshotReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrInvalid, off)
	}
	size := r.rec.info.Size
	if off >= size {
		return 0, io.EOF
	}
	end := off + int64(min(int64(len(p)), size-off))
	cs := int64(r.rec.chunkSize)
	err := r.db.view(func(tx *bbolt.Tx) error {
		for pos := off; pos < end; {
			idx := pos / cs
			data, err := r.chunk(tx, uint64(idx))
			if err != nil {
				return err
			}
			pos += int64(copy(p[pos-off:end-off], data[pos-idx*cs:]))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := int(end - off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// OpenPending opens a generation that a SnapshotWriter of this DB is still
// writing, to read what the writer has flushed so far (see
// SnapshotWriter.Flushed): a donor can serve a snapshot while it is being
// written. It fails with ErrSnapshotGone if gen is not being written for
// object (never was, or was committed, aborted or deleted); a committed
// generation is read with OpenSnapshot.
func (db *DB) OpenPending(object string, gen uint64) (*PendingReader, error) {
	if err := checkName("object", object); err != nil {
		return nil, err
	}
	r := &PendingReader{db: db, object: object, gen: gen, chunkSize: db.chunkSize}
	if err := db.view(r.check); err != nil {
		return nil, err
	}
	return r, nil
}

// PendingReader reads the flushed part of a generation being written. Its
// size is not known: ReadAt returns io.EOF at the end of what is flushed.
// Each ReadAt runs in its own read transaction and checks the CRC-32C and
// length of every chunk it touches (every flushed chunk is whole); the
// SHA-256 of the whole snapshot is known only at Commit. Safe for
// concurrent use.
type PendingReader struct {
	db        *DB
	object    string
	gen       uint64
	chunkSize int
}

// check fails with ErrSnapshotGone unless the generation is still being
// written for the reader's object.
func (r *PendingReader) check(tx *bbolt.Tx) error {
	if string(tx.Bucket(bucketPending).Get(encodeUint(r.gen))) != r.object {
		return fmt.Errorf("%w: %s: snapshot %q generation %d is not being written", ErrSnapshotGone, r.db.path, r.object, r.gen)
	}
	return nil
}

// ReadAt reads len(p) bytes at offset off of what is flushed. It returns
// fewer, with io.EOF, if fewer are flushed (none at or past the end of
// what is flushed), and ErrSnapshotGone once the generation is no longer
// being written (after its Commit, read it with OpenSnapshot).
func (r *PendingReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrInvalid, off)
	}
	n := 0
	err := r.db.view(func(tx *bbolt.Tx) error {
		if err := r.check(tx); err != nil {
			return err
		}
		chunks := tx.Bucket(bucketChunks)
		cs := int64(r.chunkSize)
		for n < len(p) {
			pos := off + int64(n)
			idx := uint64(pos / cs)
			v := chunks.Get(chunkKey(r.gen, idx))
			if v == nil {
				return nil // not flushed yet
			}
			data, err := openChunk(v)
			if err != nil {
				return r.db.corrupt("snapshot %q generation %d chunk %d (being written): %v", r.object, r.gen, idx, err)
			}
			if len(data) != r.chunkSize {
				return r.db.corrupt("snapshot %q generation %d chunk %d (being written): %d bytes, want %d", r.object, r.gen, idx, len(data), r.chunkSize)
			}
			n += copy(p[n:], data[pos-int64(idx)*cs:])
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Gen returns the generation the reader reads.
func (r *PendingReader) Gen() uint64 { return r.gen }
