package switching

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// Snapshot is what a policy decides from: the LWGs, the HWGs that carry
// them, traffic rates and a little history. Time is counted in rounds: one
// round is one decision of the caller (a second, by default, in the live
// Rebalancer; one step of the offline Evaluator), and rates are per round.
//
// A Snapshot is a value: policies read it and never keep or modify it.
type Snapshot struct {
	// LWGs, sorted by ID.
	LWGs []LWG
	// HWGs, sorted by ID: the live HWGs the caller knows of.
	HWGs []HWG
	// Churn is the observed rate of node membership events (crash,
	// restart, leave, arrival) per node per round, or 0 when the caller
	// has no estimate (the policy then uses its configured prior).
	Churn float64
}

// LWG is one light-weight group in a Snapshot.
type LWG struct {
	ID lwg.ID
	// Members are the nodes of its current view, sorted.
	Members []hwg.NodeID
	// HWG is the ID of its current carrier ("" if it has none).
	HWG hwg.GroupID
	// Rate is its estimated traffic: data messages per round.
	Rate float64
	// Observed reports whether Rate is a measurement. An LWG watched for
	// less than a round has none yet.
	Observed bool
	// Busy: a flush or a switch is in progress; a policy leaves it alone.
	Busy bool
	// SinceSwitch is the number of rounds since it last changed HWG (a
	// large number if never).
	SinceSwitch int
	// Decide reports whether the caller decides for this LWG: Decide
	// returns switches only for such LWGs. In a running cluster an LWG's
	// coordinator decides for it; the others only observe it.
	Decide bool
}

// HWG is one heavy-weight group (a carrier) in a Snapshot.
type HWG struct {
	ID hwg.GroupID
	// Base is the placement base a switch names to reach this HWG, or ""
	// if it cannot be named (an older carrier of a base that has a newer
	// one): a policy never moves LWGs to it.
	Base hwg.GroupID
	// Members are its current members, sorted.
	Members []hwg.NodeID
	// Stable is the number of rounds its membership has been unchanged.
	Stable int
	// Partial reports that the caller does not know every LWG on it (it
	// is not a member): a policy neither merges nor retires it.
	Partial bool
}

// ActionKind is the kind of an Action.
type ActionKind uint8

// What a policy can ask for.
const (
	// ActCreate: create an HWG named Base for Members. In lwgkit the first
	// switch to a base the directory does not know creates its carrier, so
	// the Rebalancer carries this out through the ActSwitch that follows.
	ActCreate ActionKind = iota + 1
	// ActSwitch: move LWG from HWG to the HWG named Base.
	ActSwitch
	// ActRetire: HWG carries no LWG; its members should leave it (lwgkit
	// does this lazily, so the Rebalancer only reports it).
	ActRetire
	// ActMerge: HWG has the same members as Into; its LWGs move there (the
	// ActSwitch actions that follow).
	ActMerge
)

var kindNames = [...]string{"", "create", "switch", "retire", "merge"}

func (k ActionKind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("ActionKind(%d)", uint8(k))
}

// Reason says which rule asked for an action.
type Reason uint8

// The rules of the default policy (docs/SWITCHING.md).
const (
	// ReasonShare: an LWG joins the HWG of LWGs with its own membership.
	ReasonShare Reason = iota + 1
	// ReasonInterference: an LWG moves to an HWG with fewer nodes outside
	// it, because its traffic makes the saving pay for the switch.
	ReasonInterference
	// ReasonMerge: two HWGs have identical members.
	ReasonMerge
	// ReasonConsolidate: an HWG costs more (in flushes on churn, or a node's
	// HWG budget) than moving its cold LWGs onto a shared one.
	ReasonConsolidate
	// ReasonRetire: an HWG carries nothing.
	ReasonRetire
)

var reasonNames = [...]string{"", "share", "interference", "merge", "consolidate", "retire"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) && r != 0 {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Action is one step a policy asks for.
type Action struct {
	Kind ActionKind
	// LWG is the LWG an ActSwitch moves.
	LWG lwg.ID
	// HWG is the HWG an ActSwitch moves the LWG from, or the HWG an
	// ActRetire or ActMerge is about.
	HWG hwg.GroupID
	// Base names the target of an ActSwitch, or the HWG an ActCreate makes.
	Base hwg.GroupID
	// Into is the HWG an ActMerge merges HWG into.
	Into hwg.GroupID
	// Members are the intended members of an ActCreate.
	Members []hwg.NodeID
	Why     Reason
	// Gain is the policy's estimate, in cost units, of what the action
	// saves over its window net of what it costs (ActSwitch only; a merge
	// may have a negative gain: it is a rule, not a bet).
	Gain float64
}

func (a Action) String() string {
	switch a.Kind {
	case ActCreate:
		return fmt.Sprintf("create %s %v (%v)", a.Base, a.Members, a.Why)
	case ActSwitch:
		return fmt.Sprintf("switch %s %s→%s (%v, gain %.1f)", a.LWG, a.HWG, a.Base, a.Why, a.Gain)
	case ActRetire:
		return fmt.Sprintf("retire %s", a.HWG)
	case ActMerge:
		return fmt.Sprintf("merge %s into %s", a.HWG, a.Into)
	}
	return a.Kind.String()
}

// Policy decides where LWGs live. Implementations must be pure: the result
// is a function of the arguments only (no clock, randomness, I/O or state
// kept between calls), so that every node that sees the same snapshot
// decides alike and the offline evaluator replays a live run's decisions.
type Policy interface {
	// Place returns the base of the HWG a new LWG l (not in s) should be
	// created on. A base no HWG in s has names a new HWG.
	Place(s *Snapshot, l LWG) hwg.GroupID
	// Decide returns what should change, in order: ActCreate before the
	// ActSwitch actions that use it, each ActMerge before its switches.
	Decide(s *Snapshot) []Action
}

// MemberBase is the base name of an HWG meant for exactly the given nodes,
// "h/m/1.2.3": LWGs with identical member sets name the same base, so they
// share one carrier (the directory resolves a base to one live carrier).
func MemberBase(nodes []hwg.NodeID) hwg.GroupID {
	ns := slices.Clone(nodes)
	slices.Sort(ns)
	var b strings.Builder
	b.WriteString(memberPrefix)
	for i, n := range ns {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.FormatUint(uint64(n), 10))
	}
	return hwg.GroupID(b.String())
}

// memberPrefix begins every MemberBase.
const memberPrefix = "h/m/"

// ByMembers is an lwg.Placement for applications that know each LWG's
// member nodes when they create it (a sharded store placing shards by
// rendezvous hashing): every LWG starts on the carrier of its member set,
// MemberBase(members(l)), which is where the default policy would move it.
// members must be a pure function.
func ByMembers(members func(lwg.ID) []hwg.NodeID) lwg.Placement {
	return func(l lwg.ID) hwg.GroupID { return MemberBase(members(l)) }
}

// nodeSet is a sorted set of nodes.
type nodeSet []hwg.NodeID

func (s nodeSet) key() string {
	var b strings.Builder
	for i, n := range s {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.FormatUint(uint64(n), 10))
	}
	return b.String()
}

// minus returns |s \ o|.
func (s nodeSet) minus(o nodeSet) int {
	n, j := 0, 0
	for _, x := range s {
		for j < len(o) && o[j] < x {
			j++
		}
		if j >= len(o) || o[j] != x {
			n++
		}
	}
	return n
}

// covers reports whether s ⊇ o.
func (s nodeSet) covers(o nodeSet) bool { return o.minus(s) == 0 }

func (s nodeSet) equal(o nodeSet) bool { return slices.Equal(s, o) }

// union returns s ∪ o.
func (s nodeSet) union(o nodeSet) nodeSet {
	out := make(nodeSet, 0, len(s)+len(o))
	i, j := 0, 0
	for i < len(s) || j < len(o) {
		switch {
		case j >= len(o) || i < len(s) && s[i] < o[j]:
			out = append(out, s[i])
			i++
		case i >= len(s) || o[j] < s[i]:
			out = append(out, o[j])
			j++
		default:
			out = append(out, s[i])
			i++
			j++
		}
	}
	return out
}

func sortedSet(ns []hwg.NodeID) nodeSet {
	s := slices.Clone(ns)
	slices.Sort(s)
	return slices.Compact(s)
}
