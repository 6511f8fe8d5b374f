package proptest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// nameDirRegs names the check of the directory's carrier registrations
// once the cluster is quiescent.
const nameDirRegs = "lwg-directory-regs"

// checkDirRegs compares what the directory says of the carriers with what
// the nodes are, from one Observation per live node taken once the cluster
// is quiescent: every node holds the directory, and all agree; every
// registered member of a live carrier holds its table; every node that
// holds a live carrier's table is registered in it. A registration left
// behind (a kUnreg lost with the sender's directory membership, a kMember
// applied after its subject left) keeps a dead carrier alive for good and
// sends joiners to a process that will never admit them; a member missing
// from Regs lets the carrier be declared dead while it runs.
//
// Pending joiners are not checked: a stale Pending entry only lets its
// node join without a kReg (see lwg.Core's rejoin of the directory).
func checkDirRegs(obs []lwg.Observation) []Violation {
	var out []Violation
	bad := func(format string, args ...any) {
		out = append(out, Violation{Checker: nameDirRegs, Detail: fmt.Sprintf(format, args...)})
	}
	var ref *lwg.Observation
	for i := range obs {
		o := &obs[i]
		switch {
		case !o.Synced:
			bad("%v does not hold the directory", o.Self)
		case ref == nil:
			ref = o
		default:
			if a, b := regsOf(ref), regsOf(o); a != b {
				bad("the directories differ: %v has\n%s%v has\n%s", ref.Self, a, o.Self, b)
			}
		}
	}
	if ref == nil {
		return out
	}
	holds := map[hwg.GroupID][]hwg.Process{}
	for _, o := range obs {
		for _, c := range o.Carriers {
			if c.Member {
				holds[c.ID] = append(holds[c.ID], o.Self)
			}
		}
	}
	for _, c := range ref.Carriers {
		for _, p := range c.Regs {
			if !slices.Contains(holds[c.ID], p) {
				bad("carrier %s lists %v, which does not hold its table (registered %v, holding %v)", c.ID, p, c.Regs, holds[c.ID])
			}
		}
		for _, p := range holds[c.ID] {
			if !slices.Contains(c.Regs, p) {
				bad("%v holds the table of carrier %s but is not registered (registered %v)", p, c.ID, c.Regs)
			}
		}
	}
	return out
}

// nameDirBinding names the check of the directory's LWG bindings once the
// cluster is quiescent.
const nameDirBinding = "lwg-directory-binding"

// checkDirBindings checks, from one Observation per live node taken once
// every LWG converged, that each LWG a node is a member of is bound in the
// directory to the live carrier its endpoint is on, and is not busy (no
// flush, switch or move left unfinished). A binding that lags behind a
// move sends joiners to the old carrier; an unfinished switch holds the
// LWG's multicasts.
func checkDirBindings(obs []lwg.Observation) []Violation {
	var out []Violation
	for _, o := range obs {
		live := map[hwg.GroupID]bool{}
		for _, c := range o.Carriers {
			live[c.ID] = true
		}
		for _, l := range o.LWGs {
			if !l.Local {
				continue
			}
			var why string
			switch {
			case l.Bound != l.HWG:
				why = fmt.Sprintf("is on carrier %s, bound to %q", l.HWG, l.Bound)
			case !live[l.HWG]:
				why = fmt.Sprintf("is on carrier %s, which the directory does not list", l.HWG)
			case l.Busy:
				why = fmt.Sprintf("is still busy on carrier %s", l.HWG)
			default:
				continue
			}
			out = append(out, Violation{Checker: nameDirBinding, Detail: fmt.Sprintf("%v: %s %s", o.Self, l.ID, why)})
		}
	}
	return out
}

// nameTables names the check that the holders of a carrier's LWG table
// agree once the cluster is quiescent.
const nameTables = "lwg-table-agreement"

// checkTables checks, from one Observation per live node taken once every
// LWG converged, that the nodes holding a carrier's table agree on the
// carrier's view and on the table: the same LWGs, each with the same view.
// The table is replicated by the carrier's total order, so copies that
// differ once nothing is in flight mean an update applied at some holders
// and not at others.
func checkTables(obs []lwg.Observation) []Violation {
	type copyOf struct {
		self  hwg.Process
		view  string
		table string
	}
	copies := map[hwg.GroupID][]copyOf{}
	for _, o := range obs {
		tables := map[hwg.GroupID]*strings.Builder{}
		for _, l := range o.LWGs {
			if tables[l.HWG] == nil {
				tables[l.HWG] = &strings.Builder{}
			}
			fmt.Fprintf(tables[l.HWG], " %s@%d%v", l.ID, l.View.ID, l.View.Members)
		}
		for _, c := range o.Carriers {
			if !c.Member {
				continue
			}
			cp := copyOf{self: o.Self, view: fmt.Sprintf("v%d%v", c.View.ID, c.View.Members)}
			if b := tables[c.ID]; b != nil {
				cp.table = b.String()
			}
			copies[c.ID] = append(copies[c.ID], cp)
		}
	}
	var out []Violation
	for _, h := range sortedKeys(copies) {
		cs := copies[h]
		for _, c := range cs[1:] {
			if c.view != cs[0].view || c.table != cs[0].table {
				out = append(out, Violation{Checker: nameTables, Detail: fmt.Sprintf("carrier %s: %v has view %s, table%s; %v has view %s, table%s",
					h, cs[0].self, cs[0].view, cs[0].table, c.self, c.view, c.table)})
			}
		}
	}
	return out
}

// regsOf prints what o's directory says of the carriers.
func regsOf(o *lwg.Observation) string {
	var b strings.Builder
	for _, c := range o.Carriers {
		fmt.Fprintf(&b, "  %s base %s current %t registered %v\n", c.ID, c.Base, c.Current, c.Regs)
	}
	return b.String()
}
