package rsm

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// gateSubmitter hands each submitted message to the test and returns what
// the test answers.
type gateSubmitter struct {
	msgs    chan []byte
	answers chan error
	kicks   chan *Object
}

func (g *gateSubmitter) kick(o *Object) { g.kicks <- o }

func (g *gateSubmitter) forget(context.Context, *Object) error { return nil }

func (g *gateSubmitter) submit(_ *Object, payload []byte, _, _ int) error {
	g.msgs <- payload
	return <-g.answers
}

func newGatedObject(t *testing.T) (*Object, *gateSubmitter) {
	t.Helper()
	cfg, err := Config{TickInterval: time.Millisecond}.withDefaults(false)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateSubmitter{msgs: make(chan []byte), answers: make(chan error), kicks: make(chan *Object, 16)}
	return newObject("o", hwg.Process{Node: 1, Inc: 1}, &cfg, nil, g, nopSM{}), g
}

// queuedUntil waits until o's outbox holds n requests.
func queuedUntil(o *Object, n int) {
	for {
		o.mu.Lock()
		got := len(o.outbox)
		o.mu.Unlock()
		if got == n {
			return
		}
		runtime.Gosched()
	}
}

// entries decodes a sent message into its requests' sequence numbers.
func entries(t *testing.T, b []byte) []uint64 {
	t.Helper()
	m, err := decodeOrdered(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.kind != kindBatch {
		return []uint64{m.seq}
	}
	var seqs []uint64
	br := m.batch()
	for {
		e, ok := br.next()
		if !ok {
			return seqs
		}
		seqs = append(seqs, e.seq)
	}
}

// What callers queue while a batch is being sent goes out in one message,
// in call order; a caller whose context ends while its request waits gets
// ErrNotApplied and its request is never sent; one whose request was sent
// gets ErrUnknown, and so does one whose context ends while its request is
// being sent; a refused send (not a member) is retried without the
// requests whose callers are gone.
func TestOutboxBatchesAndDeadlines(t *testing.T) {
	o, g := newGatedObject(t)
	type res struct {
		seq int
		err error
	}
	done := make(chan res, 8)
	propose := func(ctx context.Context, i int) {
		_, err := o.Propose(ctx, []byte{1})
		done <- res{i, err}
	}

	go propose(context.Background(), 1)
	first := <-g.kicks
	more := make(chan bool)
	go func() { more <- first.flush() }()
	if got := entries(t, <-g.msgs); len(got) != 1 || got[0] != 1 {
		t.Fatalf("first message carries %v, want [1]", got)
	}
	// While it is being sent: two callers queue, a third's context ends.
	ctx2, cancel2 := context.WithCancel(context.Background())
	go propose(ctx2, 2)
	queuedUntil(o, 1)
	ctx3, cancel3 := context.WithCancel(context.Background())
	go propose(ctx3, 3)
	queuedUntil(o, 2)
	ctx4, cancel4 := context.WithCancel(context.Background())
	go propose(ctx4, 4)
	queuedUntil(o, 3)
	cancel3()
	if r := <-done; r.seq != 3 || !errors.Is(r.err, ErrNotApplied) {
		t.Fatalf("queued caller whose context ended: %d %v, want 3 and ErrNotApplied", r.seq, r.err)
	}
	if len(g.kicks) != 0 {
		t.Fatalf("%d kicks while sending", len(g.kicks))
	}
	g.answers <- nil
	if m := <-more; !m {
		t.Fatal("the first flush reported nothing more queued")
	}
	// The sender goes on with what was queued: one batch of 2 and 4.
	go func() { more <- first.flush() }()
	if got := entries(t, <-g.msgs); len(got) != 2 || got[0] != 2 || got[1] != 4 {
		t.Fatalf("second message carries %v, want [2 4]", got)
	}
	// 2's context ends while the batch is being sent: its caller does not
	// wait for the send (which may block long past the deadline): the
	// outcome is unknown. The send is then refused (not a member), and 2,
	// whose caller is gone, is not sent again.
	cancel2()
	if r := <-done; r.seq != 2 || !errors.Is(r.err, ErrUnknown) {
		t.Fatalf("caller whose batch was being sent: %d %v, want 2 and ErrUnknown", r.seq, r.err)
	}
	g.answers <- lwg.ErrNotMember
	if m := <-more; m {
		t.Fatal("a refused batch reported more to send now")
	}
	// Retried a tick later (kicked by a timer): only 4 is left.
	retry := <-g.kicks
	go func() { more <- retry.flush() }()
	if got := entries(t, <-g.msgs); len(got) != 1 || got[0] != 4 {
		t.Fatalf("retry carries %v, want [4]", got)
	}
	g.answers <- nil
	if m := <-more; m {
		t.Fatal("more after the outbox was emptied")
	}
	// 4 was sent: a context ending now leaves its outcome unknown.
	cancel4()
	if r := <-done; r.seq != 4 || !errors.Is(r.err, ErrUnknown) {
		t.Fatalf("caller of a sent request: %d %v, want 4 and ErrUnknown", r.seq, r.err)
	}
	// 1 is answered as it is applied.
	o.resolve(1, []byte("ok"), nil)
	if r := <-done; r.seq != 1 || r.err != nil || o.sending {
		t.Fatalf("first caller: %d %v (sending %v)", r.seq, r.err, o.sending)
	}
	// The node leaves the group while 5 is being sent: its caller is
	// failed, and the refused send puts nothing back (before, 5 went out
	// again after the rejoin, applied with nobody waiting, and a caller
	// that retried it had it applied twice).
	go propose(context.Background(), 5)
	fifth := <-g.kicks
	go func() { more <- fifth.flush() }()
	if got := entries(t, <-g.msgs); len(got) != 1 || got[0] != 5 {
		t.Fatalf("fifth message carries %v, want [5]", got)
	}
	o.failAll(ErrUnknown)
	if r := <-done; r.seq != 5 || !errors.Is(r.err, ErrUnknown) {
		t.Fatalf("caller failed while its request was sent: %d %v", r.seq, r.err)
	}
	g.answers <- lwg.ErrNotMember
	if m := <-more; m {
		t.Fatal("more after a refused batch whose callers are gone")
	}
	o.mu.Lock()
	left, sending := len(o.outbox), o.sending
	o.mu.Unlock()
	if left != 0 || sending {
		t.Fatalf("outbox %d, sending %v after a refused batch whose callers are gone", left, sending)
	}
	select {
	case <-g.kicks:
		t.Fatal("a retry was scheduled for nothing")
	case <-time.After(20 * o.cfg.TickInterval):
	}
}

// querySM is nopSM with queries.
type querySM struct{ nopSM }

func (querySM) Query([]byte) ([]byte, error) { return nil, nil }

// A read changes nothing, so it never ends with ErrUnknown: one whose
// context ends after it was sent, and one in flight when the node leaves
// the group (failAll(ErrUnknown), as on an exclusion), wrap
// ErrNotApplied, which callers may always retry. Propose in the same
// places gets ErrUnknown (TestOutboxBatchesAndDeadlines).
func TestReadWithoutAnswerIsNotApplied(t *testing.T) {
	cfg, err := Config{TickInterval: time.Millisecond}.withDefaults(false)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateSubmitter{msgs: make(chan []byte), answers: make(chan error), kicks: make(chan *Object, 16)}
	o := newObject("o", hwg.Process{Node: 1, Inc: 1}, &cfg, nil, g, querySM{})
	done := make(chan error, 2)

	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, err := o.Read(ctx, []byte("q")); done <- err }()
	kicked := <-g.kicks
	more := make(chan bool)
	go func() { more <- kicked.flush() }()
	<-g.msgs
	g.answers <- nil // sent
	<-more
	cancel()
	if err := <-done; !errors.Is(err, ErrNotApplied) || errors.Is(err, ErrUnknown) {
		t.Fatalf("read whose context ended after it was sent: %v, want ErrNotApplied only", err)
	}

	go func() { _, err := o.Read(context.Background(), []byte("q")); done <- err }()
	kicked = <-g.kicks
	go func() { more <- kicked.flush() }()
	<-g.msgs
	g.answers <- nil
	<-more
	o.failAll(ErrUnknown)
	if err := <-done; !errors.Is(err, ErrNotApplied) || errors.Is(err, ErrUnknown) {
		t.Fatalf("read in flight when the node left the group: %v, want ErrNotApplied only", err)
	}
}
