package testproc

import (
	"os/exec"
	"syscall"
)

// DieWithParent has the kernel kill cmd's process when the process that
// starts it dies. A test binary killed or timed out runs no cleanup, and
// the nodes it started kept running: orphans spinning on the CPU made
// later runs' timing tests fail. Call it before cmd.Start.
//
// The signal comes when the thread that started cmd exits; Go keeps its
// threads unless a goroutine exits locked to one, which these tests do
// not do.
func DieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
