package rsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
)

// A snapshot written now names its format in its header.
func TestSnapshotFormatWritten(t *testing.T) {
	var buf bytes.Buffer
	once := map[string]onceRecord{"a": {Seq: 1}}
	if err := writeSnapshot(&buf, &header{Object: "o", Once: once}, &bytesSM{b: []byte("s")}); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := readItem(bufio.NewReader(&buf), &raw, "header"); err != nil {
		t.Fatal(err)
	}
	if f, ok := raw["f"]; !ok || reflect.ValueOf(f).Convert(reflect.TypeFor[uint64]()).Uint() != snapshotFormat {
		t.Fatalf("header fields %v: want f = %d", raw, snapshotFormat)
	}
	// What a restore hands on carries no format (a snapshot taken from
	// it writes its own), and the state follows the records.
	buf.Reset()
	if err := writeSnapshot(&buf, &header{Object: "o", Once: once}, &bytesSM{b: []byte("s")}); err != nil {
		t.Fatal(err)
	}
	got := &bytesSM{}
	h, err := restoreSM(got, "o", &buf)
	if err != nil || h.Format != 0 || !reflect.DeepEqual(h.Once, once) || string(got.b) != "s" {
		t.Fatalf("restored header %+v and state %q, %v", h, got.b, err)
	}
}

// restoreFails is a state machine whose Restore must not be called.
type restoreFails struct{ t *testing.T }

func (restoreFails) Apply([]byte) ([]byte, error) { return nil, nil }
func (restoreFails) Snapshot(io.Writer) error     { return nil }
func (s restoreFails) Restore(io.Reader) error {
	s.t.Error("Restore called on a snapshot this build cannot read")
	return nil
}

// A snapshot in a newer format is refused with ErrSnapshotFormat before
// anything after its header is read or the state machine is touched;
// one in an older layout is not.
func TestSnapshotFormatNewerRefused(t *testing.T) {
	_, err := restoreSM(restoreFails{t}, "o", bytes.NewReader(newerFormatSnapshot("o")))
	if !errors.Is(err, ErrSnapshotFormat) {
		t.Fatalf("a snapshot in format %d: %v, want ErrSnapshotFormat", snapshotFormat+1, err)
	}
	if errors.Is(err, errMalformed) {
		t.Fatalf("a newer format reported as malformed: %v", err)
	}
	// Unversioned, with its records after the header (written between
	// the records' move and the format field): loads.
	rec := onceRecord{Seq: 4, Result: []byte("four")}
	in := append(lengthPrefixed(t, &header{Object: "o", Sources: 1}), lengthPrefixed(t, &sourceRecord{Source: "a", Record: rec})...)
	got := &bytesSM{}
	h, err := restoreSM(got, "o", bytes.NewReader(append(in, "state"...)))
	if err != nil {
		t.Fatalf("an unversioned snapshot with records after its header: %v", err)
	}
	if !reflect.DeepEqual(h.Once, map[string]onceRecord{"a": rec}) || string(got.b) != "state" {
		t.Fatalf("loaded records %v and state %q", h.Once, got.b)
	}
	// The current format with a corrupt record is malformed, not a
	// format error.
	in = append(lengthPrefixed(t, &header{Format: snapshotFormat, Object: "o", Sources: 1}), 0x01, 0xc1)
	_, err = readHeader(bufio.NewReader(bytes.NewReader(in)))
	if !errors.Is(err, errMalformed) || errors.Is(err, ErrSnapshotFormat) {
		t.Fatalf("a corrupt record in the current format: %v, want errMalformed", err)
	}
}

// checkHead, fed a snapshot a few bytes at a time, says nothing until the
// header is whole, then refuses what restoreSM would refuse: a newer
// format (ErrSnapshotFormat), a bad length, an undecodable header or
// another object's (errMalformed); a good header passes.
func TestCheckHead(t *testing.T) {
	var good bytes.Buffer
	if err := writeSnapshot(&good, &header{Object: "o"}, &bytesSM{b: []byte("state")}); err != nil {
		t.Fatal(err)
	}
	var other bytes.Buffer
	if err := writeSnapshot(&other, &header{Object: "p"}, &bytesSM{b: []byte("state")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error // nil: passes
	}{
		{"good", good.Bytes(), nil},
		{"newer", newerFormatSnapshot("o"), ErrSnapshotFormat},
		{"length overflows", bytes.Repeat([]byte{0xff}, 12), errMalformed},
		{"length over maxHeader", binary.AppendUvarint(nil, maxHeader+1), errMalformed},
		{"undecodable", append(binary.AppendUvarint(nil, 3), 0x81, 0xa1, 0xc1), errMalformed},
		{"another object's", other.Bytes(), errMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f fetch
			var err error
			for i := 0; i < len(tc.in) && err == nil && !f.headDone; i += 3 {
				err = f.checkHead(tc.in[i:min(i+3, len(tc.in))], "o")
			}
			switch {
			case tc.want == nil && (err != nil || !f.headDone):
				t.Fatalf("done %v, %v; want it checked and passed", f.headDone, err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("%v, want %v", err, tc.want)
			case tc.want == errMalformed && errors.Is(err, ErrSnapshotFormat):
				t.Fatalf("%v: a malformed header reported as a newer format", err)
			}
			if err := f.checkHead([]byte("more"), "o"); err != nil {
				t.Fatalf("checked again after it was done: %v", err)
			}
		})
	}
}
