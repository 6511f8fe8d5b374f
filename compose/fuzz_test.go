package compose

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/internal/wirecheck"
	"github.com/lwgkit/lwgkit/lwg"
)

// envelopeSeeds are one envelope of each kind, as routers send them.
func envelopeSeeds() [][]byte {
	st := newState(3)
	st.Arrived["l/a"] = &arrival{Epoch: 1, Seq: 7}
	st.Out["l/c"] = &outLink{Next: 6, Acked: 4, Pending: []*routeMsg{
		{Origin: p(1), Seq: 2, Src: "l/a", Via: "l/b", Epoch: 3, LSeq: 5, Payload: []byte("x")},
		{Origin: p(2), Seq: 9, Src: "l/b", Dests: []lwg.ID{"l/c"}, Via: "l/b", Epoch: 3, LSeq: 6, Payload: []byte("y")},
	}}
	st.Waiting = []waiter{{P: p(4), Join: 5}}
	return [][]byte{
		encode(&envelope{N: 1, Route: &routeMsg{Origin: p(1), Seq: 1, Src: "l/a", Dests: []lwg.ID{"l/c"}, Payload: []byte("hello")}}),
		encode(&envelope{N: 2, Route: &routeMsg{Origin: p(1), Seq: 1, Src: "l/a", Via: "l/a", Epoch: 1, LSeq: 1, Payload: []byte("copy")}}),
		encode(&envelope{N: 3, Ack: &ackMsg{To: "l/c", Upto: 4}}),
		encode(&envelope{N: 4, State: &stateMsg{View: 5, K: 2, State: st}}),
		encode(&envelope{N: 5, Claim: &claimMsg{View: 6, Join: 5, Has: true, At: Position{View: 5, K: 2}, Holders: []hwg.Process{p(1), p(2)}, State: &st, Pending: []hwg.Process{p(3)}}}),
		encode(&envelope{N: 6, Claim: &claimMsg{View: 6, Join: 6}}),
		[]byte("a plain payload"),
		append(append([]byte{}, magic...), 0x80), // no part
		append(append([]byte{}, magic...), 0x81, 0xa1, 'r', 0x81, 0xa1, 'd', 0xdd, 0x01, 0x00, 0x00, 0x00), // 2^24 dests declared
		append(append([]byte{}, magic...), 0x82, 0xa1, 'a', 0x80, 0xa1, 'x', 0x80),                         // two parts
	}
}

// FuzzDecodeEnvelope: whatever a group delivers, decode neither panics
// nor allocates without bound; a payload it accepts has exactly one part,
// valid link queues, and encodes to bytes that decode to the same
// envelope; Describe agrees. Delivered to the routers of a chain, a
// payload that does not decode is counted as malformed at every member
// and routing goes on: a message sent next reaches its group.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range envelopeSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		e, ours, err := decode(payload)
		if ours != bytes.HasPrefix(payload, magic) {
			t.Fatalf("ours = %v for a payload starting %x", ours, payload[:min(2, len(payload))])
		}
		_, described := Describe(payload)
		if described != (ours && err == nil) {
			t.Fatalf("Describe ok = %v, decode ours = %v err = %v", described, ours, err)
		}
		if ours && err == nil {
			b := encode(e)
			e2, ours2, err2 := decode(b)
			if !ours2 || err2 != nil {
				t.Fatalf("re-encoded envelope does not decode: %v", err2)
			}
			if !bytes.Equal(encode(e2), b) {
				t.Fatalf("round trip changed the envelope:\n%x\n%x", b, encode(e2))
			}
			if st := stateOf(e); st != nil {
				for k, ol := range st.Out {
					if uint64(len(ol.Pending)) != ol.Next-ol.Acked {
						t.Fatalf("accepted a broken queue to %s", k)
					}
				}
			}
		}
		if !ours || err == nil {
			return // a forged valid envelope may change the state: members are trusted
		}
		topo, members := chain(t)
		b := newBus(t, topo, members)
		before := map[hwg.NodeID]uint64{}
		for n, r := range b.nodes {
			before[n] = r.Stats().Malformed
		}
		v := b.views["l/b"]
		b.queue = append(b.queue, queued{from: v.Members[0], s: Send{Group: "l/b", Payload: payload}})
		b.run()
		for _, m := range v.Members {
			if got := b.nodes[m.Node].Stats().Malformed; got != before[m.Node]+1 {
				t.Fatalf("member %v counted %d malformed payloads, want %d", m, got, before[m.Node]+1)
			}
		}
		b.send(1, "l/c", "after")
		b.run()
		for _, n := range members["l/c"] {
			if got := b.routed(n, "l/c"); len(got) != 1 || got[0] != "after" {
				t.Fatalf("node %d in l/c routed %q after a malformed payload, want [after]", n, got)
			}
		}
	})
}

func stateOf(e *envelope) *groupState {
	switch {
	case e.State != nil:
		return &e.State.State
	case e.Claim != nil:
		return e.Claim.State
	}
	return nil
}

// FuzzDecodeCall: Objects' call and reply payloads (after their kind
// byte) decode without panicking or allocating without bound, and what
// decodes re-encodes to the same message.
func FuzzDecodeCall(f *testing.F) {
	for _, v := range []any{
		callMsg{Cmd: []byte("INCR k")},
		callMsg{Src: "l/a", Seq: 7, Cmd: []byte("SET k v")},
		replyMsg{To: p(1), Src: "l/a", Seq: 7, Result: []byte("OK")},
		replyMsg{To: p(2), Src: "l/b", Seq: 1, Err: "boom"},
		replyMsg{To: p(3), Src: "l/c", Seq: 2, Dup: true},
	} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := decodeCall(b); err == nil {
			again, err := msgpack.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := decodeCall(again)
			if err != nil || c2.Src != c.Src || c2.Seq != c.Seq || !bytes.Equal(c2.Cmd, c.Cmd) {
				t.Fatalf("call round trip: %+v, %+v, %v", c, c2, err)
			}
		}
		var m replyMsg
		if wirecheck.Unmarshal(b, &m) == nil {
			again, err := msgpack.Marshal(&m)
			if err != nil {
				t.Fatal(err)
			}
			var m2 replyMsg
			if err := wirecheck.Unmarshal(again, &m2); err != nil || m2.To != m.To || m2.Src != m.Src || m2.Seq != m.Seq ||
				!bytes.Equal(m2.Result, m.Result) || m2.Err != m.Err || m2.Dup != m.Dup {
				t.Fatalf("reply round trip: %+v, %+v, %v", m, m2, err)
			}
		}
	})
}
