package switching_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/switching"
)

// liveNode is one node of a loopback cluster: an hwg.Node over TCP and
// its lwg.Service, whose events are drained.
type liveNode struct {
	node *hwg.Node
	tr   *transport.TCP
	svc  *lwg.Service
	once sync.Once
}

func (n *liveNode) close() {
	n.once.Do(func() {
		n.svc.Close()
		n.node.Close()
		n.tr.Close()
	})
}

// excluded counts EventExcluded at every node of every live cluster.
var excluded atomic.Int64

// startLive starts k nodes over loopback TCP, every LWG created on one
// shared carrier, h/shared.
func startLive(t testing.TB, k int) []*liveNode {
	t.Helper()
	var trs []*transport.TCP
	var hn []*hwg.Node
	var members []hwg.Process
	for i := 1; i <= k; i++ {
		self := hwg.Process{Node: hwg.NodeID(i), Inc: 1}
		tr, err := transport.NewTCP(transport.TCPConfig{Cluster: "switching-test", Self: transport.Peer{Node: uint64(i), Inc: 1}, Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		for j, o := range trs {
			tr.AddPeer(uint64(j+1), o.Addr())
		}
		cfg := hwg.FastTiming(hwg.NodeConfig{Self: self, Transport: tr})
		// Suspect a node after a second of silence, not FastTiming's 100
		// ms: the machine is shared, and a switching storm of a thousand
		// LWGs keeps both vCPUs busy for a while; a suspicion excludes a
		// member from its carriers and shrinks its LWGs.
		cfg.Detector = hwg.DetectorConfig{HeartbeatTicks: 5, SuspectTicks: 100}
		cfg.Group.ManualBlockOK = true
		// Carriers of a thousand LWGs: as in lwg's benchmarks, give a
		// member 500 ms to hold them all before a flush excludes it.
		// (1.5 s, with ViewChangeTicks 200, was tried after a CI run in
		// which 114 endpoints were excluded: the next CI run did not
		// converge, with view changes of the switches' new carriers
		// stalled and 174 switches abandoned; the exclusions are now
		// tolerated by the round bound instead, see below.)
		cfg.Group.FlushWaitTicks = 50
		// A proposer restarts its round after ViewChangeTicks·(1+rank);
		// with the default 10 it would restart before the 50-tick flush
		// wait ran out, and a view change waiting on a member that left
		// the group (and forgot it) would never end: keep it longer.
		cfg.Group.ViewChangeTicks = 100
		n, err := hwg.NewNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		trs, hn = append(trs, tr), append(hn, n)
		members = append(members, self)
	}
	var out []*liveNode
	for i, n := range hn {
		svc, err := lwg.NewService(lwg.ServiceConfig{Node: n, Core: lwg.Config{Place: lwg.Shared("h/shared")}, DirectoryMembers: members, TickInterval: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ln := &liveNode{node: n, tr: trs[i], svc: svc}
		go func() {
			for e := range svc.Events() {
				if e.Type == lwg.EventExcluded {
					excluded.Add(1)
				}
			}
		}()
		t.Cleanup(ln.close)
		out = append(out, ln)
	}
	return out
}

// poll calls f every 50 ms until it returns true or ctx ends.
func poll(t *testing.T, ctx context.Context, what string, f func() bool) {
	t.Helper()
	tk := time.NewTicker(50 * time.Millisecond)
	defer tk.Stop()
	for !f() {
		select {
		case <-tk.C:
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		}
	}
}

func liveLWGs(t *testing.T) int {
	if s := os.Getenv("LWGKIT_SWITCH_LWGS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if raceEnabled {
		return 256 // the detector slows the cluster ~10x; LWGKIT_SWITCH_LWGS=1024 runs the full size
	}
	return 1024
}

// TestRebalancerConvergesLive: a 5-node loopback cluster, 1,024 LWGs of
// 3 members placed by rendezvous hashing (10 member sets), all created on
// one shared HWG, each LWG carrying a message every half second. With a
// Rebalancer on every node (default policy, half-second rounds), every
// LWG ends on an HWG of exactly its members within a bounded number of
// rounds, at most 10 carriers remain, no switch is made after that, and
// the interference counter, which counts two copies per message before,
// stays at (nearly) zero.
func TestRebalancerConvergesLive(t *testing.T) {
	if testing.Short() {
		t.Skip("a live cluster")
	}
	const nodes = 5
	n := liveLWGs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cluster := startLive(t, nodes)
	ids := make([]lwg.ID, n)
	owner := map[lwg.ID]*liveNode{}
	byNode := make([][]lwg.ID, nodes)
	for i := range ids {
		ids[i] = switching.KVShardID(i)
		ms := switching.Rendezvous(string(ids[i]), nodes, 3)
		owner[ids[i]] = cluster[ms[0]-1]
		for _, m := range ms {
			byNode[m-1] = append(byNode[m-1], ids[i])
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, nodes)
	for i, ln := range cluster {
		wg.Go(func() {
			var jw sync.WaitGroup
			for _, l := range byNode[i] {
				jw.Go(func() {
					if err := ln.svc.Join(ctx, l); err != nil {
						errs <- fmt.Errorf("node %d joining %s: %w", i+1, l, err)
					}
				})
			}
			jw.Wait()
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	// Every node sees each of its LWGs with all 3 members.
	poll(t, ctx, "forming the LWGs", func() bool {
		for i, ln := range cluster {
			o, err := ln.svc.Observe(ctx)
			if err != nil {
				t.Fatal(err)
			}
			full := 0
			for _, lo := range o.LWGs {
				if lo.Local && len(lo.View.Members) == 3 && !lo.Busy {
					full++
				}
			}
			if full != len(byNode[i]) {
				return false
			}
		}
		return true
	})
	t.Logf("%d LWGs formed on one carrier in %v", n, time.Since(start).Round(time.Millisecond))

	// Traffic: every LWG's first rendezvous member multicasts in it every
	// half second.
	const period = 500 * time.Millisecond
	tctx, stopTraffic := context.WithCancel(ctx)
	var tw sync.WaitGroup
	var msgs, failed int64
	var mu sync.Mutex
	for _, ln := range cluster {
		var mine []lwg.ID
		for _, l := range ids {
			if owner[l] == ln {
				mine = append(mine, l)
			}
		}
		tw.Go(func() {
			tk := time.NewTicker(period)
			defer tk.Stop()
			for {
				select {
				case <-tctx.Done():
					return
				case <-tk.C:
				}
				k, f := 0, 0
				for _, l := range mine {
					if err := ln.svc.Multicast(tctx, l, []byte("x")); err != nil {
						f++
					} else {
						k++
					}
				}
				mu.Lock()
				msgs += int64(k)
				failed += int64(f)
				mu.Unlock()
			}
		})
	}
	defer func() { stopTraffic(); tw.Wait() }()
	interference := func() uint64 {
		var sum uint64
		for _, ln := range cluster {
			st, err := ln.svc.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sum += st.Interference
		}
		return sum
	}
	window := func() (uint64, int64) {
		mu.Lock()
		m0 := msgs
		mu.Unlock()
		i0 := interference()
		time.Sleep(4 * period) // a live cluster: measure over real time
		mu.Lock()
		m1 := msgs
		mu.Unlock()
		return interference() - i0, m1 - m0
	}
	time.Sleep(period) // let the first sends go out
	before, sentBefore := window()
	t.Logf("before: %d interference copies for %d messages (%.2f per message)", before, sentBefore, float64(before)/float64(max(sentBefore, 1)))
	if float64(before) < 1.5*float64(sentBefore) {
		t.Fatalf("on one shared carrier of 5 nodes every message of a 3-member LWG reaches 2 other nodes: %d copies for %d messages", before, sentBefore)
	}

	// Rebalance.
	const interval = 500 * time.Millisecond
	var (
		rmu     sync.Mutex
		reports = make([][]switching.RoundReport, nodes)
	)
	rebs := make([]*switching.Rebalancer, nodes)
	el := &switchLog{m: map[string]int{}}
	defer func() { t.Logf("switch errors: %v; LWG exclusions: %d", el.counts(), excluded.Load()) }()
	rctx, stopRebalancing := context.WithCancel(ctx)
	var rw sync.WaitGroup
	defer func() { stopRebalancing(); rw.Wait() }()
	for i, ln := range cluster {
		reb, err := switching.NewRebalancer(switching.RebalancerConfig{
			Layer: errLayer{Service: ln.svc, node: i + 1, log: el}, Interval: interval,
			// A Switch returns by itself: once the LWG installs on the
			// new carrier, or when the Core gives the switch up after
			// its SwitchTimeoutTicks (400 ticks of 10 ms here). A
			// deadline three times that only catches a Switch that
			// never returns, as 21-26 of 256 did in 3 of 8 full CI runs
			// on 2026-11-23 (the Core had abandoned them and nothing
			// told the waiting Switch): errLayer names them.
			SwitchTimeout: switchDeadline,
			OnRound: func(r switching.RoundReport) {
				rmu.Lock()
				reports[i] = append(reports[i], r)
				rmu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		rebs[i] = reb
		rw.Go(func() { _ = reb.Run(rctx) })
	}
	// Converged: at every node, the last 4 rounds were settled and
	// started no switch, with nothing in flight.
	converged := func() (bool, int) {
		rmu.Lock()
		defer rmu.Unlock()
		last := 0
		for _, rs := range reports {
			if len(rs) < 4 {
				return false, 0
			}
			for _, r := range rs[len(rs)-4:] {
				if !r.Settled || r.Started > 0 || r.InFlight > 0 {
					return false, 0
				}
			}
			for _, r := range rs {
				if r.Started > 0 || !r.Settled {
					last = max(last, r.Round)
				}
			}
		}
		return true, last
	}
	rstart := time.Now()
	exclAtStart := excluded.Load()
	var rounds int
	cctx, ccancel := context.WithTimeout(ctx, 90*time.Second)
	defer ccancel()
	for {
		if hung := el.hung(); len(hung) > 0 {
			dump(t, ctx, cluster, &rmu, reports)
			t.Fatalf("%d Switch calls did not return within %v: %v", len(hung), switchDeadline, hung)
		}
		ok, last := converged()
		if ok {
			rounds = last
			break
		}
		select {
		case <-time.After(50 * time.Millisecond):
			continue
		case <-cctx.Done():
		}
		dump(t, ctx, cluster, &rmu, reports)
		t.Fatal("no convergence")
	}
	var started, failedSw int
	for _, reb := range rebs {
		st := reb.Stats()
		started += st.Started
		failedSw += st.Failed
	}
	t.Logf("converged after %d rounds (%v): %d switches started, %d failed", rounds, time.Since(rstart).Round(time.Millisecond), started, failedSw)
	const maxRounds = 30
	if rounds > maxRounds {
		timeline(t, &rmu, reports)
		// The bound is for a stable membership. Endpoints excluded
		// meanwhile (their node dropped from a carrier by the HWG's
		// failure handling: a flush wait or a suspicion that ran out)
		// rejoin, and the rebalancer places them again: it must still
		// converge (above), but the rounds count the churn too.
		if churn := excluded.Load() - exclAtStart; churn > 0 {
			t.Logf("converged after %d rounds, over the %d a stable membership needs, with %d LWG endpoints excluded while rebalancing (timeline above): not held against the rebalancer", rounds, maxRounds, churn)
		} else {
			t.Errorf("converged after %d rounds with no exclusion while rebalancing, want at most %d", rounds, maxRounds)
		}
	}
	if started < n || started > 2*n {
		t.Errorf("%d switches for %d LWGs that all had to move once", started, n)
	}

	// The carriers: every LWG on one of exactly its members, and at most
	// 10 carriers hold LWGs.
	carrying := map[hwg.GroupID]bool{}
	for i, ln := range cluster {
		o, err := ln.svc.Observe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		views := map[hwg.GroupID]string{}
		for _, co := range o.Carriers {
			if co.Member {
				views[co.ID] = nodesKey(co.View.Members)
				if co.LWGs > 0 {
					carrying[co.ID] = true
				}
			}
		}
		for _, lo := range o.LWGs {
			if lo.Local && views[lo.HWG] != nodesKey(lo.View.Members) {
				t.Errorf("node %d: %s (%v) on %s, whose members are %s", i+1, lo.ID, lo.View, lo.HWG, views[lo.HWG])
			}
		}
	}
	if len(carrying) > 10 {
		dump(t, ctx, cluster, &rmu, reports)
		t.Errorf("%d carriers hold LWGs, want at most 10", len(carrying))
	}

	after, sentAfter := window()
	t.Logf("after: %d interference copies for %d messages", after, sentAfter)
	if float64(after) > 0.01*float64(before) {
		t.Errorf("interference after rebalancing: %d copies for %d messages (before: %d for %d), want ~0", after, sentAfter, before, sentBefore)
	}
	startedThen := started
	// No switch after convergence: a few more rounds under the same load.
	time.Sleep(6 * interval)
	started = 0
	for _, reb := range rebs {
		started += reb.Stats().Started
	}
	if started != startedThen {
		t.Errorf("%d switches after convergence", started-startedThen)
	}
	if hung := el.hung(); len(hung) > 0 {
		t.Errorf("%d Switch calls did not return within %v: %v", len(hung), switchDeadline, hung)
	}
}

// switchDeadline bounds a Switch call in TestRebalancerConvergesLive: three
// times the Core's own bound on a switch (SwitchTimeoutTicks, 400 ticks of
// 10 ms), after which Switch must have returned.
const switchDeadline = 12 * time.Second

func nodesKey(ps []hwg.Process) string {
	ns := make([]hwg.NodeID, len(ps))
	for i, p := range ps {
		ns[i] = p.Node
	}
	return string(switching.MemberBase(ns))
}

// errLayer counts the errors of every Switch call of one node's
// Rebalancer, and records the calls that did not return by themselves
// (their deadline ended them) in log.
type errLayer struct {
	*lwg.Service
	node int
	log  *switchLog
}

type switchLog struct {
	mu    sync.Mutex
	m     map[string]int
	stuck []string
}

func (e errLayer) Switch(ctx context.Context, l lwg.ID, base hwg.GroupID) error {
	start := time.Now()
	err := e.Service.Switch(ctx, l, base)
	if err != nil {
		e.log.mu.Lock()
		e.log.m[err.Error()[:min(40, len(err.Error()))]]++
		if errors.Is(err, context.DeadlineExceeded) {
			e.log.stuck = append(e.log.stuck, fmt.Sprintf("node %d: %s to %s (%v)", e.node, l, base, time.Since(start).Round(time.Millisecond)))
		}
		e.log.mu.Unlock()
	}
	return err
}

func (s *switchLog) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m)
}

// hung returns the Switch calls that did not return before their deadline.
func (s *switchLog) hung() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.stuck)
}

// dump logs what every node observes and its last round reports.
// timeline logs, per node, the rounds that started switches or were not
// settled, as round:started/in flight.
func timeline(t *testing.T, mu *sync.Mutex, reports [][]switching.RoundReport) {
	mu.Lock()
	defer mu.Unlock()
	for i, rs := range reports {
		var b strings.Builder
		for _, r := range rs {
			if r.Started > 0 || !r.Settled {
				fmt.Fprintf(&b, " %d:%d/%d", r.Round, r.Started, r.InFlight)
			}
		}
		t.Logf("node %d busy rounds (round:started/in flight):%s", i+1, b.String())
	}
}

func dump(t *testing.T, ctx context.Context, cluster []*liveNode, mu *sync.Mutex, reports [][]switching.RoundReport) {
	for i, ln := range cluster {
		o, err := ln.svc.Observe(ctx)
		if err != nil {
			t.Logf("node %d: %v", i+1, err)
			continue
		}
		for _, co := range o.Carriers {
			t.Logf("node %d: carrier %s base %s current %v member %v view %v lwgs %d regs %v", i+1, co.ID, co.Base, co.Current, co.Member, co.View, co.LWGs, co.Regs)
		}
		busy := 0
		for _, lo := range o.LWGs {
			if lo.Busy {
				if busy < 3 {
					t.Logf("node %d: busy %+v", i+1, lo)
				}
				busy++
			}
		}
		t.Logf("node %d: %d LWGs, %d busy; transport dropped %d frames", i+1, len(o.LWGs), busy, ln.tr.Dropped())
	}
	mu.Lock()
	defer mu.Unlock()
	for i, rs := range reports {
		for _, r := range rs[max(0, len(rs)-2):] {
			t.Logf("node %d round %d: LWGs %d decided %d exact %d settled %v started %d in flight %d actions %v", i+1, r.Round, r.LWGs, r.Decided, r.Exact, r.Settled, r.Started, r.InFlight, r.Actions)
		}
	}
}
