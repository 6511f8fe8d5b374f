package kvexample

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func mustEnc(t testing.TB, c Command) []byte {
	t.Helper()
	b, err := EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func apply(t testing.TB, m *Machine, c Command) Result {
	t.Helper()
	raw, err := m.Apply(mustEnc(t, c))
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeResult(raw)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func args(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, v := range s {
		out[i] = []byte(v)
	}
	return out
}

func TestMachineCommands(t *testing.T) {
	m := NewMachine()
	if r := apply(t, m, Command{Op: OpGet, Args: args("a")}); r.Kind != KindNil {
		t.Fatalf("get missing: %+v", r)
	}
	apply(t, m, Command{Op: OpSet, Args: args("a", "1")})
	apply(t, m, Command{Op: OpSet, Args: args("e", "")})
	if r := apply(t, m, Command{Op: OpGet, Args: args("a")}); r.Kind != KindBytes || string(r.Bytes) != "1" {
		t.Fatalf("get: %+v", r)
	}
	if r := apply(t, m, Command{Op: OpSet, Flags: SetNX, Args: args("a", "2")}); r.Kind != KindNil {
		t.Fatalf("set nx on existing: %+v", r)
	}
	if r := apply(t, m, Command{Op: OpSet, Flags: SetXX, Args: args("zz", "2")}); r.Kind != KindNil {
		t.Fatalf("set xx on missing: %+v", r)
	}
	if r := apply(t, m, Command{Op: OpIncrBy, Delta: 41, Args: args("a")}); r.Kind != KindInt || r.Int != 42 {
		t.Fatalf("incrby: %+v", r)
	}
	if r := apply(t, m, Command{Op: OpIncrBy, Delta: -1, Args: args("n")}); r.Int != -1 {
		t.Fatalf("incr missing: %+v", r)
	}
	r := apply(t, m, Command{Op: OpMGet, Args: args("a", "nope", "e")})
	if r.Kind != KindArray || string(r.Array[0]) != "42" || r.Array[1] != nil || r.Array[2] == nil || len(r.Array[2]) != 0 {
		t.Fatalf("mget: %+v", r)
	}
	if r := apply(t, m, Command{Op: OpExists, Args: args("a", "a", "nope")}); r.Int != 2 {
		t.Fatalf("exists: %+v", r)
	}
	if r := apply(t, m, Command{Op: OpDel, Args: args("a", "nope", "a")}); r.Int != 1 {
		t.Fatalf("del: %+v", r)
	}
	// Failures leave the state unchanged.
	apply(t, m, Command{Op: OpSet, Args: args("s", "abc")})
	if r := apply(t, m, Command{Op: OpIncrBy, Delta: 1, Args: args("s")}); r.Kind != KindError || !errors.Is(r.Code.Err(), ErrNotInteger) {
		t.Fatalf("incr non-integer: %+v", r)
	}
	apply(t, m, Command{Op: OpSet, Args: args("big", strconv.FormatInt(math.MaxInt64, 10))})
	if r := apply(t, m, Command{Op: OpIncrBy, Delta: 1, Args: args("big")}); r.Kind != KindError || !errors.Is(r.Code.Err(), ErrOverflow) {
		t.Fatalf("overflow: %+v", r)
	}
	if r := apply(t, m, Command{Op: OpGet, Args: args("big")}); string(r.Bytes) != strconv.FormatInt(math.MaxInt64, 10) {
		t.Fatalf("overflow changed the value: %q", r.Bytes)
	}
	// Garbage is a deterministic failure, not a Go error.
	raw, err := m.Apply([]byte{0xff, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := DecodeResult(raw); r.Kind != KindError {
		t.Fatalf("garbage: %+v", r)
	}
	// Query refuses writes.
	if _, err := m.Query(mustEnc(t, Command{Op: OpSet, Args: args("a", "b")})); !errors.Is(err, ErrMalformed) {
		t.Fatalf("query of a write: %v", err)
	}
}

func TestParseInt(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "1": true, "-1": true, "9223372036854775807": true, "-9223372036854775808": true,
		"": false, "-": false, "+1": false, " 1": false, "1 ": false, "01": false, "-0": false,
		"9223372036854775808": false, "1.5": false, "0x10": false, "abc": false,
	} {
		if _, ok := parseInt([]byte(s)); ok != want {
			t.Errorf("parseInt(%q) ok = %v, want %v", s, ok, want)
		}
	}
}

// randomMachine applies n random writes to a fresh machine.
func randomMachine(t testing.TB, seed uint64, n int) (*Machine, [][]byte) {
	rng := rand.New(rand.NewPCG(seed, 1))
	m := NewMachine()
	var cmds [][]byte
	for i := 0; i < n; i++ {
		k := []byte("k" + strconv.Itoa(rng.IntN(50)))
		var c Command
		switch rng.IntN(4) {
		case 0:
			v := make([]byte, rng.IntN(100))
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			c = Command{Op: OpSet, Args: [][]byte{k, v}}
		case 1:
			c = Command{Op: OpDel, Args: [][]byte{k}}
		default:
			c = Command{Op: OpIncrBy, Delta: int64(rng.IntN(10)) - 5, Args: [][]byte{k}}
		}
		b := mustEnc(t, c)
		cmds = append(cmds, b)
		if _, err := m.Apply(b); err != nil {
			t.Fatal(err)
		}
	}
	return m, cmds
}

func snap(t testing.TB, m *Machine) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := m.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestMachineDeterministicAndSnapshot(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		a, cmds := randomMachine(t, seed, 500)
		// Replaying the same commands gives the same results and state.
		b := NewMachine()
		c := NewMachine()
		for _, cmd := range cmds {
			ra, _ := b.Apply(cmd)
			rb, _ := c.Apply(cmd)
			if !bytes.Equal(ra, rb) {
				t.Fatalf("seed %d: results differ", seed)
			}
		}
		sa := snap(t, a)
		if !bytes.Equal(sa, snap(t, b)) {
			t.Fatalf("seed %d: snapshots of equal states differ", seed)
		}
		// Restore into a machine with other state replaces it.
		d, _ := randomMachine(t, seed+100, 50)
		if err := d.Restore(bytes.NewReader(sa)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sa, snap(t, d)) {
			t.Fatalf("seed %d: restored state differs", seed)
		}
		// A corrupt or truncated snapshot is refused and changes nothing.
		for _, bad := range [][]byte{sa[:len(sa)-1], sa[:len(sa)/2], append(append([]byte{}, sa[:len(sa)-1]...), sa[len(sa)-1]^1)} {
			e, _ := randomMachine(t, seed+200, 50)
			before := snap(t, e)
			if err := e.Restore(bytes.NewReader(bad)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("seed %d: bad snapshot: err = %v", seed, err)
			}
			if !bytes.Equal(before, snap(t, e)) {
				t.Fatalf("seed %d: failed restore changed the state", seed)
			}
		}
	}
}

func TestEncodingRoundTrip(t *testing.T) {
	cases := []Command{
		{Op: OpGet, Args: args("a")},
		{Op: OpSet, Flags: SetNX, Args: [][]byte{[]byte("k"), {}}},
		{Op: OpIncrBy, Delta: math.MinInt64, Args: args("x")},
		{Op: OpMGet, Args: args("a", "b", "")},
		{Op: OpDel, Args: args("a")},
		{Op: OpExists, Args: args("a", "a")},
	}
	for _, c := range cases {
		b := mustEnc(t, c)
		d, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if !bytes.Equal(mustEnc(t, d), b) {
			t.Fatalf("%+v: round trip differs", c)
		}
	}
	for _, c := range []Command{
		{Op: 0, Args: args("a")}, {Op: opEnd, Args: args("a")}, {Op: OpGet}, {Op: OpGet, Args: args("a", "b")},
		{Op: OpSet, Args: args("a")}, {Op: OpGet, Flags: SetNX, Args: args("a")}, {Op: OpSet, Flags: SetNX | SetXX, Args: args("a", "b")},
		{Op: OpGet, Delta: 1, Args: args("a")},
	} {
		if _, err := EncodeCommand(c); !errors.Is(err, ErrMalformed) {
			t.Errorf("%+v: err = %v, want ErrMalformed", c, err)
		}
	}
	for _, r := range []Result{
		{Kind: KindNil}, {Kind: KindBytes, Bytes: []byte("v")}, {Kind: KindInt, Int: -5},
		{Kind: KindArray, Array: [][]byte{nil, {}, []byte("x")}}, {Kind: KindError, Code: CodeOverflow},
	} {
		d, err := DecodeResult(EncodeResult(r))
		if err != nil || !bytes.Equal(EncodeResult(d), EncodeResult(r)) {
			t.Fatalf("%+v: %+v %v", r, d, err)
		}
	}
}

// FuzzDecodeCommand: the decoder never panics, accepts only canonical
// encodings (decode then encode gives the input back), and a decoded
// command applies without a Go error.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []Command{
		{Op: OpGet, Args: args("a")},
		{Op: OpSet, Flags: SetXX, Args: args("key", "value")},
		{Op: OpIncrBy, Delta: -300, Args: args("n")},
		{Op: OpMGet, Args: args("a", "b", "c")},
		{Op: OpDel, Args: args("a", "b")},
		{Op: OpExists, Args: args("x")},
	} {
		f.Add(mustEnc(f, c))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		again, err := EncodeCommand(c)
		if err != nil {
			t.Fatalf("decoded command does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("non-canonical input accepted:\n in  %x\n out %x", b, again)
		}
		m := NewMachine()
		raw, err := m.Apply(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeResult(raw); err != nil {
			t.Fatalf("result does not decode: %v", err)
		}
	})
}

// FuzzDecodeResult: the result decoder never panics and round-trips.
func FuzzDecodeResult(f *testing.F) {
	f.Add(EncodeResult(Result{Kind: KindArray, Array: [][]byte{nil, []byte("x")}}))
	f.Add(EncodeResult(Result{Kind: KindInt, Int: 7}))
	f.Add(EncodeResult(Result{Kind: KindError, Code: CodeNotInteger}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResult(b)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeResult(r), b) {
			t.Fatalf("round trip differs for %x", b)
		}
	})
}

// FuzzRestore: Restore never panics, and a snapshot it accepts is taken
// again byte for byte.
func FuzzRestore(f *testing.F) {
	m, _ := randomMachine(f, 1, 20)
	var b bytes.Buffer
	m.Snapshot(&b)
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		m := NewMachine()
		if err := m.Restore(bytes.NewReader(in)); err != nil {
			return
		}
		if !bytes.Equal(snap(t, m), in) {
			t.Fatal("accepted snapshot is not canonical")
		}
	})
}
