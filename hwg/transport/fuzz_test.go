package transport

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// fuzzMaxFrame is the small frame limit FuzzReadFrame reads with.
const fuzzMaxFrame = 64

// FuzzReadFrame feeds arbitrary bytes to ReadFrame: it never panics, never
// returns a frame longer than the limit, and fails only with the errors
// it documents. Frames it returns re-encode to the bytes they came from.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x05hello"))
	f.Add([]byte("\x00\x00\x00\x00"))
	f.Add([]byte("\x00\x00\x00\x02hi\x00\x00\x00\x03you"))
	f.Add([]byte("\x00\x00\x00\x05hel"))
	f.Add([]byte("\x00\x00"))
	f.Add([]byte("\xff\xff\xff\xff"))
	f.Add([]byte("\x00\x00\x00\x41" + string(make([]byte, 65))))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		consumed := 0
		for {
			frame, err := ReadFrame(r, fuzzMaxFrame)
			if err != nil {
				if frame != nil {
					t.Fatalf("frame of %d bytes returned with error %v", len(frame), err)
				}
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrBadFrame) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				if errors.Is(err, io.EOF) && consumed != len(in) {
					t.Fatalf("io.EOF with %d of %d bytes consumed", consumed, len(in))
				}
				return
			}
			if len(frame) > fuzzMaxFrame {
				t.Fatalf("frame of %d bytes, limit %d", len(frame), fuzzMaxFrame)
			}
			var buf bytes.Buffer
			if err := WriteFrame(&buf, frame); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), in[consumed:consumed+buf.Len()]) {
				t.Fatalf("frame does not re-encode to its input")
			}
			consumed += buf.Len()
		}
	})
}

// FuzzDecodeHandshake feeds arbitrary bytes to DecodeHandshake: it never
// panics, every error wraps ErrBadHandshake, and a successful decode is a
// valid handshake that re-encodes and decodes to the same value.
func FuzzDecodeHandshake(f *testing.F) {
	good, err := EncodeHandshake(Handshake{Magic: Magic, Version: Version, Cluster: "c", Node: 1, Inc: 1, Advertise: "127.0.0.1:7000"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := DecodeHandshake(in)
		if err != nil {
			if !errors.Is(err, ErrBadHandshake) {
				t.Fatalf("error %v does not wrap ErrBadHandshake", err)
			}
			if h != (Handshake{}) {
				t.Fatalf("non-zero handshake %+v returned with an error", h)
			}
			return
		}
		if err := h.Validate(); err != nil {
			t.Fatalf("decoded an invalid handshake %+v: %v", h, err)
		}
		b, err := EncodeHandshake(h)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", h, err)
		}
		h2, err := DecodeHandshake(b)
		if err != nil {
			t.Fatalf("decoding the re-encoding of %+v: %v", h, err)
		}
		if h2 != h {
			t.Fatalf("round trip changed %+v into %+v", h, h2)
		}
	})
}
