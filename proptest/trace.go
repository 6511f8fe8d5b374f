package proptest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Event kinds, the values of Event.Ev.
const (
	EvInstall = "install" // a process installed a view of a group
	EvSend    = "send"    // a process multicast a message in its current view
	EvDeliver = "deliver" // a process delivered a message
	EvCrash   = "crash"   // a process crashed; a restart is a higher Inc
	EvLeave   = "leave"   // a process voluntarily left a group from a view
	EvExclude = "exclude" // a view change went on without the process (it rejoins as a new member)
	EvApply   = "apply"   // a replicated object applied an update
	EvState   = "state"   // a replica got the object's state (created, or from donor From)
	EvHeal    = "heal"    // no more faults after this point
)

// Event is one line of a trace. The field order is the JSON key order, so
// the encoding of an event is byte-deterministic.
type Event struct {
	T       uint64   `json:"t"`                 // global step, non-decreasing
	Node    uint64   `json:"node,omitempty"`    // node id, non-zero; absent for heal
	Inc     uint64   `json:"inc,omitempty"`     // incarnation ≥ 1; absent for heal
	Ev      string   `json:"ev"`                // one of the Ev* constants
	Group   string   `json:"group,omitempty"`   // "h/..." for HWGs, "l/..." for LWGs
	View    uint64   `json:"view,omitempty"`    // view id, increasing per group
	Members []uint64 `json:"members,omitempty"` // install: ordered member node ids
	Incs    []uint64 `json:"incs,omitempty"`    // install: incarnation of each member, if known
	Left    []uint64 `json:"left,omitempty"`    // install: nodes of the previous view that left voluntarily
	HWG     string   `json:"hwg,omitempty"`     // LWG install: the HWG it is mapped onto
	HWGView uint64   `json:"hwgview,omitempty"` // LWG install: the HWG view it runs in
	Msg     string   `json:"msg,omitempty"`     // send/deliver: globally unique message id
	From    uint64   `json:"from,omitempty"`    // deliver: sender node id
	Index   uint64   `json:"index,omitempty"`   // apply: log index
	Digest  string   `json:"digest,omitempty"`  // apply: state digest after the update
	// Branch (state, created): the replica went on from a state it kept
	// after an operator's ForgetAbsent gave up on absent holders: a life
	// of its own, whose indexes may repeat the old life's with other
	// commands.
	Branch bool `json:"branch,omitempty"`
	// Seen (install, leave, exclude): a copy of an earlier event, traced
	// again when the layer above took it, in a trace whose layers are
	// wired asynchronously (LWGOptions.Async): an HWG's when the node's
	// LWG layer took it, an LWG's when the application did. The carrier
	// checkers read the HWG copies instead of the originals, the checkers
	// of replicated objects the LWG copies; the others ignore them.
	Seen bool `json:"seen,omitempty"`
}

// proc identifies a process: one incarnation of a node.
type proc struct{ node, inc uint64 }

func (p proc) String() string { return fmt.Sprintf("n%d.i%d", p.node, p.inc) }

func (e *Event) proc() proc { return proc{e.Node, e.Inc} }

// hasIncs reports whether an install names the incarnation of each member;
// without them members are compared by node only.
func (e *Event) hasIncs() bool { return len(e.Incs) > 0 && len(e.Incs) == len(e.Members) }

// includes reports whether the install's membership contains p.
func (e *Event) includes(p proc) bool {
	withIncs := e.hasIncs()
	for i, n := range e.Members {
		if n == p.node && (!withIncs || e.Incs[i] == p.inc) {
			return true
		}
	}
	return false
}

// memberString formats an install's membership for violation details.
func (e *Event) memberString() string {
	if !e.hasIncs() {
		return fmt.Sprint(e.Members)
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i, n := range e.Members {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(proc{n, e.Incs[i]}.String())
	}
	b.WriteByte(']')
	return b.String()
}

// Trace is a recorded run in global order.
type Trace []Event

// Append adds events at the end of the trace.
func (tr *Trace) Append(e ...Event) { *tr = append(*tr, e...) }

// WriteJSONL writes one JSON object per event, each followed by a newline.
func (tr Trace) WriteJSONL(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for i := range tr {
		b, err := json.Marshal(&tr[i])
		if err != nil {
			return fmt.Errorf("proptest: encoding event %d: %w", i, err)
		}
		b = append(b, '\n')
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// maxLine bounds one trace line; installs of large groups can be long.
const maxLine = 64 << 20

// ReadJSONL parses a trace written by WriteJSONL. Blank lines are skipped.
// It rejects unknown fields and event kinds, events missing a field their
// kind requires, and decreasing steps; errors name the 1-based line.
func ReadJSONL(r io.Reader) (Trace, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var tr Trace
	var lastT uint64
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		e, err := decodeEvent(b)
		if err != nil {
			return nil, fmt.Errorf("proptest: trace line %d: %w", line, err)
		}
		if e.T < lastT {
			return nil, fmt.Errorf("proptest: trace line %d: step t=%d is before the previous step %d", line, e.T, lastT)
		}
		lastT = e.T
		tr = append(tr, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("proptest: reading trace: %w", err)
	}
	return tr, nil
}

func decodeEvent(b []byte) (Event, error) {
	// T is a pointer here, shadowing Event.T, so a missing "t" is detectable.
	var w struct {
		T *uint64 `json:"t"`
		Event
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Event{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return Event{}, errors.New("trailing data after the event")
	}
	e := w.Event
	if w.T == nil {
		return e, errors.New(`missing "t"`)
	}
	e.T = *w.T
	return e, validate(&e)
}

// validate checks the fields each kind requires. Numeric fields that may
// legitimately be zero (view, index) are omitted when zero, so their absence
// cannot be told from a zero value and is not checked.
func validate(e *Event) error {
	var missing []string
	req := func(ok bool, field string) {
		if !ok {
			missing = append(missing, strconv.Quote(field))
		}
	}
	switch e.Ev {
	case "":
		return errors.New(`missing "ev"`)
	case EvHeal:
		return nil
	case EvInstall, EvSend, EvDeliver, EvCrash, EvLeave, EvExclude, EvApply, EvState:
	default:
		return fmt.Errorf("unknown event kind %q", e.Ev)
	}
	req(e.Node != 0, "node")
	req(e.Inc != 0, "inc")
	switch e.Ev {
	case EvInstall:
		req(e.Group != "", "group")
		req(len(e.Members) > 0, "members")
	case EvSend:
		req(e.Group != "", "group")
		req(e.Msg != "", "msg")
	case EvDeliver:
		req(e.Group != "", "group")
		req(e.Msg != "", "msg")
		req(e.From != 0, "from")
	case EvLeave, EvExclude:
		req(e.Group != "", "group")
	case EvApply, EvState:
		req(e.Group != "", "group")
		req(e.Digest != "", "digest")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s event missing %s", e.Ev, strings.Join(missing, ", "))
	}
	if e.Seen && e.Ev != EvInstall && e.Ev != EvLeave && e.Ev != EvExclude {
		return fmt.Errorf("seen %s event of %q: only an install, leave or exclude is traced again", e.Ev, e.Group)
	}
	if len(e.Incs) > 0 && len(e.Incs) != len(e.Members) {
		return fmt.Errorf("install has %d members but %d incs", len(e.Members), len(e.Incs))
	}
	return nil
}
