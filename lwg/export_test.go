package lwg

// BreakFlush arms the broken-flush mutation (see Config.brokenFlush).
func BreakFlush(c *Config) { c.brokenFlush = true }
