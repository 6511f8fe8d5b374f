package lwg_test

import (
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// TestJoinBurstOnOwnCarriersIsLinear: n Joins, each LWG on a carrier of
// its own, look at each Join a bounded number of times. Each carrier's
// install used to make the Core walk every Join in progress, so the
// burst looked at them n²/2 times (135 µs a join at n = 1,000 and 620 at
// 4,000 in BenchmarkCoreJoinBurst, against 3-4 on one carrier).
func TestJoinBurstOnOwnCarriersIsLinear(t *testing.T) {
	const n = 1000
	c, lh := newLoopCoreOn(t, lwg.PerLWG)
	before := lwg.IntentVisits(c)
	joinEach(t, c, lh, benchLWGs(n)...)
	if c.Endpoints() != n {
		t.Fatalf("%d endpoints, want %d", c.Endpoints(), n)
	}
	if v := lwg.IntentVisits(c) - before; v > 10*n {
		t.Fatalf("%d looks at %d Joins: more than 10 each", v, n)
	}
	// Ticks walk what is left (nothing) and every carrier: the endpoints
	// stay.
	for range 3 {
		c.Tick()
		lh.drive(t, c)
	}
	if c.Endpoints() != n {
		t.Fatalf("%d endpoints after ticks, want %d", c.Endpoints(), n)
	}
}

// TestLeftCarriersAreForgotten: with a carrier per LWG, a node that joined
// and left n LWGs keeps no record of their carriers once it left them
// (lazily, IdleTicks after the last endpoint) and the directory applied
// its unregistration; joining again works from a fresh record.
func TestLeftCarriersAreForgotten(t *testing.T) {
	const n = 50
	c, lh := newLoopCoreOn(t, lwg.PerLWG)
	ls := benchLWGs(n)
	joinEach(t, c, lh, ls...)
	if got := lwg.Carriers(c); got != n {
		t.Fatalf("%d carriers after joining %d LWGs, want %d", got, n, n)
	}
	for _, l := range ls {
		if err := c.Leave(l); err != nil {
			t.Fatal(err)
		}
	}
	lh.drive(t, c)
	tickPastIdle(t, c, lh)
	if c.Endpoints() != 0 {
		t.Fatalf("%d endpoints after leaving every LWG", c.Endpoints())
	}
	if got := lwg.Carriers(c); got != 0 {
		t.Fatalf("%d carrier records kept after leaving every carrier, want 0", got)
	}
	joinEach(t, c, lh, ls[0])
	if c.Endpoints() != 1 || lwg.Carriers(c) != 1 {
		t.Fatalf("joined again: %d endpoints on %d carriers, want 1 on 1", c.Endpoints(), lwg.Carriers(c))
	}
}

// TestExcludedCarrierIsKept: a node excluded from a carrier keeps its
// record of it after the directory applied its unregistration. hwg joins
// an excluded node again by itself, and the install of that rejoin must
// find the record (forgotten, the Core would drop the carrier's events
// while hwg kept the node a member). Here the node was the carrier's only
// member, so the carrier is dead: at its next tick the node leaves it,
// and forgets the record once the leave ended
// (TestExcludedFromDeadCarrierLeaves).
func TestExcludedCarrierIsKept(t *testing.T) {
	c, lh := newLoopCoreOn(t, lwg.PerLWG)
	l := benchLWGs(1)[0]
	joinEach(t, c, lh, l)
	if c.Endpoints() != 1 || lwg.Carriers(c) != 1 {
		t.Fatalf("%d endpoints on %d carriers, want 1 on 1", c.Endpoints(), lwg.Carriers(c))
	}
	var h hwg.GroupID
	for _, lo := range c.Observe().LWGs {
		if lo.ID == l {
			h = lo.HWG
		}
	}
	if h == "" {
		t.Fatalf("no carrier observed for %s", l)
	}
	c.HWGEvent(hwg.Event{Type: hwg.EventExcluded, Group: h})
	lh.drive(t, c)
	if c.Endpoints() != 0 {
		t.Fatalf("%d endpoints after the exclusion, want 0", c.Endpoints())
	}
	if got := lwg.Carriers(c); got != 1 {
		t.Fatalf("%d carrier records after an exclusion, want the excluded one kept", got)
	}
	tickPastIdle(t, c, lh)
	if got := lwg.Carriers(c); got != 0 {
		t.Fatalf("%d carrier records once the dead carrier was left, want 0", got)
	}
}

// joinEach joins ls on c and runs the loopback HWG until c is quiet.
func joinEach(t *testing.T, c *lwg.Core, lh *loopHWG, ls ...lwg.ID) {
	t.Helper()
	for _, l := range ls {
		if err := c.Join(l); err != nil {
			t.Fatal(err)
		}
	}
	lh.drive(t, c)
}

// tickPastIdle ticks c past the default IdleTicks (50), after which an
// idle carrier is left lazily, running the loopback HWG after each tick.
func tickPastIdle(t *testing.T, c *lwg.Core, lh *loopHWG) {
	t.Helper()
	for range 100 {
		c.Tick()
		lh.drive(t, c)
	}
}
