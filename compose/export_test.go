package compose

// FreshWhenAloneForTest arms the freshWhenAlone mutation (see
// Config.freshWhenAlone).
func FreshWhenAloneForTest(c *Config) { c.freshWhenAlone = true }

// CallHooksForTest sets the test hooks of proposed calls (see
// ObjectsConfig.skipCall and dropReply).
func CallHooksForTest(c *ObjectsConfig, skipCall, dropReply func(cmd []byte, retry bool) bool) {
	c.skipCall, c.dropReply = skipCall, dropReply
}
