package storage

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"

	"go.etcd.io/bbolt"
)

// Verify checks this package's invariants on the file (see VerifyTx) in a
// read-only transaction. It is safe alongside writers: every committed
// transaction keeps the invariants, and Verify sees one of them.
func (db *DB) Verify() error {
	return db.view(func(tx *bbolt.Tx) error {
		if err := VerifyTx(tx); err != nil {
			return fmt.Errorf("verify %s: %w", db.path, err)
		}
		return nil
	})
}

// VerifyTx checks, in tx, that a storage file of any supported format keeps
// the invariants of its layout, and returns every violation joined
// (errors.Join), each wrapping ErrCorrupt; or an error wrapping ErrFormat if
// the file is not one this version reads. It complements bbolt's Tx.Check,
// which checks the pages, not what they hold. It reads every snapshot
// chunk, so it takes time in proportion to the file; it is meant for tests
// (storagetest.Check) and tools.
//
// The invariants, each also stated as an INVARIANT comment where it is kept:
//   - every record decodes (identity, applied indexes, views, heads,
//     generation records, chunk keys);
//   - an object's heads name committed generations of that object, the
//     current one and at most one before it, and every committed generation
//     is named by its object's heads;
//   - a committed generation has exactly the chunks its size implies, each
//     of the right length with a matching CRC-32C, and their bytes have the
//     recorded SHA-256;
//   - every chunk belongs to a committed generation or to one being written
//     (pending), and a pending generation's chunks are numbered from 0
//     without gaps;
//   - every generation is below meta/nextgen.
func VerifyTx(tx *bbolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return fmt.Errorf("%w: no %q bucket", ErrFormat, bucketMeta)
	}
	version, err := checkVersion(meta, "")
	if err != nil {
		return err
	}
	v := verifier{tx: tx}
	if _, _, err := decodeIdentity(tx.Bucket(bucketIdentity)); err != nil {
		v.fail("identity: %v", err)
	}
	if version < 2 {
		return v.result()
	}
	for _, name := range bucketsV2 {
		if tx.Bucket(name) == nil {
			v.fail("no %q bucket", name)
		}
	}
	if v.errs != nil {
		return v.result()
	}
	v.nextGen = 1
	if raw := meta.Get(keyNextGen); raw != nil {
		if g, ok := decodeUint(raw); ok && g > 0 {
			v.nextGen = g
		} else {
			v.fail("malformed next generation")
		}
	}
	v.applied()
	v.views()
	v.snapshots()
	return v.result()
}

type verifier struct {
	tx      *bbolt.Tx
	nextGen uint64
	errs    []error
}

func (v *verifier) fail(format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...)))
}

func (v *verifier) result() error { return errors.Join(v.errs...) }

func (v *verifier) applied() {
	v.tx.Bucket(bucketApplied).ForEach(func(k, val []byte) error {
		if _, ok := decodeUint(val); !ok || len(k) == 0 {
			v.fail("applied index of %q: %d bytes", k, len(val))
		}
		return nil
	})
}

func (v *verifier) views() {
	v.tx.Bucket(bucketViews).ForEach(func(k, val []byte) error {
		if _, err := decodeView(val); err != nil || len(k) == 0 {
			v.fail("view of group %q: %v", k, err)
		}
		return nil
	})
}

func (v *verifier) snapshots() {
	// Generation records, by generation.
	gens := make(map[uint64]genRecord)
	v.tx.Bucket(bucketGenerations).ForEach(func(k, val []byte) error {
		gen, ok := decodeUint(k)
		if !ok {
			v.fail("generation key of %d bytes", len(k))
			return nil
		}
		rec, err := decodeGenRecord(gen, val)
		if err != nil {
			v.fail("generation %d: %v", gen, err)
			return nil
		}
		if gen == 0 || gen >= v.nextGen {
			v.fail("generation %d of %q not below the next generation %d", gen, rec.info.Object, v.nextGen)
		}
		gens[gen] = rec
		return nil
	})
	// Heads name committed generations of their object, and every
	// committed generation is named once.
	named := make(map[uint64]bool)
	v.tx.Bucket(bucketSnapshots).ForEach(func(k, val []byte) error {
		h, err := decodeHeads(val)
		if err != nil {
			v.fail("snapshots of %q: %v", k, err)
			return nil
		}
		for _, gen := range []uint64{h.current, h.previous} {
			if gen == 0 {
				continue
			}
			named[gen] = true
			if rec, ok := gens[gen]; !ok {
				v.fail("snapshots of %q: generation %d has no record", k, gen)
			} else if rec.info.Object != string(k) {
				v.fail("snapshots of %q: generation %d is %q's", k, gen, rec.info.Object)
			}
		}
		return nil
	})
	for gen, rec := range gens {
		if !named[gen] {
			v.fail("generation %d of %q is neither current nor previous", gen, rec.info.Object)
		}
	}
	// Pending generations.
	pending := make(map[uint64]uint64) // generation → chunks seen
	v.tx.Bucket(bucketPending).ForEach(func(k, val []byte) error {
		gen, ok := decodeUint(k)
		switch {
		case !ok:
			v.fail("pending generation key of %d bytes", len(k))
		case len(val) == 0:
			v.fail("pending generation %d of no object", gen)
		case gen == 0 || gen >= v.nextGen:
			v.fail("pending generation %d not below the next generation %d", gen, v.nextGen)
		case gens[gen].info.Object != "":
			v.fail("generation %d is both pending and committed", gen)
		default:
			pending[gen] = 0
		}
		return nil
	})
	// Chunks: in order of key, so generation by generation, index by index.
	sums := make(map[uint64]*chunkSum)
	v.tx.Bucket(bucketChunks).ForEach(func(k, val []byte) error {
		gen, idx, ok := decodeChunkKey(k)
		if !ok {
			v.fail("chunk key of %d bytes", len(k))
			return nil
		}
		if n, ok := pending[gen]; ok {
			if idx != n {
				v.fail("pending generation %d: chunk %d after %d chunks", gen, idx, n)
			}
			pending[gen] = idx + 1
			if _, err := openChunk(val); err != nil {
				v.fail("pending generation %d chunk %d: %v", gen, idx, err)
			}
			return nil
		}
		rec, ok := gens[gen]
		if !ok {
			v.fail("chunk %d of generation %d, which is neither committed nor pending", idx, gen)
			return nil
		}
		s := sums[gen]
		if s == nil {
			s = &chunkSum{h: sha256.New()}
			sums[gen] = s
		}
		data, err := openChunk(val)
		switch {
		case err != nil:
			v.fail("generation %d chunk %d: %v", gen, idx, err)
			s.bad = true
		case idx != s.n:
			v.fail("generation %d: chunk %d after %d chunks", gen, idx, s.n)
			s.bad = true
		case idx >= rec.chunks():
			v.fail("generation %d: chunk %d beyond its %d chunks", gen, idx, rec.chunks())
			s.bad = true
		case len(data) != rec.chunkLen(idx):
			v.fail("generation %d chunk %d: %d bytes, want %d", gen, idx, len(data), rec.chunkLen(idx))
			s.bad = true
		default:
			s.h.Write(data)
		}
		s.n = idx + 1
		return nil
	})
	for gen, rec := range gens {
		s := sums[gen]
		if s == nil {
			s = &chunkSum{h: sha256.New()}
		}
		if s.bad {
			continue
		}
		if s.n != rec.chunks() {
			v.fail("generation %d of %q: %d chunks, want %d", gen, rec.info.Object, s.n, rec.chunks())
			continue
		}
		var got [sha256.Size]byte
		if s.h.Sum(got[:0]); got != rec.info.Sum {
			v.fail("generation %d of %q: SHA-256 %x, want %x", gen, rec.info.Object, got, rec.info.Sum)
		}
	}
}

type chunkSum struct {
	h   hash.Hash
	n   uint64
	bad bool
}
