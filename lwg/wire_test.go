package lwg

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/internal/wirecheck"
)

func TestDataRoundTrip(t *testing.T) {
	b := encodeData("l/x", 7<<32|3, []byte("hello"))
	l, v, p, err := decodeData(b)
	if err != nil || string(l) != "l/x" || v != 7<<32|3 || string(p) != "hello" {
		t.Fatalf("got %q %d %q %v", l, v, p, err)
	}
}

func TestControlRoundTrip(t *testing.T) {
	in := &control{Kind: kAdopt, Items: []item{{LWG: "l/a", View: 9, Members: []hwg.Process{{Node: 1, Inc: 2}}}}}
	out, err := decodeControl(encodeControl(in))
	if err != nil {
		t.Fatal(err)
	}
	if out.Kind != kAdopt || out.Items[0].LWG != "l/a" || out.Items[0].View != 9 || out.Items[0].Members[0] != (hwg.Process{Node: 1, Inc: 2}) {
		t.Fatalf("round trip changed the message: %+v", out)
	}
}

// TestDecodeRejects: every malformed payload is an ErrMalformed, never a
// panic or a half-decoded message.
func TestDecodeRejects(t *testing.T) {
	ctl := func(c *control) []byte { return encodeControl(c) }
	cases := map[string][]byte{
		"empty":                 {},
		"data without id":       {tagData},
		"data id past the end":  {tagData, 9, 'l'},
		"data zero-length id":   {tagData, 0, 1},
		"data without view":     append([]byte{tagData, 1, 'l'}, 0x80),
		"control not msgpack":   {tagControl, 0xc1},
		"control unknown kind":  ctl(&control{Kind: kindLimit}),
		"control zero kind":     ctl(&control{}),
		"join without LWG id":   ctl(&control{Kind: kJoin, Items: []item{{}}}),
		"switch without item":   ctl(&control{Kind: kSwitch}),
		"switch without target": ctl(&control{Kind: kSwitch, Items: []item{{LWG: "l/a"}}}),
		"reg without carrier":   ctl(&control{Kind: kReg}),
		"reg of an empty name":  ctl(&control{Kind: kReg, Items: []item{{}}}),
		"LWG id too long":       ctl(&control{Kind: kLeave, Items: []item{{LWG: ID(bytes.Repeat([]byte("x"), maxIDLen+1))}}}),
		"part past the parts":   ctl(&control{Kind: kSnapshot, View: 3, Part: 2, Parts: 2}),
		"part of no parts":      ctl(&control{Kind: kSnapshot, View: 3, Part: 1}),
		"parts of a join":       ctl(&control{Kind: kJoin, Items: []item{{LWG: "l/a"}}, Parts: 2}),
	}
	for name, b := range cases {
		var err error
		if len(b) > 0 && b[0] == tagData || len(b) == 0 {
			_, _, _, err = decodeData(b)
		} else {
			_, err = decodeControl(b)
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzDecodeData: the data decoder never panics, and what it accepts
// encodes back to the same bytes.
func FuzzDecodeData(f *testing.F) {
	f.Add(encodeData("l/a", 1<<32|1, []byte("x")))
	f.Add([]byte{tagData, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, v, p, err := decodeData(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		l2, v2, p2, err := decodeData(encodeData(ID(l), v, p))
		if err != nil || !bytes.Equal(l2, l) || v2 != v || !bytes.Equal(p2, p) {
			t.Fatalf("re-encoding changed %q %d %q into %q %d %q (%v)", l, v, p, l2, v2, p2, err)
		}
	})
}

// FuzzDecodeControl: the control decoder never panics, and what it
// accepts has the shape its kind needs.
func FuzzDecodeControl(f *testing.F) {
	for _, c := range []*control{
		{Kind: kJoin, Items: []item{{LWG: "l/a", Ver: 1}}},
		{Kind: kFlushOK, Items: []item{{LWG: "l/a", View: 5}, {LWG: "l/b", View: 6}}},
		{Kind: kSwitch, Items: []item{{LWG: "l/a", View: 5, Group: "h/b#2"}}},
		{Kind: kSnapshot, View: 3, Snap: []byte{0x80}},
		{Kind: kSnapshot, View: 3, Snap: []byte{0x81, 0xa1}, Part: 1, Parts: 3},
		{Kind: kSnapshot, View: 4, At: 7, Snap: []byte{0x80}, Owed: []hwg.Process{{Node: 2, Inc: 1}}, Since: []hwg.ViewID{2}},
		{Kind: kReg, Items: []item{{Group: "h/a#1"}, {Group: "h/b#2"}}},
		{Kind: kMember, Items: []item{{Group: "h/a#1", Members: []hwg.Process{{Node: 1, Inc: 1}}}}},
	} {
		f.Add(encodeControl(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeControl(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if c.Kind == 0 || c.Kind >= kindLimit {
			t.Fatalf("accepted kind %d", c.Kind)
		}
		if (c.Kind == kSwitch || c.Kind == kAbort || c.Kind == kAdopt || c.Kind == kRebind) && len(c.Items) != 1 {
			t.Fatalf("accepted %v with %d items", c.Kind, len(c.Items))
		}
		if c.Part >= c.parts() {
			t.Fatalf("accepted part %d of %d", c.Part, c.Parts)
		}
		if len(c.Since) > 0 && len(c.Since) != len(c.Owed) {
			t.Fatalf("accepted the admissions of %d members for %d owed", len(c.Since), len(c.Owed))
		}
		// What the codec accepts, reflection decodes alike.
		var plain plainControl
		if err := msgpack.Unmarshal(b[1:], &plain); err != nil || !reflect.DeepEqual(*c, control(plain)) {
			t.Fatalf("codec read %+v, reflection %+v (%v)", *c, plain, err)
		}
	})
}

// FuzzRestore: a snapshot that is not one is refused with ErrMalformed and
// leaves an empty, usable state; it never panics.
func FuzzRestore(f *testing.F) {
	d := newDirectory("h/dir")
	d.lwgs["l/a"] = binding{HWG: "h/x#1", Ver: 1}
	d.carriers["h/x#1"] = &carrierRec{Base: "h/x", Regs: []hwg.Process{{Node: 1, Inc: 1}}}
	f.Add(d.snapshot())
	car := newCarrier(nil, "h/x#1")
	car.entries["l/a"] = &entry{View: View{ID: 1<<32 | 1, Members: []hwg.Process{{Node: 1, Inc: 1}}}}
	f.Add(car.snapshot())
	f.Add(tableOf(12).snapshot()) // flushes, switches and gone records
	f.Fuzz(func(t *testing.T, b []byte) {
		// The table codec reads what reflection reads, where it accepts.
		var fast tableSnap
		if err := wirecheck.Unmarshal(b, &fast); err == nil {
			var slow plainTableSnap
			if err := msgpack.Unmarshal(b, &slow); err != nil || !reflect.DeepEqual(fast, tableSnap(slow)) {
				t.Fatalf("table codec read %+v, reflection %+v (%v)", fast, slow, err)
			}
		}
		d := newDirectory("h/dir")
		if err := d.restore(b); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("directory: %v", err)
		}
		for h, rec := range d.carriers {
			if rec == nil || h == "" {
				t.Fatalf("directory restored a nil or unnamed carrier")
			}
		}
		for base, h := range d.bases {
			if rec := d.carriers[h]; rec == nil || rec.Base != base {
				t.Fatalf("directory restored base %s resolving to %s, not one of its live carriers", base, h)
			}
		}
		car := newCarrier(nil, "h/x#1")
		if err := car.restore(b); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("table: %v", err)
		}
		for l, e := range car.entries {
			if e == nil || len(e.View.Members) == 0 {
				t.Fatalf("table restored LWG %s without members", l)
			}
		}
	})
}

// TestControlSplit: a batch of control items larger than MaxMessageBytes
// is multicast as several messages holding every item once, in order, each
// within the limit; a snapshot goes in numbered parts that concatenate to
// the whole.
func TestControlSplit(t *testing.T) {
	c, err := NewCore(Config{Self: self, MaxMessageBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	var want []item
	for i := range 50 {
		want = append(want, item{LWG: ID(fmt.Sprintf("l/item-%03d", i)), Ver: uint64(i)})
	}
	c.send("h/x", &control{Kind: kJoin, Items: want})
	snap := bytes.Repeat([]byte("0123456789"), 55)
	c.sendSnapshot("h/x", 7, 0, snap, nil, nil)
	var got []item
	var parts [][]byte
	nparts := 0
	for _, a := range c.Ready().Actions {
		if a.Type != ActMulticast || a.Group != "h/x" {
			t.Fatalf("unexpected action %+v", a)
		}
		ctl, err := decodeControl(a.Payload)
		if err != nil {
			t.Fatal(err)
		}
		switch ctl.Kind {
		case kJoin:
			if len(a.Payload) > 200 {
				t.Errorf("a join message of %d bytes", len(a.Payload))
			}
			got = append(got, ctl.Items...)
		case kSnapshot:
			if len(a.Payload) > 200 {
				t.Errorf("a snapshot message of %d bytes", len(a.Payload))
			}
			if ctl.View != 7 || ctl.Part != uint32(len(parts)) || ctl.Parts < 3 {
				t.Errorf("snapshot part %d of %d at view %d, want part %d of 3 or more at 7", ctl.Part, ctl.Parts, ctl.View, len(parts))
			}
			parts = append(parts, ctl.Snap)
			nparts = int(ctl.Parts)
		}
	}
	if !slices.EqualFunc(got, want, func(a, b item) bool { return a.LWG == b.LWG && a.Ver == b.Ver }) {
		t.Errorf("joins split into %d items, want the %d in order", len(got), len(want))
	}
	if len(parts) != nparts || !bytes.Equal(bytes.Join(parts, nil), snap) {
		t.Errorf("snapshot in %d parts that do not make the whole", len(parts))
	}
}

func TestBatchRoundTrip(t *testing.T) {
	in := []dataEntry{{l: "l/a", view: 3, payload: []byte("x")}, {l: "l/bb", view: 1 << 40, payload: nil}, {l: "l/a", view: 3, payload: []byte("yz")}}
	var out []dataEntry
	if err := decodeBatch(encodeBatch(in), func(id []byte, view uint64, p []byte) {
		out = append(out, dataEntry{l: ID(id), view: view, payload: p})
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(in, out, func(a, b dataEntry) bool { return a.l == b.l && a.view == b.view && bytes.Equal(a.payload, b.payload) }) {
		t.Fatalf("round trip gave %+v", out)
	}
	for name, b := range map[string][]byte{
		"empty batch":          {tagBatch},
		"not a batch":          {tagData, 1, 'l', 1},
		"zero-length id":       {tagBatch, 0, 1, 0},
		"id past the end":      {tagBatch, 5, 'l'},
		"no view":              {tagBatch, 1, 'l'},
		"payload past the end": {tagBatch, 1, 'l', 1, 9, 'p'},
		"bad second entry":     append(encodeBatch(in[:1]), 7),
	} {
		called := false
		err := decodeBatch(b, func([]byte, uint64, []byte) { called = true })
		if !errors.Is(err, ErrMalformed) || called {
			t.Errorf("%s: err = %v, delivered = %v; want ErrMalformed and nothing delivered", name, err, called)
		}
	}
}

// FuzzDecodeBatch: the batch decoder never panics, delivers nothing from a
// payload it refuses, and what it accepts encodes to a batch that decodes
// to the same entries.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch([]dataEntry{{l: "l/a", view: 1, payload: []byte("x")}, {l: "l/b", view: 2, payload: []byte("yz")}}))
	f.Add([]byte{tagBatch, 1, 'l', 1, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []dataEntry
		err := decodeBatch(b, func(id []byte, view uint64, p []byte) {
			got = append(got, dataEntry{l: ID(id), view: view, payload: p})
		})
		if err != nil {
			if !errors.Is(err, ErrMalformed) || len(got) > 0 {
				t.Fatalf("error %v, %d entries delivered", err, len(got))
			}
			return
		}
		var again []dataEntry
		if err := decodeBatch(encodeBatch(got), func(id []byte, view uint64, p []byte) {
			again = append(again, dataEntry{l: ID(id), view: view, payload: p})
		}); err != nil || !slices.EqualFunc(got, again, func(a, b dataEntry) bool { return a.l == b.l && a.view == b.view && bytes.Equal(a.payload, b.payload) }) {
			t.Fatalf("re-encoding %+v gave %+v (%v)", got, again, err)
		}
	})
}

func TestHandlesRoundTrip(t *testing.T) {
	in := []dataEntry{
		{l: "l/a", h: 0, bind: true, view: 1, payload: []byte("x")},
		{h: 0, view: 1 << 40, payload: nil},
		{l: "l/b", h: maxHandle, bind: true, view: 3, payload: bytes.Repeat([]byte("y"), 300)},
	}
	var got []dataEntry
	epoch, err := decodeHandles(encodeHandles(77, in), func(h uint64, id []byte, view uint64, p []byte) {
		got = append(got, dataEntry{l: ID(id), h: h, bind: id != nil, view: view, payload: p})
	})
	if err != nil || epoch != 77 || !slices.EqualFunc(in, got, sameHandleEntry) {
		t.Fatalf("epoch %d, %+v (%v); want 77, %+v", epoch, got, err, in)
	}
	for name, b := range map[string][]byte{
		"empty":            {tagHandles, 1},
		"no epoch":         {tagHandles},
		"handle too large": encodeHandles(1, []dataEntry{{h: maxHandle + 1, view: 1}}),
		"id cut short":     {tagHandles, 1, 1, 5, 'l'},
		"empty id":         {tagHandles, 1, 1, 0, 1, 0},
		"payload cut":      {tagHandles, 1, 0, 1, 9, 'x'},
		"bad second entry": append(encodeHandles(1, in[:1]), 0x80),
		"another tag":      encodeBatch([]dataEntry{{l: "l/a", view: 1}}),
	} {
		called := false
		if _, err := decodeHandles(b, func(uint64, []byte, uint64, []byte) { called = true }); !errors.Is(err, ErrMalformed) || called {
			t.Errorf("%s: err %v, entries given %v; want ErrMalformed and none", name, err, called)
		}
	}
}

func sameHandleEntry(a, b dataEntry) bool {
	return a.h == b.h && a.bind == b.bind && (!a.bind || a.l == b.l) && a.view == b.view && bytes.Equal(a.payload, b.payload)
}

// FuzzDecodeHandles: a handle batch either decodes whole and re-encodes
// to what decodes the same, or is refused as malformed before any entry
// is given.
func FuzzDecodeHandles(f *testing.F) {
	f.Add(encodeHandles(3, []dataEntry{{l: "l/a", bind: true, view: 1, payload: []byte("x")}, {h: 0, view: 2, payload: []byte("yz")}}))
	f.Add([]byte{tagHandles, 1, 3, 1, 'l', 1, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []dataEntry
		epoch, err := decodeHandles(b, func(h uint64, id []byte, view uint64, p []byte) {
			got = append(got, dataEntry{l: ID(id), h: h, bind: id != nil, view: view, payload: p})
		})
		if err != nil {
			if !errors.Is(err, ErrMalformed) || len(got) > 0 {
				t.Fatalf("error %v, %d entries given", err, len(got))
			}
			return
		}
		var again []dataEntry
		epoch2, err := decodeHandles(encodeHandles(epoch, got), func(h uint64, id []byte, view uint64, p []byte) {
			again = append(again, dataEntry{l: ID(id), h: h, bind: id != nil, view: view, payload: p})
		})
		if err != nil || epoch2 != epoch || !slices.EqualFunc(got, again, sameHandleEntry) {
			t.Fatalf("re-encoding %d %+v gave %d %+v (%v)", epoch, got, epoch2, again, err)
		}
	})
}

// A few bytes declaring an array of 2^24 items made msgpack allocate
// 1.4 GB (2^31: hundreds of GB) before finding the input short: every
// decoder of another node's bytes checks the declared lengths first
// (internal/wirecheck).
func TestDecodersRefuseHostileLengths(t *testing.T) {
	items := []byte{0x82, 0xa1, 'k', byte(kJoin), 0xa1, 'i', 0xdd, 0x01, 0x00, 0x00, 0x00}
	array := func(key byte) []byte { return []byte{0x81, 0xa1, key, 0xdd, 0x01, 0x00, 0x00, 0x00} }
	deep := append(bytes.Repeat([]byte{0x91}, 100000), 0xc0)
	for name, run := range map[string]func() error{
		"control":   func() error { _, err := decodeControl(append([]byte{tagControl}, items...)); return err },
		"nested":    func() error { _, err := decodeControl(append([]byte{tagControl}, deep...)); return err },
		"directory": func() error { return newDirectory("h/dir").restore(array('l')) },
		"table":     func() error { return newCarrier(nil, "h/x#1").restore(array('e')) },
		// msgpack decodes a Go map through an ext's header, so the
		// map32 of 4 billion inside it was never walked by the check.
		"directory, ext": func() error {
			return newDirectory("h/dir").restore([]byte{0x81, 0xa1, 'c', 0xc7, 0x05, 0x01, 0xdf, 0xff, 0xff, 0xff, 0xff})
		},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := run()
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%s: refusing it allocated %d bytes", name, n)
		}
	}
}
