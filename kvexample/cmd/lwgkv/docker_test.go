package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// docker runs the docker CLI and returns its trimmed output.
func docker(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// ownerLabel marks what TestDocker makes (image, network, containers) with
// the test process as host/pid (see owner). A test killed before its
// cleanup ran (a timeout, kill -9) leaves them behind; DieWithParent cannot
// reach them, since the docker daemon, not the test, is their parent.
const ownerLabel = "io.lwgkit.test-owner"

// owner is the ownerLabel value of process pid on this host. The host name
// keeps a reaper from judging a process it cannot see: another container
// sharing the docker daemon has its own pids.
func owner(pid int) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s=%s/%d", ownerLabel, host, pid)
}

// reapDocker removes what earlier test processes on this host left:
// anything labelled with this host and a pid that no longer runs. It
// reports what it removed.
func reapDocker(t *testing.T) []string {
	t.Helper()
	var removed []string
	label := fmt.Sprintf("{{index %%s %q}}", ownerLabel)
	for _, kind := range []struct {
		list, inspect, rm []string
		labels            string // where inspect finds the labels
	}{
		{[]string{"ps", "-aq"}, []string{"container", "inspect"}, []string{"rm", "-f"}, ".Config.Labels"},
		{[]string{"network", "ls", "-q"}, []string{"network", "inspect"}, []string{"network", "rm"}, ".Labels"},
		{[]string{"images", "-q"}, []string{"image", "inspect"}, []string{"rmi", "-f"}, ".Config.Labels"},
	} {
		ids, err := docker(t, append(slices.Clone(kind.list), "--filter", "label="+ownerLabel)...)
		if err != nil {
			t.Logf("docker %s: %v: %s", strings.Join(kind.list, " "), err, ids)
			continue
		}
		for _, id := range strings.Fields(ids) {
			val, err := docker(t, append(slices.Clone(kind.inspect), "--format", fmt.Sprintf(label, kind.labels), id)...)
			if err != nil {
				continue // gone meanwhile
			}
			host, pidText, _ := strings.Cut(val, "/")
			if me, _ := os.Hostname(); host != me {
				continue // not ours to judge
			}
			if pid, err := strconv.Atoi(pidText); err == nil && pid > 0 && processAlive(pid) {
				continue
			}
			if _, err := docker(t, append(slices.Clone(kind.rm), id)...); err == nil && !slices.Contains(removed, id) {
				removed = append(removed, id)
			}
		}
	}
	return removed
}

// processAlive reports whether a process with this pid runs here.
func processAlive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker(t, args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// needDocker skips t where there is no docker CLI or daemon.
func needDocker(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("docker is not installed: skipping the Docker test")
	}
	if out, err := docker(t, "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Skipf("the docker daemon is not available (%v: %s): skipping the Docker test", err, out)
	}
}

// TestReapDocker: what a test process on this host that no longer runs
// left (here a network labelled with the pid of a process that exited) is
// removed; what a running one owns, or one of another host, is not.
// Skipped with -short or without docker.
func TestReapDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the Docker test")
	}
	needDocker(t)
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	dead := done.Process.Pid
	if processAlive(dead) {
		t.Skipf("pid %d was reused at once", dead)
	}
	base := fmt.Sprintf("lwgkit-reap-test-%d", time.Now().UnixNano()%1e9)
	mine, left := base+"-mine", base+"-left"
	mustDocker(t, "network", "create", "--label", owner(os.Getpid()), mine)
	t.Cleanup(func() { docker(t, "network", "rm", mine) })
	id := mustDocker(t, "network", "create", "--label", owner(dead), left)
	other := base + "-other"
	mustDocker(t, "network", "create", "--label", ownerLabel+"=elsewhere/"+strconv.Itoa(dead), other)
	t.Cleanup(func() { docker(t, "network", "rm", other) })
	t.Cleanup(func() { docker(t, "network", "rm", left) })

	removed := reapDocker(t)
	if !slices.ContainsFunc(removed, func(r string) bool { return strings.HasPrefix(id, r) }) {
		t.Errorf("the leftover network %s (%s) not removed; removed %v", left, id, removed)
	}
	if _, err := docker(t, "network", "inspect", left); err == nil {
		t.Errorf("network %s still there", left)
	}
	for _, n := range []string{mine, other} {
		if _, err := docker(t, "network", "inspect", n); err != nil {
			t.Errorf("network %s removed (this test's, or another host's): %v", n, err)
		}
	}
}

// TestDocker builds the FROM-scratch image of kvexample/docker on a static
// binary, runs a 5-node cluster in containers, kills one node, cuts
// another off with `docker network disconnect` (both replicas of shard 0,
// the hub of the composition topology), and checks that
// acknowledged writes stay readable and writes go on. It takes about a
// minute. It skips where docker is unavailable, with -short, and with
// LWGKV_DOCKER=0.
func TestDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the Docker test")
	}
	if os.Getenv("LWGKV_DOCKER") == "0" {
		t.Skip("LWGKV_DOCKER=0: skipping the Docker test")
	}
	needDocker(t)
	if runtime.GOOS != "linux" {
		t.Skip("the image holds a linux binary")
	}
	if removed := reapDocker(t); len(removed) > 0 {
		t.Logf("removed %d leftovers of earlier runs: %v", len(removed), removed)
	}
	label := owner(os.Getpid())
	tag := fmt.Sprintf("lwgkv-test-%d", time.Now().UnixNano()%1e9)
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "lwgkv"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	df, err := os.ReadFile("../../docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), "FROM scratch") {
		t.Fatal("the Dockerfile must build FROM scratch")
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644); err != nil {
		t.Fatal(err)
	}
	mustDocker(t, "build", "-q", "--label", label, "-t", tag, dir)
	t.Cleanup(func() { docker(t, "rmi", "-f", tag) })
	mustDocker(t, "network", "create", "--label", label, tag)
	const n = 5
	// Nodes 5 (killed) and 3 (cut off) must be replicas of shard 0.
	_, pl := fiveNodes(t, 64)
	if !pl.IsReplica(0, 5) || !pl.IsReplica(0, 3) {
		t.Fatalf("shard 0's replicas are %v, not what the test assumes", pl.MemberSet(0))
	}
	names := make([]string, n+1)
	t.Cleanup(func() {
		for i := 1; i <= n; i++ {
			if t.Failed() {
				out, _ := docker(t, "logs", "--tail", "30", names[i])
				t.Logf("%s:\n%s", names[i], out)
			}
			docker(t, "rm", "-f", names[i])
		}
		docker(t, "network", "rm", tag)
	})
	ports := make([]string, n+1)
	for i := 1; i <= n; i++ {
		names[i] = fmt.Sprintf("%s-n%d", tag, i)
		var join []string
		for j := 1; j <= n; j++ {
			if j != i {
				join = append(join, fmt.Sprintf("%d=n%d:16379", j, j))
			}
		}
		args := []string{"run", "-d", "--label", label, "--name", names[i], "--network", tag, "--network-alias", fmt.Sprintf("n%d", i),
			"-p", "127.0.0.1::6379", tag,
			"serve", "-id", strconv.Itoa(i), "-data", "/data", "-resp", "0.0.0.0:6379", "-http", "0.0.0.0:8080",
			"-listen", "0.0.0.0:16379", "-advertise", fmt.Sprintf("n%d:16379", i), "-join", strings.Join(join, ","),
			"-shards", "64", "-cluster", "docker", "-timeout", "3s"}
		if i == 1 {
			args = append(args, "-bootstrap")
		}
		mustDocker(t, args...)
		p := mustDocker(t, "port", names[i], "6379/tcp")
		ports[i] = strings.Split(p, "\n")[0]
	}
	c := &procCluster{t: t}
	for i := 1; i <= n; i++ {
		c.waitReady(&proc{id: i, resp: ports[i]}, 90*time.Second)
	}
	cl := func(i int) *redis.Client {
		rc := redis.NewClient(&redis.Options{Addr: ports[i], MaxRetries: -1, ReadTimeout: 4 * time.Second})
		t.Cleanup(func() { rc.Close() })
		return rc
	}
	acked := map[string]string{}
	write := func(i int, prefix string, k int) {
		t.Helper()
		ctx := context.Background()
		failed, unknown := 0, 0
		var firstErr error
		for j := 0; j < k; j++ {
			key, val := fmt.Sprintf("%s-%d", prefix, j), fmt.Sprint(j)
			// A TRYAGAIN was not applied: retry it, as a client would.
			var err error
			for try := 0; try < 20; try++ {
				if err = cl(i).Set(ctx, key, val, 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			switch {
			case err == nil:
				acked[key] = val
			case strings.HasPrefix(err.Error(), "UNKNOWN"):
				unknown++ // in flight when a node failed: may or may not be applied
			default:
				failed++
				if firstErr == nil {
					firstErr = err
				}
			}
		}
		if failed > 0 || unknown > k/20 {
			t.Fatalf("%s: of %d writes through node %d, %d failed and %d have an unknown outcome; first error: %v", prefix, k, i, failed, unknown, firstErr)
		}
		if unknown > 0 {
			t.Logf("%s: %d writes with an unknown outcome", prefix, unknown)
		}
	}
	check := func(i int) {
		t.Helper()
		ctx := context.Background()
		for k, v := range acked {
			// TRYAGAIN is the server's "not done, ask again", as for the
			// writes: right after a failure a read can wait on the failed
			// node until the failure detector excludes it.
			got, err := cl(i).Get(ctx, k).Result()
			for try := 0; try < 20 && err != nil && strings.HasPrefix(err.Error(), "TRYAGAIN"); try++ {
				time.Sleep(200 * time.Millisecond)
				got, err = cl(i).Get(ctx, k).Result()
			}
			if err != nil || got != v {
				t.Fatalf("node %d: %s = %q, %v; want %q", i, k, got, err, v)
			}
		}
	}
	write(1, "before", 200)
	check(5)

	// Kill node 5: the others go on.
	mustDocker(t, "kill", names[5])
	write(2, "killed", 200)
	check(3)

	// Restart it: it catches up from its data directory and the others.
	mustDocker(t, "start", names[5])
	p := mustDocker(t, "port", names[5], "6379/tcp")
	ports[5] = strings.Split(p, "\n")[0]
	c.waitReady(&proc{id: 5, resp: ports[5]}, 90*time.Second)
	check(5)

	// Cut node 3 off, a replica of shard 0 (the composition tree's hub,
	// with node 5 killed before): the others go on, and nodes holding no
	// replica of a shard still reach it through composition. (One failure
	// at a time: a shard whose 3 replicas include two failed nodes rightly
	// blocks.)
	const cut = 3
	mustDocker(t, "network", "disconnect", tag, names[cut])
	write(1, "partitioned", 200)
	check(2)
	check(4)

	// Heal: node 3 rejoins and catches up.
	mustDocker(t, "network", "connect", "--alias", fmt.Sprintf("n%d", cut), tag, names[cut])
	p = mustDocker(t, "port", names[cut], "6379/tcp") // published again, maybe elsewhere
	ports[cut] = strings.Split(p, "\n")[0]
	write(5, "healed", 100)
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := cl(cut).Get(context.Background(), "healed-0").Result()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	check(cut)
	check(5)
}
