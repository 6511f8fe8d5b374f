package hwg

import "testing"

// A joiner that can ask but not hear (its inbound messages are lost) never
// answers the probe, so it must not start a view change. Before probes, it
// forced an identical view change every FlushWaitTicks, forever.
func TestDeafJoinerCausesNoViewChange(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	if err := c.add(proc(4)).Join([]NodeID{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	c.drop = func(m Message) bool { return m.To.Node == 4 }
	c.tick(100)
	for n := NodeID(1); n <= 3; n++ {
		if got := c.installed(n); len(got) != 1 {
			t.Fatalf("node %d installed %v for a joiner that cannot hear", n, got)
		}
		if b := c.count(n, EventBlock); b != 0 {
			t.Fatalf("node %d blocked %d times for a joiner that cannot hear", n, b)
		}
	}
	// Once it can hear, the probe is answered and it gets in.
	c.drop = nil
	c.tick(40)
	assertLastView(t, c, View{ID: 2, Members: []Process{proc(1), proc(2), proc(3), proc(4)}}, 1, 2, 3, 4)
}

// A suspicion that nobody reports again expires: a member stuck in a long
// view change must not keep doubts from a partition that has healed.
func TestSuspicionExpires(t *testing.T) {
	c := newCluster(t, Config{}, procs(3)...)
	g := c.g(3)
	g.Suspect(proc(2))
	if !g.suspected(proc(2)) {
		t.Fatal("Suspect did not register")
	}
	ttl := suspectTTL * g.cfg.RetransmitTicks
	for range ttl {
		g.Tick()
		g.Suspect(proc(2)) // re-reported, as the detector does every tick
	}
	if !g.suspected(proc(2)) {
		t.Fatal("a suspicion re-reported every tick expired")
	}
	for range ttl + 1 {
		g.Tick()
	}
	if g.suspected(proc(2)) {
		t.Fatalf("a suspicion not reported for %d ticks is still held", ttl+1)
	}
}
