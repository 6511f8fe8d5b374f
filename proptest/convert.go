package proptest

import (
	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// FromHWG turns an event of process p into a trace event at step t. It
// reports false for events the trace does not record (Block).
// The simulator uses it, and so can anyone tracing real nodes: stamp t
// with hwg.Event.At to merge the traces of several processes.
func FromHWG(p hwg.Process, e hwg.Event, t uint64) (Event, bool) {
	ev := Event{T: t, Node: uint64(p.Node), Inc: p.Inc, Group: string(e.Group), View: uint64(e.View.ID)}
	switch e.Type {
	case hwg.EventInstall:
		ev.Ev = EvInstall
		for _, m := range e.View.Members {
			ev.Members, ev.Incs = append(ev.Members, uint64(m.Node)), append(ev.Incs, m.Inc)
		}
		for _, m := range e.Left {
			ev.Left = append(ev.Left, uint64(m.Node))
		}
	case hwg.EventSend:
		ev.Ev, ev.Msg = EvSend, e.Msg.String()
	case hwg.EventDeliver:
		ev.Ev, ev.Msg, ev.From = EvDeliver, e.Msg.String(), uint64(e.Msg.Sender.Node)
	case hwg.EventLeft:
		ev.Ev = EvLeave
	case hwg.EventExcluded:
		ev.Ev = EvExclude
	default:
		return Event{}, false
	}
	return ev, true
}

// FromLWG turns an LWG event of process p into a trace event at step t. It
// reports false for events the trace does not record (Block).
// Message ids are the payloads, which the caller must make unique.
func FromLWG(p hwg.Process, e lwg.Event, t uint64) (Event, bool) {
	ev := Event{T: t, Node: uint64(p.Node), Inc: p.Inc, Group: string(e.LWG), View: e.View.ID}
	switch e.Type {
	case lwg.EventInstall:
		ev.Ev, ev.HWG, ev.HWGView = EvInstall, string(e.HWG), uint64(e.HWGView)
		for _, m := range e.View.Members {
			ev.Members, ev.Incs = append(ev.Members, uint64(m.Node)), append(ev.Incs, m.Inc)
		}
		for _, m := range e.Left {
			ev.Left = append(ev.Left, uint64(m.Node))
		}
	case lwg.EventSend:
		ev.Ev, ev.Msg = EvSend, string(e.Payload)
	case lwg.EventDeliver:
		ev.Ev, ev.Msg, ev.From = EvDeliver, string(e.Payload), uint64(e.From.Node)
	case lwg.EventLeft:
		ev.Ev = EvLeave
	case lwg.EventExcluded:
		ev.Ev = EvExclude
	default:
		return Event{}, false
	}
	return ev, true
}
