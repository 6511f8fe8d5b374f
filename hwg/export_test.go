package hwg

// BreakFlushForTest arms the brokenFlush mutation on node n: its member
// skips the part of a decision's tail it did not hold itself.
func BreakFlushForTest(c *Config, n NodeID) { c.brokenFlush = n }

// EncodeFrameForTest encodes one message as a frame, as a peer would.
func EncodeFrameForTest(m Message) []byte {
	b, err := encodeFrame(&frame{Msgs: []Message{m}})
	if err != nil {
		panic(err)
	}
	return b
}

// LoseFinalForTest makes node c lose the messages a group makes in the
// step that ends its membership (its Commit, when it proposed its own
// removal), as a lost frame would.
func LoseFinalForTest(c *NodeConfig) { c.loseFinal = true }
