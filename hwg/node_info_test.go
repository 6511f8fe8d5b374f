package hwg_test

import (
	"context"
	"errors"
	"testing"

	"github.com/lwgkit/lwgkit/hwg/transport"
)

// TestInfoWithEndingContext calls Info with contexts that end while the
// request waits for the loop; the result must never be written after Info
// returned (the race detector watches).
func TestInfoWithEndingContext(t *testing.T) {
	ctx := ctxT(t)
	nodes := bootstrapped(t, ctx, transport.NewMemNetwork(), 1)
	n := nodes[1]
	ended := 0
	for range 2000 {
		c, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { cancel(); close(done) }()
		in, err := n.Info(c, grp)
		<-done
		switch {
		case err == nil && in.View.ID == 0:
			t.Fatalf("Info returned no error and no view")
		case err != nil && !errors.Is(err, context.Canceled):
			t.Fatalf("Info: %v", err)
		case err != nil:
			ended++
			if in.View.ID != 0 || len(in.View.Members) != 0 {
				t.Fatalf("Info returned %+v with an error", in)
			}
		}
	}
	t.Logf("%d of 2000 calls ended with their context", ended)
}
