//go:build !hoptrace

package transport

import "time"

const readTracing = false

func traceWrote(*conn, int)      {}
func traceRead(*conn, int, bool) {}
func writeReadTrace()            {}
func traceTaken(*remote, int)    {}
func traceFrameRead([]byte)      {}

// TraceTaken and TraceSample are the hooks hwg's loop calls in the
// diagnostic built with -tags hoptrace (readtrace.go); without the tag
// they do nothing and hwg does not call them.
func TraceTaken([]byte)                 {}
func TraceSample(string, time.Duration) {}
