package proptest

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/lwgkit/lwgkit/rsm"
)

// Linearizability of an RSM simulation's history, checked by porcupine.
//
// Each map key of each map object is a register (a set returns the old
// value, a delete too and empties the key, a get reads it), and each
// counter object is a counter (an add returns the new total, a read the
// total): porcupine checks each separately, which is sound because they
// share nothing; and each life of an object's state separately, since a
// new life starts from the empty state (see RSMOp.Life). An operation whose outcome is unknown (its node crashed
// or left the group before the answer, or the run ended) may have taken
// effect at any point after its call, or never: porcupine's convention is
// a return at infinity with an output the model accepts whatever it is.
// When the simulator knows the outcome from the replicas (RSMOp.Effect: a
// replica applied the command), the output is that one, still returning
// at infinity. A read without an answer changes nothing and is left out.

type linInput struct {
	isMap, read, del bool
	key, value       string
	add              uint64
}

type linOutput struct {
	known bool
	val   string // map: old value (command) or value (read)
	total uint64 // counter: total after (add) or total (read)
}

// linState is the state of one partition: a register or a counter.
type linState struct {
	val   string
	total uint64
}

var linModel = porcupine.Model{
	Init: func() any { return linState{} },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(linState), input.(linInput), output.(linOutput)
		switch {
		case in.isMap && in.read:
			return out.val == st.val, st
		case in.isMap:
			ok := !out.known || out.val == st.val
			if in.del {
				return ok, linState{}
			}
			return ok, linState{val: in.value}
		case in.read:
			return out.total == st.total, st
		default:
			next := linState{total: st.total + in.add}
			return !out.known || out.total == next.total, next
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		res := "?"
		switch {
		case out.known && in.isMap:
			res = fmt.Sprintf("%q", out.val)
		case out.known:
			res = fmt.Sprint(out.total)
		}
		switch {
		case in.isMap && in.read:
			return fmt.Sprintf("get(%s) -> %s", in.key, res)
		case in.isMap && in.del:
			return fmt.Sprintf("del(%s) -> %s", in.key, res)
		case in.isMap:
			return fmt.Sprintf("set(%s, %s) -> %s", in.key, in.value, res)
		case in.read:
			return "total() -> " + res
		}
		return fmt.Sprintf("add(%d) -> %s", in.add, res)
	},
}

type linPartition struct {
	obj  rsm.ObjectID
	life int
	key  string
}

// linOperations turns a history into porcupine operations, by partition.
func linOperations(hist []RSMOp) (map[linPartition][]porcupine.Operation, []Violation) {
	parts := map[linPartition][]porcupine.Operation{}
	var bad []Violation
	for _, op := range hist {
		answered := op.Return >= 0 && op.Err == nil
		known := answered || op.Effect && !op.Read
		if op.Read && !known {
			continue
		}
		in := linInput{isMap: op.Map, read: op.Read, del: op.Del, key: op.Key, value: op.Value, add: op.Add}
		out := linOutput{known: known}
		ret := op.Return
		if !answered {
			ret = math.MaxInt64
		}
		switch t, ok := counterTotal(op.Out); {
		case !known:
		case op.Map:
			out.val = string(op.Out)
		case ok:
			out.total = t
		default:
			bad = append(bad, Violation{Checker: nameLinearizable, Group: string(op.Object.LWG()),
				Detail: fmt.Sprintf("%v: a counter answered %x", op.Node, op.Out)})
			continue
		}
		k := linPartition{op.Object, op.Life, op.Key}
		parts[k] = append(parts[k], porcupine.Operation{ClientId: int(op.Node.Node), Input: in, Call: op.Call, Output: out, Return: ret})
	}
	return parts, bad
}

// CheckLinearizable checks with porcupine that the history of an RSM
// simulation is linearizable, per map key and per counter. A partition
// porcupine could not decide within timeout is reported too, as
// undecided.
func CheckLinearizable(hist []RSMOp, timeout time.Duration) []Violation {
	parts, out := linOperations(hist)
	keys := slices.SortedFunc(func(yield func(linPartition) bool) {
		for k := range parts {
			if !yield(k) {
				return
			}
		}
	}, func(a, b linPartition) int {
		return cmp.Or(cmp.Compare(a.obj, b.obj), cmp.Compare(a.life, b.life), strings.Compare(a.key, b.key))
	})
	for _, k := range keys {
		ops := parts[k]
		res, info := porcupine.CheckOperationsVerbose(linModel, ops, timeout)
		where := fmt.Sprintf("%s (life %d)", k.obj, k.life)
		if k.key != "" {
			where += " key " + k.key
		}
		switch res {
		case porcupine.Illegal:
			out = append(out, Violation{Checker: nameLinearizable, Group: string(k.obj.LWG()),
				Detail: fmt.Sprintf("object %s: %d operations are not linearizable; longest linearizable prefix ends before: %s", where, len(ops), stuckAt(info, ops))})
		case porcupine.Unknown:
			out = append(out, Violation{Checker: nameLinearizable, Group: string(k.obj.LWG()),
				Detail: fmt.Sprintf("object %s: porcupine did not decide %d operations within %v", where, len(ops), timeout)})
		}
	}
	return out
}

// stuckAt describes the operations that follow the longest partial
// linearization porcupine found: one of them cannot be placed.
func stuckAt(info porcupine.LinearizationInfo, ops []porcupine.Operation) string {
	partials := info.PartialLinearizations()
	var longest []int
	for _, part := range partials {
		for _, l := range part {
			if len(l) > len(longest) {
				longest = l
			}
		}
	}
	in := map[int]bool{}
	for _, i := range longest {
		in[i] = true
	}
	var next []string
	for i, op := range ops {
		if !in[i] && len(next) < 4 {
			next = append(next, fmt.Sprintf("[%d,%d] %s", op.Call, op.Return, linModel.DescribeOperation(op.Input, op.Output)))
		}
	}
	return fmt.Sprintf("%d placed; then %s", len(longest), strings.Join(next, "; "))
}
