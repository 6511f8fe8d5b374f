//go:build unix

package lwg_test

import (
	"syscall"
	"time"
)

// rusageCPU returns the process's CPU time (user and system) from
// getrusage, to the microsecond: /proc/self/stat's 10 ms ticks are too
// coarse for a join window of tens of milliseconds. Zero where getrusage
// fails.
func rusageCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// minorFaults returns the process's minor page faults so far (0 where
// getrusage fails): on this VM a fault on fresh memory costs about 15 µs,
// so a window that touches new heap pays for it.
func minorFaults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Minflt
}
