package transport

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Handshake values.
const (
	// Magic opens every handshake.
	Magic = "lwgkit"
	// Version is the wire protocol version this package speaks.
	Version uint8 = 1
	// MaxHandshakeSize bounds the handshake frame; a peer announcing a
	// longer one is disconnected before anything is allocated.
	MaxHandshakeSize = 4 << 10
	// maxNameLen bounds Cluster and Advertise.
	maxNameLen = 255
)

// Handshake is the first frame in each direction on every connection. It
// is encoded as a msgpack map; unknown keys are ignored so that a later
// version can add fields, which it would announce with a new Version.
type Handshake struct {
	Magic     string // always Magic
	Version   uint8  // always Version
	Cluster   string // name of the cluster; both ends must agree
	Node      uint64 // the sender's NodeID, never 0
	Inc       uint64 // the sender's incarnation, at least 1
	Advertise string // address the sender can be dialed at; may be empty
}

// Peer returns the node and incarnation h announces.
func (h Handshake) Peer() Peer { return Peer{Node: h.Node, Inc: h.Inc} }

// wireHandshake is the encoded form. Version is decoded as uint64 because
// msgpack would silently truncate a larger integer into a uint8 (257
// would read as 1).
type wireHandshake struct {
	Magic     string `msgpack:"magic"`
	Version   uint64 `msgpack:"version"`
	Cluster   string `msgpack:"cluster"`
	Node      uint64 `msgpack:"node"`
	Inc       uint64 `msgpack:"inc"`
	Advertise string `msgpack:"advertise"`
}

// Validate reports why h is not a well-formed handshake, as an error
// wrapping ErrBadHandshake, or nil. It checks the fields on their own;
// whether the peer belongs to our cluster or is stale is the transport's
// business.
func (h Handshake) Validate() error {
	w := wireHandshake{h.Magic, uint64(h.Version), h.Cluster, h.Node, h.Inc, h.Advertise}
	return w.validate()
}

func (w *wireHandshake) validate() error {
	switch {
	case w.Magic != Magic:
		return fmt.Errorf("%w: magic %q, want %q", ErrBadHandshake, w.Magic, Magic)
	case w.Version != uint64(Version):
		return fmt.Errorf("%w: version %d, want %d", ErrBadHandshake, w.Version, Version)
	case w.Cluster == "":
		return fmt.Errorf("%w: empty cluster name", ErrBadHandshake)
	case len(w.Cluster) > maxNameLen:
		return fmt.Errorf("%w: cluster name of %d bytes, limit %d", ErrBadHandshake, len(w.Cluster), maxNameLen)
	case len(w.Advertise) > maxNameLen:
		return fmt.Errorf("%w: advertised address of %d bytes, limit %d", ErrBadHandshake, len(w.Advertise), maxNameLen)
	case w.Node == 0:
		return fmt.Errorf("%w: node 0", ErrBadHandshake)
	case w.Inc == 0:
		return fmt.Errorf("%w: incarnation 0", ErrBadHandshake)
	}
	return nil
}

// EncodeHandshake validates h and encodes it for the wire (without the
// length prefix).
func EncodeHandshake(h Handshake) ([]byte, error) {
	w := wireHandshake{h.Magic, uint64(h.Version), h.Cluster, h.Node, h.Inc, h.Advertise}
	if err := w.validate(); err != nil {
		return nil, err
	}
	b, err := msgpack.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding: %w", ErrBadHandshake, err)
	}
	return b, nil
}

// DecodeHandshake decodes and validates a handshake frame body. Every
// error wraps ErrBadHandshake: anything but a msgpack map, undecodable
// bytes, trailing bytes after the map, or a field that fails Validate.
func DecodeHandshake(b []byte) (Handshake, error) {
	if len(b) > MaxHandshakeSize {
		return Handshake{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBadHandshake, len(b), MaxHandshakeSize)
	}
	// A *bytes.Reader is an io.ByteScanner, so the decoder reads it
	// directly, without a bufio.Reader in between, and r.Len() is what the
	// decoder left.
	if len(b) == 0 || !(msgpcode.IsFixedMap(b[0]) || b[0] == msgpcode.Map16 || b[0] == msgpcode.Map32) {
		// msgpack would also fill the struct from an array; accept one
		// encoding only.
		return Handshake{}, fmt.Errorf("%w: not a msgpack map", ErrBadHandshake)
	}
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	var w wireHandshake
	if err := dec.Decode(&w); err != nil {
		return Handshake{}, fmt.Errorf("%w: %w", ErrBadHandshake, err)
	}
	if r.Len() != 0 {
		return Handshake{}, fmt.Errorf("%w: %d trailing bytes", ErrBadHandshake, r.Len())
	}
	if err := w.validate(); err != nil {
		return Handshake{}, err
	}
	return Handshake{w.Magic, uint8(w.Version), w.Cluster, w.Node, w.Inc, w.Advertise}, nil
}
