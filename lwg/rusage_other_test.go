//go:build !unix

package lwg_test

import "time"

// rusageCPU is getrusage's CPU time where there is one (rusage_unix_test.go);
// elsewhere the join benchmark reports a cpu-ms of zero.
func rusageCPU() time.Duration { return 0 }

func minorFaults() int64 { return 0 }
