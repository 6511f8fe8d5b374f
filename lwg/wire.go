package lwg

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/internal/wirecheck"
)

// Every payload the Core multicasts in an HWG begins with a tag byte. Data
// is hand-encoded because it is the hot path; control messages are msgpack.
const (
	tagData    byte = 1 // <DATA, lwgid, view, payload>
	tagControl byte = 2 // one control message
	// tagBatch: the data of several multicasts one node made at once on
	// one carrier, each <lwgid, view, len, payload>, delivered as if they
	// were consecutive messages. One HWG message instead of many is what
	// lets busy LWGs sharing a carrier cost less than an HWG each.
	tagBatch byte = 3
	// tagHandles: a batch whose entries name their LWG by a handle, a
	// small number the sender binds to the LWG id in the carrier's
	// current view (see handles.go): <HANDLES, view, (handle·2+bind,
	// [lwgid if bind], lwgview, len, payload)...>. A receiver finds the
	// endpoint in an array instead of looking the id up.
	tagHandles byte = 4
)

// maxIDLen bounds an LWG id so that a data header stays small.
const maxIDLen = 255

// encodeData frames one application payload for LWG l sent in view.
func encodeData(l ID, view uint64, payload []byte) []byte {
	b := make([]byte, 0, 2+len(l)+binary.MaxVarintLen64+len(payload))
	b = append(b, tagData, byte(len(l)))
	b = append(b, l...)
	b = binary.AppendUvarint(b, view)
	return append(b, payload...)
}

// dataEntry is one multicast waiting to be sent in a batch.
type dataEntry struct {
	l       ID
	ep      *endpoint // the sender's endpoint, which keeps its handle
	view    uint64
	payload []byte
	// Set when the batch goes with handles: the entry's handle, and
	// whether the entry binds it to l.
	h    uint64
	bind bool
}

// encodeBatch frames several payloads of one carrier in one message.
func encodeBatch(es []dataEntry) []byte {
	n := 1
	for _, e := range es {
		n += 1 + len(e.l) + 2*binary.MaxVarintLen64 + len(e.payload)
	}
	b := make([]byte, 0, n)
	b = append(b, tagBatch)
	for _, e := range es {
		b = appendEntry(appendID(b, e.l), e.view, e.payload)
	}
	return b
}

// appendID appends an LWG id after its length.
func appendID(b []byte, l ID) []byte {
	b = append(b, byte(len(l)))
	return append(b, l...)
}

// appendEntry appends what every batch entry ends with: its view, and its
// payload after the payload's length.
func appendEntry(b []byte, view uint64, payload []byte) []byte {
	b = binary.AppendUvarint(b, view)
	b = binary.AppendUvarint(b, uint64(len(payload)))
	return append(b, payload...)
}

// Why readID and readEntry refuse an entry.
var (
	errIDLength    = errors.New("bad LWG id length")
	errViewNumber  = errors.New("bad view number")
	errEntryLength = errors.New("bad length")
)

// readID reads an id written by appendID off the front of b.
func readID(b []byte) (id, rest []byte, err error) {
	if len(b) < 1 || b[0] == 0 || len(b) < 1+int(b[0]) {
		return nil, nil, errIDLength
	}
	n := int(b[0])
	return b[1 : 1+n], b[1+n:], nil
}

// readEntry reads what appendEntry wrote off the front of b.
func readEntry(b []byte) (view uint64, payload, rest []byte, err error) {
	view, k := binary.Uvarint(b)
	if k <= 0 {
		return 0, nil, nil, errViewNumber
	}
	b = b[k:]
	size, k := binary.Uvarint(b)
	if k <= 0 || size > uint64(len(b)-k) {
		return 0, nil, nil, errEntryLength
	}
	return view, b[k : k+int(size)], b[k+int(size):], nil
}

// decodeBatch calls f for each entry of a tagBatch payload, in order, once
// the whole payload has parsed: a malformed batch delivers nothing. The id
// and payload f gets alias b.
func decodeBatch(b []byte, f func(id []byte, view uint64, payload []byte)) error {
	if len(b) < 1 || b[0] != tagBatch {
		return fmt.Errorf("%w: not a batch", ErrMalformed)
	}
	for pass := range 2 {
		for rest := b[1:]; len(rest) > 0; {
			id, rest1, err := readID(rest)
			if err != nil {
				return fmt.Errorf("%w: batch entry with a %w", ErrMalformed, err)
			}
			view, payload, rest2, err := readEntry(rest1)
			if err != nil {
				return fmt.Errorf("%w: batch entry with a %w", ErrMalformed, err)
			}
			rest = rest2
			if pass == 1 {
				f(id, view, payload)
			}
		}
		if len(b) == 1 {
			return fmt.Errorf("%w: empty batch", ErrMalformed)
		}
	}
	return nil
}

// uvarintLen is the length of x as a uvarint.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// encodeHandles frames a carrier's data sent in carrier view epoch, each
// entry under its handle (e.h), and with its LWG id where e.bind.
func encodeHandles(epoch uint64, es []dataEntry) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, e := range es {
		n += 1 + len(e.l) + 3*binary.MaxVarintLen64 + len(e.payload)
	}
	b := make([]byte, 0, n)
	b = append(b, tagHandles)
	b = binary.AppendUvarint(b, epoch)
	for _, e := range es {
		x := e.h << 1
		if e.bind {
			x |= 1
		}
		b = binary.AppendUvarint(b, x)
		if e.bind {
			b = appendID(b, e.l)
		}
		b = appendEntry(b, e.view, e.payload)
	}
	return b
}

// decodeHandles parses a tagHandles payload: the carrier view it was sent
// in, and each entry in order, given to f once the whole payload has
// parsed (a malformed one gives nothing). id is nil unless the entry
// binds its handle; id and payload alias b.
func decodeHandles(b []byte, f func(h uint64, id []byte, view uint64, payload []byte)) (epoch uint64, err error) {
	if len(b) < 1 || b[0] != tagHandles {
		return 0, fmt.Errorf("%w: not a handle batch", ErrMalformed)
	}
	epoch, k := binary.Uvarint(b[1:])
	if k <= 0 {
		return 0, fmt.Errorf("%w: handle batch with a bad view number", ErrMalformed)
	}
	body := b[1+k:]
	if len(body) == 0 {
		return 0, fmt.Errorf("%w: empty handle batch", ErrMalformed)
	}
	for pass := range 2 {
		for rest := body; len(rest) > 0; {
			x, k := binary.Uvarint(rest)
			if k <= 0 || x>>1 > maxHandle {
				return 0, fmt.Errorf("%w: handle batch entry with a bad handle", ErrMalformed)
			}
			rest = rest[k:]
			var id []byte
			var err error
			if x&1 == 1 {
				if id, rest, err = readID(rest); err != nil {
					return 0, fmt.Errorf("%w: handle batch entry with a %w", ErrMalformed, err)
				}
			}
			view, payload, rest2, err := readEntry(rest)
			if err != nil {
				return 0, fmt.Errorf("%w: handle batch entry with a %w", ErrMalformed, err)
			}
			rest = rest2
			if pass == 1 {
				f(x>>1, id, view, payload)
			}
		}
	}
	return epoch, nil
}

// decodeData parses a tagData payload. The returned id and payload alias
// b: the id is looked up as is, without a string made of it.
func decodeData(b []byte) (id []byte, view uint64, payload []byte, err error) {
	if len(b) < 2 || b[0] != tagData {
		return nil, 0, nil, fmt.Errorf("%w: short data header", ErrMalformed)
	}
	n := int(b[1])
	if n == 0 || len(b) < 2+n {
		return nil, 0, nil, fmt.Errorf("%w: bad LWG id length %d", ErrMalformed, n)
	}
	id = b[2 : 2+n]
	view, k := binary.Uvarint(b[2+n:])
	if k <= 0 {
		return nil, 0, nil, fmt.Errorf("%w: bad view number", ErrMalformed)
	}
	return id, view, b[2+n+k:], nil
}

// kind is the type of a control message.
type kind uint8

// Control messages. The first group is ordered in a carrier HWG and applied
// to its LWG table; the second in the directory HWG. Snapshot serves both.
const (
	kJoin     kind = iota + 1 // Items[].LWG (+Ver): add the sender
	kLeave                    // Items[].LWG: remove the sender
	kFlushOK                  // Items[].LWG+View: the sender holds for the flush of View
	kSwitch                   // Items[0]: LWG+View, move it to Group
	kAbort                    // Items[0]: LWG+View, cancel its switch
	kAdopt                    // Items[0]: LWG+View+Members, now carried here
	kSnapshot                 // Snap: part Part of Parts of the replicated state at the install of View
	kBind                     // Items[].LWG+Ver+Group(base): bind the LWG (or just the base if LWG is empty)
	kRebind                   // Items[0]: LWG+Ver, now on Group (after a switch)
	kReg                      // Items[].Group: the sender is becoming a member of each
	kUnreg                    // Items[].Group: the sender is no longer a member
	kMember                   // Items[].Group: the sender (or Members) holds its table
	kindLimit
)

var kindNames = [...]string{"", "join", "leave", "flushok", "switch", "abort", "adopt", "snapshot", "bind", "rebind", "reg", "unreg", "member"}

// carrierKind reports whether k is a directory update about carriers,
// whose items name a carrier and no LWG.
func (k kind) carrierKind() bool { return k == kReg || k == kUnreg || k == kMember }

func (k kind) String() string {
	if k < kindLimit && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// control is one control message.
type control struct {
	Kind  kind       `msgpack:"k"`
	Items []item     `msgpack:"i,omitempty"`
	View  hwg.ViewID `msgpack:"v,omitempty"`
	Snap  []byte     `msgpack:"s,omitempty"`
	// Part and Parts (kSnapshot): a large snapshot goes in Parts messages
	// from one sender, numbered from 0; Parts 0 means 1.
	Part  uint32 `msgpack:"p,omitempty"`
	Parts uint32 `msgpack:"n,omitempty"`
	// Owed (kSnapshot): the members its sender owed the snapshot at the
	// install it was taken at, sorted. They hold no state until it is
	// delivered, and a joiner applies what it buffered meanwhile with
	// them owed, as the members that held the state applied it (the
	// carrier's table does not count them in an announcement).
	Owed []hwg.Process `msgpack:"o,omitempty"`
	// At (kSnapshot): the control messages delivered in View before the
	// snapshot was taken; 0 for one taken at the install, the sender's
	// count for a state it kept when it was cut off.
	At uint64 `msgpack:"t,omitempty"`
	// Since (kSnapshot): for each of Owed, the view whose install admitted
	// it. A member's log covers every snapshot taken from then on, so a
	// late snapshot ends the debt of those it covers only.
	Since []hwg.ViewID `msgpack:"a,omitempty"`
}

// parts is how many messages c's snapshot spans.
func (c *control) parts() uint32 { return max(c.Parts, 1) }

// item is the per-LWG part of a control message; which fields matter
// depends on the kind.
type item struct {
	LWG     ID            `msgpack:"l,omitempty"`
	Ver     uint64        `msgpack:"r,omitempty"`
	View    uint64        `msgpack:"v,omitempty"`
	Group   hwg.GroupID   `msgpack:"g,omitempty"`
	Members []hwg.Process `msgpack:"m,omitempty"`
	// From (kBind): the carrier the LWG moved to, found dead by the sender.
	From hwg.GroupID `msgpack:"f,omitempty"`
}

func encodeControl(c *control) []byte {
	// Sized for a batch of items with short ids up front: growing the
	// buffer of a 1,000-item FLUSH_OK by doubling cost more than writing it.
	buf := bytes.NewBuffer(make([]byte, 0, 64+len(c.Snap)+32*len(c.Items)))
	buf.WriteByte(tagControl)
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(buf)
	if err := enc.Encode(c); err != nil {
		// Only plain structs of known types are encoded.
		panic(fmt.Sprintf("lwg: encoding %v: %v", c.Kind, err))
	}
	return buf.Bytes()
}

// decodeControl parses a tagControl payload and checks what every kind
// needs, so the appliers can trust their input's shape.
func decodeControl(b []byte) (*control, error) {
	if len(b) < 1 || b[0] != tagControl {
		return nil, fmt.Errorf("%w: not a control message", ErrMalformed)
	}
	var c control
	if err := wirecheck.Unmarshal(b[1:], &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if c.Kind == 0 || c.Kind >= kindLimit {
		return nil, fmt.Errorf("%w: unknown control kind %d", ErrMalformed, c.Kind)
	}
	for _, it := range c.Items {
		if len(it.LWG) > maxIDLen || (it.LWG == "" && c.Kind != kBind && !c.Kind.carrierKind()) {
			return nil, fmt.Errorf("%w: %v item with bad LWG id %q", ErrMalformed, c.Kind, it.LWG)
		}
	}
	switch c.Kind {
	case kSwitch, kAbort, kAdopt, kRebind:
		if len(c.Items) != 1 {
			return nil, fmt.Errorf("%w: %v needs one item, has %d", ErrMalformed, c.Kind, len(c.Items))
		}
	case kReg, kUnreg, kMember:
		if len(c.Items) == 0 {
			return nil, fmt.Errorf("%w: %v without a carrier", ErrMalformed, c.Kind)
		}
	}
	if len(c.Since) > 0 && len(c.Since) != len(c.Owed) {
		return nil, fmt.Errorf("%w: %v names the admission of %d members, owes %d", ErrMalformed, c.Kind, len(c.Since), len(c.Owed))
	}
	if c.Part >= c.parts() || (c.Kind != kSnapshot && c.Parts > 0) {
		return nil, fmt.Errorf("%w: %v part %d of %d", ErrMalformed, c.Kind, c.Part, c.Parts)
	}
	if (c.Kind == kSwitch || c.Kind == kRebind || c.Kind == kBind || c.Kind.carrierKind()) && slices.ContainsFunc(c.Items, func(it item) bool { return it.Group == "" }) {
		return nil, fmt.Errorf("%w: %v item without a group", ErrMalformed, c.Kind)
	}
	return &c, nil
}
