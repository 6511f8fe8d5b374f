package rsm

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

func TestOrderedRoundTrip(t *testing.T) {
	p := hwg.Process{Node: 7, Inc: 3}
	for _, tc := range []struct {
		b    []byte
		want ordered
	}{
		{encodePropose(p, 9, []byte("cmd")), ordered{kind: kindPropose, origin: p, seq: 9, cmd: []byte("cmd")}},
		{encodePropose(p, 1, nil), ordered{kind: kindPropose, origin: p, seq: 1, cmd: []byte{}}},
		{encodeRead(p, 5), ordered{kind: kindRead, origin: p, seq: 5}},
		{encodeRestored(), ordered{kind: kindRestored}},
		{encodeHold(), ordered{kind: kindHold}},
		{encodeClaim(claim{has: true, lineage: 9, index: 4, empty: 1}), ordered{kind: kindClaim, claim: claim{has: true, lineage: 9, index: 4, empty: 1}}},
		{encodeClaim(claim{lineage: 9, waits: true}), ordered{kind: kindClaim, claim: claim{lineage: 9, waits: true}}},
		{encodeClaim(claim{has: true, lineage: 9, index: 4, view: 1<<32 | 7}), ordered{kind: kindClaim, claim: claim{has: true, lineage: 9, index: 4, view: 1<<32 | 7}}},
		// A claim from a node before claims said their view: none.
		{[]byte{kindClaim, 3, 9, 4, 1}, ordered{kind: kindClaim, claim: claim{has: true, waits: true, lineage: 9, index: 4, empty: 1}}},
		{encodeOnce(p, 3, OriginID{Source: "r", Seq: 8}, []byte("c")), ordered{kind: kindOnce, origin: p, seq: 3, once: OriginID{Source: "r", Seq: 8}, cmd: []byte("c")}},
	} {
		got, err := decodeOrdered(tc.b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.cmd) == 0 && len(tc.want.cmd) == 0 {
			got.cmd, tc.want.cmd = nil, nil
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("decoded %+v, want %+v", got, tc.want)
		}
	}
	for _, bad := range [][]byte{nil, {0}, {99}, {kindRead, 0x80}, append(encodeRead(p, 5), 1), {kindRestored, 0}} {
		if _, err := decodeOrdered(bad); !errors.Is(err, errMalformed) {
			t.Fatalf("decodeOrdered(%x) = %v, want errMalformed", bad, err)
		}
	}
}

func TestDirectRoundTrip(t *testing.T) {
	for _, d := range []direct{
		{kind: kindOffer, object: "o", gen: 3, at: point{View: 1<<32 | 2, Seq: 7}, size: 100},
		{kind: kindOffer, object: "o", at: point{View: 5, Seq: 1}, size: 3, data: []byte("abc")},
		{kind: kindFetch, object: "o", gen: 3, offset: 4096, n: 4096},
		{kind: kindChunk, object: "o", gen: 3, offset: 8, data: []byte("xyz")},
		{kind: kindWant, object: "obj/1", at: point{View: 9, Seq: 0}},
		{kind: kindGone, object: "o", gen: 4},
		{kind: kindSnap, object: "o", gen: 5, at: point{View: 1<<32 | 3, Seq: 1}, avail: 1 << 20},
		{kind: kindSnap, object: "o", gen: 5, at: point{View: 1<<32 | 3, Seq: 1}, avail: 3 << 20, size: 3 << 20, sum: bytes.Repeat([]byte{9}, sumLen)},
	} {
		got, err := decodeDirect(encodeDirect(d))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, d) {
			t.Fatalf("decoded %+v, want %+v", got, d)
		}
	}
	for _, bad := range [][]byte{nil, {kindOffer}, {kindFetch, 0, 1, 2, 3}, {kindWant, 1, 'o', 1}, {42, 1, 'o'}, {kindGone, 0, 1}} {
		if _, err := decodeDirect(bad); !errors.Is(err, errMalformed) {
			t.Fatalf("decodeDirect(%x) = %v, want errMalformed", bad, err)
		}
	}
}

func TestSnapshotHeaderRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	h := header{Object: "o", At: point{View: 4, Seq: 2}, Index: 10,
		View:  lwg.View{ID: 4, Members: []hwg.Process{{Node: 1, Inc: 1}}},
		Table: table{Restored: []hwg.Process{{Node: 1, Inc: 1}}}}
	if err := writeSnapshot(&buf, &h, nopSM{}); err != nil {
		t.Fatal(err)
	}
	got, err := readHeader(bufio.NewReader(&buf))
	if err != nil {
		t.Fatal(err)
	}
	if got.Object != h.Object || got.At != h.At || got.Index != h.Index || !reflect.DeepEqual(got.Table, h.Table) {
		t.Fatalf("header %+v, want %+v", got, h)
	}
	if _, err := readHeader(bufio.NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}))); !errors.Is(err, errMalformed) {
		t.Fatalf("huge header length: %v, want errMalformed", err)
	}
}

type nopSM struct{}

func (nopSM) Apply([]byte) ([]byte, error) { return nil, nil }
func (nopSM) Snapshot(io.Writer) error     { return nil }
func (nopSM) Restore(io.Reader) error      { return nil }

func TestTableDonors(t *testing.T) {
	a, b, c := hwg.Process{Node: 1, Inc: 1}, hwg.Process{Node: 2, Inc: 1}, hwg.Process{Node: 3, Inc: 1}
	tb := table{Restored: []hwg.Process{a, b}}
	// c joins: the first member holding the state serves it.
	if serve := tb.install(lwg.View{ID: 2, Members: []hwg.Process{a, b, c}}, []hwg.Process{c}, a); !reflect.DeepEqual(serve, []hwg.Process{c}) {
		t.Fatalf("a serves %v, want [c]", serve)
	}
	// a fails before c restored: b takes over.
	if serve := tb.install(lwg.View{ID: 3, Members: []hwg.Process{b, c}}, nil, b); !reflect.DeepEqual(serve, []hwg.Process{c}) {
		t.Fatalf("b serves %v, want [c]", serve)
	}
	// An unrelated view change keeps the donor, so no new snapshot.
	if serve := tb.install(lwg.View{ID: 4, Members: []hwg.Process{b, c}}, nil, b); len(serve) != 1 {
		t.Fatalf("b serves %v after a view that kept it", serve)
	}
	tb.restoredBy(c)
	if d, ok := tb.donorOf(c); ok {
		t.Fatalf("c still pending with donor %v", d)
	}
	// Nobody left holding the state: no donor.
	tb2 := table{Restored: []hwg.Process{a}}
	tb2.install(lwg.View{ID: 2, Members: []hwg.Process{a, c}}, []hwg.Process{c}, c)
	tb2.install(lwg.View{ID: 3, Members: []hwg.Process{c}}, nil, c)
	if d, _ := tb2.donorOf(c); d != (hwg.Process{}) {
		t.Fatalf("donor %v, want none", d)
	}
}

func FuzzDecodeOrdered(f *testing.F) {
	p := hwg.Process{Node: 1, Inc: 2}
	f.Add(encodePropose(p, 1, []byte("x")))
	f.Add(encodeRead(p, 2))
	f.Add(encodeRestored())
	f.Add(encodeForget())
	f.Add(encodeClaim(claim{has: true, lineage: 1, index: 2}))
	f.Add(encodeClaim(claim{has: true, lineage: 1, index: 2, view: 3}))
	f.Add(encodeOnce(p, 1, OriginID{Source: "s", Seq: 2}, []byte("x")))
	f.Add(encodeOutgoing(p, []outgoing{{kind: kindPropose, seq: 3, cmd: []byte("x")}, {kind: kindRead, seq: 4},
		{kind: kindOnce, seq: 5, once: OriginID{Source: "s", Seq: 6}, cmd: []byte("yz")}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeOrdered(b)
		if err != nil {
			return
		}
		var again []byte
		switch m.kind {
		case kindBatch:
			var out []outgoing
			br := m.batch()
			for {
				e, ok := br.next()
				if !ok {
					break
				}
				if e.origin != m.origin {
					t.Fatalf("entry of %v in a batch of %v", e.origin, m.origin)
				}
				out = append(out, outgoing{kind: e.kind, seq: e.seq, once: e.once, cmd: e.cmd})
			}
			if br.r.err != nil || uint64(len(out)) != m.n {
				t.Fatalf("a decoded batch of %d walks to %d entries: %v", m.n, len(out), br.r.err)
			}
			// Re-encoded (varints minimal, so the bytes may differ), it
			// decodes to the same entries.
			m2, err := decodeOrdered(encodeOutgoing(m.origin, out))
			if err != nil || m2.kind != kindBatch || m2.origin != m.origin || m2.n != m.n {
				t.Fatalf("batch %x re-encodes to %+v, %v", b, m2, err)
			}
			br2 := m2.batch()
			for i := range out {
				e, _ := br2.next()
				if e.kind != out[i].kind || e.seq != out[i].seq || e.once != out[i].once || !bytes.Equal(e.cmd, out[i].cmd) {
					t.Fatalf("entry %d %+v re-encodes to %+v", i, out[i], e)
				}
			}
			return
		case kindPropose:
			again = encodePropose(m.origin, m.seq, m.cmd)
		case kindRead:
			again = encodeRead(m.origin, m.seq)
		case kindOnce:
			again = encodeOnce(m.origin, m.seq, m.once, m.cmd)
		case kindClaim:
			again = encodeClaim(m.claim)
		case kindHold:
			again = encodeHold()
		case kindForget:
			again = encodeForget()
		default:
			again = encodeRestored()
		}
		m2, err := decodeOrdered(again)
		if err != nil || m2.kind != m.kind || m2.origin != m.origin || m2.seq != m.seq || !bytes.Equal(m2.cmd, m.cmd) ||
			m2.once != m.once || m2.claim != m.claim {
			t.Fatalf("re-encoded %+v decodes to %+v, %v", m, m2, err)
		}
	})
}

func FuzzDecodeDirect(f *testing.F) {
	f.Add(encodeDirect(direct{kind: kindOffer, object: "o", gen: 1, size: 3, data: []byte("abc")}))
	f.Add(encodeDirect(direct{kind: kindFetch, object: "o", gen: 1, n: 9}))
	f.Add(encodeDirect(direct{kind: kindChunk, object: "o", gen: 1, data: []byte("z")}))
	f.Add(encodeDirect(direct{kind: kindWant, object: "o"}))
	f.Add(encodeDirect(direct{kind: kindSnap, object: "o", gen: 2, at: point{View: 1, Seq: 2}, avail: 64}))
	f.Add(encodeDirect(direct{kind: kindSnap, object: "o", gen: 2, avail: 99, size: 99, sum: make([]byte, sumLen)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDirect(b)
		if err != nil {
			return
		}
		d2, err := decodeDirect(encodeDirect(d))
		if err != nil || d2.kind != d.kind || d2.object != d.object || d2.gen != d.gen || !bytes.Equal(d2.data, d.data) ||
			d2.avail != d.avail || d2.size != d.size || !bytes.Equal(d2.sum, d.sum) {
			t.Fatalf("re-encoded %+v decodes to %+v, %v", d, d2, err)
		}
	})
}

func FuzzReadHeader(f *testing.F) {
	var buf bytes.Buffer
	writeSnapshot(&buf, &header{Object: "o"}, nopSM{})
	f.Add(buf.Bytes())
	buf.Reset()
	writeSnapshot(&buf, &header{Object: "o", Once: map[string]onceRecord{
		"a": {Seq: 3, Result: []byte("r3"), Span: 3, Older: []onceEntry{{Seq: 1, Err: "e1"}}},
		"b": {Seq: 1},
	}}, nopSM{})
	f.Add(buf.Bytes())
	f.Add(newerFormatSnapshot("o"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Must not panic or allocate without bound, and refuses only as
		// malformed or in a newer format.
		h, err := readHeader(bufio.NewReader(bytes.NewReader(b)))
		switch {
		case err == nil && (h.Format != 0 || h.Sources != 0):
			t.Fatalf("a read header keeps format %d and %d sources to read", h.Format, h.Sources)
		case err != nil && !errors.Is(err, errMalformed) && !errors.Is(err, ErrSnapshotFormat):
			t.Fatalf("refused with %v, neither malformed nor a newer format", err)
		}
	})
}

// A snapshot header of a few bytes declaring 2^24 view members made
// msgpack allocate hundreds of megabytes before finding it short; the
// declared lengths are checked first (internal/wirecheck).
func TestReadHeaderRefusesHostileLengths(t *testing.T) {
	hb := []byte{0x81, 0xa1, 'v', 0x81, 0xa1, 'm', 0xdd, 0x01, 0x00, 0x00, 0x00}
	in := append([]byte{byte(len(hb))}, hb...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := readHeader(bufio.NewReader(bytes.NewReader(in)))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errMalformed) {
		t.Errorf("err = %v, want errMalformed", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("refusing it allocated %d bytes", n)
	}
}
