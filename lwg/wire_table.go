package lwg

import (
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/lwgkit/lwgkit/hwg"
)

// The carrier table snapshot's msgpack codec, field by field as control's
// (wire_control.go): the bytes reflection writes for tableSnap's tags
// (TestTableCodecMatchesReflection), except that the gone records come in
// key order, where reflection takes the map's iteration order. A node joining a
// carrier of n LWGs waits for one member to encode the table and then
// decodes it itself, both on the join's path: by reflection, 1.4 and
// 2.4 ms at n = 1,000.

var (
	_ msgpack.CustomEncoder = (*tableSnap)(nil)
	_ msgpack.CustomDecoder = (*tableSnap)(nil)
)

// EncodeMsgpack writes s as reflection does: both fields, nil when empty.
func (s *tableSnap) EncodeMsgpack(e *msgpack.Encoder) error {
	w := encoder{e: e}
	w.mapLen(2)
	w.str("e")
	if s.E == nil {
		w.err = cmpErr(w.err, e.EncodeNil())
	} else {
		w.err = cmpErr(w.err, e.EncodeArrayLen(len(s.E)))
	}
	for i := range s.E {
		se := &s.E[i]
		n := 2
		if se.Fl != nil {
			n++
		}
		w.mapLen(n)
		w.str("l")
		w.str(string(se.L))
		w.str("v")
		w.view(&se.View)
		if fl := se.Fl; fl != nil {
			w.str("f")
			w.mapLen(1 + count(len(fl.Joins) > 0, len(fl.Leaves) > 0, fl.To != ""))
			w.str("n")
			w.procs(fl.Need)
			w.procsField("j", fl.Joins)
			w.procsField("l", fl.Leaves)
			w.strField("t", string(fl.To))
		}
	}
	w.str("g")
	if s.G == nil {
		w.err = cmpErr(w.err, e.EncodeNil())
		return w.err
	}
	w.mapLen(len(s.G))
	for _, l := range sortedKeys(s.G) {
		g := s.G[l]
		w.str(string(l))
		w.mapLen(1 + count(g.To != "", len(g.Members) > 0))
		w.str("v")
		w.err = cmpErr(w.err, e.EncodeUint64(g.View))
		w.strField("t", string(g.To))
		w.procsField("m", g.Members)
	}
	return w.err
}

func (w *encoder) view(v *View) {
	w.mapLen(2)
	w.str("id")
	w.err = cmpErr(w.err, w.e.EncodeUint64(v.ID))
	w.str("m")
	w.procs(v.Members)
}

// procs writes ps, nil as nil.
func (w *encoder) procs(ps []hwg.Process) {
	if ps == nil {
		w.err = cmpErr(w.err, w.e.EncodeNil())
		return
	}
	w.err = cmpErr(w.err, w.e.EncodeArrayLen(len(ps)))
	for _, p := range ps {
		w.mapLen(2)
		w.str("n")
		w.err = cmpErr(w.err, w.e.EncodeUint64(uint64(p.Node)))
		w.str("i")
		w.err = cmpErr(w.err, w.e.EncodeUint64(p.Inc))
	}
}

// procsField writes key and ps unless ps is empty (omitempty).
func (w *encoder) procsField(key string, ps []hwg.Process) {
	if len(ps) > 0 {
		w.str(key)
		w.procs(ps)
	}
}

// DecodeMsgpack reads what EncodeMsgpack (or reflection) wrote; the input
// has passed wirecheck. Nil reads as the zero value, as with reflection.
func (s *tableSnap) DecodeMsgpack(d *msgpack.Decoder) error {
	*s = tableSnap{}
	return readFields(d, "eg", func(k string) error {
		switch k {
		case "e":
			return s.decodeEntries(d)
		case "g":
			return s.decodeGone(d)
		}
		return d.Skip()
	})
}

func (s *tableSnap) decodeEntries(d *msgpack.Decoder) error {
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 {
		return err
	}
	s.E = make([]tableSnapEntry, n)
	for i := range s.E {
		se := &s.E[i]
		err := readFields(d, "lvf", func(k string) (err error) {
			switch k {
			case "l":
				var l string
				l, err = d.DecodeString()
				se.L = ID(l)
			case "v":
				err = decodeView(d, &se.View)
			case "f":
				se.Fl, err = decodeFlush(d)
			default:
				err = d.Skip()
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *tableSnap) decodeGone(d *msgpack.Decoder) error {
	n, err := d.DecodeMapLen()
	if err != nil || n < 0 {
		return err
	}
	s.G = make(map[ID]gone, n)
	for range n {
		l, err := d.DecodeString()
		if err != nil {
			return err
		}
		var g gone
		if isNil(d) {
			err = d.DecodeNil()
		} else {
			err = readFields(d, "vtm", func(k string) (err error) {
				switch k {
				case "v":
					g.View, err = d.DecodeUint64()
				case "t":
					var t string
					t, err = d.DecodeString()
					g.To = hwg.GroupID(t)
				case "m":
					g.Members, err = decodeMembers(d)
				default:
					err = d.Skip()
				}
				return err
			})
		}
		if err != nil {
			return err
		}
		s.G[ID(l)] = g // a key given twice keeps the last, as reflection does
	}
	return nil
}

// isNil reports whether the next value is nil.
func isNil(d *msgpack.Decoder) bool {
	c, err := d.PeekCode()
	return err == nil && c == msgpcode.Nil
}

func decodeView(d *msgpack.Decoder, v *View) error {
	*v = View{}
	if isNil(d) {
		return d.DecodeNil()
	}
	return readFields(d, "m", func(k string) (err error) {
		switch k {
		case "id":
			v.ID, err = d.DecodeUint64()
		case "m":
			v.Members, err = decodeMembers(d)
		default:
			err = d.Skip()
		}
		return err
	})
}

func decodeFlush(d *msgpack.Decoder) (*flush, error) {
	if isNil(d) {
		return nil, d.DecodeNil()
	}
	fl := &flush{}
	err := readFields(d, "njlt", func(k string) (err error) {
		switch k {
		case "n":
			fl.Need, err = decodeMembers(d)
		case "j":
			fl.Joins, err = decodeMembers(d)
		case "l":
			fl.Leaves, err = decodeMembers(d)
		case "t":
			var t string
			t, err = d.DecodeString()
			fl.To = hwg.GroupID(t)
		default:
			err = d.Skip()
		}
		return err
	})
	return fl, err
}
