package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// expectInOrder receives n frames "<prefix><i>" from node from.
func expectInOrder(t *testing.T, tr Transport, from Peer, prefix string, n int) {
	t.Helper()
	for i := range n {
		in := recv(t, tr)
		if want := fmt.Sprint(prefix, i); in.From != from || string(in.Frame) != want {
			t.Fatalf("frame %d: got %q from %v, want %q from %v", i, in.Frame, in.From, want, from)
		}
	}
}

// sendN sends n frames "<prefix><i>" to node to. It may run on any
// goroutine: it reports a failure with Errorf.
func sendN(t *testing.T, tr Transport, to uint64, prefix string, n int) {
	t.Helper()
	for i := range n {
		if err := tr.Send(to, fmt.Appendf(nil, "%s%d", prefix, i)); err != nil {
			t.Errorf("Send %d to %d: %v", i, to, err)
			return
		}
	}
}

func TestTCPTwoNodes(t *testing.T) {
	a := newNode(t, 1, 1, nil)
	b := newNode(t, 2, 1, nil)
	a.AddPeer(2, b.Addr())

	sendN(t, a, 2, "a", 1000)
	expectInOrder(t, b, a.Self(), "a", 1000)
	// b learned a's address from the handshake and answers on the same
	// connection.
	sendN(t, b, 1, "b", 1000)
	expectInOrder(t, a, b.Self(), "b", 1000)

	if a.ConnCount() != 1 || b.ConnCount() != 1 || a.connections() != 1 || b.connections() != 1 {
		t.Fatalf("connections: a %d/%d, b %d/%d; want one each", a.ConnCount(), a.connections(), b.ConnCount(), b.connections())
	}
	if p := a.Peers(); len(p) != 1 || p[0] != b.Self() {
		t.Fatalf("a.Peers() = %v", p)
	}
	// A writer counts its frames once the write returned, which can be
	// after the peer read them: wait for the counters to settle.
	sa, sb := a.Stats(), b.Stats()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); sa, sb = a.Stats(), b.Stats() {
		if sa.FramesSent == 1000 && sb.FramesSent == 1000 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if sa.FramesSent != 1000 || sa.FramesReceived != 1000 || sb.FramesSent != 1000 || sb.FramesReceived != 1000 {
		t.Fatalf("stats: a %+v, b %+v", sa, sb)
	}
	if sa.BytesSent != sb.BytesReceived || sb.BytesSent != sa.BytesReceived {
		t.Fatalf("bytes do not match: a %+v, b %+v", sa, sb)
	}
}

func TestTCPThreeNodes(t *testing.T) {
	nodes := []*node{newNode(t, 1, 1, nil), newNode(t, 2, 1, nil), newNode(t, 3, 1, nil)}
	// Connect every pair first: frames may be lost while two nodes race
	// to dial each other (TestTCPSimultaneousDialKeepsOneConnection).
	connectAll(t, nodes, "ping")
	for _, x := range nodes {
		waitFor(t, "two connections per node", func() bool { return x.ConnCount() == 2 && x.connections() == 2 })
		drain(x)
	}

	const n = 300
	var wg sync.WaitGroup
	for _, x := range nodes {
		for _, y := range nodes {
			if x != y {
				wg.Go(func() { sendN(t, x, y.Self().Node, fmt.Sprintf("%d>", x.Self().Node), n) })
			}
		}
	}
	wg.Wait()
	// Two streams arrive interleaved at each node, each in order.
	for _, y := range nodes {
		next := map[uint64]int{}
		for range 2 * n {
			in := recv(t, y)
			want := fmt.Sprintf("%d>%d", in.From.Node, next[in.From.Node])
			if string(in.Frame) != want || in.From.Inc != 1 {
				t.Fatalf("node %d: got %q from %v, want %q", y.Self().Node, in.Frame, in.From, want)
			}
			next[in.From.Node]++
		}
	}
	for _, x := range nodes {
		if x.ConnCount() != 2 || x.connections() != 2 {
			t.Fatalf("node %d: %d connections", x.Self().Node, x.connections())
		}
	}
}

// Both nodes dial each other at once, many times over: one connection
// survives, the same one on both sides, and frames flow both ways on it.
func TestTCPSimultaneousDialKeepsOneConnection(t *testing.T) {
	for round := range 20 {
		a := newNode(t, 10, 1, nil)
		b := newNode(t, 20, 1, nil)
		a.AddPeer(20, b.Addr())
		b.AddPeer(10, a.Addr())
		var wg sync.WaitGroup
		wg.Go(func() { a.Send(20, []byte("x")) })
		wg.Go(func() { b.Send(10, []byte("y")) })
		wg.Wait()
		settled := func() bool {
			ca, cb := a.current(20), b.current(10)
			return ca != nil && cb != nil && !a.dialing(20) && !b.dialing(10) &&
				a.connections() == 1 && b.connections() == 1 &&
				ca.nc.LocalAddr().String() == cb.nc.RemoteAddr().String()
		}
		waitFor(t, "both ends to keep the same single connection", settled)
		sendN(t, a, 20, "a", 100)
		sendN(t, b, 10, "b", 100)
		// The frame sent during the race may be lost, but not duplicated
		// or overtaken.
		for _, x := range []struct {
			rcv      *node
			from     Peer
			race, pf string
		}{{b, a.Self(), "x", "a"}, {a, b.Self(), "y", "b"}} {
			in := recv(t, x.rcv)
			i := 0
			if string(in.Frame) != x.race {
				if want := x.pf + "0"; string(in.Frame) != want {
					t.Fatalf("round %d: got %q, want %q or %q", round, in.Frame, x.race, want)
				}
				i = 1
			}
			for ; i < 100; i++ {
				if in := recv(t, x.rcv); string(in.Frame) != fmt.Sprint(x.pf, i) || in.From != x.from {
					t.Fatalf("round %d: got %q from %v, want %s%d", round, in.Frame, in.From, x.pf, i)
				}
			}
		}
		if !settled() {
			t.Fatalf("round %d: %d and %d connections", round, a.connections(), b.connections())
		}
		a.Close()
		b.Close()
	}
}

// Two connections to the same incarnation: the one dialed by the lower
// node replaces the other on both sides, and frames sent before, during
// and after the swap arrive in order, none lost.
func TestTCPReplacementKeepsOrder(t *testing.T) {
	a := newNode(t, 10, 1, nil)
	b := newNode(t, 20, 1, nil)
	// b dials first: the connection dialed by 20 carries traffic.
	if _, err := b.Dial(ctxT(t), a.Addr()); err != nil {
		t.Fatal(err)
	}
	if c := a.current(20); c == nil || c.dialer() != 20 {
		t.Fatal("a does not use b's connection")
	}
	var wg sync.WaitGroup
	wg.Go(func() { sendN(t, b, 10, "b", 3000) })
	wg.Go(func() { sendN(t, a, 20, "a", 3000) })
	// Meanwhile a dials: its connection wins the tie-break.
	if _, err := a.Dial(ctxT(t), b.Addr()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	expectInOrder(t, a, b.Self(), "b", 3000)
	expectInOrder(t, b, a.Self(), "a", 3000)
	waitFor(t, "the replaced connection to close", func() bool {
		return a.connections() == 1 && b.connections() == 1
	})
	if a.current(20).dialer() != 10 || b.current(10).dialer() != 10 {
		t.Fatal("the connection dialed by the lower node did not win")
	}
	if a.Dropped() != 0 || b.Dropped() != 0 {
		t.Fatalf("dropped %d and %d", a.Dropped(), b.Dropped())
	}
}

// A Send to a node whose address a Dial is connecting to starts no dial
// of its own (a second connection racing the first made three where two
// were meant, and TestTCPReplacementKeepsOrder lost frames about once in
// a thousand runs); once that Dial fails, the frames queued meanwhile get
// the node's own dial, at the node's address then, also when it changed
// while the Dial was under way.
func TestTCPSendWaitsForDialInProgress(t *testing.T) {
	for _, moved := range []bool{false, true} {
		t.Run(fmt.Sprintf("moved=%v", moved), func(t *testing.T) {
			a := newNode(t, 1, 1, nil)
			ln, accepted := listenSilent(t)
			a.AddPeer(2, ln.Addr().String())
			dialed := make(chan error, 1)
			go func() {
				_, err := a.Dial(ctxT(t), ln.Addr().String())
				dialed <- err
			}()
			held := <-accepted // the Dial is in its handshake
			for i := range 5 {
				if err := a.Send(2, []byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
			}
			if a.dialing(2) {
				t.Fatal("a Send started a dial of node 2 while a Dial of its address was under way")
			}
			select {
			case <-accepted:
				t.Fatal("a second connection to the address while the first was handshaking")
			case <-time.After(50 * time.Millisecond):
			}
			next := accepted
			if moved {
				var ln2 net.Listener
				ln2, next = listenSilent(t)
				a.AddPeer(2, ln2.Addr().String())
			}
			held.Close()
			if err := <-dialed; err == nil {
				t.Fatal("the Dial of a listener that hung up succeeded")
			}
			// The frames are still queued: node 2's own dial takes over.
			select {
			case c := <-next:
				c.Close()
			case <-time.After(10 * time.Second):
				t.Fatal("no dial of node 2 after the Dial failed")
			}
		})
	}
}

// listenSilent returns a listener that accepts and never answers the
// handshake, and its accepted connections.
func listenSilent(t *testing.T) (net.Listener, chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return ln, accepted
}

// The other order: a Dial made while the node's own dial (a Send's) is in
// its handshake waits for that dial to end, then dials; it does not race
// it with a second connection.
func TestTCPDialWaitsForDialInProgress(t *testing.T) {
	a := newNode(t, 1, 1, nil)
	ln, accepted := listenSilent(t)
	a.AddPeer(2, ln.Addr().String())
	if err := a.Send(2, []byte("x")); err != nil {
		t.Fatal(err)
	}
	held := <-accepted // the node's own dial is in its handshake
	dialed := make(chan error, 1)
	go func() {
		_, err := a.Dial(ctxT(t), ln.Addr().String())
		dialed <- err
	}()
	select {
	case <-accepted:
		t.Fatal("a Dial opened a second connection to the address while the first was handshaking")
	case err := <-dialed:
		t.Fatalf("the Dial ended (%v) while the dial before it was under way", err)
	case <-time.After(50 * time.Millisecond):
	}
	held.Close() // the node's own dial fails
	select {
	case c := <-accepted: // the Dial's turn
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the Dial did not dial once the dial before it ended")
	}
	if err := <-dialed; err == nil {
		t.Fatal("the Dial of a listener that hung up succeeded")
	}
}

func TestTCPReconnectHigherIncarnation(t *testing.T) {
	a := newNode(t, 1, 1, nil)
	b1 := newNode(t, 2, 1, nil)
	addr := b1.Addr()
	a.AddPeer(2, addr)
	sendN(t, a, 2, "a", 10)
	expectInOrder(t, b1, a.Self(), "a", 10)
	b1.Close()

	// Restarted on the same address with a higher incarnation.
	b2 := newNode(t, 2, 2, func(c *TCPConfig) { c.Listen = addr })
	in := sendUntil(t, a, 2, "again", b2)
	if in.From != a.Self() || string(in.Frame) != "again" {
		t.Fatalf("got %q from %v", in.Frame, in.From)
	}
	if err := b2.Send(1, []byte("back")); err != nil {
		t.Fatal(err)
	}
	for {
		in := recv(t, a)
		if string(in.Frame) == "back" {
			if in.From != (Peer{Node: 2, Inc: 2}) {
				t.Fatalf("from %v, want node 2 incarnation 2", in.From)
			}
			break
		}
	}
	if p := a.Peers(); len(p) != 1 || p[0] != b2.Self() {
		t.Fatalf("a.Peers() = %v", p)
	}
}

// A higher incarnation replaces a live connection to the older one.
func TestTCPHigherIncarnationReplacesLiveConnection(t *testing.T) {
	a := newNode(t, 1, 1, nil)
	b1 := newNode(t, 2, 1, nil)
	if _, err := b1.Dial(ctxT(t), a.Addr()); err != nil {
		t.Fatal(err)
	}
	b2 := newNode(t, 2, 2, nil)
	p, err := b2.Dial(ctxT(t), a.Addr())
	if err != nil || p != a.Self() {
		t.Fatalf("Dial = %v, %v", p, err)
	}
	waitFor(t, "the old incarnation's connection to close", func() bool { return b1.ConnCount() == 0 })
	if p := a.Peers(); len(p) != 1 || p[0] != b2.Self() {
		t.Fatalf("a.Peers() = %v", p)
	}
	sendN(t, a, 2, "a", 5)
	expectInOrder(t, b2, a.Self(), "a", 5)
}

func TestTCPStaleIncarnationRejected(t *testing.T) {
	a := newNode(t, 1, 1, nil)
	b2 := newNode(t, 2, 2, nil)
	if _, err := b2.Dial(ctxT(t), a.Addr()); err != nil {
		t.Fatal(err)
	}
	// The old incarnation comes back: a refuses it.
	b1 := newNode(t, 2, 1, nil)
	if _, err := b1.Dial(ctxT(t), a.Addr()); err == nil {
		t.Fatal("stale incarnation was accepted")
	}
	waitLog(t, a, "stale peer incarnation")
	if p := a.Peers(); len(p) != 1 || p[0] != b2.Self() {
		t.Fatalf("a.Peers() = %v", p)
	}
	// Dialing it, a refuses it too, with ErrStalePeer.
	if _, err := a.Dial(ctxT(t), b1.Addr()); !errors.Is(err, ErrStalePeer) {
		t.Fatalf("a.Dial(stale) = %v, want ErrStalePeer", err)
	}
	// A raw stale peer gets no handshake back and no frame through.
	c := rawDial(t, a.Addr(), append(rawHello(t, hello(2, 1)), appendFrame(nil, []byte("sneak"))...))
	expectClosed(t, c, waitLimit)
	sendN(t, b2, 1, "b", 1)
	if in := recv(t, a); in.From != b2.Self() || string(in.Frame) != "b0" {
		t.Fatalf("got %q from %v", in.Frame, in.From)
	}
}

func TestTCPWrongClusterRejected(t *testing.T) {
	a := newNode(t, 1, 1, nil)
	h := hello(2, 1)
	h.Cluster = "other"
	c := rawDial(t, a.Addr(), append(rawHello(t, h), appendFrame(nil, []byte("sneak"))...))
	expectClosed(t, c, waitLimit)
	waitLog(t, a, "peer belongs to another cluster")
	expectNothing(t, a, 50*time.Millisecond)
	if a.ConnCount() != 0 || a.Stats().FramesReceived != 0 {
		t.Fatalf("conns %d, stats %+v", a.ConnCount(), a.Stats())
	}

	// A transport of another cluster is refused as well, and told why.
	o := newNode(t, 3, 1, func(c *TCPConfig) { c.Cluster = "other" })
	if _, err := o.Dial(ctxT(t), a.Addr()); !errors.Is(err, ErrWrongCluster) {
		t.Fatalf("Dial from another cluster = %v, want ErrWrongCluster", err)
	}
	// And the dialer checks the acceptor's cluster: a fake acceptor of
	// another cluster yields ErrWrongCluster.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	other := rawHello(t, h)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		ReadFrame(c, MaxHandshakeSize)
		c.Write(other)
		c.Read(make([]byte, 1))
	}()
	if _, err := a.Dial(ctxT(t), ln.Addr().String()); !errors.Is(err, ErrWrongCluster) {
		t.Fatalf("Dial(other cluster) = %v, want ErrWrongCluster", err)
	}
}

func TestTCPRejectsOwnNodeID(t *testing.T) {
	a := newNode(t, 1, 1, nil)
	c := rawDial(t, a.Addr(), rawHello(t, hello(1, 5)))
	expectClosed(t, c, waitLimit)
	waitLog(t, a, "claims our NodeID")
	// Dialing itself (a seed list naming this node) is refused quietly.
	if _, err := a.Dial(ctxT(t), a.Addr()); !errors.Is(err, errSelf) {
		t.Fatalf("Dial(self) = %v, want errSelf", err)
	}
	if a.ConnCount() != 0 {
		t.Fatalf("%d connections", a.ConnCount())
	}
}

func TestTCPGarbageHandshakeRejected(t *testing.T) {
	a := newNode(t, 1, 1, func(c *TCPConfig) { c.HandshakeTimeout = 300 * time.Millisecond })
	b := newNode(t, 2, 1, nil)
	b.AddPeer(1, a.Addr())

	// Read as a length, "GET " is over 1 GB.
	c := rawDial(t, a.Addr(), []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	expectClosed(t, c, waitLimit)
	waitLog(t, a, "malformed handshake frame")

	// A well-framed body that is not a handshake.
	c = rawDial(t, a.Addr(), appendFrame(nil, []byte("\xde\xad\xbe\xef not msgpack")))
	expectClosed(t, c, waitLimit)
	waitLog(t, a, "bad handshake")

	// Silence: closed after HandshakeTimeout.
	c = rawDial(t, a.Addr(), nil)
	expectClosed(t, c, waitLimit)
	waitLog(t, a, "handshake timed out")

	// Other peers are unaffected.
	sendN(t, b, 1, "b", 3)
	expectInOrder(t, a, b.Self(), "b", 3)
	if a.Stats().FramesReceived != 3 {
		t.Fatalf("stats %+v", a.Stats())
	}
}

func TestTCPOversizedFrameClosesConnection(t *testing.T) {
	a := newNode(t, 1, 1, func(c *TCPConfig) { c.MaxFrame = 1024 })
	b := newNode(t, 2, 1, nil)
	b.AddPeer(1, a.Addr())
	sendN(t, b, 1, "b", 1)
	expectInOrder(t, a, b.Self(), "b", 1)

	// A raw peer sends a frame within the limit, then one above it.
	c, _ := rawPeer(t, a.Addr(), 9, 1)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 1<<30)
	c.Write(appendFrame(nil, []byte("fine")))
	c.Write(hdr[:])
	expectClosed(t, c, waitLimit)
	waitLog(t, a, "peer sent a frame over MaxFrame")
	if in := recv(t, a); in.From.Node != 9 || string(in.Frame) != "fine" {
		t.Fatalf("got %q from %v", in.Frame, in.From)
	}

	// A transport with a larger limit sends one: its connection is cut,
	// the other peer keeps working, and a Send over a's own limit fails.
	big := newNode(t, 3, 1, nil)
	big.AddPeer(1, a.Addr())
	big.Send(1, make([]byte, 2048))
	waitFor(t, "the oversized sender's connection to close", func() bool {
		return strings.Count(a.log.String(), "peer sent a frame over MaxFrame") == 2
	})
	sendN(t, b, 1, "after", 3)
	expectInOrder(t, a, b.Self(), "after", 3)
	if err := a.Send(2, make([]byte, 1025)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Send over MaxFrame = %v", err)
	}
}

func TestTCPStalledPeerDisconnected(t *testing.T) {
	const idle = 150 * time.Millisecond
	a := newNode(t, 1, 1, func(c *TCPConfig) { c.IdleReadTimeout = idle })

	// Idle between frames is fine, for several times IdleReadTimeout.
	quiet, _ := rawPeer(t, a.Addr(), 7, 1)
	quiet.Write(appendFrame(nil, []byte("hi")))
	expectOpen(t, quiet, 4*idle)

	// A header, part of the body, then nothing.
	stall, _ := rawPeer(t, a.Addr(), 8, 1)
	start := time.Now()
	stall.Write([]byte("\x00\x00\x00\x64partial"))
	expectClosed(t, stall, waitLimit)
	if d := time.Since(start); d < idle {
		t.Fatalf("closed after %v, before IdleReadTimeout", d)
	}
	waitLog(t, a, "peer stalled mid-frame")

	// Half a header is a frame begun too.
	half, _ := rawPeer(t, a.Addr(), 9, 1)
	half.Write([]byte("\x00\x00"))
	expectClosed(t, half, waitLimit)

	// The quiet peer is still connected and heard.
	quiet.Write(appendFrame(nil, []byte("still here")))
	for _, want := range []string{"hi", "still here"} {
		if in := recv(t, a); string(in.Frame) != want || in.From.Node != 7 {
			t.Fatalf("got %q from %v, want %q", in.Frame, in.From, want)
		}
	}
}

// A frame and the peer's half-close that arrive together, which one read
// can take both of, are still seen as the peer's close. A reader that,
// after a short read, waited for the poller instead of reading again
// (to save the read that meets EAGAIN) missed the FIN: the edge-triggered
// poller does not signal it a second time. Tried and reverted; this keeps
// it out.
func TestTCPHalfCloseAfterLastFrame(t *testing.T) {
	a := newNode(t, 1, 1, nil)
	const peers = 20
	for i := range peers {
		p, _ := rawPeer(t, a.Addr(), uint64(7+i), 1)
		p.Write(appendFrame(nil, []byte("bye")))
		p.(*net.TCPConn).CloseWrite()
		if in := recv(t, a); string(in.Frame) != "bye" {
			t.Fatalf("got %q, want bye", in.Frame)
		}
	}
	waitFor(t, "every half-close seen", func() bool {
		return strings.Count(a.log.String(), "connection closed by peer") == peers
	})
}

func TestTCPBatching(t *testing.T) {
	const n = 10000
	a := newNode(t, 1, 1, func(c *TCPConfig) { c.SendQueue = n })
	b := newNode(t, 2, 1, nil)
	a.AddPeer(2, b.Addr())
	sendN(t, a, 2, "f", n)
	expectInOrder(t, b, a.Self(), "f", n)
	s := a.Stats()
	t.Logf("%d frames in %d writes", s.FramesSent, s.Writes)
	// Typically a handful of writes; the race detector and many CPUs
	// (a writer as fast as the sender) make it a few hundred.
	if s.FramesSent != n || s.Writes*4 > s.FramesSent {
		t.Fatalf("stats %+v: want %d frames in under a quarter as many writes", s, n)
	}
	if a.Dropped() != 0 {
		t.Fatalf("dropped %d", a.Dropped())
	}
}

// A full send queue drops its oldest frames; the rest arrive in order.
func TestTCPSendQueueDropsOldest(t *testing.T) {
	a := newNode(t, 1, 1, func(c *TCPConfig) { c.SendQueue = 4 })
	b := newNode(t, 2, 1, nil)
	a.AddPeer(2, b.Addr())
	// Queue while no connection can exist yet: hold a's dial back.
	a.mu.RLock()
	r := a.peers[2]
	a.mu.RUnlock()
	r.mu.Lock()
	r.nextDial = time.Now().Add(100 * time.Millisecond)
	r.mu.Unlock()
	sendN(t, a, 2, "f", 10)
	if a.Dropped() != 6 {
		t.Fatalf("dropped %d, want 6", a.Dropped())
	}
	for i := 6; i < 10; i++ {
		if in := recv(t, b); string(in.Frame) != fmt.Sprint("f", i) {
			t.Fatalf("got %q, want f%d", in.Frame, i)
		}
	}
}

func TestTCPSendErrors(t *testing.T) {
	a := newNode(t, 1, 1, nil)
	if err := a.Send(99, []byte("x")); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("Send to unknown = %v", err)
	}
	if err := a.Send(1, []byte("x")); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("Send to self = %v", err)
	}
	if err := a.Send(99, make([]byte, DefaultMaxFrame+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Send too large = %v", err)
	}
	// A known address that does not answer: Send queues, the dial fails,
	// the frame is dropped, nothing blocks.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	a.AddPeer(5, dead)
	if err := a.Send(5, []byte("x")); err != nil {
		t.Fatalf("Send to a dead address = %v", err)
	}
	waitFor(t, "the frame to be dropped", func() bool { return a.Dropped() == 1 })
	a.Close()
	if err := a.Send(5, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
	if _, err := a.Dial(ctxT(t), dead); err == nil {
		t.Fatal("Dial after Close succeeded")
	}
}

func TestTCPSeeds(t *testing.T) {
	a := newNode(t, 1, 1, nil)
	// b's seeds: a and a dead address (retried in the background until
	// Close).
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	b := newNode(t, 2, 1, func(c *TCPConfig) {
		c.Listen = "127.0.0.1:0"
		c.Seeds = []string{a.Addr(), dead}
	})
	waitFor(t, "b to reach its seed", func() bool { return len(b.Peers()) == 1 })
	// Both ends can now send without AddPeer.
	sendN(t, b, 1, "b", 2)
	expectInOrder(t, a, b.Self(), "b", 2)
	sendN(t, a, 2, "a", 2)
	expectInOrder(t, b, a.Self(), "a", 2)
	// a learned b's advertised address: after the connection drops, a
	// dials b itself.
	b.mu.RLock()
	c := b.peers[1].conn
	b.mu.RUnlock()
	c.close()
	in := sendUntil(t, a, 2, "redial", b)
	if string(in.Frame) != "redial" {
		t.Fatalf("got %q", in.Frame)
	}
}

func TestTCPCloseReleasesGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	var nodes []*node
	for id := uint64(1); id <= 3; id++ {
		nodes = append(nodes, newNode(t, id, 1, func(c *TCPConfig) {
			if len(nodes) > 0 {
				c.Seeds = []string{nodes[0].Addr()}
			}
		}))
	}
	connectAll(t, nodes, "hi")
	// A connection mid-handshake and one that is just idle.
	rawDial(t, nodes[0].Addr(), []byte("\x00\x00"))
	rawDial(t, nodes[1].Addr(), nil)
	for _, x := range nodes {
		if err := x.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := x.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		for range x.Inbound() {
		}
	}
	deadline := time.Now().Add(waitLimit)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A Close racing with traffic, dials and handshakes neither panics nor
// leaks; Inbound ends closed.
func TestTCPCloseUnderLoad(t *testing.T) {
	a := newNode(t, 1, 1, nil)
	b := newNode(t, 2, 1, nil)
	a.AddPeer(2, b.Addr())
	b.AddPeer(1, a.Addr())
	var wg sync.WaitGroup
	for _, x := range []*node{a, b} {
		to := 3 - x.Self().Node
		wg.Go(func() {
			for i := 0; ; i++ {
				if err := x.Send(to, []byte("load")); errors.Is(err, ErrClosed) {
					return
				}
				if i%100 == 0 {
					runtime.Gosched()
				}
			}
		})
	}
	waitFor(t, "traffic", func() bool { return a.Stats().FramesReceived > 100 })
	a.Close()
	b.Close()
	wg.Wait()
	for _, x := range []*node{a, b} {
		for range x.Inbound() {
		}
	}
}

func TestNewTCPConfigErrors(t *testing.T) {
	bad := []TCPConfig{
		{Self: Peer{1, 1}, Listen: "127.0.0.1:0"},
		{Cluster: "c", Self: Peer{0, 1}, Listen: "127.0.0.1:0"},
		{Cluster: "c", Self: Peer{1, 0}, Listen: "127.0.0.1:0"},
		{Cluster: "c", Self: Peer{1, 1}},
		{Cluster: "c", Self: Peer{1, 1}, Listen: "127.0.0.1:0", MaxFrame: -1},
		{Cluster: "c", Self: Peer{1, 1}, Listen: "127.0.0.1:0", DialTimeout: -1},
		{Cluster: "c", Self: Peer{1, 1}, Listen: "not an address"},
	}
	for i, cfg := range bad {
		if tr, err := NewTCP(cfg); err == nil {
			tr.Close()
			t.Errorf("config %d accepted", i)
		}
	}
}

// holdingProxy forwards connections to target: the first is closed at
// once (a failed dial), each later one waits for release before its bytes
// flow. accepted gets a value per connection accepted.
func holdingProxy(t *testing.T, target string) (addr string, accepted chan struct{}, release chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted, release = make(chan struct{}, 8), make(chan struct{})
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			if n == 0 {
				c.Close()
				continue
			}
			go func() {
				defer c.Close()
				select {
				case <-release:
				case <-ctxT(t).Done():
					return
				}
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String(), accepted, release
}

// A node's own dial that finds a Dial of the address under way waits for
// it and, when that one connected the node, does not dial again.
func TestTCPNodeDialRechecksAfterWaiting(t *testing.T) {
	b := newNode(t, 2, 1, nil)
	addr, accepted, release := holdingProxy(t, b.Addr())
	a := newNode(t, 1, 1, func(c *TCPConfig) { c.BackoffMin, c.BackoffMax = 300*time.Millisecond, 300*time.Millisecond })
	a.AddPeer(2, addr)
	if err := a.Send(2, []byte("lost")); err != nil {
		t.Fatal(err)
	}
	<-accepted             // the node's own dial, which fails: it backs off 150-300 ms
	for a.Dropped() == 0 { // and drops what was queued
		select {
		case <-ctxT(t).Done():
			t.Fatal("the failed dial dropped nothing")
		case <-time.After(time.Millisecond):
		}
	}
	if err := a.Send(2, []byte("x")); err != nil {
		t.Fatal(err)
	}
	dialed := make(chan error, 1)
	go func() {
		_, err := a.Dial(ctxT(t), addr)
		dialed <- err
	}()
	<-accepted                    // the Dial, held by the proxy
	for a.dialWaits.Load() == 0 { // the node's own dial, back from its backoff, waits for it
		select {
		case <-ctxT(t).Done():
			t.Fatal("the node's own dial never waited for the Dial")
		case <-time.After(time.Millisecond):
		}
	}
	close(release)
	if err := <-dialed; err != nil {
		t.Fatal(err)
	}
	if in := recv(t, b); string(in.Frame) != "x" {
		t.Fatalf("got %q, want the frame queued during the backoff", in.Frame)
	}
	select {
	case <-accepted:
		t.Fatal("the node's own dial dialed again after the Dial it waited for connected the node")
	case <-time.After(300 * time.Millisecond):
	}
}
