package rsm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
)

// DebugState describes the replica for test failure messages.
func (o *Object) DebugState() string {
	o.smMu.Lock()
	defer o.smMu.Unlock()
	o.mu.Lock()
	mail := 0
	if o.mail != nil {
		mail = len(o.mail.items)
	}
	sched := o.scheduled
	o.mu.Unlock()
	f := "none"
	if o.fetch != nil {
		f = fmt.Sprintf("from %v gen %d %d/%d idle %d", o.fetch.donor, o.fetch.gen, o.fetch.next, o.fetch.size, o.fetch.idle)
	}
	return fmt.Sprintf("ready=%v index=%d applied=%v recv=%v first=%v view=%v latest=%v table=%+v queue=%d fetch=%s round=%v early=%v mail=%d scheduled=%v wantIdle=%d",
		o.ready, o.index, o.applied, o.recv, o.first, o.view, o.latest, o.table, len(o.queue), f, o.round != nil, o.early != nil, mail, sched, o.wantIdle)
}

// Watched reports whether the node ticks o.
func (n *Node) Watched(o *Object) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.watched[o]
	return ok
}

// Crash stops the Node as a crash would: no last snapshots.
func (n *Node) Crash() error { return n.stopNode(true) }

// InlineTurns counts the object turns the router ran itself.
func (n *Node) InlineTurns() uint64 { return n.inlined.n.Load() }

// InFlight returns the calls awaiting their outcome and their bytes, and
// checks waitBytes' INVARIANT (the sum of the waiters' sizes).
func (o *Object) InFlight() (calls, bytes int, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	sum := 0
	o.waiters.each(func(w waiter) { sum += w.size })
	if sum != o.waitBytes {
		err = fmt.Errorf("waitBytes %d, but the waiters' sizes sum to %d", o.waitBytes, sum)
	}
	if !o.waiters.check() {
		err = errors.Join(err, fmt.Errorf("waiters: %d in the map with the inline slot empty", len(o.waiters.more)))
	}
	return o.waiters.len(), o.waitBytes, err
}

// hookRegister is a memStore whose register calls fn first.
type hookRegister struct {
	*memStore
	fn func(ObjectID) error
}

func (h hookRegister) register(id ObjectID) error {
	if err := h.fn(id); err != nil {
		return err
	}
	return h.memStore.register(id)
}

// WithRegisterHook returns c with an in-memory store whose register calls fn.
func WithRegisterHook(c Config, fn func(ObjectID) error) Config {
	c.snaps = hookRegister{newMemStore(), fn}
	return c
}

// SetJoinHook has f run at each stage of an Open's join (see
// testHookJoin), until the returned func is called.
func SetJoinHook(f func(o *Object, stage string)) (restore func()) {
	testHookJoin = f
	return func() { testHookJoin = nil }
}

// Closing reports whether Close has begun on o.
func (o *Object) Closing() bool { return o.isClosing() }

// SetCloseHooks has detached run as a Close took its object out of the
// node (before it forgets the record and snapshots), and openWaits as an
// Open is about to wait for such a Close, until restore is called.
func SetCloseHooks(detached func(*Object), openWaits func(ObjectID)) (restore func()) {
	testHookDetached, testHookOpenWaits = detached, openWaits
	return func() { testHookDetached, testHookOpenWaits = nil, nil }
}

// WaitForgotten waits until no Close of id is under way on n (see
// Node.closing), or ctx ends.
func (n *Node) WaitForgotten(ctx context.Context, id ObjectID) error {
	n.mu.Lock()
	done := n.closing[id.LWG()]
	n.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StoreSnapshotInNewerFormat returns c with an in-memory store that holds,
// as id's current snapshot, one whose header names a format this build
// does not read, and a func that returns the bytes the store holds for id.
func StoreSnapshotInNewerFormat(c Config, id ObjectID) (Config, func() []byte) {
	s := newMemStore()
	w, err := s.create(id)
	if err == nil {
		_, err = w.Write(newerFormatSnapshot(id))
	}
	if err == nil {
		_, err = w.commit()
	}
	if err != nil {
		panic(err)
	}
	c.snaps = s
	return c, func() []byte {
		info, ok, err := s.current(id)
		if err != nil || !ok {
			return nil
		}
		r, err := s.open(id, info.Gen)
		if err != nil {
			return nil
		}
		b, _ := io.ReadAll(r)
		return b
	}
}

// newerFormatSnapshot is a snapshot of id as a later build might write
// it: a header with the next format, one of whose fields has another
// shape (the view is a string), then bytes that format might put there.
func newerFormatSnapshot(id ObjectID) []byte {
	hb, err := msgpack.Marshal(map[string]any{"f": snapshotFormat + 1, "o": string(id), "i": 3, "v": "a view in a new shape", "s": 1})
	if err != nil {
		panic(err)
	}
	b := binary.AppendUvarint(nil, uint64(len(hb)))
	return append(append(b, hb...), "not a source record"...)
}
