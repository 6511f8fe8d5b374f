//go:build stagetrace

package rsm

// A diagnostic, built only with -tags stagetrace: it times the stages of
// a sample of local proposals (every 16th) through the runtime and, at
// every Node.Close, writes percentiles of each to the file named by
// $STAGETRACE_OUT (default /tmp/stagetrace.txt).
//
//	queue    Propose queued it → the sender took its batch
//	submit   taken → handed to the LWG service (Service.Multicast returned)
//	ordered  handed → its delivery event taken by routeEvents (the LWG and
//	         HWG layers: the Service loop, the HWG node, the network,
//	         ordering, and back up through both loops)
//	route    taken by routeEvents → its object's worker applied it
//	wake     applied → Propose returned
//	total    queued → returned

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwgkit/lwgkit/internal/durstats"
)

type stageRec struct {
	o                                      *Object
	seq                                    uint64
	queued, taken, submitted, routed, done time.Time
	returned                               time.Time
}

type stageKey struct {
	o   *Object
	seq uint64
}

var stages struct {
	sync.Mutex
	n     atomic.Uint64
	open  map[stageKey]*stageRec
	byObj map[*Object][]*stageRec
	done  []*stageRec
}

func init() {
	stages.open = map[stageKey]*stageRec{}
	stages.byObj = map[*Object][]*stageRec{}
}

func stageQueued(o *Object, seq uint64) {
	if stages.n.Add(1)%16 != 0 {
		return
	}
	now := time.Now()
	stages.Lock()
	r := &stageRec{o: o, seq: seq, queued: now}
	stages.open[stageKey{o, seq}] = r
	stages.byObj[o] = append(stages.byObj[o], r)
	stages.Unlock()
}

func stageBatch(o *Object, batch []outgoing, submitted bool) {
	now := time.Now()
	stages.Lock()
	defer stages.Unlock()
	for _, out := range batch {
		if r := stages.open[stageKey{o, out.seq}]; r != nil {
			if submitted {
				r.submitted = now
			} else {
				r.taken = now
			}
		}
	}
}

// stageRouted marks o's sent and not yet routed proposals as routed: at
// 10,000 objects an object has one proposal in flight.
func stageRouted(o *Object) {
	stages.Lock()
	defer stages.Unlock()
	rs := stages.byObj[o]
	if len(rs) == 0 {
		return
	}
	now := time.Now()
	for _, r := range rs {
		if !r.submitted.IsZero() && r.routed.IsZero() {
			r.routed = now
			return
		}
	}
}

func stageApplied(o *Object, seq uint64) {
	stages.Lock()
	defer stages.Unlock()
	if r := stages.open[stageKey{o, seq}]; r != nil {
		r.done = time.Now()
	}
}

func stageReturned(o *Object, seq uint64) {
	stages.Lock()
	defer stages.Unlock()
	k := stageKey{o, seq}
	r := stages.open[k]
	if r == nil {
		return
	}
	r.returned = time.Now()
	delete(stages.open, k)
	stages.byObj[o] = slices.DeleteFunc(stages.byObj[o], func(x *stageRec) bool { return x == r })
	if len(stages.byObj[o]) == 0 {
		delete(stages.byObj, o)
	}
	stages.done = append(stages.done, r)
}

func stageClose() {
	stages.Lock()
	defer stages.Unlock()
	path := os.Getenv("STAGETRACE_OUT")
	if path == "" {
		path = "/tmp/stagetrace.txt"
	}
	d := map[string][]time.Duration{}
	add := func(s string, a, b time.Time) {
		if !a.IsZero() && !b.IsZero() && !b.Before(a) {
			d[s] = append(d[s], b.Sub(a))
		}
	}
	for _, r := range stages.done {
		add("queue", r.queued, r.taken)
		add("submit", r.taken, r.submitted)
		add("ordered", r.submitted, r.routed)
		add("route", r.routed, r.done)
		add("wake", r.done, r.returned)
		add("total", r.queued, r.returned)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d sampled proposals returned, %d open\n", len(stages.done), len(stages.open))
	durstats.WriteTable(&sb, "stage", []string{"queue", "submit", "ordered", "route", "wake", "total"}, d)
	os.WriteFile(path, []byte(sb.String()), 0o644)
}
