package hwg

import (
	"fmt"
	"slices"
)

// Status is a Group's phase.
type Status uint8

const (
	// StatusIdle: not a member and not joining (new, left or excluded).
	StatusIdle Status = iota
	// StatusJoining: asking contacts to be added.
	StatusJoining
	// StatusNormal: a member of View, multicasting in total order.
	StatusNormal
	// StatusFlushing: a view change is under way; this member has promised
	// a ballot and its state for the old view is frozen.
	StatusFlushing
)

var statusNames = [...]string{"Idle", "Joining", "Normal", "Flushing"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Group is one process's membership in one heavy-weight group: a
// deterministic state machine. It is driven by Step (messages from peers),
// Tick (the passage of time) and local requests (Bootstrap, Join, Leave,
// Multicast, BlockOK, Suspect), and hands back what to do through Ready.
//
// A Group does no I/O, starts no goroutines, reads no clock and draws no
// random numbers, so the same inputs always give the same outputs. It is not
// safe for concurrent use: one goroutine (the node's event loop, or the
// simulator) owns it.
type Group struct {
	cfg  Config
	self Process
	st   Status
	view View
	// decision is the last one this process applied, whether it installed
	// the current view or ended a membership; kept across memberships. It
	// is resent to members of its old view that missed it: an excluded
	// process may be the only live witness that it was chosen.
	decision *Decision
	// lastView is the highest view ever installed, kept across memberships:
	// a rejoining process installs only later views, so an old decision
	// resent by a lagging member cannot merge its old history back.
	lastView ViewID
	// retired keeps this process's acceptor state for the view it was
	// excluded from by Stale. Paxos acceptors must never forget: the group
	// went on, so a decision was chosen, and this process's accepted value
	// may be the only live copy a laggard's quorum can find.
	retired *retiredAcceptor

	// since is the first view of the current membership (0 while this
	// process is not a member): MulticastIn refuses what was asked in an
	// earlier one.
	since ViewID

	// Sender side, for the current view.
	lastSent uint64   // FIFO number of this member's last multicast in view
	pending  []Entry  // own multicasts in view not yet seen sequenced
	fwdFrom  int      // pending[fwdFrom:] have not been forwarded yet
	queued   [][]byte // multicasts made while frozen: sent in the next view
	// waiting is the payload bytes of pending and queued, bounded by
	// MaxPendingBytes; unstable is the coordinator's bytes sequenced but
	// not yet held by all, bounded by MaxUnstableBytes. Together they
	// bound the size of a flush.
	waiting, unstable int

	// Member log of the current view: sequenced entries logBase+1..held.
	log       entryLog
	logBase   uint64
	held      uint64
	commit    uint64
	delivered uint64
	stable    uint64
	ackOwed   bool // an Order was left unacknowledged until the next tick

	co *coordinator // non-nil while coordinator of view in StatusNormal

	// Acceptor side of the view change (reset at every install).
	promised    Ballot
	proposerOf  Process // proposer of promised, owed a PrepareOK
	accepted    Ballot
	acceptedDec *Decision
	blockAcked  bool
	frozen      *FlushState
	maxRound    uint64
	needTicks   int // ticks since a view change became needed or began

	prop *proposal // our own proposal, if any

	// Membership requests known to this member.
	// suspects maps each suspected member to the tick it was last reported.
	// Suspicion is level-triggered: the detector reports it every tick and
	// peers every RetransmitTicks, and one not refreshed for
	// suspectTTL·RetransmitTicks expires. Otherwise members stuck in a long
	// view change would keep suspicions from a partition that healed, and
	// several would each act as the proposer.
	suspects map[Process]uint64
	joiners  map[Process]uint64 // join requests: process → tick last asked
	leavers  map[Process]bool
	leaving  bool
	// holding: this member asked to leave but was kept, because leaving
	// would have emptied a group that excluded members who did not leave.
	// It leaves once another member can carry the group on.
	holding bool
	// reachable are joiners that answered a probe: only they start a view
	// change, so a joiner that can ask but not hear cannot force endless
	// identical ones.
	reachable map[Process]bool
	contacts  []NodeID

	ticks      uint64
	lastHelped map[Process]uint64 // rate limit for answers to laggards

	msgs   []Message
	events []output
	// The slices handed out last by ReadyReuse, TakeEvents and takeOutputs,
	// refilled at the next call.
	spareMsgs   []Message
	spareEvents []Event
	spareOut    []output
}

// shed lets go of the spare output arrays (up to thousands of elements
// each under load), for a Group kept idle after its membership ended.
func (g *Group) shed() {
	g.spareMsgs, g.spareEvents, g.spareOut = nil, nil, nil
}

// New returns a Group in StatusIdle. Call Bootstrap or Join next.
func New(cfg Config) (*Group, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Group{
		cfg:        c,
		self:       c.Self,
		lastView:   c.Installed,
		suspects:   map[Process]uint64{},
		leavers:    map[Process]bool{},
		joiners:    map[Process]uint64{},
		reachable:  map[Process]bool{},
		lastHelped: map[Process]uint64{},
	}, nil
}

// Bootstrap installs view 1 with the given members, which must include Self.
// Every initial member must call Bootstrap with the same list; any other
// process joins with Join.
func (g *Group) Bootstrap(members []Process) error {
	if g.st != StatusIdle {
		return ErrAlreadyMember
	}
	v := View{ID: 1, Members: slices.Clone(members)}
	if !v.Contains(g.self) {
		return fmt.Errorf("%w: bootstrap members %v do not include %v", ErrInvalidConfig, members, g.self)
	}
	seen := map[NodeID]bool{}
	for _, m := range members {
		if m.Node == 0 || m.Inc == 0 || seen[m.Node] {
			return fmt.Errorf("%w: bad or repeated bootstrap member %v", ErrInvalidConfig, m)
		}
		seen[m.Node] = true
	}
	g.install(v, nil)
	return nil
}

// Join asks the contacts (any members; unknown or dead ones are harmless) to
// add this process. It keeps asking every JoinRetryTicks until a view that
// includes it is installed.
func (g *Group) Join(contacts []NodeID) error {
	if g.st != StatusIdle {
		return ErrAlreadyMember
	}
	g.resetMembership()
	g.st = StatusJoining
	g.contacts = slices.DeleteFunc(slices.Clone(contacts), func(n NodeID) bool { return n == g.self.Node })
	g.sendJoins()
	return nil
}

// Leave asks the group to remove this member. The member keeps delivering
// until the view change that removes it, then emits EventLeft.
func (g *Group) Leave() error {
	switch g.st {
	case StatusIdle:
		return ErrNotMember
	case StatusJoining:
		g.resetMembership()
		g.st = StatusIdle
		g.emit(Event{Type: EventLeft})
		return nil
	}
	g.leaving = true
	if len(g.view.Members) == 1 && !g.holding {
		g.finish(EventLeft)
		return nil
	}
	g.leavers[g.self] = true
	g.sendLeaves()
	g.maybePropose()
	return nil
}

// Multicast sends payload to the group in total order. In StatusNormal (and
// while a Block is not yet answered) it is sent in the current view; after
// BlockOK it is queued and sent in the next view. The payload must not be
// modified afterwards.
func (g *Group) Multicast(payload []byte) error {
	switch g.st {
	case StatusIdle, StatusJoining:
		return ErrNotMember
	}
	if len(payload) > g.cfg.MaxPendingBytes {
		// A flush ships pending multicasts in one message, which must fit
		// in a frame.
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(payload))
	}
	if g.waiting > 0 && g.waiting+len(payload) > g.cfg.MaxPendingBytes {
		return ErrBusy
	}
	g.waiting += len(payload)
	if g.st == StatusFlushing && g.blockAcked {
		g.queued = append(g.queued, payload)
		return nil
	}
	g.send(payload)
	return nil
}

// MulticastIn is Multicast for a caller that last saw view of the group
// installed: it returns ErrNotMember, and sends nothing, if that view
// belongs to an earlier membership of this process (it was excluded and
// admitted again since), where the payload, made for that membership
// (naming its view, say), would be out of place.
func (g *Group) MulticastIn(view ViewID, payload []byte) error {
	if view < g.since {
		return ErrNotMember
	}
	return g.Multicast(payload)
}

// BlockOK answers the EventBlock raised in view (its Event.View.ID)
// (HoldOK.down): this member will send nothing more in that view. Only
// needed with Config.ManualBlockOK. An answer that comes after the group
// left that view is ignored: a Block is raised at most once per view, and
// a later membership's views are all newer (a join installs only views
// above every view installed before; only Bootstrap starts again at view
// 1), so an answer held up while this member was excluded and admitted
// again cannot stand for the Block of the new membership, which the
// application may not have seen yet.
func (g *Group) BlockOK(view ViewID) {
	if g.st != StatusFlushing || g.blockAcked || view != g.view.ID {
		return
	}
	g.ackBlock()
}

// setManualBlockOK changes Config.ManualBlockOK; a Block waiting for its
// answer is answered at once when manual is false.
func (g *Group) setManualBlockOK(manual bool) {
	g.cfg.ManualBlockOK = manual
	if !manual && g.st == StatusFlushing && !g.blockAcked {
		g.ackBlock()
	}
}

// Suspect reports that p seems to have failed. The liveness layer calls it
// for every suspected process each tick; suspicions of processes outside
// the view are ignored. Inc 0 means whichever incarnation of p.Node is a
// member.
func (g *Group) Suspect(p Process) {
	for j := range g.joiners {
		if j == p || (p.Inc == 0 && j.Node == p.Node) {
			delete(g.joiners, j) // it asks again if it is alive
			delete(g.reachable, j)
		}
	}
	if p.Inc == 0 {
		p, _ = g.view.HasNode(p.Node)
	}
	if p == g.self || (g.st != StatusNormal && g.st != StatusFlushing) || !g.view.Contains(p) {
		return
	}
	_, known := g.suspects[p]
	g.suspects[p] = g.ticks
	if known {
		return
	}
	g.broadcast(Message{Type: MsgSuspicion, Subject: p})
	g.maybePropose()
}

// suspectTTL is how many RetransmitTicks a suspicion lives without being
// reported again.
const suspectTTL = 3

// suspected reports whether p is currently suspected.
func (g *Group) suspected(p Process) bool {
	_, ok := g.suspects[p]
	return ok
}

// Probe asks member peer whether the group went past this member's view.
// The runtime calls it when peer's membership epoch (carried in its
// heartbeats) changes: an idle member of an old view hears nothing else,
// and per-group keepalives would make idle groups cost traffic. If peer
// knows more, it answers with the decision this member missed or with
// Stale.
func (g *Group) Probe(peer NodeID) {
	if g.st != StatusNormal && g.st != StatusFlushing {
		return
	}
	if p, ok := g.view.HasNode(peer); ok && p != g.self {
		g.sendTo(p, Message{Type: MsgSync})
	}
}

// Tick advances time by one tick.
func (g *Group) Tick() {
	g.ticks++
	every := func(n int) bool { return g.ticks%uint64(n) == 0 }
	switch g.st {
	case StatusJoining:
		if every(g.cfg.JoinRetryTicks) {
			g.sendJoins()
		}
		return
	case StatusIdle:
		return
	}
	for p, at := range g.suspects {
		if g.ticks-at > uint64(suspectTTL*g.cfg.RetransmitTicks) {
			delete(g.suspects, p) // no longer reported: the doubt has passed
		}
	}
	for j, at := range g.joiners {
		if g.ticks-at > uint64(joinFreshTicks*g.cfg.JoinRetryTicks) {
			delete(g.joiners, j) // no longer asking: it left or died
			delete(g.reachable, j)
		}
	}
	g.sendOwedAck()
	if every(g.cfg.RetransmitTicks) {
		g.retransmit()
	}
	if g.prop != nil {
		g.prop.ticks++
		g.tickProposal()
	}
	if g.st == StatusFlushing || g.needChange() {
		g.needTicks++
		if g.prop == nil && g.needTicks > g.patience() {
			g.startProposal()
		}
	}
}

// retransmit resends what may have been lost. Called every RetransmitTicks.
func (g *Group) retransmit() {
	if g.st == StatusNormal {
		if g.co == nil {
			g.forward(g.pending[:min(len(g.pending), g.cfg.MaxBatch)])
		} else {
			g.retransmitOrders()
		}
	}
	if g.leaving {
		g.sendLeaves()
	}
	if g.needChange() && !g.actingProposer() {
		for _, p := range g.view.Members { // view order: outputs stay deterministic
			if g.suspected(p) {
				g.broadcast(Message{Type: MsgSuspicion, Subject: p})
			}
		}
	}
}

// Step applies one message from a peer. It returns an error (and changes
// nothing) for input the protocol rejects: a message for another group,
// node or incarnation, from a process outside the view, or that breaks the
// protocol for its sender.
func (g *Group) Step(m Message) error {
	if err := g.validate(m); err != nil {
		return err
	}
	if err := g.step(m); err != nil {
		return err
	}
	if cur, ok := g.view.HasNode(m.From.Node); ok && cur.Inc < m.From.Inc {
		// A newer incarnation speaks: the member's process is gone, even if
		// the detector never heard it (it may have died at once).
		g.Suspect(cur)
	}
	return nil
}

func (g *Group) step(m Message) error {
	if r := g.retired; r != nil && m.View == r.view.ID && m.View != g.view.ID && (m.Type == MsgPrepare || m.Type == MsgAccept) {
		g.stepRetired(m)
		return nil
	}
	switch g.st {
	case StatusIdle, StatusJoining:
		switch {
		case m.Type == MsgCommit && g.st == StatusJoining:
			return g.onCommit(m)
		case m.Type == MsgPrepare && g.st == StatusJoining && m.View+1 > g.lastView &&
			(g.decision == nil || m.View != g.decision.Prev):
			// A proposer about to admit us asks whether we are alive. (If
			// we hold the decision that ended its view, it needs that
			// instead: helpLaggard below.)
			g.sendTo(m.From, Message{Type: MsgJoin, View: m.View, Ballot: m.Ballot})
		case m.Type == MsgJoin:
			// A witness of a decision that admitted the joiner may be the
			// only live process left that can tell it so.
			if d := g.decision; d != nil && slices.Contains(d.Joined, m.From) && m.Subject.IsZeroProcess() {
				g.sendTo(m.From, Message{Type: MsgCommit, View: d.Prev, Decision: d})
			}
		case m.Type != MsgCommit:
			g.helpLaggard(m)
		}
		return nil
	}
	if m.Type == MsgStale {
		if m.View > g.view.ID {
			g.retire()
			g.finish(EventExcluded)
		}
		return nil
	}
	if m.Type == MsgCommit {
		return g.onCommit(m)
	}
	if m.Type == MsgJoin {
		g.onJoin(m)
		return nil
	}
	if m.View < g.view.ID || m.Type == MsgSync {
		g.helpLaggard(m)
		return nil
	}
	if m.View > g.view.ID {
		// We are behind: ask the sender for what ended our view.
		g.sendTo(m.From, Message{Type: MsgSync})
		return nil
	}
	if !g.view.Contains(m.From) {
		return fmt.Errorf("%w: %v in %v", ErrUnknownSender, m.From, g.view)
	}
	switch m.Type {
	case MsgForward:
		return g.onForward(m)
	case MsgOrder:
		return g.onOrder(m)
	case MsgAck:
		return g.onAck(m)
	case MsgPrepare:
		g.onPrepare(m)
	case MsgPrepareOK:
		g.onPrepareOK(m)
	case MsgAccept:
		g.onAccept(m)
	case MsgAcceptOK:
		g.onAcceptOK(m)
	case MsgLeave:
		g.leavers[m.From] = true
		g.maybePropose()
	case MsgSuspicion:
		if m.Subject != g.self && g.view.Contains(m.Subject) {
			_, known := g.suspects[m.Subject]
			g.suspects[m.Subject] = g.ticks
			if !known {
				g.maybePropose()
			}
		}
	}
	return nil
}

// validate applies the rules every message must pass.
func (g *Group) validate(m Message) error {
	if m.Group != g.cfg.Group {
		return fmt.Errorf("%w: %q, this is %q", ErrWrongGroup, m.Group, g.cfg.Group)
	}
	if m.To.Node != g.self.Node {
		return fmt.Errorf("%w: to %d, this is %d", ErrWrongNode, m.To.Node, g.self.Node)
	}
	if m.To.Inc != 0 && m.To.Inc != g.self.Inc {
		return fmt.Errorf("%w: to %v, this is %v", ErrStaleIncarnation, m.To, g.self)
	}
	if m.From.Node == 0 || m.From.Inc == 0 {
		return fmt.Errorf("%w: no sender", ErrMalformed)
	}
	if m.Type == 0 || m.Type > MsgStale {
		return fmt.Errorf("%w: type %d", ErrMalformed, m.Type)
	}
	if m.To.Inc == 0 && m.Type != MsgJoin {
		return fmt.Errorf("%w: %v without a destination incarnation", ErrMalformed, m.Type)
	}
	if m.Decision != nil {
		if err := m.Decision.validate(); err != nil {
			return err
		}
	}
	if m.State != nil && m.State.Decision != nil {
		if err := m.State.Decision.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (d *Decision) validate() error {
	if d.Next.ID != d.Prev+1 {
		return fmt.Errorf("%w: decision from view %d to %d", ErrMalformed, d.Prev, d.Next.ID)
	}
	if n := len(d.Final); n > 0 && d.Final[n-1].Seq != d.Last {
		return fmt.Errorf("%w: decision tail ends at %d, last is %d", ErrMalformed, d.Final[n-1].Seq, d.Last)
	}
	for i := 1; i < len(d.Final); i++ {
		if d.Final[i].Seq != d.Final[i-1].Seq+1 {
			return fmt.Errorf("%w: decision tail not contiguous at %d", ErrMalformed, d.Final[i].Seq)
		}
	}
	for _, j := range d.Joined {
		if !d.Next.Contains(j) {
			return fmt.Errorf("%w: joiner %v not in the next view", ErrMalformed, j)
		}
	}
	seen := map[NodeID]bool{}
	for _, p := range d.Next.Members {
		if p.Node == 0 || p.Inc == 0 || seen[p.Node] {
			return fmt.Errorf("%w: bad or repeated member %v", ErrMalformed, p)
		}
		seen[p.Node] = true
	}
	return nil
}

// Ready returns what the caller must do and clears it. Outputs of the
// coordinator that accumulated since the last call leave as one batch.
func (g *Group) Ready() Ready {
	g.flushBatches()
	r := Ready{Messages: g.msgs, Events: expand(nil, g.events)}
	g.msgs = nil
	clear(g.events) // expanded: the group keeps the slice
	g.events = g.events[:0]
	return r
}

// ReadyReuse is Ready for a caller that is done with the slices it
// returned by the time it calls ReadyReuse (or TakeEvents) again: the group
// then refills them rather than growing new ones, so a busy group does not
// allocate (and copy) its outputs afresh at every call. Payloads are shared
// as with Ready.
func (g *Group) ReadyReuse() Ready {
	return Ready{Messages: g.readyMessages(), Events: g.TakeEvents()}
}

// readyMessages is the messages of ReadyReuse.
func (g *Group) readyMessages() []Message {
	g.flushBatches()
	msgs := g.msgs
	clear(g.spareMsgs) // done with: it holds payloads
	g.msgs, g.spareMsgs = g.spareMsgs[:0], msgs
	if cap(g.msgs) > maxSpare {
		g.msgs = nil
	}
	return msgs
}

// TakeEvents returns the events emitted so far (those the next Ready would
// return) and leaves the messages for Ready, so that messages still
// accumulate into batches while events are handed on after every input.
// The slice is the caller's until it calls TakeEvents or ReadyReuse again,
// as with ReadyReuse.
func (g *Group) TakeEvents() []Event {
	if len(g.events) == 0 {
		return nil
	}
	clear(g.spareEvents)
	ev := expand(g.spareEvents[:0], g.events)
	clear(g.events)
	g.events = g.events[:0]
	g.spareEvents = ev
	if cap(ev) > maxSpare {
		g.spareEvents = nil
	}
	return ev
}

// takeOutputs is TakeEvents without expanding runs of deliveries, for the
// node runtime; the slice is the caller's until the next takeOutputs.
func (g *Group) takeOutputs() []output {
	out := g.events
	if len(out) == 0 {
		return nil
	}
	clear(g.spareOut)
	g.events, g.spareOut = g.spareOut[:0], out
	if cap(g.events) > maxSpare {
		g.events = nil
	}
	return out
}

// maxSpare bounds the outputs ReadyReuse keeps for reuse.
const maxSpare = 1 << 14

// output is one pending event, or a run of deliveries: an EventDeliver
// like ev, with Msg and Payload from the entry, for every entry of run.
// A run shares the log's entries, which are never modified once appended,
// so a Step that delivers thousands of messages records one output rather
// than thousands of 184-byte Events.
type output struct {
	ev  Event
	run []Entry
}

// events returns how many events o stands for.
func (o *output) events() int {
	if o.run == nil {
		return 1
	}
	return len(o.run)
}

// deliver returns the EventDeliver for o.run[i].
func (o *output) deliver(i int) Event {
	e := o.ev
	e.Msg, e.Payload = o.run[i].ID, o.run[i].Payload
	return e
}

// expand appends the events that outs stand for to dst (nil stays nil when
// there are none).
func expand(dst []Event, outs []output) []Event {
	n := 0
	for i := range outs {
		n += outs[i].events()
	}
	if n == 0 {
		return dst
	}
	dst = slices.Grow(dst, n)
	for i := range outs {
		if outs[i].run == nil {
			dst = append(dst, outs[i].ev)
			continue
		}
		for k := range outs[i].run {
			dst = append(dst, outs[i].deliver(k))
		}
	}
	return dst
}

// HasReady reports whether Ready would return anything.
func (g *Group) HasReady() bool {
	return len(g.msgs) > 0 || len(g.events) > 0 || g.batchPending()
}

// Info describes a Group for monitoring and for the simulator's fault
// planner. Slices are copies.
type Info struct {
	Status    Status
	View      View
	Held      uint64
	Commit    uint64
	Delivered uint64
	// Candidates are views this process has proposed or accepted but not
	// installed: a view change may still install one of them.
	Candidates []View
	// Accepted is the next view of the decision this process accepted in
	// the current view change, zero if none. A view accepted by a majority
	// of the current view is chosen.
	Accepted View
	// Decided is the next view of the last decision this process applied
	// when that view is later than its own (it was excluded or left): a
	// chosen view, zero if none.
	Decided View
	// LastView is the highest view this process installed in the group,
	// in this membership or an earlier one (see Config.Installed).
	LastView ViewID
}

// Info returns a snapshot of the group's state.
func (g *Group) Info() Info {
	in := Info{Status: g.st, View: g.view.Clone(), Held: g.held, Commit: g.commit, Delivered: g.delivered, LastView: g.lastView}
	if g.acceptedDec != nil {
		in.Accepted = g.acceptedDec.Next.Clone()
		in.Candidates = append(in.Candidates, in.Accepted)
	}
	if g.prop != nil && g.prop.dec != nil {
		in.Candidates = append(in.Candidates, g.prop.dec.Next.Clone())
	}
	if g.decision != nil && g.decision.Next.ID > g.view.ID {
		in.Decided = g.decision.Next.Clone()
	}
	return in
}

// Self returns this process.
func (g *Group) Self() Process { return g.self }

// ID returns the group's id.
func (g *Group) ID() GroupID { return g.cfg.Group }

func (g *Group) emit(e Event) {
	e.Group = g.cfg.Group
	if e.Type != EventInstall {
		e.View = View{ID: g.view.ID}
	}
	g.events = append(grow(g.events), output{ev: e})
}

// emitRun emits an EventDeliver for every entry of run, in order.
func (g *Group) emitRun(run []Entry) {
	ev := Event{Type: EventDeliver, Group: g.cfg.Group, View: View{ID: g.view.ID}}
	g.events = append(grow(g.events), output{ev: ev, run: run})
}

// grow makes room for one more element, doubling s when it is full: append
// grows large slices by a quarter at a time, and a busy group's log and
// event buffers would be copied (and allocated) several times over.
func grow[T any](s []T) []T {
	if len(s) == cap(s) {
		return slices.Grow(s, len(s)+16)
	}
	return s
}

func (g *Group) sendTo(to Process, m Message) {
	m.Group, m.From, m.To = g.cfg.Group, g.self, to
	if m.View == 0 {
		m.View = g.view.ID
	}
	if to == g.self {
		// Local delivery keeps the proposer's own vote on the same path as
		// everyone else's.
		_ = g.Step(m)
		return
	}
	g.msgs = append(g.msgs, m)
}

// broadcast sends m to every other member of the view.
func (g *Group) broadcast(m Message) {
	for _, p := range g.view.Members {
		if p != g.self {
			g.sendTo(p, m)
		}
	}
}

func (g *Group) sendJoins() {
	for _, n := range g.contacts {
		g.msgs = append(g.msgs, Message{Type: MsgJoin, Group: g.cfg.Group, From: g.self, To: Process{Node: n}})
	}
}

func (g *Group) sendLeaves() {
	g.broadcast(Message{Type: MsgLeave})
}

// resetMembership forgets everything about the previous membership.
func (g *Group) resetMembership() {
	g.view, g.since = View{}, 0
	g.resetView()
	g.queued = nil
	g.leaving, g.holding = false, false
	clear(g.suspects)
	clear(g.reachable)
	clear(g.leavers)
	clear(g.joiners)
	g.contacts = nil
}

// resetView clears the per-view state.
func (g *Group) resetView() {
	g.lastSent, g.pending, g.fwdFrom = 0, nil, 0
	g.waiting, g.unstable = 0, 0
	g.log, g.logBase, g.held, g.commit, g.delivered, g.stable = entryLog{}, 0, 0, 0, 0, 0
	g.ackOwed = false
	g.co = nil
	g.promised, g.proposerOf, g.accepted, g.acceptedDec = Ballot{}, Process{}, Ballot{}, nil
	g.blockAcked, g.frozen, g.maxRound, g.needTicks = false, nil, 0, 0
	g.prop = nil
	clear(g.lastHelped)
}

// finish ends this membership with EventLeft or EventExcluded.
func (g *Group) finish(t EventType) {
	if g.leaving {
		t = EventLeft
	}
	g.emit(Event{Type: t})
	g.resetMembership()
	g.st = StatusIdle
}

// keptBytes is roughly what g holds once its membership ended, for the
// node's bound on the left groups it keeps: the tail of its last decision
// and a retired view's acceptor state.
func (g *Group) keptBytes() int {
	n := 512 // the Group and its maps, roughly
	if g.decision != nil {
		n += entriesSize(g.decision.Final)
	}
	if r := g.retired; r != nil {
		if r.dec != nil && r.dec != g.decision {
			n += entriesSize(r.dec.Final)
		}
		n += entriesSize(r.state.Log) + entriesSize(r.state.Pending)
	}
	return n
}

func entriesSize(es []Entry) int {
	n := 0
	for _, e := range es {
		n += e.Size()
	}
	return n
}
