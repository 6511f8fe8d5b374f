package hwg

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestFrameRoundTrip(t *testing.T) {
	f := frame{Epoch: 7, Msgs: []Message{
		{Type: MsgOrder, Group: "h/1", From: proc(1), To: proc(2), View: 3, Seq: 4, Commit: 5, Stable: 2,
			Entries: []Entry{{Seq: 5, ID: MsgID{Sender: proc(2), View: 3, Seq: 1}, Payload: []byte("x")}}},
		{Type: MsgCommit, Group: "h/1", From: proc(1), To: proc(2), View: 3,
			Decision: &Decision{Prev: 3, Last: 5, Next: View{ID: 4, Members: []Process{proc(1), proc(2)}}, Joined: []Process{proc(2)}}},
		{Type: MsgPrepareOK, Group: "h/1", From: proc(2), To: proc(1), View: 3, Ballot: Ballot{Round: 2, Node: 1},
			State: &FlushState{Held: 5, Leaving: true}},
	}}
	b, err := encodeFrame(&f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, f) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, f)
	}
}

func TestDecodeFrameRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{{0xc1}, {0x92, 0x01}, []byte("not msgpack at all"), {0x81, 0xa1, 'm', 0x01}} {
		if _, err := decodeFrame(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%x: err = %v, want ErrMalformed", b, err)
		}
	}
}

// FuzzDecodeFrame: any bytes decode or fail with ErrMalformed, never panic,
// and whatever decodes is rejected or accepted by Step without panicking.
func FuzzDecodeFrame(f *testing.F) {
	ok, _ := encodeFrame(&frame{Epoch: 1, Msgs: []Message{{Type: MsgJoin, Group: "h/1", From: proc(4), To: Process{Node: 1}}}})
	f.Add(ok)
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeFrame(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Whatever the fast decoder accepts, msgpack decodes alike.
		if d := (fastDecoder{b: b}); checkMsgpack(b) == nil {
			if fast, err := d.frame(); err == nil {
				var slow frame
				if err := msgpack.Unmarshal(b, &slow); err != nil {
					t.Fatalf("fast decoder accepted what msgpack rejects (%v): %+v", err, fast)
				}
				if !reflect.DeepEqual(fast, slow) {
					t.Fatalf("decodings differ\nfast %+v\nslow %+v", fast, slow)
				}
			}
		}
		g, _ := New(Config{Group: "h/1", Self: proc(1)})
		_ = g.Bootstrap([]Process{proc(1), proc(2), proc(3)})
		g.Ready()
		for _, m := range fr.Msgs {
			_ = g.Step(m) // must not panic, whatever it says
		}
	})
}

// A frame may not declare more than it carries: msgpack would allocate the
// declared length before reading (found by FuzzDecodeFrame, see
// testdata/fuzz/FuzzDecodeFrame/779c0f1f3570de08).
func TestDecodeFrameRejectsHostileLengths(t *testing.T) {
	for name, b := range map[string][]byte{
		"array32 of 3 billion":  {0x81, 0xa1, 'm', 0xdd, 0xcf, 0x5d, 0xdc, 0xca},
		"map32 of 4 billion":    {0xdf, 0xff, 0xff, 0xff, 0xff},
		"str32 of 2 GiB":        {0xdb, 0x7f, 0xff, 0xff, 0xff, 'x'},
		"array beyond the cap":  append([]byte{0xdd, 0x00, 0x01, 0x00, 0x01}, make([]byte, 1<<16+1)...),
		"trailing bytes":        {0x80, 0x00},
		"reserved code 0xc1":    {0xc1},
		"truncated fixext":      {0xd8, 0x01},
		"nested, then too long": {0x91, 0x91, 0x91, 0xdc, 0xff, 0xff},
	} {
		if _, err := decodeFrame(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	// msgpack decodes recursively: 100k nested arrays would take the stack.
	if err := checkMsgpack(append(bytes.Repeat([]byte{0x91}, 100000), 0xc0)); err == nil {
		t.Error("100,000 nested arrays accepted")
	}
	if err := checkMsgpack(append(bytes.Repeat([]byte{0x91}, maxDepth-1), 0xc0)); err != nil {
		t.Errorf("nesting within the limit rejected: %v", err)
	}
}

// Entries are hand-encoded as a six-field array; anything else is
// malformed, not silently half-decoded.
func TestEntryWireShape(t *testing.T) {
	good, err := encodeFrame(&frame{Msgs: []Message{{Type: MsgForward, Group: "h/1", From: proc(1), To: proc(2),
		Entries: []Entry{{ID: MsgID{Sender: proc(1), View: 1, Seq: 1}, Payload: []byte("p")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	// The entry's array header 0x96 (fixarray of 6) is unique in this frame.
	i := bytes.IndexByte(good, 0x96)
	if i < 0 {
		t.Fatal("no six-field entry in the encoding")
	}
	bad := bytes.Clone(good)
	bad[i] = 0x95 // five fields
	if _, err := decodeFrame(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a five-field entry decoded: %v", err)
	}
}
