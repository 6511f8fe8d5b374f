package rsm

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// onceWindow is how many seqs below the highest applied one a source's
// record tracks exactly. A constant, not a Config field: the record is
// replicated state, and replicas configured differently would decide a
// seq differently and diverge.
const onceWindow = 64

// onceWindowBytes bounds the results a record keeps for seqs below its
// highest (the highest's result is always kept, as before the window):
// the newest are kept, older ones are dropped, and a retry of a seq whose
// result was dropped gets ErrDuplicate. A source's record in a snapshot is
// bounded by maxHeader.
const onceWindowBytes = 64 << 10

// onceRecord is what a replica knows of one OriginID.Source: the highest
// Seq applied and its result, and, within the Span seqs below it, which
// were applied (Older, with results). Seqs in [Seq-Span, Seq) not in Older
// were never applied; seqs below Seq-Span are refused. A header written
// before the window has Span 0: every seq below Seq is refused, as it was.
type onceRecord struct {
	Seq    uint64      `msgpack:"q"`
	Result []byte      `msgpack:"r,omitempty"`
	Err    string      `msgpack:"e,omitempty"`
	Span   uint64      `msgpack:"w,omitempty"`
	Older  []onceEntry `msgpack:"o,omitempty"` // ascending Seq, all ≥ Seq-Span
}

// onceEntry is one applied seq below a record's highest.
type onceEntry struct {
	Seq    uint64 `msgpack:"q"`
	Result []byte `msgpack:"r,omitempty"`
	Err    string `msgpack:"e,omitempty"`
	// Dropped: applied, but its result went over onceWindowBytes.
	Dropped bool `msgpack:"x,omitempty"`
}

// onceVerdict is what a replica does with a seq of a source.
type onceVerdict uint8

const (
	onceApply   onceVerdict = iota // never applied, within the window: apply it
	onceApplied                    // applied: answer its recorded result
	onceRefused                    // below the window, or its result was dropped
)

// check decides seq against the record (nil: the source was never seen).
// For onceApplied it returns the recorded result; for onceRefused the
// error to return, wrapping ErrDuplicate.
func (r *onceRecord) check(source string, seq uint64) (onceVerdict, []byte, error) {
	switch {
	case r == nil || seq > r.Seq:
		return onceApply, nil, nil
	case seq == r.Seq:
		return onceApplied, r.Result, errOf(r.Err)
	case seq < r.Seq-r.Span:
		return onceRefused, nil, fmt.Errorf("%w: %s seq %d is below the window [%d, %d]: it may or may not have been applied",
			ErrDuplicate, source, seq, r.Seq-r.Span, r.Seq)
	}
	i, found := slices.BinarySearchFunc(r.Older, seq, func(e onceEntry, s uint64) int { return cmp.Compare(e.Seq, s) })
	if !found {
		return onceApply, nil, nil
	}
	if e := &r.Older[i]; !e.Dropped {
		return onceApplied, e.Result, errOf(e.Err)
	}
	return onceRefused, nil, fmt.Errorf("%w: %s seq %d was applied, its result is no longer kept", ErrDuplicate, source, seq)
}

// record notes seq (which check said to apply) as applied with res and
// err, and returns the record to keep.
func (r *onceRecord) record(seq uint64, res []byte, err error) *onceRecord {
	e := onceEntry{Seq: seq, Result: res}
	if err != nil {
		e.Err = err.Error()
	}
	switch {
	case r == nil:
		// Nothing of this source was ever applied: every seq below is
		// known to be unapplied.
		return &onceRecord{Seq: seq, Result: res, Err: e.Err, Span: min(onceWindow, seq)}
	case seq > r.Seq:
		// The seqs between the old highest and seq were never applied
		// (the old one was the highest), so the known span grows by the
		// gap, up to the window.
		span := uint64(onceWindow)
		if gap := seq - r.Seq; gap < onceWindow {
			span = min(onceWindow, r.Span+gap)
		}
		older := append(r.Older, onceEntry{Seq: r.Seq, Result: r.Result, Err: r.Err})
		low := seq - span
		older = slices.DeleteFunc(older, func(o onceEntry) bool { return o.Seq < low })
		r = &onceRecord{Seq: seq, Result: res, Err: e.Err, Span: span, Older: older}
	default:
		i, _ := slices.BinarySearchFunc(r.Older, seq, func(o onceEntry, s uint64) int { return cmp.Compare(o.Seq, s) })
		r.Older = slices.Insert(r.Older, i, e)
	}
	r.trim()
	return r
}

// trim drops the results of the oldest entries past onceWindowBytes.
func (r *onceRecord) trim() {
	kept := 0
	for i := len(r.Older) - 1; i >= 0; i-- {
		e := &r.Older[i]
		if e.Dropped {
			continue
		}
		kept += len(e.Result) + len(e.Err)
		if kept > onceWindowBytes {
			e.Result, e.Err, e.Dropped = nil, "", true
		}
	}
}

func errOf(s string) error {
	if s == "" {
		return nil
	}
	return errors.New(s)
}
