//go:build hoptrace

package hwg

// A diagnostic, built only with -tags hoptrace: it times the hops of a
// sample of multicasts (every 64th of each sender) through the runtime,
// in one process, and at every Node.Close writes percentiles of each hop,
// and where the slowest 1% of paths spent their time, to the file named
// by $HOPTRACE_OUT (default /tmp/hoptrace.txt).
//
//	take      multicast queued by Node.Multicast → taken by the sender's loop
//	fwd       taken → its Forward handed to the transport (sender's flush)
//	fwdNet    Forward handed to the transport → its frame taken by the sequencer's loop
//	seq       taken by the sequencer → its Order handed to the transport
//	ordNet    Order handed to the transport → taken by the member's loop
//	ack       Order taken → the member's Ack covering it handed to the transport
//	ackNet    Ack handed → taken by the sequencer's loop
//	commit    the quorum's Ack taken → an Order whose commit covers it handed to the transport
//	comNet    that Order handed → taken by the member's loop
//	deliver   taken → delivery run emitted
//	hand      delivery emitted → EventDeliver taken by the reader of Events
//	total     queued by Node.Multicast → taken by the reader, at each other member

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lwgkit/lwgkit/internal/durstats"
)

const hopTracing = true

// traceStamp is when a multicast was queued.
type traceStamp = time.Time

func stamp() traceStamp { return time.Now() }

const hopNodes = 8

type hopRec struct {
	id               MsgID
	group            GroupID
	seq              uint64
	enq, take, fwd   time.Time
	fwdRecv          time.Time
	ordSend, ordRecv [hopNodes]time.Time
	ackSend, ackRecv [hopNodes]time.Time
	quorum           time.Time
	comSend, comRecv [hopNodes]time.Time
	deliver, handed  [hopNodes]time.Time
}

var hops struct {
	sync.Mutex
	byID   map[MsgID]*hopRec
	open   []*hopRec // not yet delivered everywhere
	done   []*hopRec
	frames map[string]int
	sentTo map[string]uint64
}

func init() {
	hops.byID, hops.frames, hops.sentTo = map[MsgID]*hopRec{}, map[string]int{}, map[string]uint64{}
}

// hopMembers is the size of the traced groups: $HOPTRACE_MEMBERS, default
// 4 (hwg's and lwg's benchmarks; rsm's have 3).
var hopMembers = func() int {
	if n, err := strconv.Atoi(os.Getenv("HOPTRACE_MEMBERS")); err == nil && n > 0 {
		return n
	}
	return 4
}()

func sampled(id MsgID) bool { return id.Seq%64 == 0 }

func traceTake(n *Node, id GroupID, g *Group, m multicastReq) {
	if m.blockOK || m.at.IsZero() {
		return
	}
	mid := MsgID{Sender: n.cfg.Self, View: g.view.ID, Seq: g.lastSent}
	if !sampled(mid) {
		return
	}
	hops.Lock()
	defer hops.Unlock()
	r := &hopRec{id: mid, group: id, enq: m.at, take: time.Now()}
	hops.byID[mid] = r
	hops.open = append(hops.open, r)
}

func traceSend(n *Node, to NodeID, msgs []Message) {
	if int(to) >= hopNodes {
		return
	}
	now := time.Now()
	hops.Lock()
	defer hops.Unlock()
	kind := "empty"
	for i := range msgs {
		m := &msgs[i]
		k := m.Type.String()
		if m.Type == MsgOrder && len(m.Entries) == 0 {
			k = "Order(commit only)"
		}
		if kind == "empty" {
			kind = k
		} else if !strings.Contains(kind, k) {
			kind += "+" + k
		}
	}
	hops.frames[fmt.Sprintf("%d→%d %s", n.cfg.Self.Node, to, kind)]++
	for i := range msgs {
		m := &msgs[i]
		if m.Type != MsgOrder || len(m.Entries) == 0 {
			continue
		}
		k := fmt.Sprintf("%d→%d %s", n.cfg.Self.Node, to, m.Group)
		last := m.Entries[len(m.Entries)-1].Seq
		if m.Seq < hops.sentTo[k] {
			hops.frames["resent entries"] += int(min(last, hops.sentTo[k]) - m.Seq)
			hops.frames["resending Orders"]++
		}
		hops.frames["entries sent in Orders"] += len(m.Entries)
		hops.sentTo[k] = max(hops.sentTo[k], last)
	}
	for i := range msgs {
		m := &msgs[i]
		switch m.Type {
		case MsgForward:
			for _, e := range m.Entries {
				if r := hops.byID[e.ID]; r != nil && r.fwd.IsZero() {
					r.fwd = now
				}
			}
		case MsgOrder:
			for _, e := range m.Entries {
				if r := hops.byID[e.ID]; r != nil && r.ordSend[to].IsZero() {
					r.ordSend[to] = now
				}
			}
			for _, r := range hops.open {
				if r.group == m.Group && r.seq != 0 && m.Commit >= r.seq && r.comSend[to].IsZero() && !r.ordSend[to].IsZero() {
					r.comSend[to] = now
				}
			}
		case MsgAck:
			self := n.cfg.Self.Node
			for _, r := range hops.open {
				if r.group == m.Group && r.seq != 0 && m.Seq >= r.seq && r.ackSend[self].IsZero() {
					r.ackSend[self] = now
				}
			}
		}
	}
}

func traceRecv(n *Node, from Process, msgs []Message) {
	self := n.cfg.Self.Node
	if int(self) >= hopNodes {
		return
	}
	now := time.Now()
	hops.Lock()
	defer hops.Unlock()
	for i := range msgs {
		m := &msgs[i]
		switch m.Type {
		case MsgForward:
			for _, e := range m.Entries {
				if r := hops.byID[e.ID]; r != nil && r.fwdRecv.IsZero() {
					r.fwdRecv = now
				}
			}
		case MsgOrder:
			for _, e := range m.Entries {
				if r := hops.byID[e.ID]; r != nil && r.ordRecv[self].IsZero() {
					r.ordRecv[self] = now
					r.seq = e.Seq
				}
			}
			for _, r := range hops.open {
				if r.group == m.Group && r.seq != 0 && m.Commit >= r.seq && r.comRecv[self].IsZero() {
					r.comRecv[self] = now
				}
			}
		case MsgAck:
			if int(from.Node) >= hopNodes {
				continue
			}
			for _, r := range hops.open {
				if r.group == m.Group && r.seq != 0 && m.Seq >= r.seq && r.ackRecv[from.Node].IsZero() {
					r.ackRecv[from.Node] = now
				}
			}
		}
	}
}

func traceDeliver(n *Node, id GroupID, run []Entry) {
	self := n.cfg.Self.Node
	now := time.Now()
	hops.Lock()
	defer hops.Unlock()
	for _, e := range run {
		if r := hops.byID[e.ID]; r != nil && r.deliver[self].IsZero() {
			r.deliver[self] = now
			if r.seq == 0 {
				r.seq = e.Seq
			}
		}
	}
}

func traceHanded(n *Node, e *Event) {
	if e.Type != EventDeliver || !sampled(e.Msg) {
		return
	}
	self := n.cfg.Self.Node
	now := time.Now()
	hops.Lock()
	defer hops.Unlock()
	r := hops.byID[e.Msg]
	if r == nil || !r.handed[self].IsZero() {
		return
	}
	r.handed[self] = now
	k := 0
	for i := 1; i < hopNodes; i++ {
		if !r.handed[i].IsZero() {
			k++
		}
	}
	if k >= hopMembers { // delivered at all
		hops.done = append(hops.done, r)
		delete(hops.byID, r.id)
		hops.open = slices.DeleteFunc(hops.open, func(o *hopRec) bool { return o == r })
	}
}

func traceClose(n *Node) {
	hops.Lock()
	defer hops.Unlock()
	path := os.Getenv("HOPTRACE_OUT")
	if path == "" {
		path = "/tmp/hoptrace.txt"
	}
	os.WriteFile(path, []byte(hopSummary()), 0o644)
}

func hopSummary() string {
	stages := []string{"take", "fwd", "fwdNet", "seq", "ordNet", "ack", "ackNet", "commit", "comNet", "deliver", "hand", "total"}
	d := map[string][]time.Duration{}
	add := func(s string, a, b time.Time) {
		if !a.IsZero() && !b.IsZero() && !b.Before(a) {
			d[s] = append(d[s], b.Sub(a))
		}
	}
	// With $HOPTRACE_WINDOW (a duration, 10s for BenchmarkLWGData), only
	// the sends of that long before the last one count (the measurement
	// window, after which the load stops), not the forming of the groups
	// and the warm-up.
	var last time.Time
	for _, r := range hops.done {
		if r.enq.After(last) {
			last = r.enq
		}
	}
	window, err := time.ParseDuration(os.Getenv("HOPTRACE_WINDOW"))
	if err != nil || window <= 0 {
		window = 1 << 62
	}
	type path struct {
		total time.Duration
		parts map[string]time.Duration
	}
	var paths []path // each sampled multicast at each receiver
	for _, r := range hops.done {
		if last.Sub(r.enq) > window {
			continue
		}
		seqNode := NodeID(0)
		// The sequencer is the member that never received an Order.
		for i := 1; i < hopNodes; i++ {
			if !r.deliver[i].IsZero() && r.ordRecv[i].IsZero() {
				seqNode = NodeID(i)
			}
		}
		fromSeq := r.id.Sender.Node == seqNode
		add("take", r.enq, r.take)
		seqIn := r.fwdRecv
		if fromSeq {
			seqIn = r.take
		} else {
			add("fwd", r.take, r.fwd)
			add("fwdNet", r.fwd, r.fwdRecv)
		}
		// The quorum (with the sequencer, 3 of 4) is reached at the second
		// ack to arrive.
		var acks []time.Time
		for i := 1; i < hopNodes; i++ {
			if !r.ackRecv[i].IsZero() {
				acks = append(acks, r.ackRecv[i])
			}
		}
		slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
		// A majority with the sequencer: hopMembers/2 acks.
		var quorum time.Time
		if q := hopMembers / 2; len(acks) >= q {
			quorum = acks[q-1]
		}
		for i := 1; i < hopNodes; i++ {
			if NodeID(i) == seqNode || r.ordSend[i].IsZero() {
				continue
			}
			add("seq", seqIn, r.ordSend[i])
			add("ordNet", r.ordSend[i], r.ordRecv[i])
			add("ack", r.ordRecv[i], r.ackSend[i])
			add("ackNet", r.ackSend[i], r.ackRecv[i])
			add("commit", quorum, r.comSend[i])
			add("comNet", r.comSend[i], r.comRecv[i])
			add("deliver", r.comRecv[i], r.deliver[i])
		}
		for i := 1; i < hopNodes; i++ {
			add("hand", r.deliver[i], r.handed[i])
			if NodeID(i) != r.id.Sender.Node {
				add("total", r.enq, r.handed[i])
			}
		}
		for i := 1; i < hopNodes; i++ {
			if NodeID(i) == r.id.Sender.Node || r.handed[i].IsZero() || r.enq.IsZero() {
				continue
			}
			pt := path{total: r.handed[i].Sub(r.enq), parts: map[string]time.Duration{}}
			part := func(s string, a, b time.Time) {
				if !a.IsZero() && !b.IsZero() && !b.Before(a) {
					pt.parts[s] = b.Sub(a)
				}
			}
			part("take", r.enq, r.take)
			if !fromSeq {
				part("fwd", r.take, r.fwd)
				part("fwdNet", r.fwd, r.fwdRecv)
			}
			if NodeID(i) != seqNode {
				part("seq", seqIn, r.ordSend[i])
				part("ordNet", r.ordSend[i], r.ordRecv[i])
				part("commit", quorum, r.comSend[i])
				part("comNet", r.comSend[i], r.comRecv[i])
				part("deliver", r.comRecv[i], r.deliver[i])
				// What the quorum waited for: the second ack to arrive,
				// from the Order's sending.
				part("acks", r.ordSend[i], quorum)
			}
			part("hand", r.deliver[i], r.handed[i])
			paths = append(paths, pt)
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d sampled multicasts delivered at all %d, %d open\n", len(hops.done), hopMembers, len(hops.open))
	durstats.WriteTable(&sb, "hop", stages, d)
	// The slowest 1% of paths (multicast at one receiver): where did
	// their time go, against all paths?
	slices.SortFunc(paths, func(a, b path) int { return cmp.Compare(b.total, a.total) })
	slow := paths[:len(paths)/100]
	fmt.Fprintf(&sb, "paths (a multicast at one receiver) %d; mean µs per stage, all paths / the slowest 1%% (%d):\n", len(paths), len(slow))
	for _, s := range []string{"take", "fwd", "fwdNet", "seq", "ordNet", "acks", "commit", "comNet", "deliver", "hand"} {
		mean := func(ps []path) time.Duration {
			var sum time.Duration
			k := 0
			for _, p := range ps {
				if v, ok := p.parts[s]; ok {
					sum += v
					k++
				}
			}
			if k == 0 {
				return 0
			}
			return sum / time.Duration(k)
		}
		fmt.Fprintf(&sb, "  %-8s %8d %8d\n", s, mean(paths).Microseconds(), mean(slow).Microseconds())
	}
	keys := make([]string, 0, len(hops.frames))
	for k := range hops.frames {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintf(&sb, "frames sent, by content (whole run):\n")
	for _, k := range keys {
		fmt.Fprintf(&sb, "  %-40s %9d\n", k, hops.frames[k])
	}
	return sb.String()
}
