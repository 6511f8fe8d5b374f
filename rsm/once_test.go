package rsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// onceSM drives a source's record the way applyEntry does and counts
// what it applies: the result of seq s is "r<s>".
type onceSM struct {
	rec     *onceRecord
	applied map[uint64]int
}

func (s *onceSM) propose(seq uint64) (onceVerdict, []byte, error) {
	v, res, err := s.rec.check("src", seq)
	if v == onceApply {
		res = fmt.Appendf(nil, "r%d", seq)
		if s.applied == nil {
			s.applied = map[uint64]int{}
		}
		s.applied[seq]++
		s.rec = s.rec.record(seq, res, err)
	}
	return v, res, err
}

func (s *onceSM) want(t *testing.T, seq uint64, verdict onceVerdict) {
	t.Helper()
	v, res, err := s.propose(seq)
	if v != verdict {
		t.Fatalf("seq %d: verdict %d, want %d (err %v)", seq, v, verdict, err)
	}
	switch verdict {
	case onceApply, onceApplied:
		if err != nil || string(res) != fmt.Sprintf("r%d", seq) {
			t.Fatalf("seq %d: result %q, %v; want r%d", seq, res, err, seq)
		}
	case onceRefused:
		if !errors.Is(err, ErrDuplicate) {
			t.Fatalf("seq %d: err %v, want ErrDuplicate", seq, err)
		}
	}
	if s.applied[seq] > 1 {
		t.Fatalf("seq %d applied %d times", seq, s.applied[seq])
	}
}

func TestOnceOutOfOrder(t *testing.T) {
	var s onceSM
	s.want(t, 10, onceApply)
	// Older seqs of the source, never applied, arrive after 10: applied.
	s.want(t, 3, onceApply)
	s.want(t, 7, onceApply)
	s.want(t, 1, onceApply)
	// Retries of applied seqs get their results, highest or not.
	for _, q := range []uint64{10, 3, 7, 1} {
		s.want(t, q, onceApplied)
	}
	// A seq in the gap, never applied, still is.
	s.want(t, 5, onceApply)
	s.want(t, 5, onceApplied)
	if len(s.applied) != 5 {
		t.Fatalf("applied %v, want 5 seqs", s.applied)
	}
}

func TestOnceWindow(t *testing.T) {
	var s onceSM
	s.want(t, 1, onceApply)
	s.want(t, 2, onceApply)
	top := uint64(2 + onceWindow)
	s.want(t, top, onceApply)
	// 2 is top-onceWindow: the lowest seq the window tracks.
	s.want(t, 2, onceApplied)
	s.want(t, 3, onceApply)
	// 1 was applied but is below the window now; 0 never was. Neither
	// can be told apart any more: both are refused.
	for _, q := range []uint64{1, 0} {
		s.want(t, q, onceRefused)
	}
	if len(s.rec.Older) > onceWindow {
		t.Fatalf("%d entries below the highest, window %d", len(s.rec.Older), onceWindow)
	}
	// Far ahead: the whole window is new, and every older seq refused.
	s.want(t, 10*onceWindow, onceApply)
	s.want(t, 10*onceWindow-onceWindow, onceApply)
	s.want(t, top, onceRefused)
	if s.rec.Span != onceWindow || len(s.rec.Older) != 1 {
		t.Fatalf("record %+v: want span %d, 1 older entry", s.rec, onceWindow)
	}
}

func TestOnceMemoryBounded(t *testing.T) {
	var s onceSM
	for q := uint64(1); q <= 1000; q++ {
		s.want(t, q, onceApply)
		if len(s.rec.Older) > onceWindow {
			t.Fatalf("seq %d: %d entries below the highest, window %d", q, len(s.rec.Older), onceWindow)
		}
	}
	// Large results: the newest are kept up to onceWindowBytes, the
	// oldest dropped (a retry of those is refused, not applied again).
	var r *onceRecord
	big := bytes.Repeat([]byte{'x'}, onceWindowBytes/4)
	for q := uint64(1); q <= 8; q++ {
		r = r.record(q, big, nil)
	}
	kept := 0
	for _, e := range r.Older {
		kept += len(e.Result)
	}
	if kept > onceWindowBytes {
		t.Fatalf("%d result bytes kept below the highest, bound %d", kept, onceWindowBytes)
	}
	if v, res, _ := r.check("src", 7); v != onceApplied || !bytes.Equal(res, big) {
		t.Fatalf("seq 7: verdict %d, %d bytes; want its result", v, len(res))
	}
	if v, _, err := r.check("src", 1); v != onceRefused || !errors.Is(err, ErrDuplicate) {
		t.Fatalf("seq 1 (result dropped): verdict %d, %v; want refused", v, err)
	}
}

func TestOnceErrorRecorded(t *testing.T) {
	r := (*onceRecord)(nil).record(4, nil, errors.New("boom"))
	r = r.record(6, []byte("ok"), nil)
	for _, q := range []uint64{4, 6} {
		v, res, err := r.check("src", q)
		if v != onceApplied {
			t.Fatalf("seq %d: verdict %d", q, v)
		}
		if q == 4 && (err == nil || err.Error() != "boom") || q == 6 && (err != nil || string(res) != "ok") {
			t.Fatalf("seq %d: %q, %v", q, res, err)
		}
	}
}

func TestOnceWindowInSnapshot(t *testing.T) {
	var s onceSM
	for _, q := range []uint64{9, 2, 5} {
		s.want(t, q, onceApply)
	}
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, &header{Object: "o", Once: map[string]onceRecord{"src": *s.rec}}, nopSM{}); err != nil {
		t.Fatal(err)
	}
	h, err := restoreSM(nopSM{}, "o", &buf)
	if err != nil {
		t.Fatal(err)
	}
	rec := h.Once["src"]
	restored := onceSM{rec: &rec, applied: s.applied}
	for _, q := range []uint64{9, 2, 5} {
		restored.want(t, q, onceApplied)
	}
	restored.want(t, 4, onceApply)
}

func TestOnceOldHeader(t *testing.T) {
	// A header as written before the window: one record per source, no
	// span. It loads, and every seq below the last is refused as before.
	type oldRecord struct {
		Seq    uint64 `msgpack:"q"`
		Result []byte `msgpack:"r,omitempty"`
		Err    string `msgpack:"e,omitempty"`
	}
	type oldHeader struct {
		Object ObjectID             `msgpack:"o"`
		Index  uint64               `msgpack:"i"`
		Once   map[string]oldRecord `msgpack:"n,omitempty"`
	}
	snap := lengthPrefixed(t, &oldHeader{Object: "o", Index: 3, Once: map[string]oldRecord{"src": {Seq: 7, Result: []byte("r7")}}})
	h, err := restoreSM(nopSM{}, "o", bytes.NewReader(snap))
	if err != nil {
		t.Fatal(err)
	}
	if h.Index != 3 {
		t.Fatalf("index %d, want 3", h.Index)
	}
	rec := h.Once["src"]
	s := onceSM{rec: &rec}
	s.want(t, 7, onceApplied)
	s.want(t, 6, onceRefused) // may have run before the upgrade
	s.want(t, 9, onceApply)
	// The window opens from the old highest up only.
	s.want(t, 8, onceApply)
	s.want(t, 6, onceRefused)
}

// The source records follow the header apart, each bounded: an object
// that saw many sources with large results still snapshots and loads, its
// state read from just after the last record (with the records inside the
// header, about 16 such sources made every snapshot fail), and only a
// single record over the limit is refused.
func TestOnceRecordsBeyondHeaderLimit(t *testing.T) {
	once := map[string]onceRecord{}
	big := bytes.Repeat([]byte("r"), 64<<10)
	for i := range 40 { // 2.5 MiB of results
		seq := uint64(i + 10)
		once[fmt.Sprintf("src-%d", i)] = onceRecord{Seq: seq, Result: big, Span: 3, Older: []onceEntry{{Seq: seq - 1, Result: []byte("x")}}}
	}
	var buf bytes.Buffer
	state := &bytesSM{b: []byte("the state")}
	if err := writeSnapshot(&buf, &header{Object: "o", Once: once}, state); err != nil {
		t.Fatalf("40 sources of 64 KiB results: %v", err)
	}
	got := &bytesSM{}
	h, err := restoreSM(got, "o", &buf)
	if err != nil {
		t.Fatalf("40 sources of 64 KiB results do not load: %v", err)
	}
	if !reflect.DeepEqual(h.Once, once) {
		t.Fatalf("the records loaded differ from those written (%d sources against %d)", len(h.Once), len(once))
	}
	if !bytes.Equal(got.b, state.b) {
		t.Fatalf("restored state %q, want %q", got.b, state.b)
	}
	// Sorted last, so the refusal comes after the other records.
	once["zz-huge"] = onceRecord{Seq: 1, Result: bytes.Repeat([]byte("r"), maxHeader)}
	buf.Reset()
	if err := writeSnapshot(&buf, &header{Object: "o", Once: once}, state); !errors.Is(err, errHeaderTooLarge) {
		t.Fatalf("a source record over the limit: %v, want errHeaderTooLarge", err)
	}
}

// bytesSM's state is b, snapshotted and restored whole.
type bytesSM struct{ b []byte }

func (s *bytesSM) Apply([]byte) ([]byte, error) { return nil, nil }
func (s *bytesSM) Snapshot(w io.Writer) error {
	_, err := w.Write(s.b)
	return err
}
func (s *bytesSM) Restore(r io.Reader) (err error) {
	s.b, err = io.ReadAll(r)
	return err
}

// A snapshot written with the records inside the header (before Sources)
// still loads them.
func TestOnceRecordsInOldHeader(t *testing.T) {
	once := map[string]onceRecord{"a": {Seq: 5, Result: []byte("five"), Span: 5}}
	h, err := restoreSM(nopSM{}, "o", bytes.NewReader(lengthPrefixed(t, &header{Object: "o", Once: once})))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.Once, once) {
		t.Fatalf("loaded %v, want %v", h.Once, once)
	}
}

// Source records that are missing, repeated or declared in absurd numbers
// are refused as malformed, without an allocation by the declared count.
func TestOnceRecordsMalformed(t *testing.T) {
	rec := lengthPrefixed(t, &sourceRecord{Source: "a", Record: onceRecord{Seq: 1}})
	for name, in := range map[string][]byte{
		"missing":  lengthPrefixed(t, &header{Object: "o", Sources: 2}),
		"repeated": append(append(lengthPrefixed(t, &header{Object: "o", Sources: 2}), rec...), rec...),
		"absurd":   append(lengthPrefixed(t, &header{Object: "o", Sources: 1 << 62}), rec...),
		"too long": append(lengthPrefixed(t, &header{Object: "o", Sources: 1}), binary.AppendUvarint(nil, maxHeader+1)...),
		"both":     append(lengthPrefixed(t, &header{Object: "o", Sources: 1, Once: map[string]onceRecord{"b": {Seq: 1}}}), rec...),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := readHeader(bufio.NewReader(bytes.NewReader(in)))
		runtime.ReadMemStats(&after)
		if !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v, want errMalformed", name, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%s: refusing it allocated %d bytes", name, n)
		}
	}
}

// lengthPrefixed is v in msgpack after its uvarint length, as a snapshot
// holds its header and each source record.
func lengthPrefixed(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}
