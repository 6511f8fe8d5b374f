package hwg_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/internal/testproc"
	"github.com/lwgkit/lwgkit/proptest"
)

// TestMain lets the test binary double as a cluster node for
// TestMultiProcess: with LWGKIT_MP_NODE set it runs one node and exits.
func TestMain(m *testing.M) {
	if os.Getenv("LWGKIT_MP_NODE") != "" {
		if err := runClusterNode(); err != nil {
			fmt.Fprintln(os.Stderr, "node:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const mpCluster, mpGroup = "mp-test", hwg.GroupID("h/mp")

// runClusterNode is one node process (hwg.Start: identity from its bbolt
// file, TCP to the others): bootstrap as a first incarnation or join as a
// later one, then multicast continuously and trace every event until
// SIGTERM.
func runClusterNode() error {
	id, _ := strconv.ParseUint(os.Getenv("LWGKIT_MP_NODE"), 10, 64)
	var all []hwg.Process
	var others []hwg.NodeID
	peers := map[hwg.NodeID]string{}
	for _, kv := range strings.Split(os.Getenv("LWGKIT_MP_PEERS"), ",") {
		k, addr, _ := strings.Cut(kv, "=")
		n, _ := strconv.ParseUint(k, 10, 64)
		all = append(all, hwg.Process{Node: hwg.NodeID(n), Inc: 1})
		if n != id {
			peers[hwg.NodeID(n)] = addr
			others = append(others, hwg.NodeID(n))
		}
	}
	node, err := hwg.Start(hwg.StartConfig{Node: hwg.NodeID(id), Cluster: mpCluster, DataFile: os.Getenv("LWGKIT_MP_DB"),
		Listen: os.Getenv("LWGKIT_MP_LISTEN"), Peers: peers, Config: hwg.FastTiming(hwg.NodeConfig{})})
	if err != nil {
		return err
	}
	self := node.Self()
	traceFile, err := os.OpenFile(os.Getenv("LWGKIT_MP_TRACE"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		node.Close()
		return err
	}
	traced := make(chan struct{})
	go func() {
		defer close(traced)
		for e := range node.Events() {
			if line := traceLine(self, e); line != nil {
				traceFile.Write(line) // unbuffered: a kill -9 loses at most this line
			}
		}
	}()
	// On SIGTERM the trace must hold every send whose frames left: the
	// node stops multicasting, its loop hands the reader what it queued,
	// and the file closes only after the node closed the channel. (Closing
	// it first lost the last sends, which the others had delivered.)
	defer func() {
		time.Sleep(200 * time.Millisecond)
		node.Close()
		<-traced
		traceFile.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if self.Inc == 1 {
		err = node.Bootstrap(ctx, mpGroup, all)
	} else {
		err = node.Join(ctx, mpGroup, others)
	}
	if err != nil {
		return err
	}
	fmt.Println("ready")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		case <-tick.C:
			node.Multicast(context.Background(), mpGroup, fmt.Appendf(nil, "%v/%d", self, i))
		}
	}
}

func traceLine(self hwg.Process, e hwg.Event) []byte {
	ev, ok := proptest.FromHWG(self, e, uint64(e.At.UnixNano()))
	if !ok {
		return nil
	}
	b, _ := json.Marshal(ev)
	return append(b, '\n')
}

type mpProc struct {
	id    uint64
	cmd   *exec.Cmd
	trace string
}

// TestMultiProcess runs five node processes over loopback TCP with
// continuous multicast, kills one with SIGKILL, then the coordinator,
// restarts the first as a new incarnation, and checks the merged traces
// with every checker of the simulator.
func TestMultiProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes; skipped with -short")
	}
	dir := t.TempDir()
	addrs := freeAddrs(t, 5)
	var peers []string
	for i, a := range addrs {
		peers = append(peers, fmt.Sprintf("%d=%s", i+1, a))
	}
	procs := map[uint64]*mpProc{}
	var crashes []proptest.Event
	start := func(id uint64) {
		p := &mpProc{id: id, trace: filepath.Join(dir, fmt.Sprintf("trace-%d-%d.jsonl", id, time.Now().UnixNano()))}
		p.cmd = exec.Command(os.Args[0], "-test.run=^$")
		p.cmd.Env = append(os.Environ(),
			"LWGKIT_MP_NODE="+strconv.FormatUint(id, 10),
			"LWGKIT_MP_DB="+filepath.Join(dir, fmt.Sprintf("node-%d.db", id)),
			"LWGKIT_MP_LISTEN="+addrs[id-1],
			"LWGKIT_MP_PEERS="+strings.Join(peers, ","),
			"LWGKIT_MP_TRACE="+p.trace)
		out, err := p.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.cmd.Stderr = os.Stderr
		testproc.DieWithParent(p.cmd)
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[id] = p // killed at cleanup even if it never gets ready
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == "ready" {
					ready <- true
				}
			}
			close(ready)
		}()
		select {
		case ok := <-ready:
			if !ok {
				t.Fatalf("node %d exited before it was ready", id)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("node %d not ready after 20s", id)
		}
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	for id := uint64(1); id <= 5; id++ {
		start(id)
	}
	time.Sleep(500 * time.Millisecond) // traffic in the first view

	// Both kills hit a first incarnation.
	kill := func(id uint64) {
		p := procs[id]
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.cmd.Wait()
		// Stamped once the process is reaped, so every event its trace
		// holds comes before its crash.
		crashes = append(crashes, proptest.Event{T: uint64(time.Now().UnixNano()), Node: id, Inc: 1, Ev: proptest.EvCrash})
		delete(procs, id)
	}
	// waitView returns how long until every live node installed a view
	// without the node just killed.
	waitView := func(gone uint64, what string) time.Duration {
		t0 := time.Now()
		for time.Since(t0) < 15*time.Second {
			done := true
			for _, p := range procs {
				v := lastInstall(t, p.trace)
				if v == nil || slices.Contains(v.Members, gone) {
					done = false
				}
			}
			if done {
				return time.Since(t0)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("%s: survivors did not install a view without node %d within 15s", what, gone)
		return 0
	}

	kill(5)
	d1 := waitView(5, "kill -9 of node 5")
	coord := lastInstall(t, procs[2].trace).Members[0]
	kill(coord)
	d2 := waitView(coord, "kill -9 of the coordinator")
	start(5) // incarnation 2 from its data file; Join returns once it is in
	time.Sleep(500 * time.Millisecond)
	for _, p := range procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for id, p := range procs {
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("node %d: %v", id, err)
		}
	}
	procs = nil
	t.Logf("kill -9 of node 5 → new view at all survivors: %v; of the coordinator (node %d): %v", d1, coord, d2)

	// Merge the traces by the time each node's loop emitted the event.
	tr := append(proptest.Trace{}, crashes...)
	files, _ := filepath.Glob(filepath.Join(dir, "trace-*.jsonl"))
	for _, f := range files {
		tr = append(tr, readTrace(t, f)...)
	}
	tr = restoreLostSends(tr, crashes)
	sort.SliceStable(tr, func(i, j int) bool { return tr[i].T < tr[j].T })
	merged := filepath.Join(dir, "merged.jsonl")
	var buf bytes.Buffer
	if err := tr.WriteJSONL(&buf); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(merged, buf.Bytes(), 0o644)
	sends, delivers := 0, 0
	for _, e := range tr {
		switch e.Ev {
		case proptest.EvSend:
			sends++
		case proptest.EvDeliver:
			delivers++
		}
	}
	t.Logf("merged trace: %d events, %d sends, %d deliveries (%s)", len(tr), sends, delivers, merged)
	if delivers == 0 {
		t.Fatal("nothing was delivered")
	}
	for _, v := range proptest.CheckAll(tr) {
		t.Error(v)
	}
	// The restarted node and the two other survivors end in one view.
	final := map[string]bool{}
	for _, f := range files {
		if v := lastInstall(t, f); v != nil && v.Node != coord && !(v.Node == 5 && v.Inc == 1) {
			final[fmt.Sprint(v.View, v.Members, v.Incs)] = true
		}
	}
	if len(final) != 1 {
		t.Errorf("survivors ended in different views: %v", final)
	}
}

// freeAddrs returns n distinct loopback addresses that were free a moment
// ago: all n listeners are held until every one is chosen, since a port
// closed at once can be handed out again by the next bind to port 0.
func freeAddrs(t *testing.T, n int) []string {
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out
}

// readTrace reads a node's trace, dropping a last line cut short by kill -9.
func readTrace(t *testing.T, path string) proptest.Trace {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	if i := bytes.LastIndexByte(b, '\n'); i+1 != len(b) {
		b = b[:i+1]
	}
	var tr proptest.Trace
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e proptest.Event
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		tr = append(tr, e)
	}
	return tr
}

func lastInstall(t *testing.T, path string) *proptest.Event {
	tr := readTrace(t, path)
	for i := len(tr) - 1; i >= 0; i-- {
		if tr[i].Ev == proptest.EvInstall {
			return &tr[i]
		}
	}
	return nil
}

// restoreLostSends puts back the send events that a kill -9 cut off the
// end of a killed process's trace. Its trace is written by a goroutine that
// reads the node's events, so the frames of its last multicasts can leave
// before their send events reach the file; the survivors then deliver
// messages the trace never saw sent. Only sends after the last one the
// killed process recorded in that view are restored: a message missing
// from the middle of a trace, or from a process that was not killed, is
// still a violation.
//
// A restored send goes just before the earliest of its own first delivery,
// the first delivery of any later restored send of the same sender and
// view, and the crash: the lag can be long enough that survivors delivered
// it well before the kill, and the sender's sends stay in seq order.
func restoreLostSends(tr proptest.Trace, crashes []proptest.Event) proptest.Trace {
	type pv struct{ node, inc, view uint64 }
	crashAt := map[[2]uint64]uint64{}
	for _, c := range crashes {
		crashAt[[2]uint64{c.Node, c.Inc}] = c.T
	}
	sent := map[string]bool{}
	lastSeq := map[pv]uint64{}
	for _, e := range tr {
		if e.Ev != proptest.EvSend {
			continue
		}
		sent[e.Msg] = true
		if id, ok := parseMsgID(e.Msg); ok {
			k := pv{id[0], id[1], id[2]}
			lastSeq[k] = max(lastSeq[k], id[3])
		}
	}
	type lostSend struct {
		seq, firstDeliver uint64
		ev                proptest.Event
	}
	lost := map[pv][]*lostSend{}
	byMsg := map[string]*lostSend{}
	for _, e := range tr {
		if e.Ev != proptest.EvDeliver || sent[e.Msg] {
			continue
		}
		if l := byMsg[e.Msg]; l != nil {
			l.firstDeliver = min(l.firstDeliver, e.T)
			continue
		}
		id, ok := parseMsgID(e.Msg)
		if !ok {
			continue
		}
		k := pv{id[0], id[1], id[2]}
		if _, killed := crashAt[[2]uint64{id[0], id[1]}]; !killed || id[3] <= lastSeq[k] {
			continue
		}
		l := &lostSend{seq: id[3], firstDeliver: e.T,
			ev: proptest.Event{Node: id[0], Inc: id[1], Ev: proptest.EvSend, Group: e.Group, View: id[2], Msg: e.Msg}}
		byMsg[e.Msg] = l
		lost[k] = append(lost[k], l)
	}
	out := tr
	for k, ls := range lost {
		slices.SortFunc(ls, func(a, b *lostSend) int { return cmp.Compare(a.seq, b.seq) })
		bound := crashAt[[2]uint64{k.node, k.inc}]
		for i := len(ls) - 1; i >= 0; i-- {
			bound = min(bound, ls[i].firstDeliver) - 1
			ls[i].ev.T = bound
		}
		for _, l := range ls {
			out = append(out, l.ev)
		}
	}
	return out
}

// parseMsgID reads an hwg.MsgID string: node.inc.view.seq.
func parseMsgID(s string) ([4]uint64, bool) {
	var id [4]uint64
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return id, false
	}
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return id, false
		}
		id[i] = v
	}
	return id, true
}

func TestRestoreLostSends(t *testing.T) {
	send := func(n, seq uint64) proptest.Event {
		return proptest.Event{T: seq, Node: n, Inc: 1, Ev: proptest.EvSend, Group: "h/x", View: 2, Msg: fmt.Sprintf("%d.1.2.%d", n, seq)}
	}
	deliver := func(n uint64, msg string) proptest.Event {
		return proptest.Event{T: 50, Node: n, Inc: 1, Ev: proptest.EvDeliver, Group: "h/x", View: 2, Msg: msg, From: 5}
	}
	crash := proptest.Event{T: 40, Node: 5, Inc: 1, Ev: proptest.EvCrash}
	tr := proptest.Trace{send(5, 1), send(5, 2), deliver(1, "5.1.2.3"), deliver(1, "5.1.2.1"), deliver(1, "7.1.2.9")}
	got := restoreLostSends(tr, []proptest.Event{crash})
	added := got[len(tr):]
	if len(added) != 1 || added[0].Msg != "5.1.2.3" || added[0].T != 39 || added[0].Ev != proptest.EvSend {
		t.Fatalf("restored %+v, want only the send of 5.1.2.3 just before the crash", added)
	}
	// A gap in the middle of a killed process's sends is not restored.
	tr = proptest.Trace{send(5, 1), send(5, 3), deliver(1, "5.1.2.2")}
	if got := restoreLostSends(tr, []proptest.Event{crash}); len(got) != len(tr) {
		t.Fatalf("restored a send from the middle of the trace: %+v", got[len(tr):])
	}
}

// TestRestoredSendBeforeItsDeliveries: the kill can come long after the
// survivors delivered the lost sends, so each restored send must precede
// its first delivery and every later restored send of the same sender.
func TestRestoredSendBeforeItsDeliveries(t *testing.T) {
	ev := func(ts, n uint64, kind, msg string) proptest.Event {
		return proptest.Event{T: ts, Node: n, Inc: 1, Ev: kind, Group: "h/x", View: 2, Msg: msg, From: 5}
	}
	crash := proptest.Event{T: 100, Node: 5, Inc: 1, Ev: proptest.EvCrash}
	tr := proptest.Trace{
		ev(10, 5, proptest.EvSend, "5.1.2.1"),
		ev(20, 1, proptest.EvDeliver, "5.1.2.1"),
		ev(25, 1, proptest.EvDeliver, "5.1.2.2"), // lost; first delivered at 25
		ev(30, 2, proptest.EvDeliver, "5.1.2.2"),
		ev(28, 1, proptest.EvDeliver, "5.1.2.3"), // lost; delivered at 28
		ev(90, 1, proptest.EvDeliver, "5.1.2.4"), // lost; delivered at 90, before the crash
	}
	got := restoreLostSends(tr, []proptest.Event{crash})
	at := map[string]uint64{}
	for _, e := range got[len(tr):] {
		if e.Ev != proptest.EvSend || e.Node != 5 || e.View != 2 {
			t.Fatalf("restored %+v", e)
		}
		at[e.Msg] = e.T
	}
	want := map[string]uint64{"5.1.2.2": 24, "5.1.2.3": 27, "5.1.2.4": 89}
	if !maps.Equal(at, want) {
		t.Fatalf("restored sends at %v, want %v", at, want)
	}
	sort.SliceStable(got, func(i, j int) bool { return got[i].T < got[j].T })
	for _, v := range proptest.CheckAll(append(got, crash)) {
		if strings.Contains(v.Detail, "before it was sent") || strings.Contains(v.Detail, "never sent") {
			t.Errorf("restored trace still breaks delivery integrity: %v", v)
		}
	}
}
