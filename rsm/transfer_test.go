package rsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/storage"
	"github.com/lwgkit/lwgkit/storage/storagetest"
)

// These tests drive replicas directly, as the simulator does, with the
// transfer messages in a queue the test delivers (or loses, or corrupts),
// so they show the transfer's steps one by one.

// blobSM is a state machine whose state is a byte string; Apply appends
// the command. Restore reads its state in small pieces, so a restore from
// a stream needs many chunks, and counts how often it began. With
// viaCopy it restores with io.Copy instead, which takes the chunks as they
// are (streamReader.WriteTo).
type blobSM struct {
	b        []byte
	restores int
	viaCopy  bool
}

func (s *blobSM) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }

func (s *blobSM) Apply(cmd []byte) ([]byte, error) { s.b = append(s.b, cmd...); return nil, nil }

func (s *blobSM) Snapshot(w io.Writer) error {
	_, err := w.Write(binary.AppendUvarint(append([]byte(nil), s.b...), uint64(len(s.b))))
	return err
}

func (s *blobSM) Restore(r io.Reader) error {
	s.restores++
	s.b = s.b[:0] // a partial restore leaves a partial state
	if s.viaCopy {
		if _, err := io.Copy(s, r); err != nil {
			return err
		}
	}
	buf := make([]byte, 7)
	for !s.viaCopy {
		n, err := r.Read(buf)
		s.b = append(s.b, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	// The length is the last bytes: check it.
	for k := 1; k <= binary.MaxVarintLen64 && k <= len(s.b); k++ {
		if v, m := binary.Uvarint(s.b[len(s.b)-k:]); m == k && v == uint64(len(s.b)-k) {
			s.b = s.b[:len(s.b)-k]
			return nil
		}
	}
	return errors.New("blobSM: bad snapshot")
}

// xferHost is the host of one replica in a transferNet.
type xferHost struct {
	net  *transferNet
	self hwg.Process
	st   snapStore
}

func (h *xferHost) multicast(o *Object, payload []byte) {
	h.net.multicasts = append(h.net.multicasts, msg{from: h.self, b: payload})
}
func (h *xferHost) send(to hwg.Process, d direct) {
	h.net.queue = append(h.net.queue, msg{from: h.self, to: to, b: encodeDirect(d)})
}
func (h *xferHost) store() snapStore             { return h.st }
func (h *xferHost) logger() hclog.Logger         { return hclog.NewNullLogger() }
func (h *xferHost) observe(e Event)              { h.net.events[h.self] = append(h.net.events[h.self], e) }
func (h *xferHost) watch(*Object, bool)          {}
func (h *xferHost) applied(*Object)              {}
func (h *xferHost) ended(*Object, lwg.EventType) {}

type msg struct {
	from, to hwg.Process
	b        []byte
}

// transferNet holds replicas of one object and the transfer messages in
// flight between them.
type transferNet struct {
	t          *testing.T
	cfg        Config
	objs       map[hwg.Process]*Object
	hosts      map[hwg.Process]*xferHost
	queue      []msg
	multicasts []msg                   // ordered messages not yet delivered
	events     map[hwg.Process][]Event // by observer
	view       lwg.View
	viaCopy    bool // state machines restore with io.Copy
}

const xferObject = ObjectID("x")

func newTransferNet(t *testing.T, cfg Config) *transferNet {
	cfg.Logger = hclog.NewNullLogger()
	c, err := cfg.withDefaults(false)
	if err != nil {
		t.Fatal(err)
	}
	return &transferNet{t: t, cfg: c, objs: map[hwg.Process]*Object{}, hosts: map[hwg.Process]*xferHost{}, events: map[hwg.Process][]Event{}}
}

// add makes p's replica, over store (nil: in memory).
func (n *transferNet) add(p hwg.Process, store snapStore) *Object {
	if store == nil {
		store = newMemStore()
	}
	h := &xferHost{net: n, self: p, st: store}
	o := newObject(xferObject, p, &n.cfg, h, nil, &blobSM{viaCopy: n.viaCopy})
	n.objs[p], n.hosts[p] = o, h
	return o
}

// install installs a view with members at every replica in it.
func (n *transferNet) install(id uint64, members []hwg.Process, joined []hwg.Process) {
	n.view = lwg.View{ID: id, Members: members}
	for _, m := range members {
		n.objs[m].onEvent(&lwg.Event{Type: lwg.EventInstall, LWG: xferObject.LWG(), View: n.view.Clone(), Joined: joined})
	}
}

// installAfter installs the first view after every member of the last
// one vanished (lwg.Event.Vanished).
func (n *transferNet) installAfter(id uint64, members, joined, vanished []hwg.Process) {
	n.view = lwg.View{ID: id, Members: members}
	for _, m := range members {
		n.objs[m].onEvent(&lwg.Event{Type: lwg.EventInstall, LWG: xferObject.LWG(), View: n.view.Clone(), Joined: joined, Vanished: vanished})
	}
}

// propose delivers a command to every replica in the view.
func (n *transferNet) propose(cmd string) {
	for _, m := range n.view.Members {
		n.objs[m].onEvent(&lwg.Event{Type: lwg.EventDeliver, LWG: xferObject.LWG(), From: n.view.Members[0],
			Payload: encodePropose(n.view.Members[0], 0, []byte(cmd))})
	}
}

// step delivers the first message in flight, changed by mut (nil: as
// is); a fetch is answered from the donor's store as the runtime does.
// It reports false if nothing is in flight.
func (n *transferNet) step(mut func(d *direct) bool) bool {
	if len(n.queue) == 0 {
		return false
	}
	m := n.queue[0]
	n.queue = n.queue[1:]
	d, err := decodeDirect(m.b)
	if err != nil {
		n.t.Fatalf("a replica sent a malformed message: %v", err)
	}
	if mut != nil && !mut(&d) {
		return true // lost
	}
	o := n.objs[m.to]
	if o == nil {
		return true // crashed
	}
	if d.kind == kindFetch {
		reply, _, _, _, err := answerFetch(n.hosts[m.to].st, d, n.cfg.ChunkSize, nil)
		if err != nil {
			n.t.Fatalf("serving a fetch: %v", err)
		}
		if reply.kind != 0 {
			n.hosts[m.to].send(m.from, reply)
		}
		return true
	}
	o.onDirect(m.from, d)
	return true
}

// run delivers messages until none is in flight, then the ordered ones
// (RESTORED) in the view.
func (n *transferNet) run(mut func(d *direct) bool) {
	for i := 0; n.step(mut); i++ {
		if i > 100_000 {
			n.t.Fatal("the transfer does not end")
		}
	}
	ms := n.multicasts
	n.multicasts = nil
	for _, m := range ms {
		for _, p := range n.view.Members {
			if o := n.objs[p]; o != nil {
				o.onEvent(&lwg.Event{Type: lwg.EventDeliver, LWG: xferObject.LWG(), From: m.from, Payload: m.b})
			}
		}
	}
}

func (n *transferNet) sm(p hwg.Process) *blobSM { return n.objs[p].sm.(*blobSM) }

// stepFirst delivers the first message in flight of kind k, ahead of the
// others, through mut.
func (n *transferNet) stepFirst(k byte, mut func(d *direct) bool) {
	for i, m := range n.queue {
		if d, err := decodeDirect(m.b); err == nil && d.kind == k {
			n.queue = append(append([]msg{m}, n.queue[:i]...), n.queue[i+1:]...)
			n.step(mut)
			return
		}
	}
	n.t.Fatalf("no message of kind %d in flight", k)
}

// openSmallDBStore opens a data file store with 64-byte chunks and spool
// steps, so that a donor tells its joiners of a small snapshot several
// times while writing it.
func openSmallDBStore(t *testing.T, name string) *dbStore {
	db := storagetest.Open(t, filepath.Join(t.TempDir(), name), storage.Options{ChunkSize: 64, ChunksPerTx: 2})
	s, err := newDBStore(db, filepath.Join(t.TempDir(), "spool"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // before the DB's own cleanup closes it
	s.spoolMin, s.spoolStep = 64, 64
	return s
}

// queued counts the messages in flight of kind k.
func (n *transferNet) queued(k byte) int {
	c := 0
	for _, m := range n.queue {
		if d, err := decodeDirect(m.b); err == nil && d.kind == k {
			c++
		}
	}
	return c
}

var (
	pA = hwg.Process{Node: 1, Inc: 1}
	pB = hwg.Process{Node: 2, Inc: 1}
	pJ = hwg.Process{Node: 3, Inc: 1}
)

// holders makes a group of A and B holding a state of size bytes.
func holders(t *testing.T, n *transferNet, size int) {
	n.install(1<<32|1, []hwg.Process{pA}, []hwg.Process{pA})
	for i := 0; i < size/100; i++ {
		n.propose(fmt.Sprintf("%0100d", i))
	}
	n.install(1<<32|2, []hwg.Process{pA, pB}, []hwg.Process{pB})
	n.run(nil)
	if !n.objs[pB].ready || !bytes.Equal(n.sm(pA).b, n.sm(pB).b) {
		t.Fatalf("B did not get A's state: ready %v", n.objs[pB].ready)
	}
}

// joining makes A and B hold a state of size bytes and installs a view
// that adds J, a joiner without a state, whose state machines restore
// with io.Copy if viaCopy.
func joining(t *testing.T, viaCopy bool, size int) *transferNet {
	n := newTransferNet(t, Config{ChunkSize: 64, TransferWindow: 128})
	n.viaCopy = viaCopy
	n.add(pA, nil)
	n.add(pB, nil)
	n.add(pJ, nil)
	holders(t, n, size)
	n.install(1<<32|3, []hwg.Process{pA, pB, pJ}, []hwg.Process{pJ})
	return n
}

// A joiner without a state restores while the chunks arrive; when its
// donor fails half way, the half-restored state is undone and the next
// donor's snapshot is restored whole.
func TestRestoreWhileReceivingDonorCrash(t *testing.T) {
	for _, viaCopy := range []bool{false, true} {
		t.Run(fmt.Sprintf("viaCopy=%v", viaCopy), func(t *testing.T) {
			n := joining(t, viaCopy, 3000)
			// Half the transfer from A (the first holder in the view).
			for n.objs[pJ].fetch == nil || n.objs[pJ].fetch.next < 1500 {
				if !n.step(nil) {
					t.Fatal("the transfer stopped")
				}
			}
			f := n.objs[pJ].fetch
			if f.donor != pA || f.st == nil {
				t.Fatalf("joiner fetches from %v (streaming %v), want from A while restoring", f.donor, f.st != nil)
			}
			if got := n.sm(pJ); got.restores != 1 || len(got.b) == 0 {
				t.Fatalf("joiner's state machine: %d restores, %d bytes; want one under way with bytes in", got.restores, len(got.b))
			}
			// A crashes: B is the donor in the next view.
			delete(n.objs, pA)
			n.install(1<<32|4, []hwg.Process{pB, pJ}, nil)
			if n.objs[pJ].fetch == nil {
				t.Fatal("the joiner dropped its transfer before it knew of another donor")
			}
			n.run(nil)
			j := n.objs[pJ]
			if !j.ready || !bytes.Equal(n.sm(pJ).b, n.sm(pB).b) {
				t.Fatalf("joiner ready %v with %d bytes, want B's %d", j.ready, len(n.sm(pJ).b), len(n.sm(pB).b))
			}
			// Restores: A's (undone: the empty state restored), then B's.
			if got := n.sm(pJ).restores; got != 3 {
				t.Fatalf("joiner's state machine restored %d times, want 3 (A's half, the undo, B's)", got)
			}
			if got := received(n, pJ); len(got) != 1 || got[0] != pB {
				t.Fatalf("joiner's SnapshotReceived from %v, want one from B", got)
			}
		})
	}
}

// received lists the donors of the snapshots p restored.
func received(n *transferNet, p hwg.Process) []hwg.Process {
	var from []hwg.Process
	for _, e := range n.events[p] {
		if e.Type == EventSnapshotReceived {
			from = append(from, e.Peer)
		}
	}
	return from
}

// Bad chunks lose nothing: a chunk at the wrong offset, of a stale
// generation or from another process is ignored, and one whose bytes were
// changed fails the snapshot's SHA-256, which undoes the restore and asks
// again.
func TestRestoreWhileReceivingBadChunks(t *testing.T) {
	for _, viaCopy := range []bool{false, true} {
		t.Run(fmt.Sprintf("viaCopy=%v", viaCopy), func(t *testing.T) {
			n := joining(t, viaCopy, 2000)
			var sent, flipped bool
			n.run(func(d *direct) bool {
				if d.kind != kindChunk || d.offset != 256 || sent {
					return true
				}
				sent = true
				// The same chunk, mangled four ways, before the real one.
				j := n.objs[pJ]
				for _, bad := range []direct{
					{kind: kindChunk, object: xferObject, gen: d.gen, offset: d.offset + 1, data: d.data},
					{kind: kindChunk, object: xferObject, gen: d.gen + 7, offset: d.offset, data: d.data},
					{kind: kindChunk, object: xferObject, gen: d.gen, offset: d.offset, data: bytes.Repeat(d.data, 100)},
				} {
					j.onDirect(pA, bad)
				}
				j.onDirect(pB, *d)
				if j.fetch == nil || j.fetch.next != 256 {
					t.Fatalf("a bad chunk moved the transfer: %s", j.DebugState())
				}
				// The real one, with a byte changed: accepted (the SHA-256
				// catches it at the end).
				flipped = true
				d.data = bytes.Clone(d.data)
				d.data[0] ^= 0xff
				return true
			})
			if !flipped {
				t.Fatal("no chunk at offset 256")
			}
			// The corrupt snapshot was restored, failed its sum and was undone;
			// the joiner asked again (WANT) and its donor offered it again.
			j := n.objs[pJ]
			if !j.ready || !bytes.Equal(n.sm(pJ).b, n.sm(pA).b) {
				t.Fatalf("after the second transfer: %s", j.DebugState())
			}
			if got := n.sm(pJ).restores; got != 3 {
				t.Fatalf("joiner's state machine restored %d times, want 3 (the corrupt one, the undo, the good one)", got)
			}
			if got := received(n, pJ); len(got) != 1 || got[0] != pA {
				t.Fatalf("joiner's SnapshotReceived from %v, want one from A", got)
			}
		})
	}
}

// A replica that holds a state (it was excluded and joins again) receives
// into its store and restores only a complete snapshot, so its state is
// never half replaced.
func TestReceiveIntoStoreWhenHoldingAState(t *testing.T) {
	n := newTransferNet(t, Config{ChunkSize: 64, TransferWindow: 128})
	n.add(pA, nil)
	n.add(pB, nil)
	j := n.add(pJ, nil)
	holders(t, n, 2000)
	j.hasState = true
	n.sm(pJ).b = []byte("old")
	n.install(1<<32|3, []hwg.Process{pA, pB, pJ}, []hwg.Process{pJ})
	for j.fetch == nil || j.fetch.next < 1000 {
		if !n.step(nil) {
			t.Fatal("the transfer stopped")
		}
	}
	if j.fetch.st != nil || j.fetch.w == nil || string(n.sm(pJ).b) != "old" {
		t.Fatalf("a replica holding a state restores as it receives: %s", j.DebugState())
	}
	n.run(nil)
	if !j.ready || !bytes.Equal(n.sm(pJ).b, n.sm(pA).b) {
		t.Fatalf("after the transfer: %s", j.DebugState())
	}
}

// A donor with a data file tells its joiners of its snapshot while it
// writes it (SNAP with the bytes flushed so far) and serves fetches of
// those bytes before its commit; a lost last SNAP is asked for again.
func TestDonorServesWhileWriting(t *testing.T) {
	n := newTransferNet(t, Config{ChunkSize: 64, TransferWindow: 256})
	open := func(name string) snapStore { return openSmallDBStore(t, name) }
	storeA := open("a.db")
	n.add(pA, storeA)
	n.add(pB, open("b.db"))
	n.add(pJ, open("j.db"))
	holders(t, n, 3000)
	n.queue = nil
	n.install(1<<32|3, []hwg.Process{pA, pB, pJ}, []hwg.Process{pJ})
	// A wrote its snapshot (the joiner's install came last): what it sent
	// while writing, in order.
	var avail []uint64
	var final *direct
	for _, m := range n.queue {
		d, err := decodeDirect(m.b)
		if err != nil || d.kind != kindSnap || m.to != pJ {
			t.Fatalf("donor sent %+v (%v) to %v, want SNAPs to the joiner", d, err, m.to)
		}
		if d.size != 0 {
			final = &d
			continue
		}
		if final != nil || len(avail) > 0 && d.avail <= avail[len(avail)-1] {
			t.Fatalf("SNAP readable %d after %v (final %v)", d.avail, avail, final != nil)
		}
		avail = append(avail, d.avail)
	}
	if len(avail) < 2 || final == nil || final.avail != final.size || final.size <= avail[len(avail)-1] {
		t.Fatalf("SNAPs while writing %v, final %+v; want several, then the size", avail, final)
	}
	// The fetches of the bytes readable before the commit were served
	// from a spool being written: check that serving works there.
	w, err := storeA.create(xferObject)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 40) // 10 chunks: 5 batches
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	gen, readable := w.progress()
	if readable < 6*64 {
		t.Fatalf("%d bytes readable after 10 steps, want all but the one a write buffer may hold", readable)
	}
	asked := 0
	alloc := func(n int) []byte { // as hwg.DirectBuffer: a header first
		asked = n
		return append(make([]byte, 0, 3+n), "hdr"...)
	}
	reply, wire, last, _, err := answerFetch(storeA, direct{kind: kindFetch, object: xferObject, gen: gen, offset: 64, n: 128}, 64, alloc)
	if err != nil || reply.kind != kindChunk || last || !bytes.Equal(reply.data, data[64:192]) {
		t.Fatalf("fetch from a generation being written: %+v last %v, %v", reply, last, err)
	}
	// The chunk is read into the caller's buffer, after what it held,
	// which had room for it, and is the reply's encoding.
	if string(wire[:3]) != "hdr" || cap(wire) != 3+asked {
		t.Fatalf("chunk's wire %x in a buffer of %d, want it after \"hdr\" in the %d allocated", wire, cap(wire), 3+asked)
	}
	wire = wire[3:]
	if got, err := decodeDirect(wire); err != nil || got.kind != kindChunk || got.gen != gen || got.offset != 64 ||
		!bytes.Equal(got.data, reply.data) || !bytes.Equal(wire, encodeDirect(reply)) {
		t.Fatalf("chunk's wire %x decodes to %+v, %v; want %+v", wire, got, err, reply)
	}
	if reply, _, _, _, _ := answerFetch(storeA, direct{kind: kindFetch, object: xferObject, gen: gen, offset: uint64(len(data)), n: 64}, 64, nil); reply.kind != kindGone {
		t.Fatalf("fetch past what is written: %+v, want GONE", reply)
	}
	w.abort()
	// The transfer, with the final SNAP lost: the joiner asks again after
	// retryTicks and finishes.
	n.run(func(d *direct) bool { return !(d.kind == kindSnap && d.size != 0) })
	j := n.objs[pJ]
	if j.ready || j.fetch == nil || j.fetch.next != avail[len(avail)-1] {
		t.Fatalf("without the last SNAP: %s", j.DebugState())
	}
	for range retryTicks {
		j.onTick(1)
	}
	n.run(nil)
	if !j.ready || !bytes.Equal(n.sm(pJ).b, n.sm(pA).b) {
		t.Fatalf("after the last SNAP came again: %s", j.DebugState())
	}
	if got := received(n, pJ); len(got) != 1 || got[0] != pA {
		t.Fatalf("joiner's SnapshotReceived from %v, want one from A", got)
	}
}

func TestSnapRoundTripAndBadInput(t *testing.T) {
	sum := bytes.Repeat([]byte{7}, sumLen)
	for _, d := range []direct{
		{kind: kindSnap, object: "o", gen: 3, at: point{View: 5, Seq: 2}, avail: 4096},
		{kind: kindSnap, object: "o", gen: 3, at: point{View: 5, Seq: 2}, avail: 9000, size: 9000, sum: sum},
	} {
		got, err := decodeDirect(encodeDirect(d))
		if err != nil || !bytes.Equal(got.sum, d.sum) || got.avail != d.avail || got.size != d.size || got.at != d.at || got.gen != d.gen {
			t.Fatalf("decoded %+v, %v; want %+v", got, err, d)
		}
	}
	for _, bad := range []direct{
		{kind: kindSnap, object: "o", gen: 3, avail: 10, sum: sum},               // a sum while being written
		{kind: kindSnap, object: "o", gen: 3, avail: 10, size: 10, sum: sum[:5]}, // a short sum
		{kind: kindSnap, object: "o", gen: 3, avail: 9, size: 10, sum: sum},      // not all readable
	} {
		if _, err := decodeDirect(encodeDirect(bad)); !errors.Is(err, errMalformed) {
			t.Fatalf("decodeDirect(%+v) = %v, want errMalformed", bad, err)
		}
	}
}

// A joiner that receives a snapshot from a newer build (ErrSnapshotFormat)
// asks for the state again only after retryTicks, not at once, which would
// repeat the transfer as fast as a donor can start it; one that receives a
// corrupt snapshot asks again at once. Either way it gets the state later.
func TestJoinerWaitsOutNewerFormat(t *testing.T) {
	for _, tc := range []struct {
		name  string
		snap  []byte
		ticks int // before the joiner asks again
	}{
		{"newer format", newerFormatSnapshot(xferObject), retryTicks},
		{"corrupt", []byte("\x05garbage"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := joining(t, false, 300)
			j := n.objs[pJ]
			n.queue = nil
			j.restored(pA, bytes.NewReader(tc.snap), 0, int64(len(tc.snap)))
			if j.ready || j.hasState {
				t.Fatalf("the joiner took the snapshot: %s", j.DebugState())
			}
			for i := 0; i < tc.ticks; i++ {
				if k := n.queued(kindWant); k != 0 {
					t.Fatalf("asked again (%d WANTs) after %d ticks, want after %d", k, i, tc.ticks)
				}
				j.onTick(1)
			}
			if n.queued(kindWant) == 0 {
				t.Fatalf("did not ask again after %d ticks", tc.ticks)
			}
			n.run(nil)
			if !j.ready || !bytes.Equal(n.sm(pJ).b, n.sm(pA).b) {
				t.Fatalf("the joiner did not get the state afterwards: %s", j.DebugState())
			}
		})
	}
}

// bumpStore is a snapStore whose snapshots, while *bump is set, name the
// next format in their headers, as a newer build's would (their sums
// cover the changed bytes, as a newer donor's do).
type bumpStore struct {
	snapStore
	bump *bool
}

func (s bumpStore) create(obj ObjectID) (snapWriter, error) {
	w, err := s.snapStore.create(obj)
	if err != nil || !*s.bump {
		return w, err
	}
	return &bumpWriter{snapWriter: w}, nil
}

type bumpWriter struct {
	snapWriter
	done bool
}

func (w *bumpWriter) Write(p []byte) (int, error) {
	if !w.done && len(p) > 0 {
		w.done = true
		// The header's first field is its format, a uint64 (0xcf and
		// eight bytes), just after the length and the map's code.
		i := bytes.Index(p, []byte("\xa1f\xcf"))
		if i < 0 || i > binary.MaxVarintLen64+5 {
			panic(fmt.Sprintf("no format field at the head of a snapshot: %x", p[:min(len(p), 32)]))
		}
		p = bytes.Clone(p)
		p[i+3+7] = snapshotFormat + 1
	}
	return w.snapWriter.Write(p)
}

// A joiner whose donor writes a newer format (a donor with a data file
// tells it of the snapshot several times while writing it) starts one
// fetch and asks again only after retryTicks, and a joiner that
// holds a state keeps its own snapshot current: the refused one is never
// committed. Once a donor writes a format it reads, it gets the state.
func TestNewerFormatDonation(t *testing.T) {
	for _, holding := range []bool{false, true} {
		t.Run(fmt.Sprintf("holding=%v", holding), func(t *testing.T) {
			n := newTransferNet(t, Config{ChunkSize: 64, TransferWindow: 128})
			var bump bool
			n.add(pA, bumpStore{openSmallDBStore(t, "a.db"), &bump})
			n.add(pB, bumpStore{openSmallDBStore(t, "b.db"), &bump})
			storeJ := newMemStore() // commits at once: its current snapshot is checked below
			j := n.add(pJ, storeJ)
			holders(t, n, 3000)
			var own snapInfo
			if holding {
				w, err := storeJ.create(xferObject)
				if err == nil {
					err = writeSnapshot(w, &header{Object: xferObject}, &blobSM{b: []byte("old")})
				}
				if err == nil {
					own, err = w.commit()
				}
				if err != nil {
					t.Fatal(err)
				}
				if cur, ok, err := storeJ.current(xferObject); err != nil || !ok || cur.Gen != own.Gen {
					t.Fatalf("the joiner's own snapshot is not current: %+v %v %v", cur, ok, err)
				}
				j.hasState = true
				n.sm(pJ).b = []byte("old")
			}
			bump = true
			n.queue = nil
			n.install(1<<32|3, []hwg.Process{pA, pB, pJ}, []hwg.Process{pJ})
			starts := 0
			count := func(d *direct) bool {
				if d.kind == kindFetch && d.offset == 0 {
					starts++
				}
				return true
			}
			// The donation's SNAPs one at a time, each followed by the
			// joiner's fetches and their chunks, until it refuses the
			// snapshot, ahead of the donation's later SNAPs (as when the
			// donor still writes while the joiner fetches).
			n.stepFirst(kindSnap, count)
			for i := 0; j.fetch != nil; i++ {
				switch {
				case i > 100:
					t.Fatalf("the fetch of a snapshot in a newer format goes on: %s", j.DebugState())
				case n.queued(kindChunk) > 0:
					n.stepFirst(kindChunk, count)
				case n.queued(kindFetch) > 0:
					n.stepFirst(kindFetch, count)
				default: // it waits for the donor to write more
					n.stepFirst(kindSnap, count)
				}
			}
			if n.queued(kindSnap) == 0 {
				t.Fatal("no later SNAP of the donation left to ignore")
			}
			n.run(count)
			if j.ready || starts != 1 {
				t.Fatalf("the joiner started %d fetches, want 1 (ready %v): %s", starts, j.ready, j.DebugState())
			}
			if holding {
				cur, ok, err := storeJ.current(xferObject)
				if err != nil || !ok || cur.Gen != own.Gen || string(n.sm(pJ).b) != "old" {
					t.Fatalf("the joiner's snapshot is gen %d (%v, %v), state %q; want its own, gen %d, and \"old\"", cur.Gen, ok, err, n.sm(pJ).b, own.Gen)
				}
			}
			for range retryTicks - 1 {
				j.onTick(1)
			}
			if len(n.queue) != 0 {
				t.Fatalf("the joiner asked again before retryTicks: %d messages", len(n.queue))
			}
			// The donors' next snapshots are in this build's format (their
			// latest would be offered again otherwise).
			bump = false
			for _, p := range []hwg.Process{pA, pB} {
				if _, ok := n.objs[p].takeSnapshot(); !ok {
					t.Fatalf("%v took no snapshot", p)
				}
			}
			j.onTick(1)
			n.run(count)
			if !j.ready || !bytes.Equal(n.sm(pJ).b, n.sm(pA).b) {
				t.Fatalf("after the donors wrote a format it reads: %s", j.DebugState())
			}
		})
	}
}
