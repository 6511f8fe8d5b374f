package lwg

import (
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
)

// TestCarrierBase: a carrier's base is known from its id alone (Switch
// waits on it before the directory copy may have the carrier's record).
func TestCarrierBase(t *testing.T) {
	d := newDirectory("h/dir")
	for _, base := range []hwg.GroupID{"h/shared", "h/l#x", "h/"} {
		if h := d.create(base, hwg.Process{Node: 1, Inc: 1}); carrierBase(h) != base {
			t.Errorf("carrierBase(%q) = %q, want %q", h, carrierBase(h), base)
		}
	}
}
