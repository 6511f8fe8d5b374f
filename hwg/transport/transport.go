// Package transport carries opaque frames between lwgkit nodes: TCP with
// length-prefixed frames, one connection per pair of nodes shared by every
// group, batched writes, reconnection with backoff and a handshake that
// names the cluster, the node and its incarnation; and an in-memory
// transport with the same interface for tests.
//
// It knows nothing of the protocol: package hwg encodes its messages into
// frames and decodes what arrives.
package transport

import "errors"

// Peer is one incarnation of a node.
type Peer struct {
	Node uint64 `msgpack:"n"`
	Inc  uint64 `msgpack:"i"`
}

// Inbound is a frame received from a peer. Frame is owned by the receiver.
type Inbound struct {
	From  Peer
	Frame []byte
}

// Transport moves frames between nodes. Every method is safe for
// concurrent use.
type Transport interface {
	// Send queues frame for node to and returns at once: frames to one
	// node leave in order, coalesced into as few writes as possible.
	// Delivery is best effort: a frame may be lost if the connection
	// breaks. Send returns ErrClosed, ErrFrameTooLarge or ErrUnknownPeer.
	// The transport owns frame after the call.
	Send(to uint64, frame []byte) error
	// Inbound delivers received frames in order per peer. It is closed by
	// Close.
	Inbound() <-chan Inbound
	// AddPeer records the address of node n (seed addresses are learned
	// from handshakes).
	AddPeer(n uint64, addr string)
	// Stats returns the traffic counters so far.
	Stats() Stats
	// Close stops the transport and closes its connections.
	Close() error
}

// PartsSender is a Transport that also sends a frame made of parts without
// copying them together first: a bulk sender serves a body it shares (a
// spooled snapshot's memory) and learns when the transport is done with
// it. Both transports here implement it.
type PartsSender interface {
	// SendParts queues the frame head followed by the body parts, as Send
	// queues one frame: the receiver gets one frame of those bytes, in
	// order with the frames Send queued before and after it. head becomes
	// the transport's, as Send's frame does; body stays the caller's,
	// unchanged until release. release is called exactly once, when the
	// transport is done with body: once it is written (into the socket or
	// the writer's buffer), or when the frame is dropped (a full queue, a
	// failed dial, a connection gone with no successor, Close), or before
	// SendParts returns an error. It may be called on any goroutine, and
	// must not block or call the transport.
	SendParts(to uint64, head []byte, body [][]byte, release func()) error
}

// Stats counts traffic, for benchmarks and the idle-cost check.
type Stats struct {
	FramesSent, FramesReceived uint64
	BytesSent, BytesReceived   uint64 // on the wire, headers included
	Writes                     uint64 // write system calls (batching shows as Writes < FramesSent)
}

// Errors.
var (
	ErrClosed        = errors.New("transport: closed")
	ErrFrameTooLarge = errors.New("transport: frame exceeds the size limit")
	ErrUnknownPeer   = errors.New("transport: no address for peer")
	ErrWrongCluster  = errors.New("transport: peer belongs to another cluster")
	ErrStalePeer     = errors.New("transport: peer incarnation is older than one already seen")
	ErrBadHandshake  = errors.New("transport: malformed handshake")
	ErrBadFrame      = errors.New("transport: malformed frame")
)
