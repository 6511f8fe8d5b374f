package proptest

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/lwgkit/lwgkit/rsm/rsmtest"
)

// RSMOptions configures a simulation of replicated objects (package rsm)
// on the LWG simulation: every node runs an rsm.SimNode fed with its
// lwg.Core's events, state transfers travel over the simulated network
// with its faults, clients propose and read on random nodes, and crashed
// nodes restart as new incarnations that open their objects again and
// fetch their state from a donor. Zero fields take the defaults shown.
type RSMOptions struct {
	// LWG is the cluster and its faults. LWG.LWGs is the number of objects
	// (default 6): object i is "i" in LWG "l/i", a map (rsmtest.Map) when
	// i is even and a counter (rsmtest.Counter) when odd. LWG.SendRate is
	// not used.
	LWG LWGOptions
	// Requests is the chance per step of a client request; default 0.15.
	Requests float64
	// Reads is the share of requests that are linearizable reads;
	// default 0.3.
	Reads float64
	// Keys is the number of keys the map workload uses; default 3.
	Keys int
	// Config tunes every replica. Zero ChunkSize (48), TransferWindow (96),
	// SnapshotEvery (7) and SnapshotInterval (25 ticks) get small values,
	// so transfers take several round trips and snapshots are frequent.
	Config rsm.Config
	// CounterPad pads counter snapshots to this many bytes (default 400),
	// for transfers of many chunks.
	CounterPad int
	// Factory, if set, makes the state machines instead (tests of the
	// checkers wrap the rsmtest ones); the workload still treats even
	// objects as maps and odd ones as counters.
	Factory rsm.Factory
	// LoseState lets the fault planner crash, or make leave, the last
	// live member holding an object's state (the LWG simulation's
	// planner only keeps HWG quorums). By default it refuses, so no
	// acknowledged command may be lost: state is lost only when every
	// holder fails at once, which rsm does not promise to survive.
	LoseState bool
	// StaleReads answers reads at once from the local replica's state
	// instead of through the total order: a deliberate bug, which the
	// linearizability check must catch.
	StaleReads bool
	// Forget is the chance that a request that finds its replica without
	// the state is instead an operator's ForgetAbsent there. The operator
	// may give up on a holder that is only away, so its commands may be
	// lost: a new life may start while it lives (for a life created in a
	// view in which its creator took a ForgetAbsent, the new-life check
	// counts only holders in that view), and a member that goes on, in
	// such a view, from a state it kept begins a life of its own,
	// whose history porcupine does not check (its digests and snapshots
	// are). Default 0.
	Forget float64
	// SettleSteps bounds the final round after the LWGs converged: every
	// replica gets the state, and one command per member is applied
	// everywhere. Default 300,000.
	SettleSteps int
	// CheckTimeout bounds porcupine per partition; default 10 s.
	CheckTimeout time.Duration
}

func (o *RSMOptions) defaults() {
	if o.LWG.LWGs <= 0 {
		o.LWG.LWGs = 6
	}
	if o.Requests == 0 {
		o.Requests = 0.15
	}
	if o.Reads == 0 {
		o.Reads = 0.3
	}
	if o.Keys <= 0 {
		o.Keys = 3
	}
	if o.Config.ChunkSize <= 0 {
		o.Config.ChunkSize = 48
	}
	if o.Config.TransferWindow <= 0 {
		o.Config.TransferWindow = 2 * o.Config.ChunkSize
	}
	if o.Config.SnapshotEvery == 0 {
		o.Config.SnapshotEvery = 7
	}
	if o.Config.TickInterval <= 0 {
		o.Config.TickInterval = 100 * time.Millisecond
	}
	if o.Config.SnapshotInterval <= 0 {
		o.Config.SnapshotInterval = 25 * o.Config.TickInterval
	}
	if o.CounterPad == 0 {
		o.CounterPad = 400
	}
	if o.SettleSteps <= 0 {
		o.SettleSteps = 300_000
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = 10 * time.Second
	}
}

// RSMStats counts what an RSM simulation did.
type RSMStats struct {
	LWG LWGStats
	// Requests made (proposals and reads), and of them the ones answered
	// and the ones whose outcome stayed unknown (their node crashed or
	// left the group first).
	Proposals, Reads, Answered, Unknown int
	Applies                             int
	// Batches counts messages that carried batchAt requests of one
	// object at once (more go out in batches at ticks, uncounted).
	Batches int
	// States counts replicas that got the state: Created (a new group)
	// or Received (a snapshot from a donor).
	Created, Received int
	Snapshots         int
	Directs           int
	// Operations is the length of the history checked for
	// linearizability.
	Operations int
	// Lives counts the lives of objects' states: one per object, and one
	// more each time every holder of an object's state was lost (crashed
	// or left) and a fresh member created it again, empty.
	Lives int
	// Forgets counts ForgetAbsent calls (RSMOptions.Forget); Branches,
	// the lives that went on from a kept state in a view in which their
	// seed took a ForgetAbsent.
	Forgets, Branches int
}

// RSMResult is the outcome of RunRSM.
type RSMResult struct {
	Trace      Trace
	Violations []Violation
	Stats      RSMStats
	// History is every client operation, for the linearizability check.
	History []RSMOp
}

// RSMOp is one client operation of an RSM simulation. Call and Return are
// positions in the run's global order of invocations and answers (Return
// is -1 while the outcome is unknown).
type RSMOp struct {
	Object rsm.ObjectID
	Node   hwg.Process
	// Life is the life of the object's state the operation ran on (see
	// RSMCheckers): a new life after every holder of the state was lost
	// starts again from the empty state, so each life is checked alone.
	Life   int
	Map    bool   // a map operation (else a counter one)
	Read   bool   // a linearizable read (else a command)
	Key    string // map: the key
	Value  string // map set: the value; "" with Del
	Del    bool
	Add    uint64 // counter: the amount
	Call   int64
	Return int64
	// Out is the answer: the old value (map command), the value (map
	// read), the total (counter, 8 bytes big endian).
	Out []byte
	Err error
	// Effect says that the outcome of a command whose client got no
	// answer is known all the same: a replica applied it, in life Life,
	// with output Out. A command no replica applied is left out of the
	// history: it never took effect.
	Effect bool
}

// Checker names of the RSM simulation.
const (
	nameRSMSnapshot  = "rsm-snapshot"
	nameRSMCommand   = "rsm-command"
	nameRSMLiveness  = "rsm-liveness"
	nameRSMLife      = "rsm-life"
	nameLinearizable = "linearizability"
)

// rsmSim runs replicated objects on an LWGSim: it is the LWGSim's layer.
type rsmSim struct {
	opts  RSMOptions
	s     *LWGSim
	objs  []rsm.ObjectID
	nodes map[hwg.NodeID]*rsmNode // the current incarnation of each node
	clock int64
	ops   []RSMOp
	// pending maps a request in flight to its operation.
	pending map[rsmReq]int
	reps    map[rsmRep]*rsmReplica
	lives   int
	// log holds the command and the digest at each index of each life of
	// each object, as the first replica applied it.
	log       map[lifeIndex]logEntry
	snaps     []rsmSnap
	extra     []Violation
	stats     RSMStats
	vals      uint64
	ticking   bool
	tickSends []tickSend
	// directs counts transfer messages delivered, by (to, from).
	directs map[[2]hwg.Process]int
	// effects holds, by operation, the first application of each tagged
	// command (see tagCmd).
	effects map[int]effect
	// branches: lives that went on from a kept state after a
	// ForgetAbsent (see Observe).
	branches map[int]bool
}

// effect is the first application of a client's command by any replica.
type effect struct {
	life int
	out  []byte
	err  error
}

// cmdTag marks a command tagged with the operation it belongs to: every
// client command carries its operation's number, so the simulator knows
// which commands replicas applied, and with what output, even when the
// client never got an answer. The state machines see the command without
// its tag.
const cmdTag = 0xff

func tagCmd(op int, cmd []byte) []byte {
	b := binary.BigEndian.AppendUint64([]byte{cmdTag}, uint64(op))
	return append(b, cmd...)
}

// untagCmd returns the operation a command belongs to and the command.
func untagCmd(b []byte) (op int, cmd []byte, ok bool) {
	if len(b) < 9 || b[0] != cmdTag {
		return 0, b, false
	}
	return int(binary.BigEndian.Uint64(b[1:9])), b[9:], true
}

type rsmNode struct {
	sn   *rsm.SimNode
	self hwg.Process
	// msgs counts sends and deliveries per sender, group, view and
	// payload, to name messages uniquely in the trace.
	msgs map[msgKey]int
}

type msgKey struct {
	send   bool
	sender hwg.Process
	group  lwg.ID
	view   uint64
	sum    uint64
}

type rsmReq struct {
	p   hwg.Process
	obj rsm.ObjectID
	req uint64
}

type rsmRep struct {
	p   hwg.Process
	obj rsm.ObjectID
}

// rsmReplica is what the simulator knows of one replica.
type rsmReplica struct {
	life  int // 0 until it holds the state
	donor hwg.Process
	index uint64
}

type lifeIndex struct {
	obj   rsm.ObjectID
	life  int
	index uint64
}

type logEntry struct {
	cmd    []byte
	digest string
	by     hwg.Process
}

// rsmSnap is a state machine snapshot taken beside one of the replica's
// own snapshots, for the restore-and-replay check.
type rsmSnap struct {
	obj   rsm.ObjectID
	life  int
	index uint64
	by    hwg.Process
	state []byte
}

func (r *rsmSim) isMap(id rsm.ObjectID) bool {
	i := slices.Index(r.objs, id)
	return i%2 == 0
}

// factory makes object id's state machine, wrapped to record commands.
func (r *rsmSim) factory(id rsm.ObjectID) (rsm.StateMachine, error) {
	var sm rsm.StateMachine
	var err error
	switch {
	case r.opts.Factory != nil:
		sm, err = r.opts.Factory(id)
	case r.isMap(id):
		sm, err = rsmtest.NewMap(id)
	default:
		sm = &rsmtest.Counter{Pad: r.opts.CounterPad}
	}
	if err != nil {
		return nil, err
	}
	return &recordingSM{StateMachine: sm}, nil
}

// recordingSM remembers the last command applied (with its tag, see
// tagCmd) and its output, for the trace's log and the history.
type recordingSM struct {
	rsm.StateMachine
	last    []byte
	lastOut []byte
	lastErr error
}

func (m *recordingSM) Apply(cmd []byte) ([]byte, error) {
	m.last = append(m.last[:0], cmd...)
	_, inner, _ := untagCmd(cmd)
	out, err := m.StateMachine.Apply(inner)
	m.lastOut, m.lastErr = append(m.lastOut[:0], out...), err
	return out, err
}

func (m *recordingSM) Query(q []byte) ([]byte, error) {
	if qr, ok := m.StateMachine.(rsm.Querier); ok {
		return qr.Query(q)
	}
	return nil, rsm.ErrNoQuery
}

// digestOf names a state machine's state: its "digest" query, or else a
// hash of its snapshot.
func digestOf(sm rsm.StateMachine) string {
	if rec, ok := sm.(*recordingSM); ok {
		sm = rec.StateMachine
	}
	if qr, ok := sm.(rsm.Querier); ok {
		if d, err := qr.Query([]byte("digest")); err == nil {
			return hex.EncodeToString(d)
		}
	}
	h := sha256.New()
	if err := sm.Snapshot(h); err != nil {
		return "snapshot-error:" + err.Error()
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (r *rsmSim) violation(checker string, obj rsm.ObjectID, detail string) {
	if len(r.extra) < 40 {
		r.extra = append(r.extra, Violation{Checker: checker, Group: string(obj.LWG()), T: uint64(r.s.stats.Steps), Detail: detail})
	}
}

func (r *rsmSim) tick() int64 {
	r.clock++
	return r.clock
}

// The layer.

func (r *rsmSim) attach(s *LWGSim) { r.s = s }

func (r *rsmSim) started(n *lwgSimNode) {
	self := n.self()
	rn := &rsmNode{self: self, msgs: map[msgKey]int{}}
	sn, err := rsm.NewSimNode(self, r.opts.Config, &rsmHost{r: r, n: n, self: self})
	r.s.must(err)
	rn.sn = sn
	r.nodes[n.id] = rn
	for _, l := range r.s.ids {
		if slices.Contains(r.s.assign[l], n.id) {
			id := rsm.ObjectID(strings.TrimPrefix(string(l), "l/"))
			_, err := sn.Open(id, r.factory)
			r.s.must(err)
		}
	}
}

// mayStop reports whether n may crash (l empty) or leave l: unless
// LoseState, not while it holds the latest state of an object (of l): a
// state, ready or kept through an exclusion, at an index no other live
// member that stays in (a member asked to leave does not count) holds.
// A crash is at once, but a leave takes a while, in which the leaver goes
// on applying what its view delivers; a holder outside that view (one
// that left or was excluded, its state kept) misses those commands, so an
// index equal at the ask is behind by the end. So for a leave only
// holders ready in the leaver's view count (one that left it may still be
// in that view as the leaver sees it), and a leaver whose state is not
// ready in a view (excluded, rejoining) may come back alone, apply more,
// and then leave: it stays (RSM seeds 5540 and 13096: the planner let the
// only member of an LWG leave because a node that had left it kept an
// equal index; the member applied more commands before its leave ended,
// and the node that came back went on from its older state).
func (r *rsmSim) mayStop(n *lwgSimNode, l lwg.ID) bool {
	if r.opts.LoseState {
		return true
	}
	for i, obj := range r.objs {
		if l != "" && r.s.ids[i] != l {
			continue
		}
		sn := r.nodes[n.id].sn
		mine, ok := sn.Holds(obj)
		if !ok {
			continue
		}
		var view lwg.View // a leaver's
		if l != "" {
			o, ok := sn.Object(obj)
			if _, _, ready := sn.State(obj); !ready || !ok {
				return false
			}
			view = o.View()
		}
		held := false
		for _, m := range r.s.nodes {
			// A member that was asked to leave holds it for a while only.
			if m == n || !m.alive || m.left[r.s.ids[i]] {
				continue
			}
			if l == "" {
				idx, ok := r.nodes[m.id].sn.Holds(obj)
				held = ok && idx >= mine
			} else {
				// Ready in the leaver's view: it delivers what the
				// leaver does until the leave ends.
				ms := r.nodes[m.id].sn
				_, idx, ready := ms.State(obj)
				mo, ok := ms.Object(obj)
				held = ready && ok && idx >= mine && mo.View().ID == view.ID && view.Contains(r.nodes[m.id].self)
			}
			if held {
				break
			}
		}
		if !held {
			return false
		}
	}
	return true
}

func (r *rsmSim) crashed(n *lwgSimNode) {
	if rn := r.nodes[n.id]; rn != nil {
		rn.sn.Crash()
	}
}

// ticked ticks n's replicas. SimNode.Tick visits them in map order, so
// the transfer messages a tick sends are put in a canonical order before
// they reach the network (which draws from the seed per message).
func (r *rsmSim) ticked(n *lwgSimNode) {
	r.tickSends = r.tickSends[:0]
	r.ticking = true
	r.nodes[n.id].sn.Tick()
	r.ticking = false
	sends := r.tickSends
	slices.SortStableFunc(sends, func(a, b tickSend) int {
		return cmp.Or(cmp.Compare(a.to.Node, b.to.Node), cmp.Compare(a.to.Inc, b.to.Inc), bytes.Compare(a.payload, b.payload))
	})
	self := n.self()
	for _, m := range sends {
		r.s.send(self.Node, m.to.Node, &item{direct: m.payload, from: self, inc: m.to.Inc})
	}
}

type tickSend struct {
	to      hwg.Process
	payload []byte
}

func (r *rsmSim) lwgEvent(n *lwgSimNode, e lwg.Event) { r.nodes[n.id].sn.LWGEvent(e) }

func (r *rsmSim) direct(n *lwgSimNode, from hwg.Process, payload []byte) {
	r.directs[[2]hwg.Process{n.self(), from}]++
	if err := r.nodes[n.id].sn.Direct(from, payload); err != nil {
		r.violation("rsm-wire", "", fmt.Sprintf("%v rejected a transfer message from %v: %v", n.self(), from, err))
	}
}

func (r *rsmSim) msgID(n *lwgSimNode, e lwg.Event) string {
	rn := r.nodes[n.id]
	h := fnv.New64a()
	h.Write(e.Payload)
	k := msgKey{send: e.Type == lwg.EventSend, sender: e.From, group: e.LWG, view: e.View.ID, sum: h.Sum64()}
	if k.send {
		k.sender = rn.self
	}
	rn.msgs[k]++
	return fmt.Sprintf("%s/%d.%d/v%d/%016x#%d", k.group, k.sender.Node, k.sender.Inc, k.view, k.sum, rn.msgs[k])
}

// rsmHost is one incarnation's rsm.SimHost.
type rsmHost struct {
	r    *rsmSim
	n    *lwgSimNode
	self hwg.Process
}

func (h *rsmHost) Multicast(object rsm.ObjectID, payload []byte) {
	// Not a member (any more): the message is lost, as in the runtime.
	_ = h.n.core.Multicast(object.LWG(), payload)
}

func (h *rsmHost) Send(to hwg.Process, payload []byte) {
	h.r.stats.Directs++
	if h.r.ticking {
		h.r.tickSends = append(h.r.tickSends, tickSend{to, payload})
		return
	}
	h.r.s.send(h.self.Node, to.Node, &item{direct: payload, from: h.self, inc: to.Inc})
}

func (h *rsmHost) rep(obj rsm.ObjectID) *rsmReplica {
	k := rsmRep{h.self, obj}
	rp := h.r.reps[k]
	if rp == nil {
		rp = &rsmReplica{}
		h.r.reps[k] = rp
	}
	return rp
}

func (h *rsmHost) Observe(e rsm.Event) {
	r := h.r
	switch e.Type {
	case rsm.EventSnapshotReceived:
		h.rep(e.Object).donor = e.Peer
	case rsm.EventOpened:
		sm, index, ok := r.nodes[h.self.Node].sn.State(e.Object)
		if !ok {
			r.violation("rsm-state", e.Object, fmt.Sprintf("%v: opened but holds no state", h.self))
			return
		}
		rp := h.rep(e.Object)
		donor := rp.donor
		rp.donor = hwg.Process{}
		branch := false
		if donor == (hwg.Process{}) {
			// A new group: its first member's state goes on from what that
			// replica held (a life of its own), or from the empty state.
			switch {
			case rp.life == 0:
				r.lives++
				rp.life = r.lives
				r.splitBrain(h.self, e.Object)
			case r.forgotHere(h.self, e.Object):
				// It went on from the state it kept, which an operator's
				// ForgetAbsent may have left behind the absent holders':
				// their commands may be lost. A life of its own, that
				// starts from this state: its history is not checked for
				// linearizability (the model starts from empty); its
				// digests and snapshots still are.
				r.lives++
				rp.life = r.lives
				r.branches[rp.life] = true
				r.stats.Branches++
				branch = true
			}
			r.stats.Created++
		} else {
			d := r.reps[rsmRep{donor, e.Object}]
			if d == nil || d.life == 0 {
				r.violation("rsm-state", e.Object, fmt.Sprintf("%v restored a snapshot of %v, which never held the state", h.self, donor))
				r.lives++
				rp.life = r.lives
			} else {
				rp.life = d.life
			}
			r.stats.Received++
		}
		rp.index = index
		dg := digestOf(sm)
		r.logDigest(e.Object, rp.life, index, dg, nil, h.self)
		r.s.trace.Append(Event{T: uint64(r.s.stats.Steps), Node: uint64(h.self.Node), Inc: h.self.Inc, Ev: EvState,
			Group: string(e.Object.LWG()), View: e.View.ID, From: uint64(donor.Node), Index: index, Digest: dg, Branch: branch})
	case rsm.EventSnapshotTaken:
		r.stats.Snapshots++
		sm, index, ok := r.nodes[h.self.Node].sn.State(e.Object)
		rp := h.rep(e.Object)
		if !ok || rp.life == 0 {
			return
		}
		var b bytes.Buffer
		if err := sm.Snapshot(&b); err != nil {
			r.violation(nameRSMSnapshot, e.Object, fmt.Sprintf("%v: snapshot at %d: %v", h.self, index, err))
			return
		}
		r.snaps = append(r.snaps, rsmSnap{obj: e.Object, life: rp.life, index: index, by: h.self, state: b.Bytes()})
	}
}

// splitBrain reports a new, empty life of obj's state while another live
// replica holds one with commands applied: those commands are dropped
// (or two states go on side by side). A holder still at index 0 (one on
// its way out of the group) loses nothing.
//
// A state created in a view in which its creator took a ForgetAbsent
// counts only holders in that view: the operator gave up on the absent
// ones.
func (r *rsmSim) splitBrain(self hwg.Process, obj rsm.ObjectID) {
	forgot := r.forgotHere(self, obj)
	var view lwg.View
	if o, ok := r.nodes[self.Node].sn.Object(obj); ok {
		view = o.View()
	}
	for _, m := range r.s.nodes {
		rn := r.nodes[m.id]
		if forgot && rn != nil && !view.Contains(rn.self) {
			continue
		}
		if m.alive && rn != nil && rn.self != self {
			if _, idx, ok := rn.sn.State(obj); ok && idx > 0 {
				r.violation(nameRSMLife, obj, fmt.Sprintf("%v created a new state while %v holds one (index %d)", self, rn.self, idx))
			}
		}
	}
}

// forgotHere reports whether self's replica of obj took a ForgetAbsent in
// the view it is in (the one its claims, and a seed, are made in).
func (r *rsmSim) forgotHere(self hwg.Process, obj rsm.ObjectID) bool {
	sn := r.nodes[self.Node].sn
	o, ok := sn.Object(obj)
	return ok && sn.ForgotView(obj) != 0 && sn.ForgotView(obj) == o.View().ID
}

// logDigest records or compares the state at (obj, life, index).
func (r *rsmSim) logDigest(obj rsm.ObjectID, life int, index uint64, digest string, cmd []byte, by hwg.Process) {
	k := lifeIndex{obj, life, index}
	le, ok := r.log[k]
	if !ok {
		r.log[k] = logEntry{cmd: cmd, digest: digest, by: by}
		return
	}
	if le.cmd == nil && cmd != nil {
		le.cmd = cmd
		r.log[k] = le
	} else if cmd != nil && !bytes.Equal(le.cmd, cmd) {
		r.violation(nameRSMCommand, obj, fmt.Sprintf("index %d: %v applied %q, %v applied %q", index, le.by, le.cmd, by, cmd))
	}
	// Digests are compared by the trace checker rsm-digest.
}

func (h *rsmHost) Applied(object rsm.ObjectID, index uint64) {
	r := h.r
	r.stats.Applies++
	sm, _, ok := r.nodes[h.self.Node].sn.State(object)
	if !ok {
		r.violation("rsm-state", object, fmt.Sprintf("%v applied %d without the state", h.self, index))
		return
	}
	rp := h.rep(object)
	rp.index = index
	dg := digestOf(sm)
	var cmd []byte
	if rec, ok := sm.(*recordingSM); ok {
		cmd = slices.Clone(rec.last)
		if op, _, ok := untagCmd(cmd); ok {
			if _, seen := r.effects[op]; !seen {
				r.effects[op] = effect{life: rp.life, out: slices.Clone(rec.lastOut), err: rec.lastErr}
			}
		}
	}
	r.logDigest(object, rp.life, index, dg, cmd, h.self)
	r.s.trace.Append(Event{T: uint64(r.s.stats.Steps), Node: uint64(h.self.Node), Inc: h.self.Inc, Ev: EvApply,
		Group: string(object.LWG()), Index: index, Digest: dg})
}

func (h *rsmHost) Result(object rsm.ObjectID, req uint64, val []byte, err error) {
	r := h.r
	k := rsmReq{h.self, object, req}
	i, ok := r.pending[k]
	if !ok {
		r.violation("rsm-result", object, fmt.Sprintf("%v: a result for request %d, which is not in flight", h.self, req))
		return
	}
	delete(r.pending, k)
	op := &r.ops[i]
	if err != nil {
		// The outcome is unknown (the node left the group): the operation
		// stays open forever in the history.
		op.Err = err
		r.stats.Unknown++
		return
	}
	op.Return, op.Out = r.tick(), slices.Clone(val)
	r.stats.Answered++
}

// request makes a client request on a random node.
func (r *rsmSim) request() {
	s := r.s
	n := s.nodes[s.rng.IntN(len(s.nodes))]
	obj := r.objs[s.rng.IntN(len(r.objs))]
	read := s.rng.Float64() < r.opts.Reads
	key := fmt.Sprintf("k%d", s.rng.IntN(r.opts.Keys))
	del := s.rng.IntN(5) == 0
	add := 1 + s.rng.Uint64N(9)
	if !n.alive {
		return
	}
	rn := r.nodes[n.id]
	sm, _, ok := rn.sn.State(obj)
	if !ok {
		if r.opts.Forget > 0 && s.rng.Float64() < r.opts.Forget && rn.sn.ForgetAbsent(obj) == nil {
			r.stats.Forgets++
			s.drain(n)
		}
		return // not open here, or not ready
	}
	op := RSMOp{Object: obj, Node: rn.self, Life: r.reps[rsmRep{rn.self, obj}].life, Map: r.isMap(obj), Read: read, Return: -1}
	var b []byte
	switch {
	case op.Map && read:
		op.Key, b = key, rsmtest.Get(key)
	case op.Map && del:
		op.Key, op.Del, b = key, true, rsmtest.Del(key)
	case op.Map:
		r.vals++
		op.Key, op.Value = key, fmt.Sprintf("v%d", r.vals)
		b = rsmtest.Set(key, op.Value)
	case read:
		b = []byte("total")
	default:
		op.Add, b = add, rsmtest.Add(add)
	}
	if read && r.opts.StaleReads {
		// The deliberate bug: answer from this replica as it is.
		out, err := sm.(rsm.Querier).Query(b)
		op.Call = r.tick()
		op.Return, op.Out, op.Err = r.tick(), out, err
		r.ops = append(r.ops, op)
		r.stats.Reads++
		r.stats.Answered++
		return
	}
	var req uint64
	var err error
	if read {
		req, err = rn.sn.Read(obj, b)
	} else {
		req, err = rn.sn.Propose(obj, tagCmd(len(r.ops), b))
	}
	if err != nil {
		return // never sent: no operation
	}
	if read {
		r.stats.Reads++
	} else {
		r.stats.Proposals++
	}
	op.Call = r.tick()
	r.pending[rsmReq{rn.self, obj, req}] = len(r.ops)
	r.ops = append(r.ops, op)
	// Requests wait in the object's outbox and go out together, as
	// callers' do at a runtime Node while one sends: here when three are
	// queued, or at the node's next tick.
	if rn.sn.Queued(obj) >= batchAt {
		rn.sn.Flush(obj)
		r.stats.Batches++
		s.drain(n)
	}
}

// batchAt is how many queued requests of one object a simulated node sends
// at once, between ticks.
const batchAt = 3

// RunRSM performs one seeded RSM simulation: the LWG simulation's faults
// with a client workload of proposals and reads, then the heal, the LWGs'
// quiescent phase, a final round in which every replica must get the
// state and apply one command from each member, and the checkers: the LWG
// ones, RSMCheckers on the trace, restore-and-replay of snapshots, and
// linearizability of the history (porcupine).
func RunRSM(opts RSMOptions) RSMResult {
	r := newRSMSim(opts)
	s := r.s
	lo := s.opts
	for step := range lo.Steps {
		if s.rng.Float64() < r.opts.Requests {
			r.request()
		}
		if !s.scheduledStep(step) {
			break
		}
	}
	return r.finish()
}

func newRSMSim(opts RSMOptions) *rsmSim {
	opts.defaults()
	r := &rsmSim{opts: opts, nodes: map[hwg.NodeID]*rsmNode{}, pending: map[rsmReq]int{},
		reps: map[rsmRep]*rsmReplica{}, log: map[lifeIndex]logEntry{}, directs: map[[2]hwg.Process]int{},
		effects: map[int]effect{}, branches: map[int]bool{}}
	for i := range opts.LWG.LWGs {
		r.objs = append(r.objs, rsm.ObjectID(fmt.Sprint(i)))
	}
	newLWGSim(opts.LWG, r) // calls attach
	return r
}

// finish heals, quiesces, runs the final round and every checker.
func (r *rsmSim) finish() RSMResult {
	s := r.s
	s.Heal()
	safetyOnlyRun := false
	if !s.Quiesce(s.opts.QuiescentSteps) {
		if s.primaryLost() {
			s.stats.PrimaryLost = true
			safetyOnlyRun = true
		} else {
			s.violation(nameLiveness, "the LWGs did not converge after the heal:\n"+s.Dump())
		}
	} else if !r.settle() {
		r.violation(nameRSMLiveness, "", "after the heal the replicas did not all get the state and apply the final round:\n"+r.dump())
	}
	var out []Violation
	out = append(out, s.Violations()...)
	out = append(out, CheckRSM(s.trace)...)
	out = append(out, r.checkSnapshots()...)
	out = append(out, r.extra...)
	hist := r.history()
	r.stats.Operations = len(hist)
	out = append(out, CheckLinearizable(hist, r.opts.CheckTimeout)...)
	if safetyOnlyRun {
		out = safetyOnly(out)
	}
	r.stats.LWG, r.stats.Lives = s.stats, r.lives
	return RSMResult{Trace: s.trace, Violations: out, Stats: r.stats, History: hist}
}

// settle runs the final round: every assigned replica gets the state,
// every member proposes one command once ready, and everything is applied
// everywhere, with equal digests.
func (r *rsmSim) settle() bool {
	s := r.s
	proposed := map[rsmRep]bool{}
	for range r.opts.SettleSteps {
		if s.stats.Steps%50 == 0 && r.settled(proposed) {
			return true
		}
		if !s.Step() {
			return false
		}
	}
	return false
}

func (r *rsmSim) settled(proposed map[rsmRep]bool) bool {
	s := r.s
	done := true
	for i, obj := range r.objs {
		l := s.ids[i]
		var index uint64
		var digest string
		for j, nid := range s.assign[l] {
			n := s.node(nid)
			rn := r.nodes[nid]
			sm, idx, ok := rn.sn.State(obj)
			if !n.alive || !ok {
				done = false
				continue
			}
			k := rsmRep{rn.self, obj}
			if !proposed[k] {
				var cmd []byte
				op := RSMOp{Object: obj, Node: rn.self, Life: r.reps[k].life, Map: r.isMap(obj), Return: -1}
				if op.Map {
					r.vals++
					op.Key, op.Value = "k0", fmt.Sprintf("final%d", r.vals)
					cmd = rsmtest.Set(op.Key, op.Value)
				} else {
					op.Add, cmd = 1, rsmtest.Add(1)
				}
				req, err := rn.sn.Propose(obj, tagCmd(len(r.ops), cmd))
				if err == nil {
					proposed[k] = true
					op.Call = r.tick()
					r.stats.Proposals++
					r.pending[rsmReq{rn.self, obj, req}] = len(r.ops)
					r.ops = append(r.ops, op)
					rn.sn.Flush(obj)
					s.drain(n)
				}
				done = false
				continue
			}
			dg := digestOf(sm)
			if j == 0 {
				index, digest = idx, dg
			} else if idx != index || dg != digest {
				done = false
			}
		}
	}
	if !done {
		return false
	}
	for k := range r.pending {
		if n := s.node(k.p.Node); n.alive && n.inc == k.p.Inc {
			return false // a live request still waits
		}
	}
	return true
}

// dump describes every replica, for a failed final round.
func (r *rsmSim) dump() string {
	var b strings.Builder
	for i, obj := range r.objs {
		fmt.Fprintf(&b, "  object %s (%s):", obj, r.s.ids[i])
		for _, nid := range r.s.assign[r.s.ids[i]] {
			rn := r.nodes[nid]
			_, idx, ok := rn.sn.State(obj)
			o, open := rn.sn.Object(obj)
			var v lwg.View
			if open {
				v = o.View()
			}
			fmt.Fprintf(&b, " %v ready=%v index=%d view=%v;", rn.self, ok, idx, v)
		}
		b.WriteString("\n")
	}
	return b.String() + r.s.Dump()
}

// checkSnapshots restores every recorded snapshot into a fresh state
// machine and checks its digest at its index, then replays the log's
// commands after it up to the end of its life and checks the digest there.
func (r *rsmSim) checkSnapshots() []Violation {
	rep := reporter{name: nameRSMSnapshot}
	type objLife struct {
		obj  rsm.ObjectID
		life int
	}
	last := map[objLife]uint64{}
	for k := range r.log {
		lk := objLife{k.obj, k.life}
		last[lk] = max(last[lk], k.index)
	}
	// Snapshots taken in one tick come in map order: sort them.
	slices.SortStableFunc(r.snaps, func(a, b rsmSnap) int {
		return cmp.Or(cmp.Compare(a.obj, b.obj), cmp.Compare(a.life, b.life), cmp.Compare(a.index, b.index),
			cmp.Compare(a.by.Node, b.by.Node), cmp.Compare(a.by.Inc, b.by.Inc))
	})
	for _, sn := range r.snaps {
		sm, err := r.factory(sn.obj)
		if err != nil {
			rep.add(string(sn.obj.LWG()), 0, "factory: %v", err)
			continue
		}
		if err := sm.Restore(bytes.NewReader(sn.state)); err != nil {
			rep.add(string(sn.obj.LWG()), 0, "restoring %v's snapshot at %d: %v", sn.by, sn.index, err)
			continue
		}
		if want := r.log[lifeIndex{sn.obj, sn.life, sn.index}].digest; digestOf(sm) != want {
			rep.add(string(sn.obj.LWG()), 0, "%v's snapshot at index %d restores to digest %.16s, the state there was %.16s", sn.by, sn.index, digestOf(sm), want)
			continue
		}
		end := last[objLife{sn.obj, sn.life}]
		j := sn.index
		for j < end {
			le, ok := r.log[lifeIndex{sn.obj, sn.life, j + 1}]
			if !ok || le.cmd == nil {
				break
			}
			_, _ = sm.Apply(le.cmd) // its result is the command's, not an error of the check
			j++
		}
		if want := r.log[lifeIndex{sn.obj, sn.life, j}].digest; j > sn.index && digestOf(sm) != want {
			rep.add(string(sn.obj.LWG()), 0, "%v's snapshot at index %d plus the commands up to %d gives digest %.16s, the replicas had %.16s", sn.by, sn.index, j, digestOf(sm), want)
		}
	}
	return rep.result()
}

// history closes the operations: answered ones keep their answer, ones
// still waiting (their node crashed, left the group, or the run ended)
// are open forever. A command among those that some replica applied
// gets the output that replica computed, in the life it applied it in
// (Effect); one that no replica applied is left out, since it took
// effect nowhere.
func (r *rsmSim) history() []RSMOp {
	var out []RSMOp
	for i, op := range r.ops {
		if r.branches[op.Life] {
			continue
		}
		if op.Return < 0 && !op.Read {
			e, ok := r.effects[i]
			if !ok {
				continue
			}
			if e.err == nil {
				op.Life, op.Out, op.Effect = e.life, e.out, true
			}
			if r.branches[op.Life] {
				continue
			}
		}
		out = append(out, op)
	}
	return out
}

// counterTotal decodes a counter's answer.
func counterTotal(b []byte) (uint64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}
