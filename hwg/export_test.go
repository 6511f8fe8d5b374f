package hwg

// BreakFlushForTest arms the brokenFlush mutation on node n: its member
// skips the part of a decision's tail it did not hold itself.
func BreakFlushForTest(c *Config, n NodeID) { c.brokenFlush = n }
