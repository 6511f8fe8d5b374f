package lwg

import (
	"context"
	"errors"

	"github.com/hashicorp/go-hclog"

	"github.com/lwgkit/lwgkit/hwg"
)

// memberNode is what hwgMembership needs of an hwg.Node.
type memberNode interface {
	JoinAsync(ctx context.Context, group hwg.GroupID, contacts []hwg.NodeID) (<-chan error, error)
	LeaveAsync(ctx context.Context, group hwg.GroupID) (<-chan error, error)
}

// hwgMembership carries out the Core's HWG joins and leaves in the order the
// Core asked for them, per HWG, without making the loop wait for a view
// change. A request is handed to the node at once (the node takes it in
// order), except behind a Leave of the same HWG still under way: the node
// refuses a Join of a group it is leaving (ErrAlreadyMember), so "leave,
// then join again" waits until the leave is done. A Leave is never held up
// by a Join: it undoes a join that may not complete.
//
// Before, each request ran in a goroutine of its own, so a Leave and the
// Join after it reached the node in either order, and the Join failed
// either way; the Core asked again only at its next timeout.
//
// It is owned by the Service's loop, which calls resume for every group
// sent on done.
type hwgMembership struct {
	node memberNode
	log  hclog.Logger
	// leaving holds the HWGs with a Leave under way, each with the
	// requests that came after it, in order.
	leaving map[hwg.GroupID][]Action
	// done receives an HWG whose Leave has finished.
	done chan hwg.GroupID
	// stop ends the goroutines that wait for a Leave.
	stop <-chan struct{}
}

func newHWGMembership(node memberNode, log hclog.Logger, stop <-chan struct{}) *hwgMembership {
	return &hwgMembership{
		node:    node,
		log:     log,
		leaving: map[hwg.GroupID][]Action{},
		done:    make(chan hwg.GroupID),
		stop:    stop,
	}
}

// do carries out a, an ActJoin or ActLeave, or queues it behind a Leave of
// its HWG that is under way.
func (m *hwgMembership) do(ctx context.Context, a Action) {
	if q, ok := m.leaving[a.Group]; ok {
		if n := len(q); n > 0 && q[n-1].Type == a.Type {
			// The Core retries a Join it has not seen complete (and a
			// held Leave may take long): the latest request stands for
			// the ones before it, so the queue stays short.
			q[n-1] = a
			return
		}
		m.leaving[a.Group] = append(q, a)
		return
	}
	m.start(ctx, a)
}

// resume runs the requests that waited for g's Leave, up to the next Leave.
func (m *hwgMembership) resume(ctx context.Context, g hwg.GroupID) {
	q := m.leaving[g]
	delete(m.leaving, g)
	for i, a := range q {
		if m.start(ctx, a) {
			m.leaving[g] = append(m.leaving[g], q[i+1:]...)
			return
		}
	}
}

// start hands a to the node and reports whether it is a Leave now under
// way (its outcome is sent on done).
func (m *hwgMembership) start(ctx context.Context, a Action) (leaving bool) {
	var ch <-chan error
	var err error
	if a.Type == ActJoin {
		// The Core learns the outcome from the group's events.
		_, err = m.node.JoinAsync(ctx, a.Group, a.Contacts)
	} else {
		ch, err = m.node.LeaveAsync(ctx, a.Group)
	}
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled), errors.Is(err, hwg.ErrNodeClosed):
	case a.Type == ActJoin && errors.Is(err, hwg.ErrAlreadyMember):
		// The Core asks again when it has not seen the outcome of an
		// earlier join (after an exclusion, or a table that did not
		// come); the node is in or joining the group, which is what the
		// Core wants, and it learns the rest from events.
		m.log.Debug("hwg join already under way", "group", a.Group)
	default:
		m.log.Warn("hwg request failed", "action", a.Type, "group", a.Group, "error", err)
	}
	if ch == nil {
		return false
	}
	m.leaving[a.Group] = nil
	go func() {
		select {
		case <-ch: // nil once left; the node closed or the join undone otherwise
		case <-m.stop:
			return
		}
		select {
		case m.done <- a.Group:
		case <-m.stop:
		}
	}()
	return true
}
