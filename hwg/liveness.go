package hwg

import (
	"cmp"
	"slices"
)

// DetectorConfig parameterises a Detector. Durations are in ticks.
type DetectorConfig struct {
	// HeartbeatTicks is how often a heartbeat goes to each watched peer.
	// Default 2.
	HeartbeatTicks int
	// SuspectTicks is how long a peer may stay silent before it is
	// suspected. Default 10; keep it several heartbeats long so one lost
	// heartbeat is not a failure.
	SuspectTicks int
}

// Detector is the failure detector of one node, shared by every group on
// it: one heartbeat stream per pair of nodes, however many groups they
// share. Like Group it is a pure state machine: the caller feeds it Heard
// for every frame received and Tick for time, sends a heartbeat to each
// node Tick returns, and passes Suspected to every Group that holds them.
type Detector struct {
	cfg   DetectorConfig
	self  Process
	now   uint64
	peers map[NodeID]*peerState
}

type peerState struct {
	inc       uint64 // highest incarnation heard
	heard     uint64 // tick of the last frame from inc
	refs      int    // groups that watch this node
	restarted uint64 // an older incarnation known dead, 0 if none
}

// NewDetector returns a detector for self.
func NewDetector(self Process, cfg DetectorConfig) *Detector {
	if cfg.HeartbeatTicks <= 0 {
		cfg.HeartbeatTicks = 2
	}
	if cfg.SuspectTicks <= 0 {
		cfg.SuspectTicks = 10
	}
	return &Detector{cfg: cfg, self: self, peers: map[NodeID]*peerState{}}
}

// Watch starts (or adds a reference to) heartbeats with node n. A new peer
// gets a full SuspectTicks of grace.
func (d *Detector) Watch(n NodeID) {
	if n == d.self.Node {
		return
	}
	p := d.peers[n]
	if p == nil {
		p = &peerState{heard: d.now}
		d.peers[n] = p
	}
	p.refs++
}

// Unwatch drops a reference taken by Watch; at zero the peer is forgotten.
func (d *Detector) Unwatch(n NodeID) {
	if p := d.peers[n]; p != nil {
		if p.refs--; p.refs <= 0 {
			delete(d.peers, n)
		}
	}
}

// Heard records a frame (heartbeat or any message) from p. Hearing a higher
// incarnation means every older one has crashed.
func (d *Detector) Heard(p Process) {
	s := d.peers[p.Node]
	if s == nil {
		return
	}
	switch {
	case p.Inc > s.inc:
		if s.inc != 0 {
			s.restarted = s.inc
		}
		s.inc, s.heard = p.Inc, d.now
	case p.Inc == s.inc:
		s.heard = d.now
	}
}

// Tick advances time and returns the peers to send a heartbeat to now, in
// ascending order.
func (d *Detector) Tick() []NodeID {
	d.now++
	if d.now%uint64(d.cfg.HeartbeatTicks) != 0 {
		return nil
	}
	out := make([]NodeID, 0, len(d.peers))
	for n := range d.peers {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Suspected returns the processes now believed to have failed: peers silent
// for longer than SuspectTicks (at the last incarnation heard) and older
// incarnations of peers that restarted. A peer never heard from is reported
// with Inc 0, which Group.Suspect matches to any incarnation of the node.
func (d *Detector) Suspected() []Process {
	var out []Process
	for n, s := range d.peers {
		if s.restarted != 0 {
			out = append(out, Process{Node: n, Inc: s.restarted})
		}
		if d.now-s.heard > uint64(d.cfg.SuspectTicks) {
			out = append(out, Process{Node: n, Inc: s.inc})
		}
	}
	slices.SortFunc(out, func(a, b Process) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Inc, b.Inc))
	})
	return out
}
