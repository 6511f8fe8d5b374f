//go:build !linux

package hwg_test

import "os/exec"

// dieWithParent does nothing off Linux: the test's cleanup kills its
// nodes, but a test process killed from outside leaves them running.
func dieWithParent(*exec.Cmd) {}
