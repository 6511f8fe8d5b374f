package lwg

import (
	"errors"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"

	"github.com/lwgkit/lwgkit/hwg"
)

// plainControl has control's fields and tags and no codec methods, so
// msgpack encodes and decodes it by reflection.
type plainControl struct {
	Kind  kind          `msgpack:"k"`
	Items []item        `msgpack:"i,omitempty"`
	View  hwg.ViewID    `msgpack:"v,omitempty"`
	Snap  []byte        `msgpack:"s,omitempty"`
	Part  uint32        `msgpack:"p,omitempty"`
	Parts uint32        `msgpack:"n,omitempty"`
	Owed  []hwg.Process `msgpack:"o,omitempty"`
	At    uint64        `msgpack:"t,omitempty"`
	Since []hwg.ViewID  `msgpack:"a,omitempty"`
}

func genControl(t *rapid.T) control {
	str := rapid.SampledFrom([]string{"", "l/a", "h/x#1", "a-longer-id-of-more-than-thirty-one-bytes"})
	u64 := rapid.OneOf(rapid.Just(uint64(0)), rapid.Uint64Range(1, 300), rapid.Uint64())
	var c control
	c.Kind = kind(rapid.IntRange(0, int(kindLimit)).Draw(t, "kind"))
	for range rapid.IntRange(0, 20).Draw(t, "items") {
		it := item{LWG: ID(str.Draw(t, "l")), Ver: u64.Draw(t, "r"), View: u64.Draw(t, "v"),
			Group: hwg.GroupID(str.Draw(t, "g")), From: hwg.GroupID(str.Draw(t, "f"))}
		for range rapid.IntRange(0, 3).Draw(t, "members") {
			it.Members = append(it.Members, hwg.Process{Node: hwg.NodeID(u64.Draw(t, "n")), Inc: u64.Draw(t, "inc")})
		}
		c.Items = append(c.Items, it)
	}
	c.View = hwg.ViewID(u64.Draw(t, "view"))
	if rapid.Bool().Draw(t, "snap") {
		c.Snap = rapid.SliceOfN(rapid.Byte(), 1, 300).Draw(t, "s")
	}
	c.Part = uint32(u64.Draw(t, "part"))
	c.Parts = uint32(u64.Draw(t, "parts"))
	c.At = u64.Draw(t, "at")
	since := rapid.Bool().Draw(t, "since")
	for range rapid.IntRange(0, 3).Draw(t, "owed") {
		c.Owed = append(c.Owed, hwg.Process{Node: hwg.NodeID(u64.Draw(t, "on")), Inc: u64.Draw(t, "oi")})
		if since {
			c.Since = append(c.Since, hwg.ViewID(u64.Draw(t, "a")))
		}
	}
	return c
}

// TestControlCodecMatchesReflection: the hand-written codec writes the
// bytes msgpack's reflection writes for the same struct tags, and each
// reads the other's bytes back to the same control.
func TestControlCodecMatchesReflection(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genControl(t)
		fast, err := msgpack.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		plain := plainControl(c)
		slow, err := msgpack.Marshal(&plain)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("encodings differ\nfast %x\nslow %x", fast, slow)
		}
		var back control
		if err := msgpack.Unmarshal(slow, &back); err != nil {
			t.Fatalf("decoding reflection's bytes: %v", err)
		}
		var plainBack plainControl
		if err := msgpack.Unmarshal(fast, &plainBack); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, control(plainBack)) {
			t.Fatalf("decodings differ\nfast %+v\nslow %+v", back, plainBack)
		}
	})
}

// The decoder takes fields in any order, skips unknown ones and reads nil
// as zero, as reflection does.
func TestControlDecodeTolerates(t *testing.T) {
	in := map[string]any{"zz": []any{1, "x"}, "v": nil, "i": []map[string]any{{"q": 1, "l": "l/a", "m": nil}}, "k": uint8(kJoin)}
	b, err := msgpack.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var c control
	if err := msgpack.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Kind != kJoin || c.View != 0 || len(c.Items) != 1 || c.Items[0].LWG != "l/a" || c.Items[0].Members != nil {
		t.Fatalf("decoded %+v", c)
	}
}

// BenchmarkControlCodec: encoding and decoding a FLUSH_OK of 1,000 items,
// by the codec and by reflection.
func BenchmarkControlCodec(b *testing.B) {
	c := &control{Kind: kFlushOK}
	for i := range 1000 {
		c.Items = append(c.Items, item{LWG: ID("l/" + string(rune('a'+i%26))), View: uint64(i)<<32 | 1})
	}
	plain := plainControl(*c)
	slow, _ := msgpack.Marshal(&plain)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeControl(encodeControl(c)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reflection", func(b *testing.B) {
		for b.Loop() {
			var p plainControl
			if err := msgpack.Unmarshal(slow, &p); err != nil {
				b.Fatal(err)
			}
			if _, err := msgpack.Marshal(&p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A field given twice is refused rather than merged.
func TestControlDecodeRefusesDuplicateFields(t *testing.T) {
	for name, b := range map[string][]byte{
		"control": {0x83, 0xa1, 'k', 0x01, 0xa1, 'i', 0x90, 0xa1, 'i', 0x90},
		"item":    {0x82, 0xa1, 'k', 0x01, 0xa1, 'i', 0x91, 0x82, 0xa1, 'l', 0xa1, 'a', 0xa1, 'l', 0xa1, 'b'},
		"member": {0x82, 0xa1, 'k', 0x01, 0xa1, 'i', 0x91, 0x82, 0xa1, 'l', 0xa1, 'a', 0xa1, 'm', 0x91,
			0x82, 0xa1, 'n', 0x01, 0xa1, 'n', 0x02},
	} {
		if _, err := decodeControl(append([]byte{tagControl}, b...)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}
