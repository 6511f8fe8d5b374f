package rsm

// Stats counts what a Node did since it started.
type Stats struct {
	Objects               int    // open here
	Proposals, Reads      uint64 // sent from here
	Messages              uint64 // ordered messages that carried them (batches)
	Applied               uint64 // commands applied here, all objects
	Views                 uint64 // views installed, all objects
	SnapshotsTaken        uint64
	SnapshotsSent         uint64 // transfers served to their last byte
	SnapshotBytesSent     uint64
	SnapshotsReceived     uint64 // restored from a donor
	SnapshotBytesReceived uint64 // of restored snapshots
	ChunkBytesReceived    uint64 // every transfer byte received, finished or not
	Malformed             uint64 // ordered messages that failed to decode
}

// Stats returns the Node's counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	s := &n.stats
	st := Stats{Objects: len(n.objects), Applied: s.applied.Load(),
		ChunkBytesReceived: s.chunkBytes.Load(), Malformed: s.malformed.Load()}
	for _, o := range n.objects {
		st.Applied += o.applies.Load()
		st.ChunkBytesReceived += o.received.Load()
		st.Malformed += o.malformed.Load()
	}
	n.mu.Unlock()
	st.Proposals, st.Reads, st.Views = s.proposals.Load(), s.reads.Load(), s.views.Load()
	st.Messages = s.messages.Load()
	st.SnapshotsTaken, st.SnapshotsSent, st.SnapshotBytesSent = s.snapshots.Load(), s.sentSnapshots.Load(), s.sentBytes.Load()
	st.SnapshotsReceived, st.SnapshotBytesReceived = s.receivedSnapshots.Load(), s.received.Load()
	return st
}
