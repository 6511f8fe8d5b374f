package kvexample

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"slices"
	"strconv"
	"sync"

	"github.com/lwgkit/lwgkit/rsm"
)

// Machine is the state of one shard: a map from keys to byte values. It
// implements rsm.StateMachine and rsm.Querier.
//
// Apply is deterministic: a command's result, including a failure such as
// INCR of a non-integer, is encoded in the returned bytes and the state is
// unchanged on failure, so every replica computes the same. Apply returns a
// Go error never for a valid command, and for undecodable bytes returns a
// KindError result rather than an error, for the same reason.
//
// All methods are safe for concurrent use (rsm calls them one at a time per
// object; the lock also lets tests and StaleRead look at the state).
type Machine struct {
	mu   sync.RWMutex
	data map[string][]byte
}

var (
	_ rsm.StateMachine = (*Machine)(nil)
	_ rsm.Querier      = (*Machine)(nil)
)

// NewMachine returns an empty shard.
func NewMachine() *Machine { return &Machine{data: make(map[string][]byte)} }

// Factory makes empty shards for rsm.Node.Open.
func Factory(rsm.ObjectID) (rsm.StateMachine, error) { return NewMachine(), nil }

// Len returns the number of keys.
func (m *Machine) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.data)
}

// Apply decodes and executes one command and returns its encoded Result.
func (m *Machine) Apply(cmd []byte) ([]byte, error) {
	c, err := DecodeCommand(cmd)
	if err != nil {
		return EncodeResult(Result{Kind: KindError, Code: CodeBadCommand}), nil
	}
	if c.Op.IsRead() {
		m.mu.RLock()
		defer m.mu.RUnlock()
	} else {
		m.mu.Lock()
		defer m.mu.Unlock()
	}
	return EncodeResult(m.exec(c)), nil
}

// Query answers a read command (Get, Exists, MGet); a write is refused.
func (m *Machine) Query(q []byte) ([]byte, error) {
	c, err := DecodeCommand(q)
	if err != nil {
		return nil, err
	}
	if !c.Op.IsRead() {
		return nil, fmt.Errorf("%w: %s is not a query", ErrMalformed, c.Op)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return EncodeResult(m.exec(c)), nil
}

// exec runs a valid command. The caller holds the lock.
func (m *Machine) exec(c Command) Result {
	switch c.Op {
	case OpGet:
		v, ok := m.data[string(c.Args[0])]
		if !ok {
			return Result{Kind: KindNil}
		}
		return Result{Kind: KindBytes, Bytes: v}
	case OpMGet:
		out := make([][]byte, len(c.Args))
		for i, k := range c.Args {
			out[i] = m.data[string(k)] // nil when missing; stored values are never nil
		}
		return Result{Kind: KindArray, Array: out}
	case OpExists:
		n := 0
		for _, k := range c.Args {
			if _, ok := m.data[string(k)]; ok {
				n++
			}
		}
		return Result{Kind: KindInt, Int: int64(n)}
	case OpSet:
		k := string(c.Args[0])
		_, exists := m.data[k]
		if (c.Flags&SetNX != 0 && exists) || (c.Flags&SetXX != 0 && !exists) {
			return Result{Kind: KindNil}
		}
		v := c.Args[1]
		if v == nil {
			v = []byte{}
		}
		m.data[k] = v
		return Result{Kind: KindInt, Int: 1}
	case OpDel:
		n := 0
		for _, k := range c.Args {
			if _, ok := m.data[string(k)]; ok {
				delete(m.data, string(k))
				n++
			}
		}
		return Result{Kind: KindInt, Int: int64(n)}
	case OpIncrBy:
		k := string(c.Args[0])
		var cur int64
		if v, ok := m.data[k]; ok {
			var ok2 bool
			cur, ok2 = parseInt(v)
			if !ok2 {
				return Result{Kind: KindError, Code: CodeNotInteger}
			}
		}
		next, ok := checkedAdd(cur, c.Delta)
		if !ok {
			return Result{Kind: KindError, Code: CodeOverflow}
		}
		m.data[k] = strconv.AppendInt(nil, next, 10)
		return Result{Kind: KindInt, Int: next}
	}
	return Result{Kind: KindError, Code: CodeBadCommand}
}

// parseInt parses a value as Redis does for INCR: a base-10 int64 with an
// optional '-', no '+', no spaces and no leading zeros.
func parseInt(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 20 {
		return 0, false
	}
	s := string(v)
	digits := s
	if s[0] == '-' {
		digits = s[1:]
	}
	if digits == "" || (digits[0] == '0' && (len(digits) > 1 || s[0] == '-')) {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// Snapshot format: the magic, the number of entries (uvarint), then per
// entry in key order the key and the value (each uvarint length, bytes),
// then the CRC-32C of everything before it (4 bytes, big-endian). Equal
// states have equal snapshots.
var snapshotMagic = []byte("lwgkv-snap-1\n")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot streams the state to w.
func (m *Machine) Snapshot(w io.Writer) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	keys := make([]string, 0, len(m.data))
	for k := range m.data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 64<<10)
	var hdr [binary.MaxVarintLen64]byte
	put := func(n int) {
		bw.Write(hdr[:binary.PutUvarint(hdr[:], uint64(n))])
	}
	bw.Write(snapshotMagic)
	put(len(keys))
	for _, k := range keys {
		v := m.data[k]
		put(len(k))
		bw.WriteString(k)
		put(len(v))
		bw.Write(v)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("kvexample: snapshot: %w", err)
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc.Sum32())
	if _, err := w.Write(sum[:]); err != nil {
		return fmt.Errorf("kvexample: snapshot: %w", err)
	}
	return nil
}

// crcReader feeds what it reads into a CRC.
type crcReader struct {
	r   *bufio.Reader
	crc hash.Hash32
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.crc.Write([]byte{b})
	}
	return b, err
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc.Write(p[:n])
	return n, err
}

// readUvarint reads a canonical uvarint.
func readUvarint(r io.ByteReader) (uint64, error) {
	var buf [binary.MaxVarintLen64]byte
	for i := range buf {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		buf[i] = b
		if b < 0x80 {
			v, n := binary.Uvarint(buf[:i+1])
			if n != i+1 || uvarintLen(v) != n {
				return 0, errors.New("bad or non-canonical varint")
			}
			return v, nil
		}
	}
	return 0, errors.New("varint too long")
}

// readChunked reads n bytes, growing the buffer only as data arrives, so a
// corrupt length cannot allocate more than the stream holds.
func readChunked(r io.Reader, n uint64) ([]byte, error) {
	if n <= 64<<10 {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	var buf bytes.Buffer
	got, err := io.CopyN(&buf, r, int64(n))
	if err == nil && uint64(got) != n {
		err = io.ErrUnexpectedEOF
	}
	return buf.Bytes(), err
}

// Restore replaces the state with a snapshot read from r. On any error the
// state is left as it was. Errors wrap ErrMalformed for bad input.
func (m *Machine) Restore(r io.Reader) error {
	cr := &crcReader{r: bufio.NewReaderSize(r, 64<<10), crc: crc32.New(castagnoli)}
	bad := func(what string, err error) error {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%w: snapshot %s: %v", ErrMalformed, what, err)
	}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(cr, magic); err != nil || !bytes.Equal(magic, snapshotMagic) {
		return bad("magic", err)
	}
	count, err := readUvarint(cr)
	if err != nil {
		return bad("count", err)
	}
	data := make(map[string][]byte, min(count, 1<<16))
	var prev string
	for i := uint64(0); i < count; i++ {
		kl, err := readUvarint(cr)
		if err != nil {
			return bad("key length", err)
		}
		k, err := readChunked(cr, kl)
		if err != nil {
			return bad("key", err)
		}
		vl, err := readUvarint(cr)
		if err != nil {
			return bad("value length", err)
		}
		v, err := readChunked(cr, vl)
		if err != nil {
			return bad("value", err)
		}
		if i > 0 && string(k) <= prev {
			return bad("order", errors.New("keys not strictly increasing"))
		}
		prev = string(k)
		data[prev] = v
	}
	want := cr.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(cr.r, sum[:]); err != nil {
		return bad("checksum", err)
	}
	if binary.BigEndian.Uint32(sum[:]) != want {
		return bad("checksum", errors.New("mismatch"))
	}
	m.mu.Lock()
	m.data = data
	m.mu.Unlock()
	return nil
}
