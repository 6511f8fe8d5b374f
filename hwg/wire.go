package hwg

import (
	"encoding/binary"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/lwgkit/lwgkit/hwg/transport"
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

// checkMsgpack walks one msgpack value and its contents without allocating,
// and rejects truncated input, trailing bytes, unknown codes, and declared
// lengths that exceed what is left or the limits above, and nesting deeper
// than maxDepth (the decoder recurses). It is itself iterative.
func checkMsgpack(b []byte) error {
	// Values still to read at each open nesting level; on the stack.
	levels := append(make([]int, 0, maxDepth+1), 1)
	total := 0 // container elements seen
	i := 0
	need := func(n int) error {
		if n < 0 || len(b)-i < n {
			return fmt.Errorf("truncated at byte %d", i)
		}
		return nil
	}
	length := func(size int) (int, error) {
		if err := need(size); err != nil {
			return 0, err
		}
		var n uint64
		switch size {
		case 1:
			n = uint64(b[i])
		case 2:
			n = uint64(binary.BigEndian.Uint16(b[i:]))
		case 4:
			n = uint64(binary.BigEndian.Uint32(b[i:]))
		}
		i += size
		if n > uint64(len(b)) {
			return 0, fmt.Errorf("length %d exceeds the frame", n)
		}
		return int(n), nil
	}
	container := func(n, per int) error {
		if n > maxContainerLen || n*per > len(b)-i {
			return fmt.Errorf("container of %d at byte %d is too long", n, i)
		}
		if total += n * per; total > maxFrameElems {
			return fmt.Errorf("more than %d elements", maxFrameElems)
		}
		if n > 0 {
			if len(levels) >= maxDepth {
				return fmt.Errorf("nested deeper than %d", maxDepth)
			}
			levels = append(levels, n*per)
		}
		return nil
	}
	for len(levels) > 0 {
		if levels[len(levels)-1] == 0 {
			levels = levels[:len(levels)-1]
			continue
		}
		levels[len(levels)-1]--
		if err := need(1); err != nil {
			return err
		}
		c := b[i]
		i++
		var err error
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			err = container(int(c&0x0f), 2)
		case c >= 0x90 && c <= 0x9f:
			err = container(int(c&0x0f), 1)
		case c >= 0xa0 && c <= 0xbf:
			err = skip(&i, b, int(c&0x1f))
		case c == 0xc4 || c == 0xd9: // bin8, str8
			err = skipLen(&i, b, 1, length)
		case c == 0xc5 || c == 0xda: // bin16, str16
			err = skipLen(&i, b, 2, length)
		case c == 0xc6 || c == 0xdb: // bin32, str32
			err = skipLen(&i, b, 4, length)
		case c == 0xc7, c == 0xc8, c == 0xc9: // ext8/16/32: length, type, data
			var n int
			if n, err = length(1 << (c - 0xc7)); err == nil {
				err = skip(&i, b, n+1)
			}
		case c == 0xca, c == 0xce, c == 0xd2:
			err = skip(&i, b, 4)
		case c == 0xcb, c == 0xcf, c == 0xd3:
			err = skip(&i, b, 8)
		case c == 0xcc, c == 0xd0:
			err = skip(&i, b, 1)
		case c == 0xcd, c == 0xd1:
			err = skip(&i, b, 2)
		case c >= 0xd4 && c <= 0xd8: // fixext 1, 2, 4, 8, 16 plus a type byte
			err = skip(&i, b, 1+(1<<(c-0xd4)))
		case c == 0xdc || c == 0xdd: // array16, array32
			var n int
			if n, err = length(2 << (c - 0xdc)); err == nil {
				err = container(n, 1)
			}
		case c == 0xde || c == 0xdf: // map16, map32
			var n int
			if n, err = length(2 << (c - 0xde)); err == nil {
				err = container(n, 2)
			}
		default: // 0xc1 is never used
			err = fmt.Errorf("invalid code %#x at byte %d", c, i-1)
		}
		if err != nil {
			return err
		}
	}
	if i != len(b) {
		return fmt.Errorf("%d trailing bytes", len(b)-i)
	}
	return nil
}

func skip(i *int, b []byte, n int) error {
	if n < 0 || len(b)-*i < n {
		return fmt.Errorf("truncated at byte %d", *i)
	}
	*i += n
	return nil
}

func skipLen(i *int, b []byte, size int, length func(int) (int, error)) error {
	n, err := length(size)
	if err != nil {
		return err
	}
	return skip(i, b, n)
}
