package compose

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/internal/wirecheck"
	"github.com/lwgkit/lwgkit/lwg"
)

// magic starts every payload the routing filter multicasts in an LWG. 0xC1
// is never used by msgpack, so it cannot begin an msgpack-encoded
// application payload; anything else passes through as a local message.
var magic = []byte{0xC1, 'R'}

// routeMsg is one routed message, or a copy of one on a link.
type routeMsg struct {
	Origin hwg.Process `msgpack:"o"`
	Seq    uint64      `msgpack:"s"`
	Src    lwg.ID      `msgpack:"g"`
	// Dests: nil is every group reachable from Src.
	Dests []lwg.ID `msgpack:"d,omitempty"`
	// Via is the group the copy crossed from ("" in the origin's group);
	// Epoch the routing-state epoch of Via; LSeq its position on the link.
	Via     lwg.ID `msgpack:"v,omitempty"`
	Epoch   uint64 `msgpack:"e,omitempty"`
	LSeq    uint64 `msgpack:"l,omitempty"`
	Payload []byte `msgpack:"p"`
}

// ackMsg, ordered in a group G: the copies of G's link to To up to Upto
// have been delivered in To, so G's members drop them.
type ackMsg struct {
	To   lwg.ID `msgpack:"t"`
	Upto uint64 `msgpack:"u"`
}

// stateMsg carries a group's routing state, cut at position (View, K):
// after the install of View and the first K filter payloads delivered in
// it (K is 0 for a donor's snapshot at a join; a claim round's seed cuts
// mid-view), for the members that joined without it.
type stateMsg struct {
	View  uint64     `msgpack:"v"`
	K     uint64     `msgpack:"k,omitempty"`
	State groupState `msgpack:"s"`
}

// claimMsg is what a member without the routing state says in a claim
// round (see Router): the state it kept from before it was excluded or
// left (Has, At, Holders, State), and where its buffer of the group's
// deliveries begins (Join, the view that admitted it).
type claimMsg struct {
	View    uint64        `msgpack:"v"`
	Join    uint64        `msgpack:"j"`
	Has     bool          `msgpack:"h,omitempty"`
	At      Position      `msgpack:"a"`
	Holders []hwg.Process `msgpack:"o,omitempty"`
	State   *groupState   `msgpack:"s,omitempty"`
	// Pending: seeds of earlier rounds whose state this member never got.
	Pending []hwg.Process `msgpack:"p,omitempty"`
}

type envelope struct {
	// N numbers the sender's multicasts, so no two payloads it multicasts
	// are equal (a router may forward one copy twice in two tenures).
	N     uint64    `msgpack:"n,omitempty"`
	Route *routeMsg `msgpack:"r,omitempty"`
	Ack   *ackMsg   `msgpack:"a,omitempty"`
	State *stateMsg `msgpack:"x,omitempty"`
	Claim *claimMsg `msgpack:"c,omitempty"`
}

// arrival is the highest link sequence delivered from one neighbour, for
// one epoch of the neighbour's routing state.
type arrival struct {
	Epoch uint64 `msgpack:"e"`
	Seq   uint64 `msgpack:"s"`
}

// outLink is the replicated queue of copies a group owes a neighbour:
// Pending[i].LSeq == Acked+1+i, and Next is the last number given.
type outLink struct {
	Next    uint64      `msgpack:"n"`
	Acked   uint64      `msgpack:"a"`
	Pending []*routeMsg `msgpack:"p"`
}

type waiter struct {
	P    hwg.Process `msgpack:"p"`
	Join uint64      `msgpack:"j"`
}

// groupState is the routing state of one group: a deterministic function
// of the group's delivery sequence, identical at every member that holds
// it at the same point.
type groupState struct {
	// Epoch is the view id at which this state began (a group that lost
	// every holder starts a new epoch, and its links count afresh).
	Epoch   uint64              `msgpack:"ep"`
	Arrived map[lwg.ID]*arrival `msgpack:"a"`
	Out     map[lwg.ID]*outLink `msgpack:"o"`
	// Waiting lists members that joined and have not got the state, with
	// the view they joined in, in view order.
	Waiting []waiter `msgpack:"w"`
}

func newState(epoch uint64) groupState {
	return groupState{Epoch: epoch, Arrived: map[lwg.ID]*arrival{}, Out: map[lwg.ID]*outLink{}}
}

func (st *groupState) out(n lwg.ID) *outLink {
	ol := st.Out[n]
	if ol == nil {
		ol = &outLink{}
		st.Out[n] = ol
	}
	return ol
}

func encode(e *envelope) []byte {
	var b bytes.Buffer
	b.Write(magic)
	enc := msgpack.NewEncoder(&b)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(e); err != nil {
		panic(fmt.Sprintf("compose: encoding: %v", err)) // only plain types: cannot fail
	}
	return b.Bytes()
}

// decode reports ok=false for a payload that is not the filter's (a local
// message); err for one that is but does not decode.
func decode(p []byte) (*envelope, bool, error) {
	if !bytes.HasPrefix(p, magic) {
		return nil, false, nil
	}
	var e envelope
	if err := wirecheck.Unmarshal(p[len(magic):], &e); err != nil {
		return nil, true, err
	}
	n := 0
	for _, x := range []bool{e.Route != nil, e.Ack != nil, e.State != nil, e.Claim != nil} {
		if x {
			n++
		}
	}
	if n != 1 {
		return nil, true, fmt.Errorf("compose: envelope with %d parts", n)
	}
	if s := e.State; s != nil {
		if err := s.State.check(); err != nil {
			return nil, true, err
		}
	}
	if c := e.Claim; c != nil && c.Has {
		if c.State == nil {
			return nil, true, fmt.Errorf("compose: claim without its state")
		}
		if err := c.State.check(); err != nil {
			return nil, true, err
		}
	}
	return &e, true, nil
}

// check validates a decoded state and fills its nil maps.
func (st *groupState) check() error {
	if st.Arrived == nil {
		st.Arrived = map[lwg.ID]*arrival{}
	}
	if st.Out == nil {
		st.Out = map[lwg.ID]*outLink{}
	}
	for k, ol := range st.Out {
		if ol == nil || uint64(len(ol.Pending)) != ol.Next-ol.Acked {
			return fmt.Errorf("compose: state with a broken link queue to %s", k)
		}
		for i, m := range ol.Pending {
			if m == nil || m.LSeq != ol.Acked+1+uint64(i) {
				return fmt.Errorf("compose: state with a broken link queue to %s", k)
			}
		}
	}
	for k, a := range st.Arrived {
		if a == nil {
			delete(st.Arrived, k)
		}
	}
	return nil
}

func sortedIDs[V any](m map[lwg.ID]V) []lwg.ID {
	ks := make([]lwg.ID, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Info describes a payload the routing filter multicast, for tracing and
// tests (proptest reads it from LWG deliveries).
type Info struct {
	Kind   string // "route", "ack", "state" or "claim"
	Origin hwg.Process
	Seq    uint64
	Src    lwg.ID
	Dests  []lwg.ID // nil: every group
	// Via is the group a copy crossed from ("" for the origin's own
	// multicast in Src), LSeq its number on that link.
	Via  lwg.ID
	LSeq uint64
}

// Describe reports what a filter payload carries; ok is false for a
// payload that is not the filter's or does not decode. Safe for concurrent
// use.
func Describe(payload []byte) (Info, bool) {
	e, ours, err := decode(payload)
	if !ours || err != nil {
		return Info{}, false
	}
	switch {
	case e.Route != nil:
		m := e.Route
		return Info{Kind: "route", Origin: m.Origin, Seq: m.Seq, Src: m.Src, Dests: m.Dests, Via: m.Via, LSeq: m.LSeq}, true
	case e.Ack != nil:
		return Info{Kind: "ack", Via: e.Ack.To, LSeq: e.Ack.Upto}, true
	case e.Claim != nil:
		return Info{Kind: "claim", LSeq: e.Claim.View}, true
	default:
		return Info{Kind: "state", LSeq: e.State.View}, true
	}
}
