package hwg

import (
	"encoding/binary"
	"fmt"

	"github.com/lwgkit/lwgkit/hwg/transport"
)

// Direct is a point-to-point message between two processes, outside every
// group: it has no order with group traffic and may be lost, like a
// datagram. Layers above use it for bulk transfers (state transfer) that
// must not ride the total order.
type Direct struct {
	From    Process
	Payload []byte
	frame   []byte // the received frame Payload is in
}

// Release gives a received Direct's buffer back for reuse, so that bulk
// transfers do not allocate a fresh buffer per message. Payload (and any
// slice of it) must not be used afterwards. Calling it is optional: a
// Direct never released is garbage collected. Only the reader calls it,
// once.
func (d Direct) Release() {
	if d.frame != nil {
		transport.PutBuffer(d.frame)
	}
}

// directTag opens a frame that carries a Direct instead of protocol
// messages: 0xc1 is the one byte msgpack never uses, so no protocol frame
// can begin with it. The tag is followed by the addressee's incarnation
// (8 bytes, big-endian) and the payload.
const (
	directTag    = 0xc1
	directHeader = 9
)

// directQueue is how many received Directs may wait for the reader; more
// are dropped (and counted), since Directs are best effort anyway.
const directQueue = 1024

// Send sends payload to process to, outside every group, and returns at
// once. Errors are the transport's (no address for the node, the payload
// over the frame limit, a closed transport). Delivery is best effort, in
// order per destination node while a connection lasts; another
// incarnation of to drops it. Safe for concurrent use; payload is copied.
func (n *Node) Send(to Process, payload []byte) error {
	b := transport.GetBuffer(directHeader + len(payload))
	b = append(b, directTag)
	b = binary.BigEndian.AppendUint64(b, to.Inc)
	b = append(b, payload...)
	if err := n.tr.Send(uint64(to.Node), b); err != nil {
		return fmt.Errorf("hwg: direct to %v: %w", to, err)
	}
	return nil
}

// DirectBuffer returns an empty message with room for a payload of n
// bytes, for SendBuffer: a bulk sender appends its payload to it and hands
// it over, instead of Send copying every payload once more.
func DirectBuffer(n int) []byte {
	return transport.GetBuffer(directHeader + n)[:directHeader]
}

// SendBuffer is Send for a message made by DirectBuffer and appended to:
// the payload is buf[len of DirectBuffer's result:]. buf becomes the
// node's, and must not be used after the call, whatever it returns.
func (n *Node) SendBuffer(to Process, buf []byte) error {
	if len(buf) < directHeader {
		return fmt.Errorf("hwg: direct to %v: %w: not made by DirectBuffer", to, ErrMalformed)
	}
	buf[0] = directTag
	binary.BigEndian.PutUint64(buf[1:directHeader], to.Inc)
	if err := n.tr.Send(uint64(to.Node), buf); err != nil {
		return fmt.Errorf("hwg: direct to %v: %w", to, err)
	}
	return nil
}

// SendParts is Send for a payload made of head followed by the body
// parts, which the transport writes from where they are when it can
// (transport.PartsSender; else they are copied into one message): a bulk
// sender serves memory it shares without copying it. head is copied (it
// is small); body stays the caller's, unchanged until release, which is
// called exactly once when the node is done with it: after its write, when
// the message is dropped, or before SendParts returns an error.
func (n *Node) SendParts(to Process, head []byte, body [][]byte, release func()) error {
	ps, ok := n.tr.(transport.PartsSender)
	size := directHeader + len(head)
	if !ok {
		for _, p := range body {
			size += len(p)
		}
	}
	b := transport.GetBuffer(size)
	b = append(b, directTag)
	b = binary.BigEndian.AppendUint64(b, to.Inc)
	b = append(b, head...)
	var err error
	if ok {
		err = ps.SendParts(uint64(to.Node), b, body, release)
	} else {
		for _, p := range body {
			b = append(b, p...)
		}
		release()
		err = n.tr.Send(uint64(to.Node), b)
	}
	if err != nil {
		return fmt.Errorf("hwg: direct to %v: %w", to, err)
	}
	return nil
}

// Direct returns the channel of Directs received by this process. It is
// never closed; a Direct that finds the channel full is dropped.
func (n *Node) Direct() <-chan Direct { return n.direct }

// DirectDropped counts received Directs dropped because the reader was
// behind, or addressed to another incarnation.
func (n *Node) DirectDropped() uint64 { return n.directDropped.Load() }

// receiveDirect hands a Direct frame to the reader; it reports false for a
// frame that is not one.
func (n *Node) receiveDirect(from Process, frame []byte) bool {
	if len(frame) == 0 || frame[0] != directTag {
		return false
	}
	if len(frame) < directHeader || binary.BigEndian.Uint64(frame[1:directHeader]) != n.cfg.Self.Inc {
		n.directDropped.Add(1)
		transport.PutBuffer(frame)
		return true
	}
	// The frame is the reader's now: no copy (a state transfer's chunks are
	// a megabyte each); the reader may Release it.
	d := Direct{From: from, Payload: frame[directHeader:], frame: frame}
	select {
	case n.direct <- d:
	default:
		n.directDropped.Add(1)
		transport.PutBuffer(frame)
	}
	return true
}
