package wirecheck

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// hostile are payloads of a few bytes that make msgpack.Unmarshal allocate
// gigabytes or recurse without bound.
var hostile = map[string][]byte{
	"array32 of 2^31":       {0x81, 0xa1, 'i', 0xdd, 0x7f, 0xff, 0xff, 0xff},
	"array32 of 2^24":       {0x81, 0xa1, 'i', 0xdd, 0x01, 0x00, 0x00, 0x00},
	"map32 of 4 billion":    {0xdf, 0xff, 0xff, 0xff, 0xff},
	"str32 of 2 GiB":        {0xdb, 0x7f, 0xff, 0xff, 0xff, 'x'},
	"bin32 of 2 GiB":        {0xc6, 0x7f, 0xff, 0xff, 0xff, 'x'},
	"nested, then too long": {0x91, 0x91, 0x91, 0xdc, 0xff, 0xff},
	"100,000 nested arrays": append(bytes.Repeat([]byte{0x91}, 100000), 0xc0),
	"trailing bytes":        {0x80, 0x00},
	"reserved code 0xc1":    {0xc1},
	"truncated fixext":      {0xd8, 0x01},
	// msgpack decodes a Go map through an ext's header: the map32 inside
	// was never walked.
	"map32 of 4 billion in an ext": {0x81, 0xa1, 'c', 0xc7, 0x05, 0x01, 0xdf, 0xff, 0xff, 0xff, 0xff},
	"fixext":                       {0xd4, 0x01, 0x00},
	"empty":                        {},
}

type item struct {
	L string `msgpack:"l"`
	V uint64 `msgpack:"v"`
}

type msg struct {
	Items []item `msgpack:"i"`
}

func TestCheckRefusesHostileInput(t *testing.T) {
	for name, b := range hostile {
		if err := Check(b, Limits{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
		var m msg
		start := time.Now()
		if err := Unmarshal(b, &m); err == nil {
			t.Errorf("%s: Unmarshal accepted it", name)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: refused after %v", name, d)
		}
	}
}

func TestCheckAcceptsWhatMsgpackWrites(t *testing.T) {
	in := msg{Items: make([]item, 70000)} // beyond hwg's 65,536 per container
	for i := range in.Items {
		in.Items[i] = item{L: "l/x", V: uint64(i)}
	}
	for _, v := range []any{in, map[string]any{"a": []any{1, "x", []byte{2}, 3.5, nil, true, map[string]int{"b": 1}}}, uint64(1) << 60, "s"} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(b, Limits{}); err != nil {
			t.Errorf("%T: %v", v, err)
		}
	}
	b, _ := msgpack.Marshal(in)
	var out msg
	if err := Unmarshal(b, &out); err != nil || len(out.Items) != len(in.Items) || out.Items[69999].V != 69999 {
		t.Fatalf("Unmarshal: %v, %d items", err, len(out.Items))
	}
}

// Nothing but the bytes bounds what Unmarshal accepts: a large snapshot
// legitimately holds millions of elements.
func TestUnmarshalTakesLargeValues(t *testing.T) {
	in := make([]bool, 1<<22+1)
	in[len(in)-1] = true
	b, err := msgpack.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out []bool
	if err := Unmarshal(b, &out); err != nil || len(out) != len(in) || !out[len(out)-1] {
		t.Fatalf("Unmarshal of %d elements: %v, %d back", len(in), err, len(out))
	}
}

func TestCheckLimits(t *testing.T) {
	b, _ := msgpack.Marshal(make([]int, 100))
	if err := Check(b, Limits{ContainerLen: 99}); err == nil {
		t.Error("a container of 100 passed a limit of 99")
	}
	if err := Check(b, Limits{ContainerLen: 100}); err != nil {
		t.Errorf("a container of 100 failed a limit of 100: %v", err)
	}
	two, _ := msgpack.Marshal([][]int{make([]int, 60), make([]int, 60)})
	if err := Check(two, Limits{Elems: 100}); err == nil {
		t.Error("122 elements passed a limit of 100")
	}
	deep := append(bytes.Repeat([]byte{0x91}, 4), 0xc0)
	if err := Check(deep, Limits{Depth: 4}); err == nil {
		t.Error("5 levels passed a depth of 4")
	}
	if err := Check(deep, Limits{Depth: 5}); err != nil {
		t.Errorf("5 levels failed a depth of 5: %v", err)
	}
	if err := Check(append(bytes.Repeat([]byte{0x91}, MaxDepth+1), 0xc0), Limits{Depth: 1000}); err == nil {
		t.Errorf("a Depth above MaxDepth was not capped")
	}
}

// FuzzCheck: whatever Check accepts, msgpack decodes without panicking and
// with allocation in proportion to the input.
func FuzzCheck(f *testing.F) {
	for _, b := range hostile {
		f.Add(b)
	}
	b, _ := msgpack.Marshal(msg{Items: []item{{L: "a", V: 1}, {L: "b", V: 2}}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		if Check(b, Limits{}) != nil {
			return
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var v any
		_ = msgpack.Unmarshal(b, &v)
		var m msg
		_ = msgpack.Unmarshal(b, &m)
		runtime.ReadMemStats(&after)
		if got, bound := after.TotalAlloc-before.TotalAlloc, uint64(512*len(b)+1<<20); got > bound {
			t.Fatalf("%d input bytes allocated %d bytes (bound %d)", len(b), got, bound)
		}
	})
}
