//go:build !hoptrace

package transport

import "time"

const readTracing = false

func traceWrote(*conn, int)      {}
func traceRead(*conn, int, bool) {}
func writeReadTrace()            {}
func traceTaken(*remote, int)    {}
func traceFrameRead([]byte)      {}

// TraceTaken and TraceSample are hooks of a diagnostic built with -tags
// hoptrace; without it they do nothing.
func TraceTaken([]byte)                 {}
func TraceSample(string, time.Duration) {}
