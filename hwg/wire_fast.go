package hwg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// A hand-written codec for frames: the same bytes msgpack's reflection
// produces for frame and Message (TestFastEncodeMatchesMsgpack), written
// and read without reflection. Every message of the normal case (Forward,
// Order, Ack) goes through it, hundreds of entries per frame, and
// reflection cost more than the rest of the node together. The rare view
// change parts (FlushState, Decision) are encoded and decoded by msgpack
// in place. Input the fast decoder does not expect, such as another
// encoder's choice of integer widths for the struct fields, is decoded by
// msgpack instead, so both accept the same frames.

// appendFrame encodes f as msgpack would.
func appendFrame(b []byte, f *frame) ([]byte, error) {
	if len(f.Msgs) == 0 {
		b = append(b, 0x81)
	} else {
		b = append(b, 0x82)
	}
	b = appendStr(b, "e")
	b = appendU64(b, f.Epoch)
	if len(f.Msgs) == 0 {
		return b, nil
	}
	b = appendStr(b, "m")
	b = appendArrayLen(b, len(f.Msgs))
	for i := range f.Msgs {
		var err error
		if b, err = appendMessage(b, &f.Msgs[i]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func appendMessage(b []byte, m *Message) ([]byte, error) {
	// Fields in declaration order; omitempty ones only when set. Subject
	// has no IsZero method, so msgpack never omits it.
	n := 5 // t g f o x
	for _, set := range [...]bool{m.View != 0, len(m.Entries) > 0, m.Seq != 0, m.Commit != 0, m.Stable != 0,
		!m.Ballot.IsZero(), m.State != nil, m.Decision != nil} {
		if set {
			n++
		}
	}
	b = append(b, 0x80|byte(n))
	b = appendStr(b, "t")
	b = append(b, 0xcc, byte(m.Type))
	b = appendStr(b, "g")
	b = appendStr(b, string(m.Group))
	b = appendStr(b, "f")
	b = appendProcess(b, m.From)
	b = appendStr(b, "o")
	b = appendProcess(b, m.To)
	if m.View != 0 {
		b = appendStr(b, "v")
		b = appendU64(b, uint64(m.View))
	}
	if len(m.Entries) > 0 {
		b = appendStr(b, "e")
		b = appendArrayLen(b, len(m.Entries))
		for i := range m.Entries {
			b = appendEntry(b, &m.Entries[i])
		}
	}
	for _, f := range [...]struct {
		key string
		v   uint64
	}{{"q", m.Seq}, {"c", m.Commit}, {"s", m.Stable}} {
		if f.v != 0 {
			b = appendStr(b, f.key)
			b = appendU64(b, f.v)
		}
	}
	if !m.Ballot.IsZero() {
		b = appendStr(b, "b")
		b = append(b, 0x82)
		b = appendStr(b, "r")
		b = appendU64(b, m.Ballot.Round)
		b = appendStr(b, "n")
		b = appendU64(b, uint64(m.Ballot.Node))
	}
	if m.State != nil {
		b = appendStr(b, "fs")
		var err error
		if b, err = appendMsgpack(b, m.State); err != nil {
			return nil, err
		}
	}
	if m.Decision != nil {
		b = appendStr(b, "d")
		var err error
		if b, err = appendMsgpack(b, m.Decision); err != nil {
			return nil, err
		}
	}
	b = appendStr(b, "x")
	return appendProcess(b, m.Subject), nil
}

func appendMsgpack(b []byte, v any) ([]byte, error) {
	enc, err := msgpack.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, enc...), nil
}

// appendEntry encodes e as Entry.EncodeMsgpack does.
func appendEntry(b []byte, e *Entry) []byte {
	b = append(b, 0x90|entryFields)
	b = appendUint(b, e.Seq)
	b = appendUint(b, uint64(e.ID.Sender.Node))
	b = appendUint(b, e.ID.Sender.Inc)
	b = appendUint(b, uint64(e.ID.View))
	b = appendUint(b, e.ID.Seq)
	if e.Payload == nil {
		return append(b, 0xc0)
	}
	switch n := len(e.Payload); {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xc5)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0xc6)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
	}
	return append(b, e.Payload...)
}

func appendProcess(b []byte, p Process) []byte {
	b = append(b, 0x82)
	b = appendStr(b, "n")
	b = appendU64(b, uint64(p.Node))
	b = appendStr(b, "i")
	return appendU64(b, p.Inc)
}

// appendU64 is how msgpack encodes a uint64 field: always 9 bytes.
func appendU64(b []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

// appendUint is msgpack's compact unsigned integer (Encoder.EncodeUint).
func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= math.MaxInt8:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return appendU64(b, v)
}

func appendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xda)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0xdb)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
	}
	return append(b, s...)
}

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

// errSlowPath means the fast decoder met input it leaves to msgpack.
var errSlowPath = errors.New("hwg: not for the fast decoder")

// fastDecoder reads a frame that checkMsgpack has already validated, so
// every declared length fits in the input and nesting is bounded. Any
// surprise returns errSlowPath.
type fastDecoder struct {
	b     []byte
	i     int
	group GroupID   // the last group id read: frames repeat it, so share it
	slab  []byte    // room left for copies of small payloads (copyPayload)
	msgs  []Message // an array to reuse for the frame's messages, if large enough
}

func (d *fastDecoder) frame() (frame, error) {
	var f frame
	n, err := d.mapLen()
	if err != nil {
		return f, err
	}
	for range n {
		switch d.key() {
		case "e":
			f.Epoch, err = d.uint()
		case "m":
			f.Msgs, err = d.messages()
		default:
			err = errSlowPath
		}
		if err != nil {
			return f, err
		}
	}
	if d.i != len(d.b) {
		return f, errSlowPath
	}
	return f, nil
}

func (d *fastDecoder) messages() ([]Message, error) {
	n, err := d.arrayLen()
	if err != nil {
		return nil, err
	}
	var msgs []Message
	if cap(d.msgs) >= n {
		msgs = d.msgs[:n]
		clear(msgs) // fields a message omits are zero
	} else {
		msgs = make([]Message, n)
	}
	for i := range msgs {
		if err := d.message(&msgs[i]); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

func (d *fastDecoder) message(m *Message) error {
	n, err := d.mapLen()
	if err != nil {
		return err
	}
	for range n {
		var v uint64
		switch d.key() {
		case "t":
			v, err = d.uint()
			if v > math.MaxUint8 {
				return errSlowPath
			}
			m.Type = MsgType(v)
		case "g":
			m.Group, err = d.groupID()
		case "f":
			m.From, err = d.process()
		case "o":
			m.To, err = d.process()
		case "x":
			m.Subject, err = d.process()
		case "v":
			v, err = d.uint()
			m.View = ViewID(v)
		case "q":
			m.Seq, err = d.uint()
		case "c":
			m.Commit, err = d.uint()
		case "s":
			m.Stable, err = d.uint()
		case "e":
			m.Entries, err = d.entries()
		case "b":
			m.Ballot, err = d.ballot()
		case "fs":
			m.State = new(FlushState)
			err = d.msgpack(m.State)
		case "d":
			m.Decision = new(Decision)
			err = d.msgpack(m.Decision)
		default:
			return errSlowPath
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// msgpack decodes the next value into v with msgpack.
func (d *fastDecoder) msgpack(v any) error {
	if d.b[d.i] == 0xc0 {
		return errSlowPath // nil: msgpack leaves the pointer nil
	}
	start := d.i
	if err := d.skip(0); err != nil {
		return err
	}
	if err := msgpack.Unmarshal(d.b[start:d.i], v); err != nil {
		return errSlowPath
	}
	return nil
}

func (d *fastDecoder) entries() ([]Entry, error) {
	n, err := d.arrayLen()
	if err != nil {
		return nil, err
	}
	es := make([]Entry, n)
	for i := range es {
		if err := d.entry(&es[i]); err != nil {
			return nil, err
		}
	}
	return es, nil
}

func (d *fastDecoder) entry(e *Entry) error {
	if n, err := d.arrayLen(); err != nil || n != entryFields {
		return errSlowPath
	}
	var v [5]uint64
	for k := range v {
		var err error
		if v[k], err = d.uint(); err != nil {
			return err
		}
	}
	*e = Entry{Seq: v[0], ID: MsgID{Sender: Process{Node: NodeID(v[1]), Inc: v[2]}, View: ViewID(v[3]), Seq: v[4]}}
	if d.b[d.i] == 0xc0 {
		d.i++
		return nil
	}
	var n int
	switch c := d.b[d.i]; c {
	case 0xc4, 0xd9:
		n, d.i = int(d.b[d.i+1]), d.i+2
	case 0xc5, 0xda:
		n, d.i = int(binary.BigEndian.Uint16(d.b[d.i+1:])), d.i+3
	case 0xc6, 0xdb:
		n, d.i = int(binary.BigEndian.Uint32(d.b[d.i+1:])), d.i+5
	default:
		if c&0xe0 != 0xa0 { // fixstr, which msgpack also reads as bytes
			return errSlowPath
		}
		n, d.i = int(c&0x1f), d.i+1
	}
	// A copy: a payload the application keeps must not pin its frame.
	e.Payload = d.copyPayload(d.b[d.i : d.i+n])
	d.i += n
	return nil
}

// payloadSlab is the size of the blocks small payloads are copied into:
// one allocation for dozens of status-sized payloads rather than one
// each. A payload kept pins at most its block; larger payloads get an
// allocation of their own.
const (
	payloadSlab  = 4 << 10
	slabPayloads = 512 // the largest payload copied into a block
)

// copyPayload returns a copy of p that shares nothing with the frame.
func (d *fastDecoder) copyPayload(p []byte) []byte {
	n := len(p)
	if n == 0 || n > slabPayloads { // empty: not nil, as msgpack decodes it
		return append(make([]byte, 0, n), p...)
	}
	if len(d.slab) < n {
		d.slab = make([]byte, payloadSlab)
	}
	out := d.slab[:n:n] // capped: an append to it cannot reach the next
	copy(out, p)
	d.slab = d.slab[n:]
	return out
}

func (d *fastDecoder) process() (Process, error) {
	var p Process
	n, err := d.mapLen()
	if err != nil {
		return p, err
	}
	for range n {
		var v uint64
		switch d.key() {
		case "n":
			v, err = d.uint()
			p.Node = NodeID(v)
		case "i":
			p.Inc, err = d.uint()
		default:
			return p, errSlowPath
		}
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

func (d *fastDecoder) ballot() (Ballot, error) {
	var b Ballot
	n, err := d.mapLen()
	if err != nil {
		return b, err
	}
	for range n {
		var v uint64
		switch d.key() {
		case "r":
			b.Round, err = d.uint()
		case "n":
			v, err = d.uint()
			b.Node = NodeID(v)
		default:
			return b, errSlowPath
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

func (d *fastDecoder) groupID() (GroupID, error) {
	s, ok := d.str()
	if !ok {
		return "", errSlowPath
	}
	if string(s) != string(d.group) {
		d.group = GroupID(s)
	}
	return d.group, nil
}

// key reads a map key; "" (which no field has) if it is not a short
// string.
func (d *fastDecoder) key() string {
	c := d.b[d.i]
	if c&0xe0 != 0xa0 {
		return ""
	}
	n := int(c & 0x1f)
	d.i += 1 + n
	return string(d.b[d.i-n : d.i]) // no allocation: compared, not kept
}

func (d *fastDecoder) str() ([]byte, bool) {
	var n int
	switch c := d.b[d.i]; {
	case c&0xe0 == 0xa0:
		n, d.i = int(c&0x1f), d.i+1
	case c == 0xd9:
		n, d.i = int(d.b[d.i+1]), d.i+2
	case c == 0xda:
		n, d.i = int(binary.BigEndian.Uint16(d.b[d.i+1:])), d.i+3
	case c == 0xdb:
		n, d.i = int(binary.BigEndian.Uint32(d.b[d.i+1:])), d.i+5
	default:
		return nil, false
	}
	d.i += n
	return d.b[d.i-n : d.i], true
}

// uint reads an unsigned integer in any of msgpack's unsigned forms.
func (d *fastDecoder) uint() (uint64, error) {
	c := d.b[d.i]
	var v uint64
	switch {
	case c <= 0x7f:
		v, d.i = uint64(c), d.i+1
	case c == 0xcc:
		v, d.i = uint64(d.b[d.i+1]), d.i+2
	case c == 0xcd:
		v, d.i = uint64(binary.BigEndian.Uint16(d.b[d.i+1:])), d.i+3
	case c == 0xce:
		v, d.i = uint64(binary.BigEndian.Uint32(d.b[d.i+1:])), d.i+5
	case c == 0xcf:
		v, d.i = binary.BigEndian.Uint64(d.b[d.i+1:]), d.i+9
	default:
		return 0, errSlowPath
	}
	return v, nil
}

func (d *fastDecoder) mapLen() (int, error) {
	switch c := d.b[d.i]; {
	case c&0xf0 == 0x80:
		d.i++
		return int(c & 0x0f), nil
	case c == 0xde:
		d.i += 3
		return int(binary.BigEndian.Uint16(d.b[d.i-2:])), nil
	}
	return 0, errSlowPath
}

func (d *fastDecoder) arrayLen() (int, error) {
	switch c := d.b[d.i]; {
	case c&0xf0 == 0x90:
		d.i++
		return int(c & 0x0f), nil
	case c == 0xdc:
		d.i += 3
		return int(binary.BigEndian.Uint16(d.b[d.i-2:])), nil
	case c == 0xdd:
		d.i += 5
		return int(binary.BigEndian.Uint32(d.b[d.i-4:])), nil
	}
	return 0, errSlowPath
}

// skip passes over one value (checkMsgpack has bounded its lengths and
// depth).
func (d *fastDecoder) skip(depth int) error {
	if depth > maxDepth {
		return errSlowPath
	}
	c := d.b[d.i]
	switch {
	case c&0xf0 == 0x80, c == 0xde, c == 0xdf:
		n, err := d.containerLen(c, 0x80, 0xde)
		if err != nil {
			return err
		}
		for range 2 * n {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case c&0xf0 == 0x90, c == 0xdc, c == 0xdd:
		n, err := d.containerLen(c, 0x90, 0xdc)
		if err != nil {
			return err
		}
		for range n {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	}
	start := d.i
	if err := skipScalar(d.b, &d.i); err != nil {
		d.i = start
		return errSlowPath
	}
	return nil
}

// containerLen reads the length of a fixmap/fixarray (fix) or a 16- or
// 32-bit one (code16, code16+1).
func (d *fastDecoder) containerLen(c, fix, code16 byte) (int, error) {
	switch c {
	case code16:
		d.i += 3
		return int(binary.BigEndian.Uint16(d.b[d.i-2:])), nil
	case code16 + 1:
		d.i += 5
		return int(binary.BigEndian.Uint32(d.b[d.i-4:])), nil
	}
	d.i++
	return int(c - fix), nil
}

// skipScalar passes over one value that is not a map or an array.
func skipScalar(b []byte, i *int) error {
	c := b[*i]
	*i++
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return nil
	case c&0xe0 == 0xa0:
		return skip(i, b, int(c&0x1f))
	case c == 0xc4 || c == 0xd9:
		return skip(i, b, 1+int(b[*i]))
	case c == 0xc5 || c == 0xda:
		return skip(i, b, 2+int(binary.BigEndian.Uint16(b[*i:])))
	case c == 0xc6 || c == 0xdb:
		return skip(i, b, 4+int(binary.BigEndian.Uint32(b[*i:])))
	case c == 0xc7:
		return skip(i, b, 2+int(b[*i]))
	case c == 0xc8:
		return skip(i, b, 3+int(binary.BigEndian.Uint16(b[*i:])))
	case c == 0xc9:
		return skip(i, b, 5+int(binary.BigEndian.Uint32(b[*i:])))
	case c == 0xca, c == 0xce, c == 0xd2:
		return skip(i, b, 4)
	case c == 0xcb, c == 0xcf, c == 0xd3:
		return skip(i, b, 8)
	case c == 0xcc, c == 0xd0:
		return skip(i, b, 1)
	case c == 0xcd, c == 0xd1:
		return skip(i, b, 2)
	case c >= 0xd4 && c <= 0xd8:
		return skip(i, b, 1+(1<<(c-0xd4)))
	}
	return errSlowPath
}

func skip(i *int, b []byte, n int) error {
	if n < 0 || len(b)-*i < n {
		return fmt.Errorf("truncated at byte %d", *i)
	}
	*i += n
	return nil
}
