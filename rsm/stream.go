package rsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// Restore while receiving. A joiner without a state restores the donor's
// snapshot as its chunks arrive, instead of storing it first and reading
// it back: StateMachine.Restore runs on a goroutine of its own that reads
// the chunks, but as a coroutine of the object's worker. The worker hands
// it a chunk and waits until the restorer has consumed it and asks for
// the next (or has returned); so between two inputs of the object the
// restorer is parked, never touching the state machine, and what the
// replica does stays a function of its inputs (the simulator drives it
// alike).
//
// The bytes reach the state machine before the snapshot's checksum can be
// checked, and a transfer may stop half way (its donor fails). The state
// machine's state is then undone from the snapshot it gave before the
// restore began (a replica without a state: its empty state), so a
// replica never keeps half a state: it has none (hasState false) until a
// restore completes and matches its sum.

// pristineMax bounds the empty state a joiner keeps to undo a restore; a
// state machine whose empty state is larger is restored from the store,
// as a replica that holds a state is.
const pristineMax = 64 << 10

// errStreamAborted ends a restore whose transfer stopped.
var errStreamAborted = errors.New("rsm: transfer stopped before the snapshot ended")

// streamRestore is a restore in progress, owned by the object's worker.
type streamRestore struct {
	sh       *streamShared
	pristine []byte // the state machine's snapshot before the restore
	cleanup  runtime.Cleanup
	done     bool // the restorer returned res
	res      streamResult
}

// streamShared is what the worker and the restorer share.
type streamShared struct {
	in   chan []byte       // worker → restorer: the next bytes; closed at the end
	need chan struct{}     // restorer → worker: consumed, send more
	out  chan streamResult // restorer → worker: Restore returned (buffered)
	once sync.Once
	end  error // why in was closed: io.EOF or an abort (written before the close)
}

type streamResult struct {
	h   header
	err error
}

func (sh *streamShared) close(err error) {
	sh.once.Do(func() {
		sh.end = err
		close(sh.in)
	})
}

// startStream starts restoring o's state machine from a transfer, or
// returns nil if its empty state is too large to keep for an undo. f is
// the transfer: if it is dropped without an end (its node was), the
// restorer ends once f is garbage.
func (o *Object) startStream(f *fetch) *streamRestore {
	lw := &limitWriter{max: pristineMax}
	if err := o.sm.Snapshot(lw); err != nil {
		return nil
	}
	sh := &streamShared{in: make(chan []byte), need: make(chan struct{}), out: make(chan streamResult, 1)}
	s := &streamRestore{sh: sh, pristine: lw.b}
	go func(sm StateMachine, id ObjectID) {
		h, err := restoreSM(sm, id, &streamReader{sh: sh})
		sh.out <- streamResult{h: h, err: err}
	}(o.sm, o.id)
	s.wait()
	s.cleanup = runtime.AddCleanup(f, func(sh *streamShared) { sh.close(errStreamAborted) }, sh)
	return s
}

// wait waits until the restorer has consumed what it was given and asks
// for more, or has returned.
func (s *streamRestore) wait() {
	select {
	case <-s.sh.need:
	case s.res = <-s.sh.out:
		s.done = true
	}
}

// feed hands b to the restorer and returns once it is consumed. After
// Restore returned, feed drops b; it returns Restore's error, if any.
func (s *streamRestore) feed(b []byte) error {
	if !s.done {
		s.sh.in <- b // the restorer waits for it
		s.wait()
	}
	return s.res.err
}

// finish ends the stream (the restorer reads io.EOF) and returns what
// Restore returned.
func (s *streamRestore) finish() (header, error) {
	s.end(io.EOF)
	return s.res.h, s.res.err
}

// abort ends the stream with an error and waits for the restorer.
func (s *streamRestore) abort() { s.end(errStreamAborted) }

func (s *streamRestore) end(err error) {
	if !s.done {
		s.sh.close(err)
		s.res, s.done = <-s.sh.out, true
	}
	s.cleanup.Stop()
}

// streamReader is the restorer's io.Reader over the chunks.
type streamReader struct {
	sh  *streamShared
	cur []byte
	end error // once in is closed
}

// next waits until the reader has bytes in cur; false once the stream
// ended (r.end says why).
func (r *streamReader) next() bool {
	for len(r.cur) == 0 {
		if r.end != nil {
			return false
		}
		r.sh.need <- struct{}{}
		b, ok := <-r.sh.in
		if !ok {
			r.end = r.sh.end
			continue
		}
		r.cur = b
	}
	return true
}

func (r *streamReader) Read(p []byte) (int, error) {
	if !r.next() {
		return 0, r.end
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// WriteTo hands w the chunks as they are, instead of copying them into
// the caller's buffer: io.Copy uses it (through restoreSM's bufio.Reader),
// so a state machine that restores with io.Copy reads a transfer without
// that copy. w must not keep what it is given, as io.Writer says: a chunk
// is reused once the next one is asked for.
func (r *streamReader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for r.next() {
		k, err := w.Write(r.cur)
		n, r.cur = n+int64(k), r.cur[k:]
		if err == nil && len(r.cur) > 0 {
			err = io.ErrShortWrite
		}
		if err != nil {
			return n, err
		}
	}
	if r.end == io.EOF {
		return n, nil
	}
	return n, r.end
}

// resetState undoes a restore that did not complete: the state machine
// gets back the state it had before (see startStream).
func (o *Object) resetState(pristine []byte) {
	o.hasState = false
	if err := o.sm.Restore(bytes.NewReader(pristine)); err != nil {
		o.host.logger().Error("undoing a restore that did not complete", "object", o.id, "error", err)
	}
}

// limitWriter keeps up to max bytes and fails beyond.
type limitWriter struct {
	max int
	b   []byte
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > w.max {
		return 0, fmt.Errorf("rsm: over %d bytes", w.max)
	}
	w.b = append(w.b, p...)
	return len(p), nil
}
