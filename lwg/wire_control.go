package lwg

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/lwgkit/lwgkit/hwg"
)

// control's msgpack codec, written out field by field: the same bytes
// reflection produces for its struct tags (TestControlCodecMatchesReflection),
// without reflection. A node joining 1,000 LWGs sends one JOIN and one
// FLUSH_OK of 1,000 items each, decoded at every member: reflection, and
// msgpack growing the item slice by reflect.AppendSlice, were a quarter of
// the CPU of such a burst. The decoder reads fields in any order, skips
// unknown ones and takes nil as the zero value, as msgpack does; it
// refuses a field given twice, which msgpack would merge.

var (
	_ msgpack.CustomEncoder = (*control)(nil)
	_ msgpack.CustomDecoder = (*control)(nil)
)

// EncodeMsgpack writes c as a map of its non-empty fields.
func (c *control) EncodeMsgpack(e *msgpack.Encoder) error {
	w := encoder{e: e}
	w.mapLen(1 + count(len(c.Items) > 0, c.View != 0, len(c.Snap) > 0, c.Part != 0, c.Parts != 0, len(c.Owed) > 0, c.At != 0, len(c.Since) > 0))
	w.str("k")
	w.err = cmpErr(w.err, e.EncodeUint8(uint8(c.Kind)))
	if len(c.Items) > 0 {
		w.str("i")
		w.err = cmpErr(w.err, e.EncodeArrayLen(len(c.Items)))
		for i := range c.Items {
			w.item(&c.Items[i])
		}
	}
	w.u64("v", uint64(c.View))
	if len(c.Snap) > 0 {
		w.str("s")
		w.err = cmpErr(w.err, e.EncodeBytes(c.Snap))
	}
	if c.Part != 0 {
		w.str("p")
		w.err = cmpErr(w.err, e.EncodeUint32(c.Part))
	}
	if c.Parts != 0 {
		w.str("n")
		w.err = cmpErr(w.err, e.EncodeUint32(c.Parts))
	}
	if len(c.Owed) > 0 {
		w.str("o")
		w.procs(c.Owed)
	}
	w.u64("t", c.At)
	if len(c.Since) > 0 {
		w.str("a")
		w.err = cmpErr(w.err, e.EncodeArrayLen(len(c.Since)))
		for _, v := range c.Since {
			w.err = cmpErr(w.err, e.EncodeUint64(uint64(v)))
		}
	}
	return w.err
}

// count returns how many of set are true: the fields an omitempty map
// writes.
func count(set ...bool) int {
	n := 0
	for _, s := range set {
		if s {
			n++
		}
	}
	return n
}

// encoder keeps the first error of a run of writes.
type encoder struct {
	e   *msgpack.Encoder
	err error
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (w *encoder) mapLen(n int) { w.err = cmpErr(w.err, w.e.EncodeMapLen(n)) }
func (w *encoder) str(s string) { w.err = cmpErr(w.err, w.e.EncodeString(s)) }

// u64 writes key and v unless v is zero (omitempty).
func (w *encoder) u64(key string, v uint64) {
	if v != 0 {
		w.str(key)
		w.err = cmpErr(w.err, w.e.EncodeUint64(v))
	}
}

// strField writes key and v unless v is empty (omitempty).
func (w *encoder) strField(key, v string) {
	if v != "" {
		w.str(key)
		w.str(v)
	}
}

func (w *encoder) item(it *item) {
	w.mapLen(count(it.LWG != "", it.Ver != 0, it.View != 0, it.Group != "", len(it.Members) > 0, it.From != ""))
	w.strField("l", string(it.LWG))
	w.u64("r", it.Ver)
	w.u64("v", it.View)
	w.strField("g", string(it.Group))
	if len(it.Members) > 0 {
		w.str("m")
		w.procs(it.Members)
	}
	w.strField("f", string(it.From))
}

// errNotMap: the control codec reads structs encoded as maps only.
var errNotMap = errors.New("not a map")

// fieldSet records the one-letter fields of a map read so far. A field
// given twice is refused: reflection would merge the two values (the
// second array decoded over the first's elements), which nothing lwgkit
// writes and no reader should have to agree on.
type fieldSet uint16

// add records key if it is one of fields (at most 16), and fails if it was
// already there; other keys are not recorded.
func (s *fieldSet) add(key, fields string) error {
	if len(key) != 1 {
		return nil
	}
	i := strings.IndexByte(fields, key[0])
	if i < 0 {
		return nil
	}
	if *s&(1<<i) != 0 {
		return fmt.Errorf("field %q given twice", key)
	}
	*s |= 1 << i
	return nil
}

// readFields reads a map of one-letter fields, refusing one of known
// given twice, and calls field with each key; field reads the value (and
// skips one it does not know).
func readFields(d *msgpack.Decoder, known string, field func(k string) error) error {
	n, err := d.DecodeMapLen()
	if err != nil || n < 0 {
		return cmpErr(err, errNotMap)
	}
	var seen fieldSet
	for range n {
		k, err := d.DecodeString()
		if err != nil {
			return err
		}
		if err := seen.add(k, known); err != nil {
			return err
		}
		if err := field(k); err != nil {
			return fmt.Errorf("field %q: %w", k, err)
		}
	}
	return nil
}

// DecodeMsgpack reads what EncodeMsgpack (or reflection) wrote. The input
// has passed wirecheck, so every declared length fits in it.
func (c *control) DecodeMsgpack(d *msgpack.Decoder) error {
	*c = control{}
	return readFields(d, "kivspnota", func(k string) (err error) {
		switch k {
		case "k":
			var v uint8
			v, err = d.DecodeUint8()
			c.Kind = kind(v)
		case "i":
			c.Items, err = decodeItems(d)
		case "v":
			var v uint64
			v, err = d.DecodeUint64()
			c.View = hwg.ViewID(v)
		case "s":
			c.Snap, err = d.DecodeBytes()
		case "p":
			c.Part, err = d.DecodeUint32()
		case "n":
			c.Parts, err = d.DecodeUint32()
		case "o":
			c.Owed, err = decodeMembers(d)
		case "t":
			c.At, err = d.DecodeUint64()
		case "a":
			c.Since, err = decodeViews(d)
		default:
			err = d.Skip()
		}
		return err
	})
}

func decodeItems(d *msgpack.Decoder) ([]item, error) {
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	items := make([]item, n)
	for i := range items {
		if err := decodeItem(d, &items[i]); err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
	}
	return items, nil
}

func decodeItem(d *msgpack.Decoder, it *item) error {
	return readFields(d, "lrvgmf", func(k string) (err error) {
		var s string
		switch k {
		case "l":
			s, err = d.DecodeString()
			it.LWG = ID(s)
		case "r":
			it.Ver, err = d.DecodeUint64()
		case "v":
			it.View, err = d.DecodeUint64()
		case "g":
			s, err = d.DecodeString()
			it.Group = hwg.GroupID(s)
		case "m":
			it.Members, err = decodeMembers(d)
		case "f":
			s, err = d.DecodeString()
			it.From = hwg.GroupID(s)
		default:
			err = d.Skip()
		}
		return err
	})
}

func decodeMembers(d *msgpack.Decoder) ([]hwg.Process, error) {
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	ps := make([]hwg.Process, n)
	for i := range ps {
		p := &ps[i]
		err := readFields(d, "ni", func(k string) (err error) {
			var v uint64
			switch k {
			case "n":
				v, err = d.DecodeUint64()
				p.Node = hwg.NodeID(v)
			case "i":
				p.Inc, err = d.DecodeUint64()
			default:
				err = d.Skip()
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return ps, nil
}

func decodeViews(d *msgpack.Decoder) ([]hwg.ViewID, error) {
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	vs := make([]hwg.ViewID, n)
	for i := range vs {
		v, err := d.DecodeUint64()
		if err != nil {
			return nil, err
		}
		vs[i] = hwg.ViewID(v)
	}
	return vs, nil
}
