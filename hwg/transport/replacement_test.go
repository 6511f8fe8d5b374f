package transport

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// failConn blocks its first Write until release, then fails it.
type failConn struct {
	net.Conn
	entered chan struct{}
	release chan struct{}
	first   bool
}

func (f *failConn) Write(p []byte) (int, error) {
	if !f.first {
		f.first = true
		close(f.entered)
		<-f.release
		return 0, errors.New("injected write failure")
	}
	return f.Conn.Write(p)
}

func helloFrame(t *testing.T, node, inc uint64) []byte {
	b, err := EncodeHandshake(Handshake{Magic: Magic, Version: Version, Cluster: testCluster, Node: node, Inc: inc})
	if err != nil {
		t.Fatal(err)
	}
	return appendFrame(nil, b)
}

// A connection adopted in place of one whose handshake answer then failed
// must not wait for that one's reader, which never started (found in review:
// the new reader blocked until the peer's write timeout).
func TestReplacementReaderNotStuckOnAbandonedPredecessor(t *testing.T) {
	n := newNode(t, 2, 1, nil)
	tr := n.TCP

	// Connection A from node 1: its answer write blocks, then fails.
	aSrv, aCli := net.Pipe()
	fa := &failConn{Conn: aSrv, entered: make(chan struct{}), release: make(chan struct{})}
	tr.wg.Add(1)
	go tr.serveConn(fa)
	go aCli.Write(helloFrame(t, 1, 1))
	<-fa.entered // A is adopted, writing its answer

	// Connection B from node 1, same incarnation: supersedes A.
	bSrv, bCli := net.Pipe()
	tr.wg.Add(1)
	go tr.serveConn(bSrv)
	go bCli.Write(helloFrame(t, 1, 1))
	if _, err := ReadFrame(bCli, MaxHandshakeSize); err != nil { // B's answer
		t.Fatal(err)
	}
	close(fa.release) // A's answer fails: A is closed without a reader

	// Node 1 sends a frame on B.
	go bCli.Write(appendFrame(nil, []byte("hello over B")))
	select {
	case in := <-tr.Inbound():
		if string(in.Frame) != "hello over B" {
			t.Fatalf("delivered %q", in.Frame)
		}
	case <-time.After(3 * time.Second): // > HandshakeTimeout (2s)
		t.Fatalf("frame on B never delivered: B's reader waits for A.readDone forever; peers=%v", tr.Peers())
	}
}

// A replaced connection whose reader still has frames to hand on (the
// consumer is slow, or the reader waits for its predecessor's) is not
// closed by the grace timer: closing it discarded the frames still unread
// in its socket while its successor went on with later ones
// (TestTCPReplacementKeepsOrder lost frames under load).
func TestReplacedConnectionDrainsBeforeClosing(t *testing.T) {
	edit := func(c *TCPConfig) { c.HandshakeTimeout, c.InboundBuffer = 300*time.Millisecond, 8 }
	a := newNode(t, 10, 1, edit)
	b := newNode(t, 20, 1, edit)
	if _, err := b.Dial(ctxT(t), a.Addr()); err != nil {
		t.Fatal(err)
	}
	// Frames of 1 KB: more than a reader's buffer stays in the socket
	// while nobody reads Inbound.
	send := func(tr *node, to uint64, prefix string) {
		for i := range 2000 {
			f := append(fmt.Appendf(nil, "%s%d ", prefix, i), make([]byte, 1000)...)
			if err := tr.Send(to, f); err != nil {
				t.Errorf("Send %d: %v", i, err)
				return
			}
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { send(b, 10, "b") })
	wg.Go(func() { send(a, 20, "a") })
	if _, err := a.Dial(ctxT(t), b.Addr()); err != nil { // replaces b's connection
		t.Fatal(err)
	}
	wg.Wait()
	// Nobody reads until every replaced connection's grace timer has
	// expired at least once.
	for _, n := range []*node{a, b} {
		waitFor(t, "the grace timers to expire", func() bool {
			n.mu.RLock()
			defer n.mu.RUnlock()
			for c := range n.conns {
				if c.r == nil {
					continue
				}
				c.r.mu.Lock()
				replaced := c.r.conn != c
				c.r.mu.Unlock()
				if replaced && c.graceChecks.Load() == 0 {
					return false
				}
			}
			return true
		})
	}
	for _, x := range []struct {
		to     *node
		from   Peer
		prefix string
	}{{a, b.Self(), "b"}, {b, a.Self(), "a"}} {
		for i := range 2000 {
			in := recv(t, x.to)
			if want := fmt.Sprintf("%s%d ", x.prefix, i); in.From != x.from || !strings.HasPrefix(string(in.Frame), want) {
				t.Fatalf("frame %d: got %.8q from %v, want %q from %v", i, in.Frame, in.From, want, x.from)
			}
		}
	}
	if a.Dropped() != 0 || b.Dropped() != 0 {
		t.Fatalf("dropped %d and %d", a.Dropped(), b.Dropped())
	}
}
