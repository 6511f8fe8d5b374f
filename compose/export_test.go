package compose

// FreshWhenAloneForTest arms the freshWhenAlone mutation (see
// Config.freshWhenAlone).
func FreshWhenAloneForTest(c *Config) { c.freshWhenAlone = true }
