package storage_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/internal/testproc"
	"github.com/lwgkit/lwgkit/storage"
	"github.com/lwgkit/lwgkit/storage/storagetest"
)

// helperEnv, when set to a file path, turns TestHelperProcess into the child
// process of TestStartSurvivesKill.
const helperEnv = "LWGKIT_STORAGE_HELPER_FILE"

const (
	helperNode    = 7
	helperCluster = "prod"
)

// TestHelperProcess is not a test. Re-executed by TestStartSurvivesKill with
// helperEnv set, it prints "ready", then restarts the node over and over (a
// fresh Open, Start, Close each time), printing "committed N" after each
// Start returns incarnation N, until it is killed. Re-executed by
// TestStateSurvivesKill with writerEnv set, it runs writeUntilKilled.
func TestHelperProcess(t *testing.T) {
	if path := os.Getenv(writerEnv); path != "" {
		writeUntilKilled(path)
	}
	path := os.Getenv(helperEnv)
	if path == "" {
		return
	}
	fmt.Println("ready") // os.Stdout is unbuffered: each line is one write
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		db, err := storage.Open(path, storage.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		id, err := db.Start(helperNode, helperCluster)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("committed %d\n", id.Incarnation)
		if err := db.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	os.Exit(0) // the parent is gone; don't loop forever
}

// TestStartSurvivesKill SIGKILLs a process that restarts the node in a loop,
// at random points, and checks after each kill that the file is consistent
// and that no incarnation the child was given has been lost: the stored
// incarnation is the last one the child printed, or the one after if the
// child died between Start's commit and its print.
func TestStartSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 test skipped in -short mode")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("cannot re-execute the test binary: %v", err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	path := filepath.Join(t.TempDir(), "node.db")

	const wantKills = 20
	var stored uint64 // incarnation found after the previous kill
	kills, commits, unprinted := 0, 0, 0
	for deadline := time.Now().Add(10 * time.Second); kills < wantKills && time.Now().Before(deadline); {
		cmd, out, stderr := startKillable(t, exe, helperEnv, path, kills)
		time.Sleep(time.Duration(rng.Int64N(int64(20 * time.Millisecond))))
		if err := cmd.Process.Kill(); err != nil {
			t.Fatalf("kill: %v", err)
		}
		rest, _ := io.ReadAll(out)
		cmd.Wait()
		if cmd.ProcessState.Exited() {
			t.Fatalf("helper exited by itself (%v) instead of being killed; stderr: %s",
				cmd.ProcessState, stderr.Bytes())
		}
		kills++

		// Every printed incarnation follows the one before it.
		last := stored
		for _, line := range strings.Split(string(rest), "\n") {
			n, ok := strings.CutPrefix(line, "committed ")
			if !ok {
				continue // "" after the last newline, or a line cut by the kill
			}
			inc, err := strconv.ParseUint(n, 10, 64)
			if err != nil {
				continue // cut by the kill
			}
			if inc != last+1 {
				t.Fatalf("kill %d: helper printed incarnation %d after %d", kills, inc, last)
			}
			last = inc
			commits++
		}

		db, err := storage.Open(path, storage.Options{})
		if err != nil {
			t.Fatalf("kill %d: Open after kill: %v", kills, err)
		}
		storagetest.Check(t, db)
		id, ok, err := db.Identity()
		if err != nil {
			t.Fatalf("kill %d: Identity: %v", kills, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		switch {
		case !ok && last == 0:
			// Killed before the first Start committed.
		case !ok || id.Node != helperNode || id.Cluster != helperCluster:
			t.Fatalf("kill %d: identity %v, %v after %d committed starts", kills, id, ok, last)
		case id.Incarnation < last:
			t.Fatalf("kill %d: incarnation %d on disk, but the helper was given %d", kills, id.Incarnation, last)
		case id.Incarnation > last+1:
			t.Fatalf("kill %d: incarnation %d on disk, but the helper was given only up to %d", kills, id.Incarnation, last)
		}
		if ok && id.Incarnation == last+1 {
			unprinted++
		}
		stored = id.Incarnation
	}
	if kills == 0 {
		t.Fatal("no kills within the time limit")
	}
	t.Logf("%d kills, %d committed starts seen, %d kills between a commit and its print, final incarnation %d",
		kills, commits, unprinted, stored)
	if kills < wantKills {
		t.Logf("only %d of %d kills within the time limit", kills, wantKills)
	}
}

// startKillable re-executes the test binary as TestHelperProcess with
// env=path and waits for it to print "ready". It skips the test if the
// binary cannot be re-executed before the first kill.
func startKillable(t *testing.T, exe, env, path string, kills int) (*exec.Cmd, *bufio.Reader, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^TestHelperProcess$", "-test.count=1")
	testproc.DieWithParent(cmd)
	cmd.Env = append(os.Environ(), env+"="+path)
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		if kills == 0 {
			t.Skipf("cannot re-execute the test binary %s: %v", exe, err)
		}
		t.Fatalf("re-executing the test binary: %v", err)
	}
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("%s did not start: %q, %v; stderr: %s", env, line, err, stderr.Bytes())
	}
	return cmd, out, stderr
}
