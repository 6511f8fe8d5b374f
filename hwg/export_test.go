package hwg

import (
	"context"
	"fmt"
	"maps"
	"slices"
)

// BreakFlushForTest arms the brokenFlush mutation on node n: its member
// skips the part of a decision's tail it did not hold itself.
func BreakFlushForTest(c *Config, n NodeID) { c.brokenFlush = n }

// EncodeFrameForTest encodes one message as a frame, as a peer would.
func EncodeFrameForTest(m Message) []byte {
	b, err := encodeFrame(&frame{Msgs: []Message{m}})
	if err != nil {
		panic(err)
	}
	return b
}

// LoseFinalForTest makes node c lose the messages a group makes in the
// step that ends its membership (its Commit, when it proposed its own
// removal), as a lost frame would.
func LoseFinalForTest(c *NodeConfig) { c.loseFinal = true }

// CheckWatchedForTest checks rewatch's INVARIANT on the node's loop and
// returns the nodes watched.
func (n *Node) CheckWatchedForTest(ctx context.Context) (watched []NodeID, err error) {
	err = n.do(ctx, func() error {
		want := map[NodeID]int{}
		for id, cs := range n.counted {
			if _, ok := n.groups[id]; !ok {
				return fmt.Errorf("group %s counted but gone", id)
			}
			if g := n.groups[id]; g.Info().Status == StatusNormal && !slices.Equal(cs, n.contacts[id]) {
				return fmt.Errorf("group %s: counted %v, its contacts %v", id, cs, n.contacts[id])
			}
			for _, c := range cs {
				want[c]++
			}
		}
		if !maps.Equal(want, n.watched) {
			return fmt.Errorf("watched %v, want %v (the groups' contacts)", n.watched, want)
		}
		for c := range n.watched {
			if c != n.cfg.Self.Node && n.det.peers[c] == nil {
				return fmt.Errorf("node %d counted as watched, but the detector does not watch it", c)
			}
			watched = append(watched, c)
		}
		for c := range n.det.peers {
			if n.watched[c] == 0 {
				return fmt.Errorf("the detector watches node %d, which no group lists", c)
			}
		}
		slices.Sort(watched)
		return nil
	})
	return watched, err
}

// MiscountWatchedForTest breaks rewatch's INVARIANT, for the check's own
// test: node c is counted once more than the groups list it.
func (n *Node) MiscountWatchedForTest(ctx context.Context, c NodeID) error {
	return n.do(ctx, func() error { n.watched[c]++; return nil })
}

// BacklogAtExclusionForTest queues a BlockOK and a multicast behind a busy
// group in the backlog of group (bootstrapped on n), hands the loop an
// exclusion from it, and returns how many requests stay in the backlog.
func (n *Node) BacklogAtExclusionForTest(ctx context.Context, group GroupID) (left int, err error) {
	err = n.do(ctx, func() error {
		g := n.groups[group]
		if g == nil {
			return fmt.Errorf("%w: %q", ErrUnknownGroup, group)
		}
		n.backlog[group] = append(n.backlog[group], multicastReq{group: group, payload: []byte("x")}, multicastReq{group: group, blockOK: true})
		n.backlogSize += 2
		n.event(group, g, &Event{Type: EventExcluded, Group: group})
		left = len(n.backlog[group])
		if n.backlogSize != left {
			return fmt.Errorf("backlogSize %d, backlog %d", n.backlogSize, left)
		}
		return nil
	})
	return left, err
}

// ExpireLeftForTest drops every left group n keeps, as leftKeep later
// leaves would.
func (n *Node) ExpireLeftForTest(ctx context.Context) error {
	return n.do(ctx, func() error {
		for _, e := range n.leftFIFO {
			n.dropLeft(e)
		}
		n.leftFIFO = nil
		return nil
	})
}

// TickForTest runs k of n's ticks on its loop at once, and reports whether
// n still keeps the group id it left.
func (n *Node) TickForTest(ctx context.Context, k int, id GroupID) (kept bool, err error) {
	err = n.do(ctx, func() error {
		for range k {
			n.tick()
		}
		_, kept = n.left[id]
		return nil
	})
	return kept, err
}

// StepLeftForTest steps m into the group n left, as a frame would, and
// returns how many Commits it answered to m's sender (taken from the
// outbox, so they are not sent).
func (n *Node) StepLeftForTest(ctx context.Context, m Message) (commits int, err error) {
	err = n.do(ctx, func() error {
		if _, ok := n.left[m.Group]; !ok {
			return fmt.Errorf("%w: %q not kept as left", ErrUnknownGroup, m.Group)
		}
		n.stepLeft(m)
		out := n.outbox[m.From.Node]
		kept := out[:0]
		for _, o := range out {
			if o.Type == MsgCommit && o.Group == m.Group {
				commits++
			} else {
				kept = append(kept, o)
			}
		}
		n.outbox[m.From.Node] = kept
		return nil
	})
	return commits, err
}
