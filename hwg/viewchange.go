package hwg

import (
	"cmp"
	"fmt"
	"slices"
)

// proposal is this member's attempt to end the current view.
type proposal struct {
	ballot  Ballot
	oks     map[Process]*FlushState
	acks    map[Process]bool
	dec     *Decision // set once phase 2 (accept) has begun
	ticks   int
	exclude map[Process]bool // suspects when the proposal started
	// joinOK are the joiners that answered this ballot's Prepare: only
	// processes proven alive by this proposal enter the next view.
	joinOK map[Process]bool
}

// needChange reports whether this member knows a reason to change the view.
func (g *Group) needChange() bool {
	if g.leaving && !(g.holding && len(g.view.Members) == 1) {
		return true // a lone holder waits for someone to hand over to
	}
	for j := range g.joiners {
		if g.reachable[j] {
			return true
		}
	}
	for p := range g.suspects {
		if g.view.Contains(p) {
			return true
		}
	}
	for p := range g.leavers {
		if p != g.self && g.view.Contains(p) { // our own leave: the first clause
			return true
		}
	}
	return false
}

// actingProposer reports whether this member is the first one of the view
// it does not suspect: the one expected to run the next view change.
func (g *Group) actingProposer() bool {
	for _, p := range g.view.Members {
		if p == g.self {
			return true
		}
		if !g.suspected(p) {
			return false
		}
	}
	return false
}

// maybePropose starts a view change if one is needed and this member is the
// one to run it. Others wait; they take over after ViewChangeTicks·(1+rank).
func (g *Group) maybePropose() {
	if (g.st != StatusNormal && g.st != StatusFlushing) || !g.needChange() || !g.actingProposer() {
		return
	}
	if g.prop == nil {
		g.startProposal()
		return
	}
	if g.prop.dec == nil {
		// Still collecting: a new reason is picked up when the decision is
		// built. A new suspect of the quorum we wait for needs no restart.
		for p := range g.suspects {
			g.prop.exclude[p] = true
		}
		g.checkPrepareDone()
	}
}

// startProposal begins phase 1 with a ballot higher than any seen.
func (g *Group) startProposal() {
	round := max(g.maxRound, g.promised.Round, g.accepted.Round) + 1
	g.maxRound = round
	g.prop = &proposal{
		ballot:  Ballot{Round: round, Node: g.self.Node},
		oks:     map[Process]*FlushState{},
		acks:    map[Process]bool{},
		exclude: map[Process]bool{},
		joinOK:  map[Process]bool{},
	}
	for p := range g.suspects {
		g.prop.exclude[p] = true
	}
	g.needTicks = 0
	// Others first: handling our own vote may complete the view change
	// (a view of one), after which nothing of this view may be sent.
	g.broadcast(Message{Type: MsgPrepare, Ballot: g.prop.ballot})
	g.askJoiners()
	g.sendTo(g.self, Message{Type: MsgPrepare, Ballot: g.prop.ballot})
}

// patience is how long this member lets a view change run before it takes
// over (or restarts its own): ViewChangeTicks·(1+r), r its rank among the
// members it does not suspect, so the senior live member retries first and
// proposers do not duel.
func (g *Group) patience() int {
	r := 0
	for _, m := range g.view.Members {
		if m == g.self {
			break
		}
		if !g.suspected(m) {
			r++
		}
	}
	return g.cfg.ViewChangeTicks * (1 + r)
}

func (g *Group) tickProposal() {
	p := g.prop
	if p.ticks > g.patience() {
		g.prop = nil
		g.startProposal()
		return
	}
	if p.dec == nil {
		if p.ticks >= g.cfg.FlushWaitTicks {
			g.checkPrepareDone()
		}
		if g.prop == p && p.dec == nil && p.ticks%g.cfg.RetransmitTicks == 0 {
			for _, m := range g.view.Members {
				if p.oks[m] == nil && m != g.self {
					g.sendTo(m, Message{Type: MsgPrepare, Ballot: p.ballot})
				}
			}
			g.askJoiners()
		}
		return
	}
	if p.ticks%g.cfg.RetransmitTicks == 0 {
		for _, m := range g.view.Members {
			if !p.acks[m] && m != g.self {
				g.sendTo(m, Message{Type: MsgAccept, Ballot: p.ballot, Decision: p.dec})
			}
		}
	}
}

// onPrepare: promise the ballot if it is the highest seen, stop (Hold.up),
// and report the frozen state once the application has answered.
func (g *Group) onPrepare(m Message) {
	if m.Ballot.IsZero() {
		return // a probe of joiners only; members promise real ballots
	}
	g.maxRound = max(g.maxRound, m.Ballot.Round)
	if m.Ballot.Less(g.promised) {
		return
	}
	g.promised, g.proposerOf = m.Ballot, m.From
	if g.prop != nil && g.prop.ballot.Less(m.Ballot) {
		g.prop = nil // a higher ballot took over
	}
	g.needTicks = 0 // someone is making progress: give it time
	if g.st == StatusNormal {
		g.block() // answers at once unless ManualBlockOK
	} else if g.blockAcked {
		g.sendPrepareOK()
	}
}

// block moves from Normal to Flushing: stop sequencing and raise Hold.up.
func (g *Group) block() {
	g.st = StatusFlushing
	g.co = nil
	g.needTicks = 0
	g.emit(Event{Type: EventBlock})
	if !g.cfg.ManualBlockOK {
		g.ackBlock()
	}
}

// ackBlock freezes what this member holds of the view: from here on its
// multicasts wait for the next view.
func (g *Group) ackBlock() {
	g.blockAcked = true
	g.frozen = &FlushState{
		Held:    g.held,
		Log:     g.log.clone(g.logBase, g.held),
		Pending: slices.Clone(g.pending),
		Leaving: g.leaving,
		Holding: g.holding,
	}
	if !g.proposerOf.IsZeroProcess() {
		g.sendPrepareOK()
	}
}

func (g *Group) sendPrepareOK() {
	st := *g.frozen
	st.Accepted, st.Decision = g.accepted, g.acceptedDec
	g.sendTo(g.proposerOf, Message{Type: MsgPrepareOK, Ballot: g.promised, State: &st})
}

func (g *Group) onPrepareOK(m Message) {
	p := g.prop
	if p == nil || m.Ballot != p.ballot || p.dec != nil || m.State == nil {
		return
	}
	p.oks[m.From] = m.State
	g.checkPrepareDone()
}

// checkPrepareDone moves to phase 2 once a majority has answered and either
// every unsuspected member has too or FlushWaitTicks have passed.
func (g *Group) checkPrepareDone() {
	p := g.prop
	if p == nil || p.dec != nil || len(p.oks) < g.view.Quorum() {
		return
	}
	if p.ticks < g.cfg.FlushWaitTicks {
		for _, m := range g.view.Members {
			if p.oks[m] == nil && !p.exclude[m] {
				return
			}
		}
		for j := range g.joiners {
			if !p.joinOK[j] {
				return
			}
		}
	}
	p.dec = g.buildDecision()
	g.broadcast(Message{Type: MsgAccept, Ballot: p.ballot, Decision: p.dec})
	g.sendTo(g.self, Message{Type: MsgAccept, Ballot: p.ballot, Decision: p.dec})
}

// buildDecision picks the value for phase 2. As in Paxos, a decision some
// member accepted under the highest ballot must be proposed again, since it
// may already be chosen. Otherwise the next view is the responders (less
// leavers and suspects) plus joiners, and the tail of the old view is the
// log of the responder that holds most, followed by every responder's
// unsequenced multicasts in FIFO order.
func (g *Group) buildDecision() *Decision {
	p := g.prop
	var best *FlushState
	for _, st := range p.oks {
		if st.Decision != nil && (best == nil || best.Accepted.Less(st.Accepted)) {
			best = st
		}
	}
	if best != nil {
		return best.Decision
	}
	responders := make([]Process, 0, len(p.oks))
	var longest *FlushState
	for _, m := range g.view.Members { // view order keeps the result deterministic
		st := p.oks[m]
		if st == nil {
			continue
		}
		responders = append(responders, m)
		if longest == nil || st.Held > longest.Held {
			longest = st
		}
	}
	final := slices.Clone(longest.Log)
	lastOf := map[Process]uint64{} // highest sequenced FIFO number per sender
	for _, e := range final {
		lastOf[e.ID.Sender] = max(lastOf[e.ID.Sender], e.ID.Seq)
	}
	seq := longest.Held
	dec := &Decision{Prev: g.view.ID, Next: View{ID: g.view.ID + 1}}
	restarted := map[NodeID]uint64{} // node → incarnation that is joining
	for j := range g.joiners {
		restarted[j.Node] = j.Inc
	}
	var doubtful []Process // suspected, or restarted as a joining incarnation
	holder := -1           // index in dec.Left of a leaver holding the group
	for _, m := range responders {
		st := p.oks[m]
		for _, e := range st.Pending {
			if e.ID.Seq > lastOf[m] {
				seq++
				e.Seq = seq
				final = append(final, e)
			}
		}
		switch {
		case st.Leaving || g.leavers[m]:
			if st.Holding && holder < 0 {
				holder = len(dec.Left)
			}
			dec.Left = append(dec.Left, m)
		case p.exclude[m] || restarted[m.Node] > m.Inc:
			doubtful = append(doubtful, m)
			fallthrough
		default:
			dec.Next.Members = append(dec.Next.Members, m)
		}
	}
	// INVARIANT: the next view keeps a majority of this one, counting
	// members that leave voluntarily (checked by proptest's
	// primary-component checker). Doubtful responders answered, so they
	// are alive: drop them, last first, only while the majority holds;
	// the rest go in a later view change if the doubt persists.
	for i := len(doubtful) - 1; i >= 0; i-- {
		if len(dec.Next.Members)-1 < g.view.Quorum() {
			break // leavers do not count: the next view must stand on its own
		}
		dec.Next.Members = slices.DeleteFunc(dec.Next.Members, func(x Process) bool { return x == doubtful[i] })
	}
	if len(dec.Next.Members) == 0 && len(dec.Left) > 0 && (len(dec.Left) < len(g.view.Members) || holder >= 0) {
		// Everyone who answered is leaving, but someone who did not answer
		// was not (now or when a holder was kept): a view of nobody, or of
		// joiners only, would end the group behind their backs. One leaver
		// (the holder, if any) stays and holds the group until another
		// member can carry it on. Only a unanimous leave of a group that
		// never left anyone behind dissolves it.
		k := max(holder, 0)
		dec.Next.Members = append(dec.Next.Members, dec.Left[k])
		dec.Left = slices.Delete(dec.Left, k, k+1)
	}
	// Joiners enter only if they answered this ballot, like the members:
	// everyone in the next view is proven alive when the decision is built,
	// so joiners that crashed after asking cannot cost it its majority.
	for _, j := range g.sortedJoiners() {
		if _, ok := dec.Next.HasNode(j.Node); !ok && p.joinOK[j] {
			dec.Next.Members = append(dec.Next.Members, j)
			dec.Joined = append(dec.Joined, j)
		}
	}
	dec.Final, dec.Last = final, seq
	return dec
}

func (g *Group) onAccept(m Message) {
	g.maxRound = max(g.maxRound, m.Ballot.Round)
	if m.Ballot.Less(g.promised) || m.Decision == nil || m.Decision.Prev != g.view.ID {
		return
	}
	g.promised = m.Ballot
	g.accepted, g.acceptedDec = m.Ballot, m.Decision
	if g.prop != nil && g.prop.ballot.Less(m.Ballot) {
		g.prop = nil
	}
	g.needTicks = 0
	if g.st == StatusNormal {
		g.block()
	}
	g.sendTo(m.From, Message{Type: MsgAcceptOK, Ballot: m.Ballot})
}

func (g *Group) onAcceptOK(m Message) {
	p := g.prop
	if p == nil || p.dec == nil || m.Ballot != p.ballot {
		return
	}
	p.acks[m.From] = true
	if len(p.acks) < g.view.Quorum() {
		return
	}
	// Chosen. Tell the old members and the joiners, then apply it here.
	dec := p.dec
	targets := slices.Clone(g.view.Members)
	for _, n := range dec.Next.Members {
		if !slices.Contains(targets, n) {
			targets = append(targets, n)
		}
	}
	for _, t := range targets {
		if t != g.self {
			g.sendTo(t, Message{Type: MsgCommit, Decision: dec})
		}
	}
	g.applyDecision(dec)
}

func (g *Group) onCommit(m Message) error {
	dec := m.Decision
	if dec == nil {
		return fmt.Errorf("%w: commit without a decision", ErrMalformed)
	}
	if dec.Prev == g.view.ID && g.st != StatusJoining {
		// Decisions come from members of the view they end (the proposer, a
		// witness) or of the view they install (answering a laggard).
		if !g.view.Contains(m.From) && !dec.Next.Contains(m.From) {
			return fmt.Errorf("%w: commit from %v", ErrUnknownSender, m.From)
		}
		if err := g.canApply(dec); err != nil {
			return err
		}
	}
	switch {
	case g.st == StatusJoining:
		if slices.Contains(dec.Joined, g.self) && dec.Next.ID > g.lastView {
			g.install(dec.Next, dec)
		}
	case dec.Prev == g.view.ID:
		g.applyDecision(dec)
	case dec.Prev > g.view.ID:
		// The group went past our view without us: we missed the decision
		// that ended it and cannot have been a member of any view since.
		// If the next view holds us, a join request of ours added us
		// again: start over there as a new member.
		rejoin := slices.Contains(dec.Joined, g.self) && !g.leaving
		g.finish(EventExcluded)
		if rejoin {
			g.install(dec.Next, dec)
		}
	}
	return nil
}

// canApply checks that this member can deliver the decision's tail: what
// the tail lacks below its first entry this member must hold itself.
func (g *Group) canApply(dec *Decision) error {
	if dec.Last <= g.delivered {
		return nil
	}
	from := dec.Last + 1
	if len(dec.Final) > 0 {
		from = dec.Final[0].Seq
	}
	if from > g.delivered+1 && (from-1 > g.held || g.delivered < g.logBase) {
		return fmt.Errorf("%w: decision tail starts at %d, this member holds %d..%d", ErrMalformed, from, g.logBase+1, g.held)
	}
	return nil
}

// applyDecision delivers the rest of the old view and installs the next one,
// or ends this membership if the next view does not include this member.
func (g *Group) applyDecision(dec *Decision) {
	tail := dec.Final
	for g.delivered < dec.Last {
		s := g.delivered + 1
		var e Entry
		if len(tail) > 0 && s >= tail[0].Seq {
			e = tail[s-tail[0].Seq]
			if g.cfg.brokenFlush == g.self.Node && s > g.held {
				g.delivered = s // the mutation: skip what only the tail carries
				continue
			}
		} else {
			// INVARIANT: the tail starts at or below every member's held
			// seq + 1 (the stable point bounds every member's GC), so what
			// it lacks this member holds itself.
			if s <= g.logBase || s > g.held {
				panic(fmt.Sprintf("hwg: %v in %v: decision ending at %d misses seq %d (log %d..%d)",
					g.self, g.view, dec.Last, s, g.logBase+1, g.held))
			}
			e = *g.log.at(s)
		}
		g.delivered = s
		g.emit(Event{Type: EventDeliver, Msg: e.ID, Payload: e.Payload})
	}
	if dec.Next.Contains(g.self) {
		// Reported leaving, yet kept: hold the group (see buildDecision).
		// Set before install, whose view-change check depends on it.
		g.holding = g.holding || (g.frozen != nil && g.frozen.Leaving)
		g.install(dec.Next, dec)
		return
	}
	g.decision = dec
	if slices.Contains(dec.Left, g.self) {
		g.leaving = true
	}
	g.finish(EventExcluded)
}

// install makes v the current view and sends what was queued during the
// flush.
func (g *Group) install(v View, dec *Decision) {
	if g.st == StatusIdle || g.st == StatusJoining {
		g.since = v.ID // a membership begins
	}
	g.resetView()
	g.view, g.decision = v.Clone(), dec
	g.lastView = v.ID
	g.st = StatusNormal
	// Suspicions start afresh: the detector reports the live ones again
	// every tick, and a member kept despite one must not force another
	// view change by itself.
	clear(g.suspects)
	for p := range g.leavers {
		if !v.Contains(p) {
			delete(g.leavers, p)
		}
	}
	for j := range g.joiners {
		if cur, ok := v.HasNode(j.Node); ok && cur.Inc >= j.Inc {
			delete(g.joiners, j)
			delete(g.reachable, j)
		}
	}
	g.contacts = nil
	if v.Coordinator() == g.self {
		g.co = newCoordinator(v)
	}
	ev := Event{Type: EventInstall, View: v.Clone()}
	if dec != nil {
		ev.Joined, ev.Left = slices.Clone(dec.Joined), slices.Clone(dec.Left)
	}
	g.emit(ev)
	q := g.queued
	g.queued = nil
	for _, payload := range q {
		g.waiting += len(payload)
		g.send(payload)
	}
	if g.leaving {
		g.leavers[g.self] = true
		g.sendLeaves()
	}
	g.maybePropose()
}

// onJoin records a join request, or resends the decision to a joiner that
// is already in the view but missed it.
func (g *Group) onJoin(m Message) {
	j := m.From
	if !m.Subject.IsZeroProcess() {
		j = m.Subject
	}
	if g.view.Contains(j) {
		if g.decision != nil && g.decision.Next.ID == g.view.ID && slices.Contains(g.decision.Joined, j) {
			g.sendTo(j, Message{Type: MsgCommit, View: g.decision.Prev, Decision: g.decision})
		}
		return
	}
	if cur, ok := g.view.HasNode(j.Node); ok && cur.Inc >= j.Inc {
		return // an old incarnation's request, delayed
	}
	direct := m.Subject.IsZeroProcess() && m.View == g.view.ID // ballots restart with every view
	_, asked := g.joiners[j]
	probed := direct && m.Ballot.IsZero() && asked
	answer := direct && g.prop != nil && g.prop.dec == nil && !m.Ballot.IsZero() && m.Ballot == g.prop.ballot
	if !g.actingProposer() && !answer && !probed {
		if !m.Subject.IsZeroProcess() {
			return // relay once: two members that disagree on the proposer must not bounce it
		}
		// Relay to whoever runs view changes, as we see it.
		for _, p := range g.view.Members {
			if !g.suspected(p) {
				g.sendTo(p, Message{Type: MsgJoin, Subject: j})
				break
			}
		}
		return
	}
	for o := range g.joiners {
		if o.Node == j.Node && o != j {
			if o.Inc > j.Inc {
				return
			}
			delete(g.joiners, o) // an older incarnation's request
		}
	}
	g.joiners[j] = g.ticks
	if old, ok := g.view.HasNode(j.Node); ok && old.Inc < j.Inc {
		// The node restarted: its old incarnation is gone.
		g.suspects[old] = g.ticks
	}
	switch {
	case answer:
		g.reachable[j] = true
		g.prop.joinOK[j] = true // alive now: it answered this ballot's Prepare
		g.checkPrepareDone()
		return
	case probed:
		g.reachable[j] = true
	case !g.reachable[j]:
		// Prove it can hear us before a view change starts for it.
		g.sendTo(j, Message{Type: MsgPrepare})
		return
	}
	g.maybePropose()
}

// helpLaggard answers a process that is behind: with the decision that
// ended its view if we have it, or with Stale if the group went on without
// it. Answers are rate limited per process.
func (g *Group) helpLaggard(m Message) {
	if last, ok := g.lastHelped[m.From]; ok && g.ticks-last < uint64(g.cfg.RetransmitTicks) {
		return
	}
	switch {
	case g.decision != nil && m.View == g.decision.Prev:
		g.lastHelped[m.From] = g.ticks
		g.sendTo(m.From, Message{Type: MsgCommit, View: g.decision.Prev, Decision: g.decision})
	case g.view.ID != 0 && m.View < g.view.ID && !g.view.Contains(m.From):
		g.lastHelped[m.From] = g.ticks
		g.sendTo(m.From, Message{Type: MsgStale})
	case g.view.ID == 0 && m.View != 0 && m.View < g.lastView:
		// Out of the group now, but it saw a later view than the sender's
		// without holding the decision that ended the sender's: if every
		// member of the later views left, nobody else is left to tell the
		// sender, which would wait in its view forever. Excluding itself is
		// always safe; it rejoins as a new member.
		g.lastHelped[m.From] = g.ticks
		g.sendTo(m.From, Message{Type: MsgStale, View: g.lastView})
	}
}

// retiredAcceptor is the acceptor state of a view this process was
// excluded from without learning the decision.
type retiredAcceptor struct {
	view     View
	promised Ballot
	accepted Ballot
	dec      *Decision
	state    FlushState
}

// retire keeps the acceptor state of the current view before an exclusion
// by Stale wipes it.
func (g *Group) retire() {
	r := &retiredAcceptor{view: g.view.Clone(), promised: g.promised, accepted: g.accepted, dec: g.acceptedDec}
	if g.frozen != nil {
		r.state = *g.frozen
	} else {
		r.state = FlushState{Held: g.held, Log: g.log.clone(g.logBase, g.held)}
	}
	g.retired = r
}

// stepRetired answers Prepare and Accept of the retired view as an acceptor
// only. A value was chosen for that view (the group went on), so any quorum
// re-proposes it; this process never becomes a member through it.
func (g *Group) stepRetired(m Message) {
	r := g.retired
	if m.Ballot.IsZero() || !r.view.Contains(m.From) || m.Ballot.Less(r.promised) {
		return
	}
	r.promised = m.Ballot
	reply := Message{Type: MsgPrepareOK, Ballot: m.Ballot, View: r.view.ID}
	if m.Type == MsgAccept {
		if m.Decision == nil || m.Decision.Prev != r.view.ID {
			return
		}
		r.accepted, r.dec = m.Ballot, m.Decision
		reply.Type = MsgAcceptOK
	} else {
		st := r.state
		st.Pending = nil // its own sends can no longer be delivered by it
		st.Accepted, st.Decision = r.accepted, r.dec
		reply.State = &st
	}
	g.sendTo(m.From, reply)
}

// joinFreshTicks is how recently, in JoinRetryTicks, a joiner must have
// asked to be admitted: a joiner retries until it is in, so an old request
// is no evidence that it is alive.
const joinFreshTicks = 3

// sortedJoiners returns the pending joiners (Tick expires stale ones),
// oldest request first, ties by process, so decisions are deterministic.
func (g *Group) sortedJoiners() []Process {
	out := make([]Process, 0, len(g.joiners))
	for j := range g.joiners {
		out = append(out, j)
	}
	slices.SortFunc(out, func(a, b Process) int {
		return cmp.Or(cmp.Compare(g.joiners[a], g.joiners[b]), cmp.Compare(a.Node, b.Node), cmp.Compare(a.Inc, b.Inc))
	})
	return out
}

// askJoiners sends the current ballot's Prepare to every pending joiner
// that has not answered it yet; a joiner answers with Join carrying the
// ballot, proving it is alive now.
func (g *Group) askJoiners() {
	p := g.prop
	for _, j := range g.sortedJoiners() {
		if !p.joinOK[j] {
			g.sendTo(j, Message{Type: MsgPrepare, Ballot: p.ballot})
		}
	}
}
