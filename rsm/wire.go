package rsm

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/lwgkit/lwgkit/hwg"
)

// Two kinds of messages. Ordered ones ride the object's LWG multicasts and
// are seen by every replica in the same order; direct ones (state
// transfer) go point to point as hwg.Directs and may be lost.
//
// Every message begins with a kind byte followed by uvarints and
// length-prefixed byte strings, hand-encoded: proposals are the hot path,
// and a fixed layout is easy to fuzz.

// Kinds of ordered messages.
const (
	kindPropose  = 1 // origin, seq, command: apply it
	kindRead     = 2 // origin, seq: the origin answers its query here
	kindRestored = 3 // the sender's state is restored
	kindClaim    = 4 // no member holds the state: the sender's own, for the choice of a seed
	kindHold     = 5 // answer to a claim: the sender holds the state in this view
	kindOnce     = 6 // origin, seq, OriginID, command: apply it unless that OriginID was applied
	kindBatch    = 7 // origin, count, entries (propose, once or read): each in order, as if sent alone
	kindForget   = 8 // members absent from the view that may hold the state are gone for good (Object.ForgetAbsent)
)

// foreignKinds and above open messages of layers that share the object's
// group (see Node.Multicast): replicas skip them (they still count in the
// stream's points).
const foreignKinds = 0x80

// Kinds of direct messages.
const (
	kindOffer = 16 // donor → joiner: a small snapshot, inside the offer
	kindFetch = 17 // joiner → donor: send bytes [offset, offset+n) of gen
	kindChunk = 18 // donor → joiner: bytes at offset (last: size reached)
	kindWant  = 19 // joiner → members: I wait for state from point on
	kindGone  = 20 // donor → joiner: that generation is gone
	kindSnap  = 21 // donor → joiner: a stored snapshot to fetch: avail bytes readable; size and checksum once written
)

// sumLen is the length of a snapshot's checksum in a SNAP message: its
// XXH64, big-endian (see sumOf).
const sumLen = 8

// errMalformed marks a message that failed to decode.
var errMalformed = errors.New("rsm: malformed message")

// ordered is a decoded ordered message.
type ordered struct {
	kind   byte
	origin hwg.Process
	seq    uint64
	cmd    []byte   // kindPropose, kindOnce
	claim  claim    // kindClaim
	once   OriginID // kindOnce
	// kindBatch: n entries, encoded in entries (see batchReader).
	n       uint64
	entries []byte
}

// claim describes the state a member has when no member of its view holds
// the object's state: from before it was excluded, or a local snapshot.
type claim struct {
	has     bool
	lineage uint64
	index   uint64
	empty   uint64 // complete rounds the sender saw in which nobody had a state
	// waits: the sender knows of a member away (excluded) that may hold
	// the state and come back with it; the round decides nothing.
	waits bool
	// forgot: waits and empty were overridden by a ForgetAbsent in the
	// view the claim was made in; it counts so only in that view.
	forgot bool
	// view: the view the claim was made for (0: not said, from an older
	// node). A claim made while the LWG holds for a view change is
	// delivered in a later view, whose install may have dropped a member
	// that its waits and empty did not count on (see claimRound).
	view uint64
}

// better orders claims: a state over none, a newer lineage, more commands.
func (c claim) better(d claim) bool {
	if c.has != d.has {
		return c.has
	}
	if c.lineage != d.lineage {
		return c.lineage > d.lineage
	}
	return c.index > d.index
}

func appendProcess(b []byte, p hwg.Process) []byte {
	b = binary.AppendUvarint(b, uint64(p.Node))
	return binary.AppendUvarint(b, p.Inc)
}

func encodePropose(origin hwg.Process, seq uint64, cmd []byte) []byte {
	b := make([]byte, 0, len(cmd)+24)
	b = append(b, kindPropose)
	b = appendProcess(b, origin)
	b = binary.AppendUvarint(b, seq)
	return append(b, cmd...)
}

func encodeOnce(origin hwg.Process, seq uint64, id OriginID, cmd []byte) []byte {
	b := make([]byte, 0, len(cmd)+len(id.Source)+48)
	b = append(b, kindOnce)
	b = appendProcess(b, origin)
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendUvarint(b, uint64(len(id.Source)))
	b = append(b, id.Source...)
	b = binary.AppendUvarint(b, id.Seq)
	return append(b, cmd...)
}

func encodeRead(origin hwg.Process, seq uint64) []byte {
	b := append(make([]byte, 0, 24), kindRead)
	b = appendProcess(b, origin)
	return binary.AppendUvarint(b, seq)
}

// outgoing is a Propose, ProposeFrom or Read waiting in an object's outbox.
type outgoing struct {
	kind byte // kindPropose, kindOnce or kindRead
	seq  uint64
	once OriginID
	cmd  []byte
}

// size is about what o adds to a batch.
func (o outgoing) size() int { return len(o.cmd) + len(o.once.Source) + 24 }

// encodeOutgoing encodes what an object's outbox sends in one message: an
// entry alone as it always was, several as a batch.
func encodeOutgoing(origin hwg.Process, out []outgoing) []byte {
	if len(out) == 1 {
		switch o := out[0]; o.kind {
		case kindPropose:
			return encodePropose(origin, o.seq, o.cmd)
		case kindOnce:
			return encodeOnce(origin, o.seq, o.once, o.cmd)
		default:
			return encodeRead(origin, o.seq)
		}
	}
	size := 24
	for _, o := range out {
		size += o.size()
	}
	b := make([]byte, 0, size)
	b = append(b, kindBatch)
	b = appendProcess(b, origin)
	b = binary.AppendUvarint(b, uint64(len(out)))
	for _, o := range out {
		b = append(b, o.kind)
		b = binary.AppendUvarint(b, o.seq)
		if o.kind == kindOnce {
			b = binary.AppendUvarint(b, uint64(len(o.once.Source)))
			b = append(b, o.once.Source...)
			b = binary.AppendUvarint(b, o.once.Seq)
		}
		if o.kind != kindRead {
			b = binary.AppendUvarint(b, uint64(len(o.cmd)))
			b = append(b, o.cmd...)
		}
	}
	return b
}

// batchReader walks the entries of a decoded batch.
type batchReader struct {
	r      reader
	left   uint64
	origin hwg.Process
}

func (m ordered) batch() batchReader {
	return batchReader{r: reader{b: m.entries}, left: m.n, origin: m.origin}
}

// next returns the next entry, as the message it stands for; false at the
// end or at a malformed entry (br.r.err says which).
func (br *batchReader) next() (ordered, bool) {
	if br.left == 0 || br.r.err != nil {
		return ordered{}, false
	}
	br.left--
	r := &br.r
	if len(r.b) == 0 {
		r.err = fmt.Errorf("%w: batch ends early", errMalformed)
		return ordered{}, false
	}
	m := ordered{kind: r.b[0], origin: br.origin}
	r.b = r.b[1:]
	m.seq = r.uvarint()
	switch m.kind {
	case kindPropose:
		m.cmd = r.bytes()
	case kindOnce:
		m.once.Source, m.once.Seq = string(r.bytes()), r.uvarint()
		m.cmd = r.bytes()
	case kindRead:
	default:
		r.err = fmt.Errorf("%w: kind %d in a batch", errMalformed, m.kind)
	}
	return m, r.err == nil
}

func encodeRestored() []byte { return []byte{kindRestored} }

func encodeHold() []byte { return []byte{kindHold} }

func encodeForget() []byte { return []byte{kindForget} }

func encodeClaim(c claim) []byte {
	b := []byte{kindClaim, 0}
	if c.has {
		b[1] |= 1
	}
	if c.waits {
		b[1] |= 2
	}
	if c.forgot {
		b[1] |= 4
	}
	if c.view != 0 {
		b[1] |= 8 // the view follows empty (older claims end there)
	}
	b = binary.AppendUvarint(b, c.lineage)
	b = binary.AppendUvarint(b, c.index)
	b = binary.AppendUvarint(b, c.empty)
	if c.view != 0 {
		b = binary.AppendUvarint(b, c.view)
	}
	return b
}

// reader decodes the fields of one message.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad varint", errMalformed)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) process() hwg.Process {
	return hwg.Process{Node: hwg.NodeID(r.uvarint()), Inc: r.uvarint()}
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: length %d over the %d bytes left", errMalformed, n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) end() error {
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errMalformed, len(r.b))
	}
	return r.err
}

// decodeOrdered parses an ordered message. The command aliases b.
func decodeOrdered(b []byte) (ordered, error) {
	if len(b) == 0 {
		return ordered{}, fmt.Errorf("%w: empty", errMalformed)
	}
	m := ordered{kind: b[0]}
	r := reader{b: b[1:]}
	switch m.kind {
	case kindPropose:
		m.origin, m.seq = r.process(), r.uvarint()
		if r.err == nil {
			m.cmd, r.b = r.b, nil
		}
	case kindOnce:
		m.origin, m.seq = r.process(), r.uvarint()
		m.once.Source, m.once.Seq = string(r.bytes()), r.uvarint()
		if r.err == nil {
			m.cmd, r.b = r.b, nil
		}
	case kindRead:
		m.origin, m.seq = r.process(), r.uvarint()
	case kindBatch:
		m.origin, m.n = r.process(), r.uvarint()
		if r.err != nil {
			break
		}
		// Every entry takes two bytes at least; check them all now, so
		// that a replica applies a batch whole or not at all.
		if m.n < 2 || m.n > uint64(len(r.b))/2 {
			return ordered{}, fmt.Errorf("%w: batch of %d entries in %d bytes", errMalformed, m.n, len(r.b))
		}
		m.entries = r.b
		br := m.batch()
		for {
			if _, ok := br.next(); !ok {
				break
			}
		}
		if br.r.err != nil {
			return ordered{}, br.r.err
		}
		r.b = br.r.b
	case kindRestored, kindHold, kindForget:
	case kindClaim:
		if len(r.b) == 0 || r.b[0] > 15 {
			return ordered{}, fmt.Errorf("%w: bad claim", errMalformed)
		}
		flags := r.b[0]
		m.claim.has, m.claim.waits, m.claim.forgot = flags&1 != 0, flags&2 != 0, flags&4 != 0
		r.b = r.b[1:]
		m.claim.lineage, m.claim.index, m.claim.empty = r.uvarint(), r.uvarint(), r.uvarint()
		if flags&8 != 0 {
			if m.claim.view = r.uvarint(); m.claim.view == 0 {
				return ordered{}, fmt.Errorf("%w: claim for view 0", errMalformed)
			}
		}
	default:
		return ordered{}, fmt.Errorf("%w: unknown kind %d", errMalformed, m.kind)
	}
	if err := r.end(); err != nil {
		return ordered{}, err
	}
	return m, nil
}

// point is a position in an object's delivery stream: Seq deliveries into
// view View (Seq 0 is the install itself). Every replica numbers the
// stream alike, so a snapshot taken at a point is the same state wherever
// it was taken.
type point struct {
	View uint64
	Seq  uint64
}

func (p point) less(q point) bool { return p.View < q.View || p.View == q.View && p.Seq < q.Seq }

func (p point) String() string { return fmt.Sprintf("%d.%d@%d", p.View>>32, uint32(p.View), p.Seq) }

// direct is a decoded direct message. Object names the object throughout.
type direct struct {
	kind   byte
	object ObjectID
	gen    uint64 // offer, fetch, chunk, gone: the snapshot generation
	at     point  // offer: the snapshot's point; want: the first point the joiner can use
	size   uint64 // offer, snap: the snapshot's length (snap: 0 while the donor still writes it)
	avail  uint64 // snap: bytes the donor can serve now
	sum    []byte // snap: the snapshot's checksum once size is known, else nil
	offset uint64 // fetch, chunk
	n      uint64 // fetch: bytes wanted
	data   []byte // chunk; offer: the whole snapshot
}

func encodeDirect(d direct) []byte {
	b := make([]byte, 0, 48+len(d.object)+len(d.data))
	b = append(b, d.kind)
	b = binary.AppendUvarint(b, uint64(len(d.object)))
	b = append(b, d.object...)
	switch d.kind {
	case kindOffer:
		b = binary.AppendUvarint(b, d.gen)
		b = binary.AppendUvarint(b, d.at.View)
		b = binary.AppendUvarint(b, d.at.Seq)
		b = binary.AppendUvarint(b, d.size)
		b = append(b, d.data...)
	case kindFetch:
		b = binary.AppendUvarint(b, d.gen)
		b = binary.AppendUvarint(b, d.offset)
		b = binary.AppendUvarint(b, d.n)
	case kindChunk:
		return append(appendChunkHeader(b[:0], d.object, d.gen, d.offset), d.data...)
	case kindWant:
		b = binary.AppendUvarint(b, d.at.View)
		b = binary.AppendUvarint(b, d.at.Seq)
	case kindGone:
		b = binary.AppendUvarint(b, d.gen)
	case kindSnap:
		b = binary.AppendUvarint(b, d.gen)
		b = binary.AppendUvarint(b, d.at.View)
		b = binary.AppendUvarint(b, d.at.Seq)
		b = binary.AppendUvarint(b, d.avail)
		b = binary.AppendUvarint(b, d.size)
		b = append(b, d.sum...)
	}
	return b
}

// maxChunkHeader bounds a chunk's encoding up to its data, beside its
// object id: the kind and three uvarints.
const maxChunkHeader = 1 + 3*binary.MaxVarintLen64

// appendChunkHeader appends a chunk's encoding up to its data, which
// follows to the end of the message.
func appendChunkHeader(b []byte, object ObjectID, gen, offset uint64) []byte {
	b = append(b, kindChunk)
	b = binary.AppendUvarint(b, uint64(len(object)))
	b = append(b, object...)
	b = binary.AppendUvarint(b, gen)
	return binary.AppendUvarint(b, offset)
}

// decodeDirect parses a direct message. Chunk data aliases b.
func decodeDirect(b []byte) (direct, error) {
	if len(b) == 0 {
		return direct{}, fmt.Errorf("%w: empty", errMalformed)
	}
	d := direct{kind: b[0]}
	r := reader{b: b[1:]}
	d.object = ObjectID(r.bytes())
	switch d.kind {
	case kindOffer:
		d.gen, d.at.View, d.at.Seq, d.size = r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint()
		if r.err == nil && len(r.b) > 0 {
			d.data, r.b = r.b, nil
		}
	case kindFetch:
		d.gen, d.offset, d.n = r.uvarint(), r.uvarint(), r.uvarint()
	case kindChunk:
		d.gen, d.offset = r.uvarint(), r.uvarint()
		if r.err == nil {
			d.data, r.b = r.b, nil
		}
	case kindWant:
		d.at.View, d.at.Seq = r.uvarint(), r.uvarint()
	case kindGone:
		d.gen = r.uvarint()
	case kindSnap:
		d.gen, d.at.View, d.at.Seq, d.avail, d.size = r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint()
		switch {
		case r.err != nil:
		case d.size == 0 && len(r.b) != 0:
			return direct{}, fmt.Errorf("%w: a snapshot being written with a sum", errMalformed)
		case d.size != 0 && len(r.b) != sumLen:
			return direct{}, fmt.Errorf("%w: snapshot sum of %d bytes, want %d", errMalformed, len(r.b), sumLen)
		case d.size != 0 && d.avail != d.size:
			return direct{}, fmt.Errorf("%w: %d of a written snapshot's %d bytes readable", errMalformed, d.avail, d.size)
		case d.size != 0:
			d.sum, r.b = r.b[:sumLen:sumLen], nil
		}
	default:
		return direct{}, fmt.Errorf("%w: unknown direct kind %d", errMalformed, d.kind)
	}
	if err := r.end(); err != nil {
		return direct{}, err
	}
	if d.object == "" {
		return direct{}, fmt.Errorf("%w: no object", errMalformed)
	}
	return d, nil
}
