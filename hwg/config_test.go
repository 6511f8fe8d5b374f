package hwg_test

import (
	"errors"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/hwg/transport"
)

// A flush wait as long as the view-change timeout restarts a view change
// forever when a member never answers: such a config is refused.
func TestConfigFlushWaitBelowViewChange(t *testing.T) {
	self := hwg.Process{Node: 1, Inc: 1}
	for _, tc := range []struct {
		flush, view int
		ok          bool
	}{
		{0, 0, true},   // defaults 4 and 10
		{9, 0, true},   // below the default 10
		{10, 0, false}, // equal
		{50, 0, false},
		{50, 100, true},
	} {
		_, err := hwg.New(hwg.Config{Group: "h/x", Self: self, FlushWaitTicks: tc.flush, ViewChangeTicks: tc.view})
		if tc.ok != (err == nil) || err != nil && !errors.Is(err, hwg.ErrInvalidConfig) {
			t.Errorf("FlushWaitTicks %d, ViewChangeTicks %d: err = %v", tc.flush, tc.view, err)
		}
	}
	ep := transport.NewMemNetwork().Endpoint(transport.Peer{Node: 1, Inc: 1})
	defer ep.Close()
	nc := hwg.NodeConfig{Self: self, Transport: ep}
	nc.Group.FlushWaitTicks = 50
	if _, err := hwg.NewNode(nc); !errors.Is(err, hwg.ErrInvalidConfig) {
		t.Fatalf("NewNode with a 50-tick flush wait and the default view change: err = %v", err)
	}
}
