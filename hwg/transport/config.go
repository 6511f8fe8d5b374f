package transport

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Defaults for the zero fields of TCPConfig.
const (
	DefaultDialTimeout      = 5 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultIdleReadTimeout  = 30 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
	DefaultBackoffMin       = 50 * time.Millisecond
	DefaultBackoffMax       = 5 * time.Second
	DefaultSendQueue        = 4096
	DefaultInboundBuffer    = 1024
)

// TCPConfig configures NewTCP. Only Cluster, Self and Listen are required.
type TCPConfig struct {
	// Cluster names the cluster; a peer announcing another name is
	// rejected with ErrWrongCluster.
	Cluster string
	// Self is this node: Node must not be 0 and Inc must be at least 1. A
	// restarted node should use a higher Inc so peers replace their old
	// connection to it.
	Self Peer
	// Listen is the address to listen on, such as "127.0.0.1:0".
	Listen string
	// Advertise is the address peers should dial to reach this node. It
	// defaults to the actual listen address, which is not reachable from
	// elsewhere if Listen is a wildcard such as ":7946".
	Advertise string
	// Seeds are addresses dialed at start to learn peers: their NodeIDs
	// come from the handshake. A seed that cannot be reached is retried
	// with backoff until it answers or the transport closes; a seed that
	// turns out to be this node, or to belong to another cluster, is
	// dropped.
	Seeds []string
	// MaxFrame bounds a frame's length, header excluded (default
	// DefaultMaxFrame). Send rejects a longer frame with ErrFrameTooLarge;
	// a peer announcing one is disconnected.
	MaxFrame int
	// DialTimeout bounds the TCP connect (default DefaultDialTimeout).
	DialTimeout time.Duration
	// HandshakeTimeout bounds the handshake exchange on a new connection
	// (default DefaultHandshakeTimeout). It also bounds how long a
	// connection replaced by a newer one to the same node may take to
	// wind down (see TCP).
	HandshakeTimeout time.Duration
	// IdleReadTimeout detects peers that stall inside a frame (default
	// DefaultIdleReadTimeout). A connection that is idle between frames
	// is left alone, however long: heartbeats belong to the layer above.
	// Once the first byte of a frame has arrived, every read from the
	// socket must return within IdleReadTimeout until the frame is
	// complete, or the connection is closed. A slow but progressing
	// sender of a large frame is therefore never cut off; one that stops
	// sending mid-frame is.
	IdleReadTimeout time.Duration
	// WriteTimeout bounds each batched write (default
	// DefaultWriteTimeout); a peer that stops reading is disconnected
	// once its socket buffer is full for this long.
	WriteTimeout time.Duration
	// BackoffMin and BackoffMax bound the delay between failed dials to a
	// node (defaults DefaultBackoffMin and DefaultBackoffMax). The delay
	// doubles after each failure, with jitter, and resets on a successful
	// handshake.
	BackoffMin, BackoffMax time.Duration
	// SendQueue is the number of frames queued for one node while they
	// wait for the connection's writer (default DefaultSendQueue). When
	// it is full, Send drops the oldest queued frame to make room: the
	// layer above retransmits, and the newest frames (the latest state,
	// heartbeats) are the most useful ones. Drops are counted in
	// (*TCP).Dropped.
	SendQueue int
	// InboundBuffer is the capacity of the Inbound channel (default
	// DefaultInboundBuffer).
	InboundBuffer int
	// Logger receives the transport's log lines; nil means silent.
	Logger hclog.Logger
}

// withDefaults validates c and returns it with its zero fields set.
func (c TCPConfig) withDefaults() (TCPConfig, error) {
	var errs []error
	if c.Cluster == "" {
		errs = append(errs, errors.New("Cluster is required"))
	} else if len(c.Cluster) > maxNameLen {
		errs = append(errs, fmt.Errorf("Cluster is longer than %d bytes", maxNameLen))
	}
	if c.Self.Node == 0 {
		errs = append(errs, errors.New("Self.Node must not be 0"))
	}
	if c.Self.Inc == 0 {
		errs = append(errs, errors.New("Self.Inc must be at least 1"))
	}
	if c.Listen == "" {
		errs = append(errs, errors.New("Listen is required"))
	}
	if len(c.Advertise) > maxNameLen {
		errs = append(errs, fmt.Errorf("Advertise is longer than %d bytes", maxNameLen))
	}
	if c.MaxFrame < 0 || c.SendQueue < 0 || c.InboundBuffer < 0 {
		errs = append(errs, errors.New("MaxFrame, SendQueue and InboundBuffer must not be negative"))
	}
	if c.DialTimeout < 0 || c.HandshakeTimeout < 0 || c.IdleReadTimeout < 0 ||
		c.WriteTimeout < 0 || c.BackoffMin < 0 || c.BackoffMax < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("transport: invalid TCPConfig: %w", err)
	}
	setDefault(&c.MaxFrame, DefaultMaxFrame)
	setDefault(&c.DialTimeout, DefaultDialTimeout)
	setDefault(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&c.IdleReadTimeout, DefaultIdleReadTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.BackoffMin, DefaultBackoffMin)
	setDefault(&c.BackoffMax, DefaultBackoffMax)
	setDefault(&c.SendQueue, DefaultSendQueue)
	setDefault(&c.InboundBuffer, DefaultInboundBuffer)
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c, nil
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}
