// Package wirecheck guards msgpack decoding of bytes from the network.
//
// vmihailenco/msgpack/v5 allocates an array's or map's declared length
// before reading its elements (its own allocation limit does not apply
// in v5.4.1), and decodes nested values recursively. So a 12-byte payload
// declaring an array of 2^31 structs asks for hundreds of gigabytes, and
// 100,000 nested arrays take the goroutine's stack. Check walks the bytes
// first and refuses any length that exceeds what is left of them or a
// limit; Unmarshal is msgpack.Unmarshal behind that check. Every decoder
// of input from another node goes through one of them, except the
// transport's handshake, whose frame is capped at 4 KiB and whose fields
// are all scalars.
package wirecheck

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// MaxDepth is the deepest nesting Check accepts, whatever Limits says.
const MaxDepth = 32

// Limits bound what a checked value may declare, beyond what its bytes
// allow: a container can never declare more elements than it has bytes
// left, so a zero field adds no limit of its own.
type Limits struct {
	// ContainerLen bounds the elements of one array or map.
	ContainerLen int
	// Elems bounds the elements of all containers together.
	Elems int
	// Depth bounds the nesting; 0 or above MaxDepth means MaxDepth.
	Depth int
}

// Unmarshal decodes b into v as msgpack.Unmarshal does, after Check with
// no limits but b's own length and MaxDepth. That bounds what msgpack
// allocates by a multiple of len(b) (the size of the element type: 88
// bytes an item of an lwg control message), and no more: a table snapshot
// of 100,000 LWGs in the middle of a flush legitimately holds more than
// 2^22 elements in 18 MB. The error of a failed check says why, without
// wrapping a sentinel: callers wrap it in their own (ErrMalformed).
func Unmarshal(b []byte, v any) error {
	if err := Check(b, Limits{}); err != nil {
		return err
	}
	return msgpack.Unmarshal(b, v)
}

// Check walks the one msgpack value b holds, and its contents, without
// allocating. It rejects truncated input, trailing bytes, unknown codes,
// ext values, declared lengths that exceed what is left of b or lim, and
// nesting deeper than lim.Depth (msgpack's decoder recurses). It is itself
// iterative.
func Check(b []byte, lim Limits) error {
	if lim.ContainerLen <= 0 {
		lim.ContainerLen = math.MaxInt
	}
	if lim.Elems <= 0 {
		lim.Elems = math.MaxInt
	}
	depth := min(cmp.Or(lim.Depth, MaxDepth), MaxDepth)
	// Values still to read at each open nesting level; on the stack.
	var stack [MaxDepth + 1]int
	levels := append(stack[:0], 1)
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
		if n > lim.ContainerLen || n*per > len(b)-i {
			return fmt.Errorf("container of %d at byte %d is too long", n, i)
		}
		if total += n * per; total > lim.Elems {
			return fmt.Errorf("more than %d elements", lim.Elems)
		}
		if n > 0 {
			if len(levels) >= depth {
				return fmt.Errorf("nested deeper than %d", depth)
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
		case c >= 0xc7 && c <= 0xc9, c >= 0xd4 && c <= 0xd8: // ext8/16/32, fixext
			// lwgkit writes no ext values, and msgpack decoding into a Go
			// map looks through an ext's header to the body, whose
			// lengths this walk never saw: an 11-byte directory snapshot
			// wrapping a map32 in an ext made it allocate 53 MiB.
			err = fmt.Errorf("ext value at byte %d", i-1)
		case c == 0xca, c == 0xce, c == 0xd2:
			err = skip(&i, b, 4)
		case c == 0xcb, c == 0xcf, c == 0xd3:
			err = skip(&i, b, 8)
		case c == 0xcc, c == 0xd0:
			err = skip(&i, b, 1)
		case c == 0xcd, c == 0xd1:
			err = skip(&i, b, 2)
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
