//go:build !hoptrace

package hwg

// hopTracing is true only in builds with the hoptrace tag (see
// hoptrace.go): a diagnostic that times the hops of sampled multicasts.
const hopTracing = false

// traceStamp is empty: multicasts carry no time.
type traceStamp struct{}

func stamp() traceStamp { return traceStamp{} }

func traceTake(*Node, GroupID, *Group, multicastReq) {}
func traceSend(*Node, NodeID, []Message)             {}
func traceRecv(*Node, Process, []Message)            {}
func traceDeliver(*Node, GroupID, []Entry)           {}
func traceHanded(*Node, *Event)                      {}
func traceClose(*Node)                               {}
