package hwg

import (
	"slices"
	"testing"
)

// tickN advances d n ticks and returns the heartbeats of the last one.
func tickN(d *Detector, n int) []NodeID {
	var out []NodeID
	for range n {
		out = d.Tick()
	}
	return out
}

func TestDetectorSuspectsSilentPeerAfterSuspectTicks(t *testing.T) {
	d := NewDetector(proc(1), DetectorConfig{SuspectTicks: 10})
	d.Watch(2)
	d.Heard(proc(2))
	tickN(d, 10)
	if s := d.Suspected(); len(s) != 0 {
		t.Fatalf("suspected %v after exactly SuspectTicks", s)
	}
	d.Tick()
	if s := d.Suspected(); !slices.Equal(s, []Process{proc(2)}) {
		t.Fatalf("suspected %v after SuspectTicks+1, want [%v]", s, proc(2))
	}
	// Hearing it again clears the suspicion.
	d.Heard(proc(2))
	if s := d.Suspected(); len(s) != 0 {
		t.Fatalf("suspected %v right after hearing it", s)
	}
}

func TestDetectorHeartbeatsResetTheTimer(t *testing.T) {
	d := NewDetector(proc(1), DetectorConfig{SuspectTicks: 10})
	d.Watch(2)
	for range 5 {
		tickN(d, 8)
		d.Heard(proc(2))
	}
	tickN(d, 10)
	if s := d.Suspected(); len(s) != 0 {
		t.Fatalf("suspected %v although heard every 8 ticks", s)
	}
	d.Tick()
	if s := d.Suspected(); len(s) != 1 {
		t.Fatalf("suspected %v 11 ticks after the last heartbeat", s)
	}
}

func TestDetectorTickHeartbeatSchedule(t *testing.T) {
	d := NewDetector(proc(1), DetectorConfig{HeartbeatTicks: 3})
	for _, n := range []NodeID{5, 3, 9, 1} { // 1 is self: never watched
		d.Watch(n)
	}
	for i := 1; i <= 9; i++ {
		got := d.Tick()
		if i%3 != 0 {
			if got != nil {
				t.Errorf("tick %d: heartbeats to %v, want none", i, got)
			}
			continue
		}
		if !slices.Equal(got, []NodeID{3, 5, 9}) {
			t.Errorf("tick %d: heartbeats to %v, want [3 5 9]", i, got)
		}
	}
}

func TestDetectorRestartedPeer(t *testing.T) {
	d := NewDetector(proc(1), DetectorConfig{SuspectTicks: 10})
	d.Watch(2)
	d.Heard(proc(2))
	d.Tick()
	d.Heard(Process{Node: 2, Inc: 2})
	if s := d.Suspected(); !slices.Equal(s, []Process{proc(2)}) {
		t.Fatalf("suspected %v after incarnation 2 spoke, want the old %v", s, proc(2))
	}
	// A late frame of the old incarnation changes nothing.
	d.Heard(proc(2))
	tickN(d, 11)
	want := []Process{proc(2), {Node: 2, Inc: 2}}
	if s := d.Suspected(); !slices.Equal(s, want) {
		t.Fatalf("suspected %v after silence, want %v", s, want)
	}
}

func TestDetectorNeverHeardPeer(t *testing.T) {
	d := NewDetector(proc(1), DetectorConfig{SuspectTicks: 10})
	tickN(d, 100) // time before Watch does not count against the peer
	d.Watch(3)
	d.Watch(2)
	tickN(d, 10)
	if s := d.Suspected(); len(s) != 0 {
		t.Fatalf("suspected %v within the grace period", s)
	}
	d.Tick()
	want := []Process{{Node: 2}, {Node: 3}} // Inc 0: any incarnation
	if s := d.Suspected(); !slices.Equal(s, want) {
		t.Fatalf("suspected %v, want %v", s, want)
	}
}

func TestDetectorWatchRefcount(t *testing.T) {
	d := NewDetector(proc(1), DetectorConfig{HeartbeatTicks: 1})
	d.Watch(2)
	d.Watch(2)
	d.Unwatch(2)
	if got := d.Tick(); !slices.Equal(got, []NodeID{2}) {
		t.Fatalf("after one of two Unwatch: heartbeats to %v, want [2]", got)
	}
	d.Unwatch(2)
	d.Unwatch(2) // extra Unwatch is harmless
	d.Unwatch(7) // so is one of a node never watched
	if got := d.Tick(); len(got) != 0 {
		t.Fatalf("after the last Unwatch: heartbeats to %v", got)
	}
	// Forgotten means forgotten: a peer watched again starts afresh, and
	// frames of unwatched peers are ignored.
	d.Heard(proc(2))
	tickN(d, 20)
	d.Watch(2)
	if s := d.Suspected(); len(s) != 0 {
		t.Fatalf("re-watched peer suspected at once: %v", s)
	}
}

func TestDetectorDefaults(t *testing.T) {
	d := NewDetector(proc(1), DetectorConfig{})
	d.Watch(2)
	if got := d.Tick(); got != nil {
		t.Errorf("tick 1 sent heartbeats %v; default HeartbeatTicks is 2", got)
	}
	if got := d.Tick(); !slices.Equal(got, []NodeID{2}) {
		t.Errorf("tick 2 sent heartbeats %v, want [2]", got)
	}
	tickN(d, 8)
	if s := d.Suspected(); len(s) != 0 {
		t.Errorf("suspected %v at tick 10; default SuspectTicks is 10", s)
	}
	d.Tick()
	if s := d.Suspected(); len(s) != 1 {
		t.Errorf("suspected %v at tick 11", s)
	}
}

// The detector's output feeds Group.Suspect directly: Inc 0 from a peer
// never heard matches whichever incarnation is the member.
func TestDetectorDrivesGroupSuspect(t *testing.T) {
	members := []Process{proc(1), proc(2), {Node: 3, Inc: 5}}
	c := newCluster(t, Config{}, members...)
	c.crash(3)
	dets := map[NodeID]*Detector{}
	for _, n := range []NodeID{1, 2} {
		dets[n] = NewDetector(proc(n), DetectorConfig{})
		for _, m := range members {
			dets[n].Watch(m.Node)
		}
	}
	for range 20 {
		for _, n := range []NodeID{1, 2} {
			dets[n].Tick()
			dets[n].Heard(proc(3 - n)) // 1 and 2 hear each other; 3 is silent
			for _, p := range dets[n].Suspected() {
				c.g(n).Suspect(p)
			}
		}
		c.tick(1)
	}
	assertLastView(t, c, View{ID: 2, Members: []Process{proc(1), proc(2)}}, 1, 2)
}

// Group.Suspect with Inc 0 matches whichever incarnation of the node is a
// member; a different incarnation is ignored.
func TestSuspectIncarnationZero(t *testing.T) {
	members := []Process{proc(1), proc(2), {Node: 3, Inc: 4}}
	c := newCluster(t, Config{}, members...)
	c.g(1).Suspect(proc(3)) // another incarnation: ignored
	if rd := c.g(1).Ready(); !rd.Empty() {
		t.Fatalf("suspecting a non-member incarnation produced %+v", rd)
	}
	c.g(1).Suspect(Process{Node: 3})
	c.g(2).Suspect(Process{Node: 3})
	c.pump()
	assertLastView(t, c, View{ID: 2, Members: []Process{proc(1), proc(2)}}, 1, 2)
}
