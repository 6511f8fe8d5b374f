package transport

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	frames := [][]byte{{}, []byte("a"), []byte("hello"), bytes.Repeat([]byte{7}, 3*readChunk+5)}
	var buf bytes.Buffer
	for _, f := range frames {
		if err := WriteFrame(&buf, f); err != nil {
			t.Fatalf("WriteFrame: %v", err)
		}
	}
	r := bufio.NewReader(&buf)
	for i, want := range frames {
		got, err := ReadFrame(r, 4*readChunk)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, want) || got == nil {
			t.Fatalf("frame %d: got %d bytes, want %d", i, len(got), len(want))
		}
	}
	if _, err := ReadFrame(r, 0); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		max   int
		want  error
		alsoW error
	}{
		{"empty input", "", 10, io.EOF, nil},
		{"short header", "\x00\x00", 10, ErrBadFrame, io.ErrUnexpectedEOF},
		{"short body", "\x00\x00\x00\x05abc", 10, ErrBadFrame, io.ErrUnexpectedEOF},
		{"header only", "\x00\x00\x00\x05", 10, ErrBadFrame, io.ErrUnexpectedEOF},
		{"too large", "\x00\x00\x00\x0bhello world", 10, ErrFrameTooLarge, nil},
		{"huge", "\xff\xff\xff\xff", 10, ErrFrameTooLarge, nil},
		{"huge over the default", "\x7f\xff\xff\xff", 0, ErrFrameTooLarge, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ReadFrame(strings.NewReader(tt.in), tt.max)
			if !errors.Is(err, tt.want) || (tt.alsoW != nil && !errors.Is(err, tt.alsoW)) {
				t.Fatalf("err = %v, want %v (and %v)", err, tt.want, tt.alsoW)
			}
			if f != nil {
				t.Fatalf("frame %q returned with an error", f)
			}
		})
	}
}

// A reader error other than the end of input comes back wrapped.
func TestReadFrameReaderError(t *testing.T) {
	boom := errors.New("boom")
	_, err := ReadFrame(io.MultiReader(strings.NewReader("\x00\x00\x00\x09abc"), errReader{boom}), 100)
	if !errors.Is(err, boom) || errors.Is(err, ErrBadFrame) {
		t.Fatalf("err = %v, want one wrapping boom only", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// A frame announcing a large length that never arrives costs a chunk of
// memory, not the announced length.
func TestReadFrameAllocatesAsDataArrives(t *testing.T) {
	in := "\x00\xff\xff\xff" + "abc" // announces 16 MiB, sends 3 bytes
	const runs = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if _, err := ReadFrame(strings.NewReader(in), DefaultMaxFrame); !errors.Is(err, ErrBadFrame) {
			t.Fatalf("err = %v, want ErrBadFrame", err)
		}
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 2*readChunk {
		t.Fatalf("allocated %d bytes per truncated frame, want at most %d", perRun, 2*readChunk)
	}
}
