//go:build !linux

package testproc

import "os/exec"

// DieWithParent does nothing off Linux: there a test's cleanup kills the
// processes it started, but a test process killed from outside leaves
// them running.
func DieWithParent(*exec.Cmd) {}
