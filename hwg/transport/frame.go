package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Framing. Every frame on a connection, the handshake included, is a
// 4-byte big-endian length followed by that many bytes. A length of zero is
// a valid, empty frame: the transport does not interpret frames, so it has
// no reason to forbid one, and an empty frame costs no more than any other
// header.
const (
	// HeaderSize is the size of a frame's length prefix.
	HeaderSize = 4
	// DefaultMaxFrame is the default limit on a frame's length, header
	// excluded.
	DefaultMaxFrame = 16 << 20
)

// readChunk bounds the memory ReadFrame commits ahead of the bytes that
// have actually arrived: a frame that announces a large length grows its
// buffer as its body comes in instead of allocating the whole length up
// front, so a peer cannot make us allocate MaxFrame bytes with 4 bytes.
const readChunk = 64 << 10

// ReadFrame reads one frame from r and returns its body, which the caller
// owns. A length above maxSize is rejected before anything is allocated;
// maxSize <= 0 means DefaultMaxFrame.
//
// It returns io.EOF if r ends cleanly before the first byte of a frame, an
// error wrapping ErrBadFrame (and io.ErrUnexpectedEOF) if r ends inside a
// frame, an error wrapping ErrFrameTooLarge if the announced length exceeds
// maxSize, and any other error from r as is, wrapped only with context.
//
// ReadFrame reads exactly the frame's bytes from r; wrap a net.Conn in a
// bufio.Reader to avoid one system call per read. A frame of up to
// poolMax bytes may be read into a buffer from GetBuffer, so the caller
// may give it back with PutBuffer once done with it.
func ReadFrame(r io.Reader, maxSize int) ([]byte, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxFrame
	}
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, truncated("header", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(maxSize) {
		return nil, fmt.Errorf("%w: length %d, limit %d", ErrFrameTooLarge, n, maxSize)
	}
	size := int(n)
	buf := GetBuffer(min(size, readChunk))[:min(size, readChunk)]
	off := 0
	for {
		k, err := io.ReadFull(r, buf[off:])
		off += k
		if err != nil {
			PutBuffer(buf)
			if errors.Is(err, io.EOF) {
				// io.ReadFull returns EOF only if it read nothing; inside
				// a frame that is still a truncation.
				err = io.ErrUnexpectedEOF
			}
			return nil, truncated(fmt.Sprintf("body (%d of %d bytes)", off, size), err)
		}
		if off == size {
			return buf, nil
		}
		// A first readChunk arrived: a pooled frame takes the whole length
		// (no allocation, once the pool is warm); a larger one doubles,
		// at most up to the announced length.
		if size <= poolMax {
			whole := GetBuffer(size)[:size]
			copy(whole, buf[:off])
			PutBuffer(buf)
			buf = whole
		} else {
			buf = append(buf, make([]byte, min(size, 2*len(buf))-len(buf))...)
		}
	}
}

// truncated classifies a read error met at part of a frame: the end of the
// input inside a frame is a malformed frame, anything else is returned
// with context.
func truncated(part string, err error) error {
	switch {
	case part == "header" && errors.Is(err, io.EOF):
		return io.EOF // clean end between frames
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: truncated %s: %w", ErrBadFrame, part, err)
	default:
		return fmt.Errorf("transport: reading frame %s: %w", part, err)
	}
}

// WriteFrame writes frame to w with its length prefix. It does not enforce
// a size limit beyond what the 4-byte prefix can express (ErrFrameTooLarge
// above 4 GiB - 1); callers check their own MaxFrame. It makes two writes
// to w, so w should be buffered, and does not retain frame.
func WriteFrame(w io.Writer, frame []byte) error {
	if uint64(len(frame)) > math.MaxUint32 {
		return fmt.Errorf("%w: length %d does not fit the header", ErrFrameTooLarge, len(frame))
	}
	var hdr [HeaderSize]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(frame)))
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("transport: writing frame header: %w", err)
	}
	if _, err := w.Write(frame); err != nil {
		return fmt.Errorf("transport: writing frame body: %w", err)
	}
	return nil
}

// writeParts writes one frame made of head and the body parts, in that
// order, with its length prefix, and returns its length. Like WriteFrame
// it does not retain the parts.
func writeParts(w io.Writer, head []byte, body [][]byte) (int, error) {
	n := partsLen(head, body)
	if uint64(n) > math.MaxUint32 {
		return n, fmt.Errorf("%w: length %d does not fit the header", ErrFrameTooLarge, n)
	}
	var hdr [HeaderSize]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(n))
	if _, err := w.Write(hdr[:]); err != nil {
		return n, fmt.Errorf("transport: writing frame header: %w", err)
	}
	if _, err := w.Write(head); err != nil {
		return n, fmt.Errorf("transport: writing frame body: %w", err)
	}
	for _, p := range body {
		if _, err := w.Write(p); err != nil {
			return n, fmt.Errorf("transport: writing frame body: %w", err)
		}
	}
	return n, nil
}

// partsLen is the length of the frame made of head and body.
func partsLen(head []byte, body [][]byte) int {
	n := len(head)
	for _, p := range body {
		n += len(p)
	}
	return n
}

// appendFrame appends frame with its length prefix to dst.
func appendFrame(dst, frame []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(frame)))
	return append(dst, frame...)
}
