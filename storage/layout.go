package storage

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Bucket and key names. See the package documentation for the layout.
var (
	bucketMeta = []byte("meta")
	keyFormat  = []byte("format")
	keyNextGen = []byte("nextgen")

	bucketObjects     = []byte("objects")
	bucketApplied     = []byte("applied")
	bucketViews       = []byte("views")
	bucketDirectory   = []byte("directory")
	keyDirectory      = []byte("cache")
	bucketSnapshots   = []byte("snapshots")
	bucketGenerations = []byte("generations")
	bucketChunks      = []byte("chunks")
	bucketPending     = []byte("pending")
)

// bucketsV2 are the top-level buckets format version 2 adds to version 1's
// meta and identity.
var bucketsV2 = [][]byte{
	bucketObjects, bucketApplied, bucketViews, bucketDirectory,
	bucketSnapshots, bucketGenerations, bucketChunks, bucketPending,
}

// Records stored by this package. Each has an encoder and a decoder; a
// decoder accepts exactly what its encoder produces (FuzzDecode* check that
// decode then encode gives back the input) and returns values that do not
// alias the input, which may be bbolt memory valid only inside its
// transaction. Decoders return plain errors; callers wrap them in
// ErrCorrupt with the file and the key.

// heads is the snapshots bucket's value for an object: its current
// generation and the one before it (0: none).
//
// INVARIANT: current ≥ 1 and previous < current (VerifyTx).
type heads struct {
	current, previous uint64
}

const headsLen = 16

func (h heads) encode() []byte {
	b := make([]byte, 0, headsLen)
	b = binary.BigEndian.AppendUint64(b, h.current)
	return binary.BigEndian.AppendUint64(b, h.previous)
}

func decodeHeads(b []byte) (heads, error) {
	if len(b) != headsLen {
		return heads{}, fmt.Errorf("snapshot heads of %d bytes, want %d", len(b), headsLen)
	}
	h := heads{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}
	if h.current == 0 || h.previous >= h.current {
		return heads{}, fmt.Errorf("snapshot heads: current generation %d, previous %d", h.current, h.previous)
	}
	return h, nil
}

// genRecord is the generations bucket's value for one committed snapshot
// generation: its SnapshotInfo (but Gen, which is the key) and the chunk
// size it was written with.
//
//	size       uint64, ≤ math.MaxInt64
//	chunk size uint64, 1 to MaxChunkSize
//	sum        [32]byte, SHA-256 of the bytes
//	object len uint32, 1 to MaxNameLen
//	object     string
//	meta       the rest
type genRecord struct {
	info      SnapshotInfo
	chunkSize uint64
}

const genFixedLen = 8 + 8 + sha256.Size + 4

func (r genRecord) encode() []byte {
	b := make([]byte, 0, genFixedLen+len(r.info.Object)+len(r.info.Meta))
	b = binary.BigEndian.AppendUint64(b, uint64(r.info.Size))
	b = binary.BigEndian.AppendUint64(b, r.chunkSize)
	b = append(b, r.info.Sum[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.info.Object)))
	b = append(b, r.info.Object...)
	return append(b, r.info.Meta...)
}

func decodeGenRecord(gen uint64, b []byte) (genRecord, error) {
	if len(b) < genFixedLen {
		return genRecord{}, fmt.Errorf("generation record of %d bytes, want at least %d", len(b), genFixedLen)
	}
	size := binary.BigEndian.Uint64(b)
	chunkSize := binary.BigEndian.Uint64(b[8:])
	var sum [sha256.Size]byte
	copy(sum[:], b[16:])
	objLen := uint64(binary.BigEndian.Uint32(b[16+sha256.Size:]))
	rest := b[genFixedLen:]
	switch {
	case size > math.MaxInt64:
		return genRecord{}, fmt.Errorf("generation record: size %d", size)
	case chunkSize < 1 || chunkSize > MaxChunkSize:
		return genRecord{}, fmt.Errorf("generation record: chunk size %d", chunkSize)
	case objLen < 1 || objLen > MaxNameLen || objLen > uint64(len(rest)):
		return genRecord{}, fmt.Errorf("generation record: object name of %d bytes in %d", objLen, len(rest))
	}
	info := SnapshotInfo{
		Object: string(rest[:objLen]),
		Gen:    gen,
		Size:   int64(size),
		Sum:    sum,
		Meta:   append([]byte(nil), rest[objLen:]...),
	}
	return genRecord{info: info, chunkSize: chunkSize}, nil
}

// chunks returns how many chunks hold the snapshot's bytes.
func (r genRecord) chunks() uint64 {
	return (uint64(r.info.Size) + r.chunkSize - 1) / r.chunkSize
}

// chunkLen returns the length of chunk i < r.chunks(): the chunk size, but
// for a shorter last chunk.
func (r genRecord) chunkLen(i uint64) int {
	return int(min(r.chunkSize, uint64(r.info.Size)-i*r.chunkSize))
}

// A chunk is the chunks bucket's value at key generation|index: the
// CRC-32C (Castagnoli) of the data, then the data.
//
// INVARIANT: every chunk's checksum matches its data, and its length is the
// one its generation's record implies (VerifyTx).
const chunkCRCLen = 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sealChunk fills in the checksum of v, a chunk value whose first
// chunkCRCLen bytes are reserved for it.
func sealChunk(v []byte) {
	binary.BigEndian.PutUint32(v, crc32.Checksum(v[chunkCRCLen:], castagnoli))
}

// openChunk checks v's checksum and returns its data, which aliases v.
func openChunk(v []byte) ([]byte, error) {
	if len(v) < chunkCRCLen {
		return nil, fmt.Errorf("chunk of %d bytes, shorter than its checksum", len(v))
	}
	data := v[chunkCRCLen:]
	if want, got := binary.BigEndian.Uint32(v), crc32.Checksum(data, castagnoli); want != got {
		return nil, fmt.Errorf("chunk checksum %08x, want %08x", got, want)
	}
	return data, nil
}

func chunkKey(gen, index uint64) []byte {
	b := make([]byte, 0, 16)
	b = binary.BigEndian.AppendUint64(b, gen)
	return binary.BigEndian.AppendUint64(b, index)
}

func decodeChunkKey(k []byte) (gen, index uint64, ok bool) {
	if len(k) != 16 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(k), binary.BigEndian.Uint64(k[8:]), true
}

// A view record is the views bucket's value for a group: the view id, then
// the members as the caller encoded them.
func encodeView(v SavedView) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(v.Members)), v.ID), v.Members...)
}

func decodeView(b []byte) (SavedView, error) {
	if len(b) < 8 {
		return SavedView{}, fmt.Errorf("view record of %d bytes, want at least 8", len(b))
	}
	return SavedView{ID: binary.BigEndian.Uint64(b), Members: append([]byte(nil), b[8:]...)}, nil
}
