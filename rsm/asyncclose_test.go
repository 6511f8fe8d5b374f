package rsm_test

import (
	"errors"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/lwgkit/lwgkit/rsm/rsmtest"
)

// TestProposeAsyncAfterNodeClose: once its Node has closed, an object's
// ProposeAsync either returns an error or calls done: the outcome always
// comes, as its doc says (no sender or router is left to send or apply it).
// Each outcome from the callbacks of the proposals failed by the close
// proposes again, as a retrying client does.
func TestProposeAsyncAfterNodeClose(t *testing.T) {
	ctx := ctxT(t)
	nodes := startCluster(t, transport.NewMemNetwork(), 1, rsm.Config{})
	o := openAll(t, ctx, nodes, "after-close")[0]
	nodes[0].Node.Close()

	outcome := make(chan error, 1)
	if err := o.ProposeAsync(rsmtest.Add(1), func(_ []byte, err error) { outcome <- err }); err != nil {
		if !errors.Is(err, rsm.ErrClosed) {
			t.Fatalf("ProposeAsync after Node.Close: %v, want ErrClosed", err)
		}
		return
	}
	select {
	case err := <-outcome:
		if err == nil {
			t.Fatal("applied after Node.Close")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ProposeAsync after Node.Close returned nil and done never ran")
	}
}
