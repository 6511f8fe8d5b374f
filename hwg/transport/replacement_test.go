package transport

import (
	"errors"
	"net"
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
