// Package rsmtest holds small deterministic state machines for tests of
// package rsm and of code built on it: a counter whose digest chains every
// command it applied (so any difference in order or content shows), and a
// string map.
package rsmtest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/lwgkit/lwgkit/rsm"
)

// Counter adds each command (a uvarint) to a total, and chains every
// command into a SHA-256 digest. Its queries: "total" (8 bytes, big
// endian), "digest" (32 bytes).
type Counter struct {
	mu     sync.Mutex // for Peek from tests; the rsm.Node already serialises calls
	total  uint64
	digest [32]byte
	// Pad, if set, is written after the state by Snapshot and read back by
	// Restore, to make snapshots as large as a test wants.
	Pad int
}

// NewCounter is an rsm.Factory.
func NewCounter(rsm.ObjectID) (rsm.StateMachine, error) { return &Counter{}, nil }

// Add encodes a command that adds v.
func Add(v uint64) []byte { return binary.AppendUvarint(nil, v) }

// ErrBadCommand is Apply's result for a command that is not a uvarint.
var ErrBadCommand = errors.New("rsmtest: bad command")

// Apply implements rsm.StateMachine.
func (c *Counter) Apply(cmd []byte) ([]byte, error) {
	v, n := binary.Uvarint(cmd)
	if n <= 0 || n != len(cmd) {
		return nil, ErrBadCommand
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += v
	// cmd is one uvarint, so the chained input fits on the stack.
	var buf [len(c.digest) + binary.MaxVarintLen64]byte
	c.digest = sha256.Sum256(append(append(buf[:0], c.digest[:]...), cmd...))
	return binary.BigEndian.AppendUint64(nil, c.total), nil
}

// Query implements rsm.Querier.
func (c *Counter) Query(q []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch string(q) {
	case "total":
		return binary.BigEndian.AppendUint64(nil, c.total), nil
	case "digest":
		return append([]byte(nil), c.digest[:]...), nil
	}
	return nil, fmt.Errorf("rsmtest: unknown query %q", q)
}

// Peek returns the total and digest.
func (c *Counter) Peek() (uint64, [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total, c.digest
}

// Snapshot implements rsm.StateMachine.
func (c *Counter) Snapshot(w io.Writer) error {
	c.mu.Lock()
	b := binary.BigEndian.AppendUint64(nil, c.total)
	b = append(b, c.digest[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Pad))
	c.mu.Unlock()
	if _, err := w.Write(b); err != nil {
		return err
	}
	if c.Pad <= 0 {
		return nil
	}
	pad := padPattern(c.Pad, min(c.Pad, 64<<10))
	for left := c.Pad; left > 0; left -= len(pad) {
		if _, err := w.Write(pad[:min(left, len(pad))]); err != nil {
			return err
		}
	}
	return nil
}

// padPattern returns the first n bytes of a padding of pad bytes: byte i
// is byte(pad-i). Since n is a multiple of 256 or all of it, every n-byte
// piece of the padding starts the same way, so one buffer serves all.
func padPattern(pad, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(pad - i)
	}
	return b
}

// Restore implements rsm.StateMachine. It checks the padding byte by byte,
// taking it with io.Copy (which lets a reader that can hand over its
// buffers do so, as rsm's transfer reader does).
func (c *Counter) Restore(r io.Reader) error {
	var b [48]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return fmt.Errorf("rsmtest: counter snapshot: %w", err)
	}
	pad := int(binary.BigEndian.Uint64(b[40:]))
	pc := &padChecker{pad: pad, want: padPattern(pad, min(pad, 64<<10+256))}
	if _, err := io.Copy(pc, r); err != nil {
		return fmt.Errorf("rsmtest: counter padding: %w", err)
	}
	if pc.off != pad {
		return fmt.Errorf("rsmtest: counter padding: %d bytes of %d: %w", pc.off, pad, io.ErrUnexpectedEOF)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total = binary.BigEndian.Uint64(b[:8])
	copy(c.digest[:], b[8:40])
	c.Pad = pad
	return nil
}

// padChecker compares what it is written with a Counter's padding.
type padChecker struct {
	pad, off int
	want     []byte // the padding's first bytes; byte i depends on i mod 256
}

func (w *padChecker) Write(p []byte) (int, error) {
	if len(p) > w.pad-w.off {
		return 0, errors.New("counter snapshot has trailing bytes")
	}
	for done := 0; done < len(p); {
		at := w.off % 256
		n := min(len(p)-done, len(w.want)-at)
		if !bytes.Equal(p[done:done+n], w.want[at:at+n]) {
			for i := range n {
				if p[done+i] != w.want[at+i] {
					return done + i, fmt.Errorf("padding corrupt at %d", w.off+i)
				}
			}
		}
		done, w.off = done+n, w.off+n
	}
	return len(p), nil
}

// Map is a map from string to string. Commands: "set k v" sets and returns
// the old value; "del k". Queries: "get k". Digest: "digest".
type Map struct {
	m map[string]string
}

// NewMap is an rsm.Factory.
func NewMap(rsm.ObjectID) (rsm.StateMachine, error) { return &Map{m: map[string]string{}}, nil }

// Set and Del encode commands; Get a query.
func Set(k, v string) []byte { return []byte("set " + k + " " + v) }
func Del(k string) []byte    { return []byte("del " + k) }
func Get(k string) []byte    { return []byte("get " + k) }

// Apply implements rsm.StateMachine.
func (m *Map) Apply(cmd []byte) ([]byte, error) {
	f := bytes.SplitN(cmd, []byte(" "), 3)
	switch {
	case len(f) == 3 && string(f[0]) == "set":
		old := m.m[string(f[1])]
		m.m[string(f[1])] = string(f[2])
		return []byte(old), nil
	case len(f) == 2 && string(f[0]) == "del":
		old := m.m[string(f[1])]
		delete(m.m, string(f[1]))
		return []byte(old), nil
	}
	return nil, ErrBadCommand
}

// Query implements rsm.Querier.
func (m *Map) Query(q []byte) ([]byte, error) {
	if string(q) == "digest" {
		h := sha256.New()
		m.write(h)
		return h.Sum(nil), nil
	}
	f := bytes.SplitN(q, []byte(" "), 2)
	if len(f) == 2 && string(f[0]) == "get" {
		return []byte(m.m[string(f[1])]), nil
	}
	return nil, fmt.Errorf("rsmtest: unknown query %q", q)
}

func (m *Map) write(w io.Writer) error {
	keys := make([]string, 0, len(m.m))
	for k := range m.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b []byte
	for _, k := range keys {
		b = binary.AppendUvarint(b[:0], uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(m.m[k])))
		b = append(b, m.m[k]...)
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// Snapshot implements rsm.StateMachine.
func (m *Map) Snapshot(w io.Writer) error { return m.write(w) }

// Restore implements rsm.StateMachine.
func (m *Map) Restore(r io.Reader) error {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	next := func() (string, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return "", err
		}
		if n > 1<<30 {
			return "", errors.New("rsmtest: map snapshot: length too large")
		}
		b := make([]byte, n)
		_, err = io.ReadFull(br, b)
		return string(b), err
	}
	mm := map[string]string{}
	for {
		k, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("rsmtest: map snapshot: %w", err)
		}
		v, err := next()
		if err != nil {
			return fmt.Errorf("rsmtest: map snapshot: %w", err)
		}
		mm[k] = v
	}
	m.m = mm
	return nil
}
