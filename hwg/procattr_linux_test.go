package hwg_test

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill cmd's process when the test process
// dies, so that a test binary killed or timed out (no cleanup runs) leaves
// no node processes behind: orphans left by one run spun on the CPU
// through the next ones and made their timing tests fail.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
