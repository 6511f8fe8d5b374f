package proptest

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Violation is one breach of an invariant found in a trace.
type Violation struct {
	Checker string // name of the checker that found it
	Group   string // group concerned, if any
	T       uint64 // step at which the breach became evident
	Detail  string
}

func (v Violation) String() string {
	if v.Group == "" {
		return fmt.Sprintf("%s: t=%d: %s", v.Checker, v.T, v.Detail)
	}
	return fmt.Sprintf("%s: group %s: t=%d: %s", v.Checker, v.Group, v.T, v.Detail)
}

// Checker is one invariant over a whole trace.
type Checker struct {
	Name  string
	Doc   string
	Check func([]Event) []Violation
}

// Checker names; other tools refer to checkers by these strings.
const (
	nameSelfInclusion     = "self-inclusion"
	nameLocalMonotonicity = "local-monotonicity"
	nameInitialView       = "initial-view"
	nameViewAgreement     = "view-agreement"
	namePrimaryComponent  = "primary-component"
	nameLWGCarrier        = "lwg-carrier"
	nameOneCarrier        = "one-carrier"
	nameDeliveryIntegrity = "delivery-integrity"
	nameNoDuplication     = "no-duplication"
	nameSendingView       = "sending-view"
	nameVirtualSynchrony  = "virtual-synchrony"
	nameFIFO              = "fifo"
	nameTotalOrder        = "total-order"
	nameLiveness          = "liveness"
)

// Checkers returns every checker, in a stable order.
func Checkers() []Checker {
	return []Checker{
		{nameSelfInclusion, "every view a process installs lists that process", withoutSeen(checkSelfInclusion)},
		{nameLocalMonotonicity, "per process and group, installed view ids strictly increase", withoutSeen(checkLocalMonotonicity)},
		{nameInitialView, "sends and deliveries happen in the process's latest installed view of the group", withoutSeen(checkInitialView)},
		{nameViewAgreement, "all installs of a (group, view) carry the same membership", withoutSeen(checkViewAgreement)},
		{namePrimaryComponent, "in groups other than LWGs (ids not beginning l/), view v+1 keeps a majority of view v, counting members that left voluntarily", withoutSeen(checkPrimaryComponent)},
		{nameLWGCarrier, "every LWG install names hwg and hwgview, and the installing process's latest installed view of hwg is hwgview and contains every member of the LWG view", asSeen(checkLWGCarrier)},
		{nameOneCarrier, "all installs of an LWG view name the same hwg; a process sends and delivers in an LWG only while its latest install of the carrier named by its latest LWG install is that install's hwgview, and it has not left the carrier since", asSeen(checkOneCarrier)},
		{nameDeliveryIntegrity, "every delivery matches an earlier send of the same message, group and sender", withoutSeen(checkDeliveryIntegrity)},
		{nameNoDuplication, "a message is sent once and delivered at most once per process", withoutSeen(checkNoDuplication)},
		{nameSendingView, "a message is delivered in the view it was sent in", withoutSeen(checkSendingView)},
		{nameVirtualSynchrony, "processes moving together from view v to the next view (v+1; for an LWG, the next view id anyone installed) delivered the same messages in v, including their own", withoutSeen(checkVirtualSynchrony)},
		{nameFIFO, "each process delivers a prefix of each sender's sends in a view, in send order", withoutSeen(checkFIFO)},
		{nameTotalOrder, "per group, the union of all processes' delivery orders is acyclic", withoutSeen(checkTotalOrder)},
		{nameLiveness, "after a heal, live processes converge on one final view and deliver all of its messages", withoutSeen(checkLiveness)},
	}
}

// withoutSeen wraps a checker of what the processes did: it ignores the
// copies of events traced again when the LWG layer took them (Event.Seen).
func withoutSeen(check func([]Event) []Violation) func([]Event) []Violation {
	return func(tr []Event) []Violation {
		if !slices.ContainsFunc(tr, func(e Event) bool { return e.Seen }) {
			return check(tr)
		}
		return check(slices.DeleteFunc(slices.Clone(tr), func(e Event) bool { return e.Seen }))
	}
}

// asSeen wraps a checker of LWG events against their carriers: in a trace
// with Seen copies, a carrier's installs, leaves and exclusions count where
// the LWG layer took them, as its own events do.
func asSeen(check func([]Event) []Violation) func([]Event) []Violation {
	return seenBy(func(group string) bool { return !isLWG(group) }, check)
}

// asSeenByApp wraps a checker of what the application did: in a trace with
// Seen copies, an LWG's installs, leaves and exclusions count where the
// application took them (its applies before them were of the views
// before), and the carriers' copies are dropped.
func asSeenByApp(check func([]Event) []Violation) func([]Event) []Violation {
	return seenBy(isLWG, check)
}

// seenBy drops a trace's Seen copies but those of the groups mine picks:
// if there are any, they replace those groups' installs, leaves and
// exclusions.
func seenBy(mine func(group string) bool, check func([]Event) []Violation) func([]Event) []Violation {
	return func(tr []Event) []Violation {
		if !slices.ContainsFunc(tr, func(e Event) bool { return e.Seen }) {
			return check(tr)
		}
		copies := slices.ContainsFunc(tr, func(e Event) bool { return e.Seen && mine(e.Group) })
		out := make([]Event, 0, len(tr))
		for _, e := range tr {
			switch {
			case e.Seen && mine(e.Group):
				e.Seen = false
				out = append(out, e)
			case e.Seen:
			case copies && mine(e.Group) && (e.Ev == EvInstall || e.Ev == EvLeave || e.Ev == EvExclude):
				// counted where it was seen
			default:
				out = append(out, e)
			}
		}
		return check(out)
	}
}

// CheckAll runs every checker and concatenates their violations.
func CheckAll(tr []Event) []Violation {
	var out []Violation
	for _, c := range Checkers() {
		out = append(out, c.Check(tr)...)
	}
	return out
}

// maxViolations caps each checker's report: one bug in a long run tends to
// cascade, and the first few instances are what matters.
const maxViolations = 20

type reporter struct {
	name       string
	out        []Violation
	suppressed int
}

// room reports whether another violation fits, counting it as suppressed if
// not; checkers with costly details call it before building them.
func (r *reporter) room() bool {
	if len(r.out) < maxViolations {
		return true
	}
	r.suppressed++
	return false
}

func (r *reporter) add(group string, t uint64, format string, args ...any) {
	if r.room() {
		r.put(group, t, fmt.Sprintf(format, args...))
	}
}

// put appends a violation after a successful call to room.
func (r *reporter) put(group string, t uint64, detail string) {
	r.out = append(r.out, Violation{r.name, group, t, detail})
}

func (r *reporter) result() []Violation {
	if r.suppressed > 0 {
		r.out = append(r.out, Violation{Checker: r.name, Detail: fmt.Sprintf("%d further violations not reported", r.suppressed)})
	}
	return r.out
}

// Map keys shared by the checkers.
type (
	groupView struct {
		group string
		view  uint64
	}
	procGroup struct {
		p     proc
		group string
	}
	procGroupMsg struct {
		p     proc
		group string
		msg   string
	}
)

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K { return slices.Sorted(maps.Keys(m)) }

func sortedGroupViews[V any](m map[groupView]V) []groupView {
	return slices.SortedFunc(maps.Keys(m), func(a, b groupView) int {
		return cmp.Or(strings.Compare(a.group, b.group), cmp.Compare(a.view, b.view))
	})
}

// listIDs formats up to a few ids, noting how many were left out.
func listIDs(ids []string) string {
	const show = 6
	if len(ids) <= show {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s, ... (%d more)", strings.Join(ids[:show], ", "), len(ids)-show)
}
