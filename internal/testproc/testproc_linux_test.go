package testproc_test

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/internal/testproc"
)

// The test starts a middle process, which starts a sleeping grandchild
// with DieWithParent and prints its pid; killing the middle one must
// kill the grandchild.
func TestDieWithParent(t *testing.T) {
	switch os.Getenv("TESTPROC_ROLE") {
	case "middle":
		c := exec.Command(os.Args[0], "-test.run=^TestDieWithParent$")
		c.Env = append(os.Environ(), "TESTPROC_ROLE=sleeper")
		testproc.DieWithParent(c)
		if err := c.Start(); err != nil {
			os.Exit(2)
		}
		os.Stdout.WriteString(strconv.Itoa(c.Process.Pid) + "\n")
		time.Sleep(time.Hour)
	case "sleeper":
		time.Sleep(time.Hour)
	}
	mid := exec.Command(os.Args[0], "-test.run=^TestDieWithParent$")
	mid.Env = append(os.Environ(), "TESTPROC_ROLE=middle")
	out, err := mid.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := mid.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32)
	n, err := out.Read(buf)
	if err != nil {
		mid.Process.Kill()
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(buf[:n-1]))
	if err != nil {
		mid.Process.Kill()
		t.Fatalf("grandchild pid %q: %v", buf[:n], err)
	}
	mid.Process.Kill()
	mid.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatal("the grandchild outlived the process that started it")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs: it exists and is not a zombie waiting
// for init to reap it.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
