package hwg

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// randomFrame draws a frame that exercises every field and every width of
// integer, string and payload the codec distinguishes.
func randomFrame(r *rand.Rand) frame {
	num := func() uint64 {
		switch r.IntN(6) {
		case 0:
			return 0
		case 1:
			return uint64(r.IntN(128))
		case 2:
			return uint64(128 + r.IntN(128))
		case 3:
			return uint64(256 + r.IntN(65536-256))
		case 4:
			return uint64(65536 + r.Uint32()/2)
		}
		return r.Uint64()
	}
	payload := func() []byte {
		switch r.IntN(60) {
		case 0, 1:
			return nil
		case 2, 3:
			return []byte{}
		case 4, 5:
			return make([]byte, 255)
		case 6, 7:
			return make([]byte, 256)
		case 8:
			return make([]byte, 70000) // bin32
		}
		p := make([]byte, r.IntN(200))
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		return p
	}
	entries := func(max int) []Entry {
		var es []Entry
		for range r.IntN(max) {
			es = append(es, Entry{Seq: num(), ID: MsgID{Sender: Process{NodeID(num()), num()}, View: ViewID(num()), Seq: num()}, Payload: payload()})
		}
		return es
	}
	proc := func() Process { return Process{NodeID(num()), num()} }
	f := frame{Epoch: num()}
	for range r.IntN(8) {
		m := Message{Type: MsgType(r.IntN(256)), Group: GroupID(strings.Repeat("g", []int{0, 3, 31, 32, 255, 256, 65535, 65536}[r.IntN(8)])),
			From: proc(), To: proc(), View: ViewID(num()), Entries: entries([]int{6, 20}[r.IntN(2)]), Seq: num(), Commit: num(), Stable: num(),
			Ballot: Ballot{Round: num(), Node: NodeID(num())}, Subject: proc()}
		if r.IntN(4) == 0 {
			m.State = &FlushState{Held: num(), Log: entries(4), Pending: entries(4), Leaving: r.IntN(2) == 0}
		}
		if r.IntN(4) == 0 {
			m.Decision = &Decision{Prev: ViewID(num()), Last: num(), Final: entries(4), Next: View{ID: ViewID(num()), Members: []Process{proc()}}}
		}
		f.Msgs = append(f.Msgs, m)
	}
	if r.IntN(3) == 0 && len(f.Msgs) > 0 {
		// 16 and more messages take an array16 header.
		for len(f.Msgs) < 17 {
			f.Msgs = append(f.Msgs, f.Msgs[0])
		}
	}
	return f
}

// The hand-written encoder writes exactly what msgpack's reflection writes,
// so the wire format is unchanged; the fast decoder reads all of it itself
// and agrees with msgpack's decoding.
func TestFastCodecMatchesMsgpack(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 250 {
		f := randomFrame(r)
		want, err := msgpack.Marshal(&f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeFrame(&f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: encodings differ\n got %x\nwant %x", i, got, want)
		}
		if err := checkMsgpack(got); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		d := fastDecoder{b: got}
		fast, err := d.frame()
		if err != nil {
			t.Fatalf("frame %d: the fast decoder gave up on its own encoding: %v", i, err)
		}
		var slow frame
		if err := msgpack.Unmarshal(got, &slow); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("frame %d: decodings differ\nfast %+v\nslow %+v", i, fast, slow)
		}
	}
}

// Payloads are copied out of the frame: an application that keeps one
// must not keep the frame alive or see it change.
func TestDecodedPayloadsDoNotAliasTheFrame(t *testing.T) {
	b, err := encodeFrame(&frame{Msgs: []Message{{Type: MsgOrder, Group: "h/1", From: proc(1), To: proc(2),
		Entries: []Entry{{Seq: 1, ID: MsgID{Sender: proc(1), View: 1, Seq: 1}, Payload: []byte("payload")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := decodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	clear(b)
	if got := string(f.Msgs[0].Entries[0].Payload); got != "payload" {
		t.Fatalf("payload changed with the frame: %q", got)
	}
}

// A node decodes every frame with the same buffers (decodeFrameReuse):
// each frame must decode as it does alone, with nothing left over from
// the frames before it (a field a message omits is zero), and the
// payloads handed out before must not change.
func TestDecodeReuseMatchesFreshDecoding(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var buf decodeBuffers
	type kept struct {
		payload, want []byte
	}
	var held []kept
	for i := range 500 {
		f := randomFrame(r)
		b, err := encodeFrame(&f)
		if err != nil {
			t.Fatal(err)
		}
		want, err := decodeFrame(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeFrameReuse(b, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("frame %d: decodings differ\nreused %+v\nfresh  %+v", i, got, want)
		}
		for _, m := range got.Msgs {
			for _, e := range m.Entries {
				held = append(held, kept{e.Payload, bytes.Clone(e.Payload)})
			}
		}
	}
	for i, k := range held {
		if !bytes.Equal(k.payload, k.want) {
			t.Fatalf("payload %d changed after later frames: %x, was %x", i, k.payload, k.want)
		}
	}
}
