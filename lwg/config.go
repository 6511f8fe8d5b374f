package lwg

import (
	"fmt"

	"github.com/lwgkit/lwgkit/hwg"
)

// Placement names the HWG an LWG is created on: a base name the directory
// resolves to a live carrier ("h/shared" resolves to "h/shared#3"). It must
// be a pure function.
type Placement func(ID) hwg.GroupID

// PerLWG is the baseline placement: one HWG per LWG.
func PerLWG(l ID) hwg.GroupID { return hwg.GroupID("h/" + string(l)) }

// Shared places every LWG on one HWG named base.
func Shared(base hwg.GroupID) Placement { return func(ID) hwg.GroupID { return base } }

// Config parameterises a Core. Durations are in ticks of Core.Tick.
type Config struct {
	// Self is this node's process.
	Self hwg.Process
	// Directory is the cluster-wide HWG holding the LWG→HWG directory.
	// Every node is a member. Default "h/dir".
	Directory hwg.GroupID
	// Place chooses the carrier of a new LWG. Default Shared("h/lwg").
	Place Placement
	// ManualHoldOK makes the application answer every EventBlock with
	// HoldOK. When false the Core answers at once.
	ManualHoldOK bool
	// TableTimeoutTicks bounds how long a new member of a carrier waits for
	// the carrier's table (a snapshot from a member that holds it) before
	// it leaves and joins again: if every member that held the table failed
	// before sending it, none ever comes. An HWG join made for an LWG is
	// given up after 10 times as long (or at once if the directory declares
	// the carrier dead), and made again if still needed. Default 200.
	TableTimeoutTicks int
	// IdleTicks is how long the node stays in a carrier with no local
	// endpoint before leaving it (lazy leave). Default 50.
	IdleTicks int
	// SwitchTimeoutTicks bounds a switch: if the members have not all
	// joined the new carrier by then, the switch's initiator aborts it.
	// Default 400.
	SwitchTimeoutTicks int
	// MaxMessageBytes bounds the control messages the Core multicasts: a
	// snapshot of a carrier's table or of the directory is sent in parts
	// of at most this size, and a batch of control items is split to stay
	// under it. With tens of thousands of LWGs a whole table is megabytes,
	// more than an HWG takes in one message. It must stay within the
	// carriers' hwg.Config.MaxPendingBytes (default 1 MiB): a refused
	// message would lose what it carried (NewService checks it, and
	// lowers the default to fit). Default 256 KiB.
	MaxMessageBytes int

	// noSendEvents leaves out EventSend (ServiceConfig.NoSendEvents).
	noSendEvents bool

	// brokenFlush is a mutation for tests only (set through
	// export_test.go): a join installs the next view at once instead of
	// flushing, so members' messages of the old view can land in the new
	// one. It proves the simulator and checkers catch a broken LWG flush.
	brokenFlush bool

	// currentSnapshotsOnly is a mutation for tests only (export_test.go):
	// a joiner takes only the snapshot taken at the install of its
	// current view, and the directory keeps no state for later, as before
	// both recoveries (replica.go). It proves the simulator sees the
	// directory left without a member holding its state.
	currentSnapshotsOnly bool

	// keepStaleRegs is a mutation for tests only (export_test.go): back in
	// the directory, the node does not unregister carriers it is out of.
	// It proves the simulator's lwg-directory-regs check sees a
	// registration left behind.
	keepStaleRegs bool
}

func (c Config) withDefaults() (Config, error) {
	if c.Self.Node == 0 || c.Self.Inc == 0 {
		return c, fmt.Errorf("%w: Self must have a non-zero Node and Inc, got %v", ErrInvalidConfig, c.Self)
	}
	if c.Directory == "" {
		c.Directory = "h/dir"
	}
	if c.Place == nil {
		c.Place = Shared("h/lwg")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.TableTimeoutTicks, 200)
	def(&c.IdleTicks, 50)
	def(&c.SwitchTimeoutTicks, 400)
	def(&c.MaxMessageBytes, defaultMaxMessageBytes)
	return c, nil
}

// defaultMaxMessageBytes is Config.MaxMessageBytes's default.
const defaultMaxMessageBytes = 256 << 10
