package hwg

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/internal/wirecheck"
)

// frame is what one transport frame carries between two nodes: the
// sender's membership epoch (so every frame doubles as a heartbeat) and
// any protocol messages for groups on the receiving node, batched.
type frame struct {
	Epoch uint64    `msgpack:"e"`
	Msgs  []Message `msgpack:"m,omitempty"`
}

// Limits on a decoded frame. The transport already caps a frame's bytes;
// these cap what msgpack would allocate for the lengths a frame declares.
const (
	maxContainerLen = 1 << 16 // elements in one array or map
	maxFrameElems   = 1 << 20 // elements in all of a frame's containers
	maxDepth        = 32      // nesting (msgpack decodes recursively); frames use < 10
)

var frameLimits = wirecheck.Limits{ContainerLen: maxContainerLen, Elems: maxFrameElems, Depth: maxDepth}

// encodeFrame serialises f with msgpack into a buffer sized up front:
// batched frames run to tens of kilobytes, and growing the buffer while
// encoding cost more than the encoding. See wire_fast.go. The buffer comes
// from the transport's pool, to which the transport returns it once
// written.
func encodeFrame(f *frame) ([]byte, error) {
	// Generous: a frame that outgrows its buffer is copied into a new one
	// (an Ack alone is about 140 bytes, an entry 50 beyond its payload).
	est := 16
	for i := range f.Msgs {
		est += 160
		for _, e := range f.Msgs[i].Entries {
			est += len(e.Payload) + 56
		}
	}
	b, err := appendFrame(transport.GetBuffer(est), f)
	if err != nil {
		return nil, fmt.Errorf("hwg: encoding frame: %w", err)
	}
	return b, nil
}

// decodeFrame parses a frame. Malformed input returns an error wrapping
// ErrMalformed and nothing else: the caller drops the frame.
func decodeFrame(b []byte) (frame, error) {
	return decodeFrameReuse(b, &decodeBuffers{})
}

// reuseMessages bounds the message array decodeBuffers keeps.
const reuseMessages = 256

// decodeBuffers is what a node's decoder keeps from one frame to the next.
// A node decodes tens of thousands of frames a second, most of them with
// a message or two and a payload or two: a payload block per frame was
// two thirds of everything it allocated, and the message array a tenth.
type decodeBuffers struct {
	slab []byte    // the rest of the block small payloads are copied into (see copyPayload)
	msgs []Message // the last frame's messages; their array is reused for the next frame's
}

// decodeFrameReuse is decodeFrame drawing on buf: small payloads go into
// its block, and the frame's messages into its array, which the previous
// frame decoded with buf must no longer use.
func decodeFrameReuse(b []byte, buf *decodeBuffers) (frame, error) {
	// msgpack allocates a container's declared length up front (its own
	// limit does not apply in v5.4.1), so a 30-byte frame could ask for
	// gigabytes: check every declared length against the bytes first.
	// The fast decoder relies on it too.
	if err := checkMsgpack(b); err != nil {
		return frame{}, fmt.Errorf("%w: frame: %v", ErrMalformed, err)
	}
	clear(buf.msgs) // the previous frame's messages: let go of their entries
	buf.msgs = buf.msgs[:0]
	d := fastDecoder{b: b, slab: buf.slab, msgs: buf.msgs}
	if f, err := d.frame(); err == nil {
		buf.slab = d.slab
		if c := cap(f.Msgs); c >= cap(buf.msgs) && c <= reuseMessages {
			buf.msgs = f.Msgs // cleared at the next frame
		}
		return f, nil
	}
	var f frame
	if err := msgpack.Unmarshal(b, &f); err != nil {
		return frame{}, fmt.Errorf("%w: frame: %v", ErrMalformed, err)
	}
	return f, nil
}

// checkMsgpack checks a frame against the frame limits (see wirecheck).
func checkMsgpack(b []byte) error { return wirecheck.Check(b, frameLimits) }
