package transport

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	testCluster = "test"
	waitLimit   = 10 * time.Second // upper bound for anything a test waits for
)

// logBuf collects a transport's log lines so tests can check the reason a
// connection was closed.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// node is a TCP transport under test with its log.
type node struct {
	*TCP
	log *logBuf
}

// newNode starts a transport for node id, incarnation inc, on a free
// loopback port unless cfg.Listen says otherwise. It is closed at the end
// of the test; its log is printed if the test failed or if
// TRANSPORT_TEST_LOG is set.
func newNode(t *testing.T, id, inc uint64, edit func(*TCPConfig)) *node {
	t.Helper()
	lb := &logBuf{}
	cfg := TCPConfig{
		Cluster:          testCluster,
		Self:             Peer{Node: id, Inc: inc},
		Listen:           "127.0.0.1:0",
		HandshakeTimeout: 2 * time.Second,
		BackoffMin:       5 * time.Millisecond,
		BackoffMax:       50 * time.Millisecond,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:   "n" + uitoa(id),
			Level:  hclog.Debug,
			Output: lb,
		}),
	}
	if edit != nil {
		edit(&cfg)
	}
	tr, err := NewTCP(cfg)
	if err != nil {
		t.Fatalf("NewTCP(node %d): %v", id, err)
	}
	t.Cleanup(func() {
		tr.Close()
		if t.Failed() || os.Getenv("TRANSPORT_TEST_LOG") != "" {
			t.Logf("log of node %d inc %d:\n%s", id, inc, lb)
		}
	})
	return &node{TCP: tr, log: lb}
}

func uitoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitLog waits until the node's log contains s.
func waitLog(t *testing.T, n *node, s string) {
	t.Helper()
	waitFor(t, "log line "+s, func() bool { return strings.Contains(n.log.String(), s) })
}

// recv returns the next inbound frame, failing the test after waitLimit.
func recv(t *testing.T, tr Transport) Inbound {
	t.Helper()
	select {
	case in, ok := <-tr.Inbound():
		if !ok {
			t.Fatal("Inbound closed")
		}
		return in
	case <-time.After(waitLimit):
		t.Fatal("timed out waiting for a frame")
	}
	panic("unreachable")
}

// expectNothing checks that no frame arrives within d.
func expectNothing(t *testing.T, tr Transport, d time.Duration) {
	t.Helper()
	select {
	case in := <-tr.Inbound():
		t.Fatalf("unexpected frame %q from %v", in.Frame, in.From)
	case <-time.After(d):
	}
}

// sendUntil sends frame from one transport to node to until the receiver
// gets a frame from it, tolerating the losses of a connection being set
// up, and returns what arrived.
func sendUntil(t *testing.T, from Transport, to uint64, frame string, rcv Transport) Inbound {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		if err := from.Send(to, []byte(frame)); err != nil {
			t.Fatalf("Send to %d: %v", to, err)
		}
		select {
		case in := <-rcv.Inbound():
			return in
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("frame to %d never arrived", to)
		}
	}
}

// drain discards whatever is in the inbound channel right now.
func drain(tr Transport) {
	for {
		select {
		case <-tr.Inbound():
		default:
			return
		}
	}
}

// connections counts every connection a transport holds open, the ones
// still in their handshake and the ones about to be closed included.
func (t *TCP) connections() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.conns)
}

// current returns the live connection to node n, or nil.
func (t *TCP) current(n uint64) *conn {
	t.mu.RLock()
	r := t.peers[n]
	t.mu.RUnlock()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conn
}

// dialing reports whether a dial to node n is under way or scheduled.
func (t *TCP) dialing(n uint64) bool {
	t.mu.RLock()
	r := t.peers[n]
	t.mu.RUnlock()
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dialing
}

// rawHello is a handshake as a test peer would send it.
func rawHello(t *testing.T, h Handshake) []byte {
	t.Helper()
	b, err := EncodeHandshake(h)
	if err != nil {
		t.Fatalf("EncodeHandshake: %v", err)
	}
	return appendFrame(nil, b)
}

func hello(node, inc uint64) Handshake {
	return Handshake{Magic: Magic, Version: Version, Cluster: testCluster, Node: node, Inc: inc}
}

// rawDial connects to addr and sends b, without reading.
func rawDial(t *testing.T, addr string, b []byte) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if len(b) > 0 {
		if _, err := c.Write(b); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	return c
}

// rawPeer handshakes with the transport at addr as node, inc and returns
// the connection and the transport's handshake.
func rawPeer(t *testing.T, addr string, node, inc uint64) (net.Conn, Handshake) {
	t.Helper()
	c := rawDial(t, addr, rawHello(t, hello(node, inc)))
	c.SetReadDeadline(time.Now().Add(waitLimit))
	b, err := ReadFrame(c, MaxHandshakeSize)
	if err != nil {
		t.Fatalf("reading handshake: %v", err)
	}
	h, err := DecodeHandshake(b)
	if err != nil {
		t.Fatalf("decoding handshake: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	return c, h
}

// expectClosed checks that the other end closes c within d: a read
// returns EOF or a reset rather than data or a timeout.
func expectClosed(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1024)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue // the peer's handshake or frames: keep reading
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %v", d)
		}
		return
	}
}

// expectOpen checks that c stays open (a read times out) for d.
func expectOpen(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("connection closed or sent data within %v: %v", d, err)
	}
	c.SetReadDeadline(time.Time{})
}

// ctxT returns a context bounded by waitLimit.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// connectAll tells every node every other's address and gets frame through
// between every pair.
func connectAll(t *testing.T, nodes []*node, frame string) {
	t.Helper()
	for _, x := range nodes {
		for _, y := range nodes {
			x.AddPeer(y.Self().Node, y.Addr())
		}
	}
	for _, x := range nodes {
		for _, y := range nodes {
			if x != y {
				sendUntil(t, x, y.Self().Node, frame, y)
			}
		}
	}
}
