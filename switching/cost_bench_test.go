package switching_test

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// cpuNow is the process's CPU time (user + system).
func cpuNow(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// costCluster is a 5-node loopback cluster for BenchmarkCostModel.
type costCluster struct {
	b     *testing.B
	ctx   context.Context
	nodes []*liveNode
}

func (c *costCluster) join(ls []lwg.ID, members ...int) {
	var wg sync.WaitGroup
	errs := make(chan error, len(ls)*len(members))
	for _, m := range members {
		for _, l := range ls {
			wg.Go(func() {
				if err := c.nodes[m-1].svc.Join(c.ctx, l); err != nil {
					errs <- fmt.Errorf("node %d joining %s: %w", m, l, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		c.b.Fatal(err)
	}
	c.settle(ls, len(members))
}

// settle waits until node 1 sees every LWG of ls with k members, not busy.
func (c *costCluster) settle(ls []lwg.ID, k int) {
	want := map[lwg.ID]bool{}
	for _, l := range ls {
		want[l] = true
	}
	c.until("LWGs settled", func() bool {
		o, err := c.nodes[0].svc.Observe(c.ctx)
		if err != nil {
			c.b.Fatal(err)
		}
		n := 0
		for _, lo := range o.LWGs {
			if want[lo.ID] && lo.Local && !lo.Busy && len(lo.View.Members) == k && lo.Bound == lo.HWG {
				n++
			}
		}
		return n == len(ls)
	})
}

func (c *costCluster) until(what string, f func() bool) {
	for !f() {
		select {
		case <-c.ctx.Done():
			c.b.Fatalf("%s: %v", what, c.ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// switchAll switches every LWG of ls to base from node 1, concurrently.
func (c *costCluster) switchAll(ls []lwg.ID, base func(i int) hwg.GroupID) {
	var wg sync.WaitGroup
	errs := make(chan error, len(ls))
	for i, l := range ls {
		wg.Go(func() {
			if err := c.nodes[0].svc.Switch(c.ctx, l, base(i)); err != nil {
				errs <- fmt.Errorf("switching %s: %w", l, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		c.b.Fatal(err)
	}
}

// send has node 1 multicast m messages round-robin over ls and waits until
// node 3 (a member of each) delivered them all.
func (c *costCluster) send(ls []lwg.ID, m int) {
	traffic := func() uint64 {
		o, err := c.nodes[2].svc.Observe(c.ctx)
		if err != nil {
			c.b.Fatal(err)
		}
		in := map[lwg.ID]bool{}
		for _, l := range ls {
			in[l] = true
		}
		var sum uint64
		for _, lo := range o.LWGs {
			if in[lo.ID] {
				sum += lo.Traffic
			}
		}
		return sum
	}
	t0 := traffic()
	p := []byte("0123456789abcdef0123456789abcdef")
	for i := range m {
		if err := c.nodes[0].svc.Multicast(c.ctx, ls[i%len(ls)], p); err != nil {
			c.b.Fatal(err)
		}
	}
	c.until("deliveries", func() bool { return traffic()-t0 >= uint64(m) })
}

// measure returns the CPU time f takes, less the idle CPU of the cluster
// over the same wall time (measured before), and waits for lazy leaves and
// acknowledgements to settle first.
func (c *costCluster) measure(idle float64, f func()) time.Duration {
	time.Sleep(700 * time.Millisecond) // lazy leaves (IdleTicks) of the previous step
	w0, c0 := time.Now(), cpuNow(c.b)
	f()
	time.Sleep(700 * time.Millisecond) // what f set off but did not wait for
	return cpuNow(c.b) - c0 - time.Duration(idle*float64(time.Since(w0)))
}

func ids(prefix string, n int) []lwg.ID {
	out := make([]lwg.ID, n)
	for i := range out {
		out[i] = lwg.ID(fmt.Sprintf("%s/%03d", prefix, i))
	}
	return out
}

// BenchmarkCostModel measures, in one run on one 5-node loopback cluster,
// what the cost model prices, in CPU time of the whole process, and reports
// each price in copies (one data message delivered at one node), the
// model's unit:
//
//   - copy: node 1 sends m messages in LWGs of nodes {1,2,3} that sit on a
//     carrier of all 5 nodes, then the same on a carrier of {1,2,3}; the
//     difference over 2m is one copy delivered (and dropped) at a non-member;
//   - switch: k LWGs switched between two carriers that hold their members
//     (no join); LWGFlush is half of it;
//   - install: node 4 leaves the carrier of all 5 holding n LWGs of
//     {1,2,3}: a view change that installs every LWG at its 3 members,
//     over 3n (the view change itself is noise beside them);
//   - create3, create5: one LWG switched to a new base, creating a carrier
//     of 3 (5) members, less a switch: create(k) = k·Join + ViewChange·k(k+1)/2,
//     solved for ViewChange (per member) and Join.
//
// Run with -benchtime 1x; docs/SWITCHING.md has the numbers and the
// defaults (DefaultCost) taken from them.
func BenchmarkCostModel(b *testing.B) {
	for range b.N {
		costModelRun(b)
	}
}

func costModelRun(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := &costCluster{b: b, ctx: ctx, nodes: startLive(b, 5)}
	defer func() {
		for _, n := range c.nodes {
			n.close()
		}
	}()
	const (
		k     = 200   // LWGs switched
		msgs  = 20000 // messages per copy run
		fresh = 60    // carriers created per size
		n     = 1000  // LWGs installed by the view change
	)
	c.join([]lwg.ID{"l/pin"}, 1, 2, 3, 4, 5) // keeps all 5 nodes in h/shared
	a := ids("l/a", k)
	c.join(a, 1, 2, 3)
	c.join([]lwg.ID{"l/pin3"}, 1, 2, 3)
	c.switchAll([]lwg.ID{"l/pin3"}, func(int) hwg.GroupID { return "h/m/1.2.3" }) // keeps h/m/1.2.3 alive
	c.settle([]lwg.ID{"l/pin3"}, 3)

	time.Sleep(time.Second)
	w0, c0 := time.Now(), cpuNow(b)
	time.Sleep(2 * time.Second)
	idle := float64(cpuNow(b)-c0) / float64(time.Since(w0))

	shared := c.measure(idle, func() { c.send(a, msgs) })
	moveIn := c.measure(idle, func() { c.switchAll(a, func(int) hwg.GroupID { return "h/m/1.2.3" }); c.settle(a, 3) })
	exact := c.measure(idle, func() { c.send(a, msgs) })
	moveOut := c.measure(idle, func() { c.switchAll(a, func(int) hwg.GroupID { return "h/shared" }); c.settle(a, 3) })

	f3 := ids("l/f3", fresh)
	c.join(f3, 1, 2, 3)
	create3 := c.measure(idle, func() {
		c.switchAll(f3, func(i int) hwg.GroupID { return hwg.GroupID(fmt.Sprintf("h/fresh3/%d", i)) })
		c.settle(f3, 3)
	})
	f5 := ids("l/f5", fresh)
	c.join(f5, 1, 2, 3, 4, 5)
	create5 := c.measure(idle, func() {
		c.switchAll(f5, func(i int) hwg.GroupID { return hwg.GroupID(fmt.Sprintf("h/fresh5/%d", i)) })
		c.settle(f5, 5)
	})

	many := ids("l/many", n)
	c.join(many, 1, 2, 3)
	o, err := c.nodes[3].svc.Observe(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var sharedID hwg.GroupID
	for _, lo := range o.LWGs {
		if lo.ID == "l/pin" {
			sharedID = lo.HWG
		}
	}
	install := c.measure(idle, func() {
		if err := c.nodes[3].svc.Leave(ctx, "l/pin"); err != nil {
			b.Fatal(err)
		}
		c.until("node 4 leaves the shared carrier", func() bool {
			in, err := c.nodes[0].node.Info(ctx, sharedID)
			if err != nil {
				b.Fatal(err)
			}
			_, still := in.View.HasNode(4)
			return !still && in.Status == hwg.StatusNormal
		})
	})

	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	copyUS := us(shared-exact) / (2 * msgs)
	if copyUS <= 0 {
		b.Fatalf("a copy to a non-member cost nothing measurable (%v on the shared carrier, %v on the exact one)", shared, exact)
	}
	inCopies := func(d time.Duration) float64 { return us(d) / copyUS }
	sw := inCopies((moveIn+moveOut)/2) / k
	flush := sw / 2
	c3 := inCopies(create3)/fresh - sw
	c5 := inCopies(create5)/fresh - sw
	inst := (inCopies(install) - flush) / (3 * n)
	// create(k) = k·Join + ViewChange·k(k+1)/2 (each member joins in
	// turn): c3 = 3J + 6V and c5 = 5J + 15V.
	vc := (c5 - 5*c3/3) / 5
	join := (c3 - 6*vc) / 3
	b.ReportMetric(copyUS, "copy-µs")
	b.ReportMetric(sw, "switch-copies")
	b.ReportMetric(flush, "lwgflush-copies")
	b.ReportMetric(c3, "create3-copies")
	b.ReportMetric(c5, "create5-copies")
	b.ReportMetric(vc, "viewchange-copies/member")
	b.ReportMetric(join, "join-copies")
	b.ReportMetric(inst, "install-copies")
	b.Logf("CPU: shared %v, exact %v (%d messages each), switch in %v / out %v (%d LWGs), create3 %v, create5 %v (%d each), view change with %d LWGs %v; idle %.1f%%",
		shared, exact, msgs, moveIn, moveOut, k, create3, create5, fresh, n, install, 100*idle)
}
