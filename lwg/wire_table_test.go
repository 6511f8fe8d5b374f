package lwg

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"

	"github.com/lwgkit/lwgkit/hwg"
)

// plainTableSnap and plainTableEntry have tableSnap's fields and tags and
// no codec methods, so msgpack encodes them by reflection.
type plainTableSnap struct {
	E []tableSnapEntry `msgpack:"e"`
	G map[ID]gone      `msgpack:"g"`
}

// reflectTable encodes s by reflection.
func reflectTable(s *tableSnap) ([]byte, error) {
	p := plainTableSnap(*s)
	return msgpack.Marshal(&p)
}

func genProcs(t *rapid.T, label string, max int) []hwg.Process {
	if rapid.IntRange(0, 4).Draw(t, label+"-nil") == 0 {
		return nil
	}
	u64 := rapid.OneOf(rapid.Just(uint64(0)), rapid.Uint64Range(1, 300), rapid.Uint64())
	ps := []hwg.Process{}
	for range rapid.IntRange(0, max).Draw(t, label) {
		ps = append(ps, hwg.Process{Node: hwg.NodeID(u64.Draw(t, "n")), Inc: u64.Draw(t, "i")})
	}
	return ps
}

func genTable(t *rapid.T) tableSnap {
	str := rapid.SampledFrom([]string{"", "l/a", "h/x#1", "a-longer-id-of-more-than-thirty-one-bytes"})
	u64 := rapid.OneOf(rapid.Just(uint64(0)), rapid.Uint64Range(1, 300), rapid.Uint64())
	var s tableSnap
	if rapid.Bool().Draw(t, "entries") {
		s.E = []tableSnapEntry{}
		for range rapid.IntRange(0, 20).Draw(t, "n") { // 16 and more: array16
			se := tableSnapEntry{L: ID(str.Draw(t, "l"))}
			se.View = View{ID: u64.Draw(t, "id"), Members: genProcs(t, "m", 4)}
			if rapid.Bool().Draw(t, "flush") {
				se.Fl = &flush{Need: genProcs(t, "need", 4), Joins: genProcs(t, "joins", 2), Leaves: genProcs(t, "leaves", 2), To: hwg.GroupID(str.Draw(t, "to"))}
			}
			s.E = append(s.E, se)
		}
	}
	if rapid.Bool().Draw(t, "gone") {
		s.G = map[ID]gone{}
		for range rapid.IntRange(0, 5).Draw(t, "g") {
			s.G[ID(str.Draw(t, "gl"))] = gone{View: u64.Draw(t, "gv"), To: hwg.GroupID(str.Draw(t, "gt")), Members: genProcs(t, "gm", 3)}
		}
	}
	return s
}

// TestTableCodecMatchesReflection: the table snapshot's codec writes the
// bytes reflection writes for the same tags, and each reads the other's
// bytes back to the same snapshot. Reflection writes the gone records in
// the map's iteration order, the codec in key order, so the bytes are
// compared for at most one record.
func TestTableCodecMatchesReflection(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genTable(t)
		fast, err := msgpack.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := reflectTable(&s)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.G) <= 1 && !bytes.Equal(fast, slow) {
			t.Fatalf("encodings differ\nfast %x\nslow %x", fast, slow)
		}
		var back tableSnap
		if err := msgpack.Unmarshal(slow, &back); err != nil {
			t.Fatalf("decoding reflection's bytes: %v", err)
		}
		var plainBack plainTableSnap
		if err := msgpack.Unmarshal(fast, &plainBack); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, tableSnap(plainBack)) {
			t.Fatalf("decodings differ\nfast %+v\nslow %+v", back, plainBack)
		}
	})
}

// The decoder reads nil for a view, a flush, a gone record and any list or
// map as their zero value, skips unknown fields, and refuses a field given
// twice.
func TestTableDecodeTolerates(t *testing.T) {
	in := map[string]any{
		"zz": []any{1, "x"},
		"e": []any{
			map[string]any{"l": "l/a", "v": map[string]any{"id": 3, "m": nil, "q": 1}, "f": nil},
			map[string]any{"l": "l/b", "v": nil, "f": map[string]any{"n": nil, "t": "h/y"}},
		},
		"g": map[string]any{"l/c": nil, "l/d": map[string]any{"v": 2, "m": []any{map[string]any{"n": 1, "i": 2}}}},
	}
	b, err := msgpack.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var s tableSnap
	if err := msgpack.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	want := tableSnap{
		E: []tableSnapEntry{{L: "l/a", entry: entry{View: View{ID: 3}}}, {L: "l/b", entry: entry{Fl: &flush{To: "h/y"}}}},
		G: map[ID]gone{"l/c": {}, "l/d": {View: 2, Members: []hwg.Process{{Node: 1, Inc: 2}}}},
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("decoded %+v, want %+v", s, want)
	}
	twice, err := msgpack.Marshal(map[string]any{"e": []any{map[string]any{"l": "l/a"}}, "g": nil})
	if err != nil {
		t.Fatal(err)
	}
	twice = bytes.Replace(twice, []byte{0xa1, 'g'}, []byte{0xa1, 'e'}, 1) // {"e": [...], "e": nil}
	if err := msgpack.Unmarshal(twice, &s); err == nil {
		t.Fatalf("accepted a field given twice: %+v", s)
	}
}

// tableOf returns a carrier table of n LWGs of four members, every fourth
// in a flush, and n/10 gone records, as a join burst meets it.
func tableOf(n int) *carrier {
	car := newCarrier(nil, "h/x")
	ms := []hwg.Process{{Node: 1, Inc: 7}, {Node: 2, Inc: 7}, {Node: 3, Inc: 8}, {Node: 4, Inc: 9}}
	for i := range n {
		e := &entry{View: View{ID: uint64(i)<<32 | 3, Members: ms}}
		if i%4 == 0 {
			e.Fl = &flush{Need: ms[1:3], Joins: ms[3:], To: "h/y"}
		}
		car.entries[ID(fmt.Sprintf("l/bench-%05d", i))] = e
	}
	for i := range n / 10 {
		car.gone[ID(fmt.Sprintf("l/gone-%05d", i))] = gone{View: uint64(i), To: "h/z", Members: ms[:2]}
	}
	return car
}

// TestTableSnapshotRoundTrip: a table restored from its snapshot is the
// table, and snapshots it the same.
func TestTableSnapshotRoundTrip(t *testing.T) {
	car := tableOf(300)
	snap := car.snapshot()
	to := newCarrier(nil, "h/x")
	if err := to.restore(snap); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(to.entries, car.entries) || !reflect.DeepEqual(to.gone, car.gone) {
		t.Fatal("restored table differs")
	}
	if !bytes.Equal(to.snapshot(), snap) {
		t.Fatal("restored table snapshots differently")
	}
}

// BenchmarkTableSnapshot: a carrier table of 1,000 LWGs encoded and
// restored, as a joiner of the carrier receives it, by the codec and by
// reflection.
func BenchmarkTableSnapshot(b *testing.B) {
	car := tableOf(1000)
	snap := car.snapshot()
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			car.snapshot()
		}
	})
	b.Run("restore", func(b *testing.B) {
		to := newCarrier(nil, "h/x")
		for b.Loop() {
			if err := to.restore(snap); err != nil {
				b.Fatal(err)
			}
		}
	})
	s := tableSnap{G: car.gone}
	for _, l := range sortedKeys(car.entries) {
		s.E = append(s.E, tableSnapEntry{l, *car.entries[l]})
	}
	b.Run("encode-reflection", func(b *testing.B) {
		for b.Loop() {
			if _, err := reflectTable(&s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-reflection", func(b *testing.B) {
		for b.Loop() {
			var p plainTableSnap
			if err := msgpack.Unmarshal(snap, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(len(snap)), "bytes")
}
