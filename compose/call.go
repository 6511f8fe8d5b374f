package compose

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/internal/wirecheck"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/rsm"
)

// Kinds of the payloads Objects routes (the first byte).
const (
	kindSend  byte = 1 // a command, no reply
	kindCall  byte = 2 // a command whose result goes back (callMsg)
	kindReply byte = 3 // a result going back (replyMsg)
)

// callMsg is a command sent by Call. A first attempt leaves Src and Seq
// empty: its id is the delivery's own (OriginOf). A retry names the id of
// the first attempt, so the target applies the command once however many
// attempts reach it.
type callMsg struct {
	Src lwg.ID `msgpack:"g,omitempty"`
	Seq uint64 `msgpack:"s,omitempty"`
	Cmd []byte `msgpack:"c"`
}

func (c *callMsg) origin(d Delivery) rsm.OriginID {
	if c.Seq == 0 {
		return OriginOf(d)
	}
	return OriginOf(Delivery{Origin: d.Origin, Src: c.Src, Seq: c.Seq})
}

func decodeCall(b []byte) (*callMsg, error) {
	var c callMsg
	if err := wirecheck.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// replyMsg carries the outcome of a call back to its caller.
type replyMsg struct {
	To     hwg.Process `msgpack:"t"`
	Src    lwg.ID      `msgpack:"g"`
	Seq    uint64      `msgpack:"s"`
	Result []byte      `msgpack:"r,omitempty"`
	Err    string      `msgpack:"e,omitempty"`
	// Dup: refused as rsm.ErrDuplicate: below the target's window for
	// its origin (applied or not), or applied with its result dropped.
	Dup bool `msgpack:"d,omitempty"`
}

type callKey struct {
	src lwg.ID
	seq uint64
}

type reply struct {
	result []byte
	err    error
}

// ErrCallFailed wraps an error the target's state machine returned, or
// ObjectsConfig.Check's refusal there.
var ErrCallFailed = errors.New("compose: call failed at the target")

// Call runs cmd on object target, which need not be open here, and
// returns its result: the command goes as by Send (through an object open
// here and the routers of the topology), every replica of the target that
// delivers it proposes it with ProposeFrom under the call's id, and the
// replicas send the result back through the topology to the group the
// call came from, where this node reads it.
//
// If no result arrives within ObjectsConfig.Attempt, Call sends the
// command again under the id of its first attempt (through whatever group
// this node is in now), so the target applies it once however many
// attempts reach it, and returns the result it had. Errors: wrapping
// rsm.ErrNotApplied if no attempt was handed to a group (ErrNoLocalGroup,
// ErrUnreachable, ErrUnknownGroup are wrapped too: nothing was sent, and
// the command was not applied), rsm.ErrUnknown if the context ended after
// an attempt was sent (it may be applied) or the target refused a repeat
// as a duplicate (its id fell 64 or more behind the latest applied from
// this node through that group, or its result was dropped: see
// rsm.Object.ProposeFrom); concurrent Calls from this node are applied
// once each, in any order, within that window; ErrCallFailed if the state
// machine returned an error.
func (o *Objects) Call(ctx context.Context, target rsm.ObjectID, cmd []byte) ([]byte, error) {
	ch := make(chan reply, 1)
	var first *callKey
	defer func() {
		if first != nil {
			o.mu.Lock()
			delete(o.calls, *first)
			o.mu.Unlock()
		}
	}()
	for {
		msg := callMsg{Cmd: cmd}
		if first != nil {
			msg.Src, msg.Seq = first.src, first.seq
		}
		b, err := msgpack.Marshal(&msg)
		if err != nil {
			return nil, err
		}
		payload := append([]byte{kindCall}, b...)
		var (
			serr      error
			amu       sync.Mutex
			abandoned bool // the caller gave up waiting: send nothing
			sent      bool
		)
		derr := o.node.do(ctx, func(r *Router) {
			amu.Lock()
			defer amu.Unlock()
			if abandoned {
				return
			}
			src, err := r.Through([]lwg.ID{target.LWG()})
			if err != nil {
				serr = err
				return
			}
			seq, err := r.SendTo(target.LWG(), payload)
			if err != nil {
				serr = err
				return
			}
			sent = true
			if first == nil {
				// Registered before any reply can be delivered: replies
				// come from events the loop takes after this call.
				first = &callKey{src, seq}
				o.mu.Lock()
				o.calls[*first] = ch
				o.mu.Unlock()
			}
		})
		amu.Lock()
		abandoned = true
		if derr != nil && sent {
			derr = nil // the send happened after all
		}
		amu.Unlock()
		switch {
		case derr != nil && first == nil:
			return nil, fmt.Errorf("%w: %w", rsm.ErrNotApplied, derr)
		case derr != nil:
			return nil, fmt.Errorf("%w: call to %s: %w", rsm.ErrUnknown, target, derr)
		case serr != nil && first == nil:
			return nil, fmt.Errorf("%w: call to %s: %w", rsm.ErrNotApplied, target, serr)
		}
		t := time.NewTimer(o.cfg.Attempt)
		select {
		case rp := <-ch:
			t.Stop()
			return rp.result, rp.err
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w: call to %s: %w", rsm.ErrUnknown, target, ctx.Err())
		case <-t.C:
			// No result yet: ask again under the first attempt's id.
			o.retries.Add(1)
		}
	}
}

// CallRetries returns how many times Call sent a command again for lack
// of a result.
func (o *Objects) CallRetries() uint64 { return o.retries.Load() }

// reply sends the outcome of a call this replica proposed back to the
// group the call came through. Every replica that proposed it replies;
// the caller takes the first.
func (o *Objects) reply(d Delivery, c *callMsg, res []byte, err error) {
	src, seq := d.Src, d.Seq
	if c.Seq != 0 {
		src, seq = c.Src, c.Seq
	}
	m := replyMsg{To: d.Origin, Src: src, Seq: seq, Result: res}
	switch {
	case errors.Is(err, rsm.ErrDuplicate):
		m.Dup = true
	case err != nil:
		m.Err = err.Error()
	}
	b, merr := msgpack.Marshal(&m)
	if merr != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.cfg.Attempt)
	defer cancel()
	// A reply that cannot be sent is lost: the caller asks again.
	_, _ = o.node.SendTo(ctx, d.Src, append([]byte{kindReply}, b...))
}

// replied hands a reply addressed to this node to its waiting call.
func (o *Objects) replied(d Delivery) {
	var m replyMsg
	if wirecheck.Unmarshal(d.Payload[1:], &m) != nil || m.To != o.node.router.self {
		return
	}
	o.mu.Lock()
	ch := o.calls[callKey{m.Src, m.Seq}]
	o.mu.Unlock()
	if ch == nil {
		return // answered already, or given up
	}
	var rp reply
	switch {
	case m.Dup:
		rp.err = fmt.Errorf("%w: refused as too old or applied without its result kept", rsm.ErrUnknown)
	case m.Err != "":
		rp.err = fmt.Errorf("%w: %s", ErrCallFailed, m.Err)
	default:
		rp.result = m.Result
	}
	select {
	case ch <- rp:
	default:
	}
}
