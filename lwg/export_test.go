package lwg

import "context"

// BreakFlush arms the broken-flush mutation (see Config.brokenFlush).
func BreakFlush(c *Config) { c.brokenFlush = true }

// CurrentSnapshotsOnly arms the mutation that undoes the replicas'
// recoveries (see Config.currentSnapshotsOnly).
func CurrentSnapshotsOnly(c *Config) { c.currentSnapshotsOnly = true }

// KeepStaleRegs arms the stale-registration mutation (see
// Config.keepStaleRegs).
func KeepStaleRegs(c *Config) { c.keepStaleRegs = true }

// Waiters returns how many blocking calls wait on svc's loop for events of
// l, or of every LWG if l is "".
func Waiters(ctx context.Context, svc *Service, l ID) (int, error) {
	n := 0
	err := svc.do(ctx, func(ch chan error) error {
		for id, ws := range svc.waiters {
			if l == "" || id == l {
				n += len(ws)
			}
		}
		now(ch)
		return nil
	})
	return n, err
}

// MaxMessageBytes returns the MaxMessageBytes svc's Core runs with.
func MaxMessageBytes(svc *Service) int { return svc.core.cfg.MaxMessageBytes }

// IntentVisits returns how many times c looked at a Join or Leave in
// progress.
func IntentVisits(c *Core) uint64 { return c.intentVisits }

// Carriers returns how many carriers c keeps a record of.
func Carriers(c *Core) int { return len(c.carriers) }
