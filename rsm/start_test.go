package rsm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/lwgkit/lwgkit/rsm/rsmtest"
	"github.com/lwgkit/lwgkit/storage"
	"github.com/lwgkit/lwgkit/storage/storagetest"
)

// objectsForTCP is how many objects TestRestartFromDataDir opens: 10,000
// by default (1,000 under -race), LWGKIT_RSM_OBJECTS to change it.
func objectsForTCP(t *testing.T) int {
	if v := os.Getenv("LWGKIT_RSM_OBJECTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("LWGKIT_RSM_OBJECTS: %v", err)
		}
		return n
	}
	if raceDetector {
		return 1_000
	}
	return 10_000
}

func startTCP(t *testing.T, ctx context.Context, id hwg.NodeID, dir string, seeds []string) *rsm.Node {
	t.Helper()
	n, err := rsm.Start(ctx, rsm.StartConfig{
		Node: id, Cluster: "rsm-test", DataDir: dir, Listen: "127.0.0.1:0",
		Seeds: seeds, Bootstrap: len(seeds) == 0, Contacts: []hwg.NodeID{1},
		// Default timing (about a second to suspect a node): on a loaded
		// machine 100 ms suspicions fire falsely, and a chain of false
		// exclusions can leave an object with no holder (see the
		// package doc).
		Fast: false,
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// dump logs the state of id's replicas, for a failure.
func dump(t *testing.T, id rsm.ObjectID, nodes ...*rsm.Node) {
	for _, n := range nodes {
		if o, ok := n.Object(id); ok {
			t.Logf("%s on %v: watched=%v %s", id, n.Self(), n.Watched(o), o.DebugState())
		}
	}
}

// forAll runs f for every object id, many at once.
func forAll(ctx context.Context, ids []rsm.ObjectID, f func(ctx context.Context, id rsm.ObjectID) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(512)
	for _, id := range ids {
		g.Go(func() error { return f(ctx, id) })
	}
	return g.Wait()
}

// TestRestartFromDataDir runs the whole stack over loopback TCP: three
// nodes open 10,000 objects, one node is killed and restarted from its
// data directory, and every object comes back on it with the others'
// digest, including commands it missed while down.
func TestRestartFromDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 3-node TCP restart test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	n1 := startTCP(t, ctx, 1, dirs[0], nil)
	defer n1.Close()
	n2 := startTCP(t, ctx, 2, dirs[1], []string{n1.HWG().Addr()})
	defer n2.Close()
	n3 := startTCP(t, ctx, 3, dirs[2], []string{n1.HWG().Addr(), n2.HWG().Addr()})

	ids := make([]rsm.ObjectID, objectsForTCP(t))
	for i := range ids {
		ids[i] = rsm.ObjectID(fmt.Sprintf("obj/%05d", i))
	}
	start := time.Now()
	for _, n := range []*rsm.Node{n1, n2, n3} {
		if err := forAll(ctx, ids, func(ctx context.Context, id rsm.ObjectID) error {
			_, err := n.Open(ctx, id, rsmtest.NewCounter)
			if err != nil {
				dump(t, id, n1, n2, n3)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("opened %d objects on 3 nodes in %v", len(ids), time.Since(start))
	propose := func(n *rsm.Node, v uint64) {
		t.Helper()
		if err := forAll(ctx, ids, func(ctx context.Context, id rsm.ObjectID) error {
			o, _ := n.Object(id)
			for {
				// This node can be excluded from an object's group by a
				// false suspicion on a loaded machine; it joins again by
				// itself. ErrNotApplied is safe to retry; after ErrUnknown
				// the add may land twice, which every replica applies
				// alike (the check below compares digests at equal
				// indexes).
				_, err := o.Propose(ctx, rsmtest.Add(v))
				if !errors.Is(err, rsm.ErrNotApplied) && !errors.Is(err, rsm.ErrUnknown) || ctx.Err() != nil {
					return err
				}
				time.Sleep(10 * time.Millisecond)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	propose(n1, 1)

	// Kill node 3 (no leave: its groups see it fail) and go on without it.
	start = time.Now()
	if err := n3.Crash(); err != nil {
		t.Fatal(err)
	}
	propose(n2, 2)
	t.Logf("proposed to every object while node 3 was down in %v", time.Since(start))

	start = time.Now()
	n3 = startTCP(t, ctx, 3, dirs[2], []string{n1.HWG().Addr(), n2.HWG().Addr()})
	defer n3.Close()
	stored, err := n3.Stored()
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(ids) {
		t.Fatalf("restarted node has %d objects recorded, want %d", len(stored), len(ids))
	}
	if err := forAll(ctx, stored, func(ctx context.Context, id rsm.ObjectID) error {
		_, err := n3.Open(ctx, id, rsmtest.NewCounter)
		if err != nil {
			dump(t, id, n1, n2, n3)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted node reopened %d objects in %v (%+v)", len(ids), time.Since(start), n3.Stats())
	propose(n3, 3)

	// Every object: equal applied index and digest on the three nodes.
	var mu sync.Mutex
	bad := 0
	for _, id := range ids {
		var digests [][]byte
		var objs []*rsm.Object
		for _, n := range []*rsm.Node{n1, n2, n3} {
			o, _ := n.Object(id)
			objs = append(objs, o)
		}
		// Equal indexes, at least the three adds.
		for ctx.Err() == nil {
			a := objs[0].Applied()
			if a >= 3 && objs[1].Applied() == a && objs[2].Applied() == a {
				break
			}
			time.Sleep(time.Millisecond)
		}
		for _, o := range objs {
			d, err := o.StaleRead([]byte("digest"))
			if err != nil {
				t.Fatal(err)
			}
			digests = append(digests, d)
		}
		if !bytes.Equal(digests[0], digests[1]) || !bytes.Equal(digests[0], digests[2]) {
			mu.Lock()
			bad++
			mu.Unlock()
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d objects differ across replicas", bad, len(ids))
	}
	for _, n := range []*rsm.Node{n1, n2, n3} {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range dirs {
		db, err := storage.Open(dir+"/node.db", storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		storagetest.Check(t, db)
		db.Close()
	}
}

// TestScheduledSnapshotsAndLocalRestart: snapshots are taken every
// SnapshotEvery commands; a node that restarts alone (every replica lost)
// re-creates the object from its latest local snapshot, as the restart
// rule in the package doc says.
func TestScheduledSnapshotsAndLocalRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	start := func() *rsm.Node {
		n, err := rsm.Start(ctx, rsm.StartConfig{Node: 1, Cluster: "solo", DataDir: dir, Listen: "127.0.0.1:0",
			Bootstrap: true, Fast: !raceDetector, Config: rsm.Config{SnapshotEvery: 5}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := start()
	var taken atomic.Int64
	n.Observe(func(e rsm.Event) {
		if e.Type == rsm.EventSnapshotTaken {
			taken.Add(1)
		}
	})
	o, err := n.Open(ctx, "solo", rsmtest.NewCounter)
	if err != nil {
		t.Fatal(err)
	}
	want := &rsmtest.Counter{} // the state after 10 commands
	for i := range 12 {
		if _, err := o.Propose(ctx, rsmtest.Add(uint64(i))); err != nil {
			t.Fatal(err)
		}
		if i < 10 {
			want.Apply(rsmtest.Add(uint64(i)))
		}
	}
	if got := taken.Load(); got != 2 {
		t.Fatalf("%d snapshots after 12 commands with SnapshotEvery 5, want 2", got)
	}
	if err := n.Crash(); err != nil { // no last snapshot
		t.Fatal(err)
	}

	n = start()
	defer n.Close()
	stored, err := n.Stored()
	if err != nil || len(stored) != 1 || stored[0] != "solo" {
		t.Fatalf("Stored() = %v, %v; want [solo]", stored, err)
	}
	o, err = n.Open(ctx, "solo", rsmtest.NewCounter)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Applied(); got != 10 {
		t.Fatalf("reopened at index %d, want 10 (the latest local snapshot)", got)
	}
	_, wd := want.Peek()
	if d := query(t, o, "digest"); !bytes.Equal(d, wd[:]) {
		t.Fatalf("reopened digest %x, want %x", d, wd)
	}
	if _, err := o.Propose(ctx, rsmtest.Add(1)); err != nil {
		t.Fatal(err)
	}
	want.Apply(rsmtest.Add(1))

	// A clean Close writes a last snapshot: nothing is lost.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = start()
	defer n.Close()
	o, err = n.Open(ctx, "solo", rsmtest.NewCounter)
	if err != nil {
		t.Fatal(err)
	}
	_, wd = want.Peek()
	if d := query(t, o, "digest"); o.Applied() != 11 || !bytes.Equal(d, wd[:]) {
		t.Fatalf("after a clean Close: index %d digest %x, want 11 and %x", o.Applied(), d, wd)
	}
}

// TestJoinerCrashBeforeLocalSnapshot: a joiner restores a large state as
// it arrives and takes its local snapshot only later; killed before that,
// it has no local snapshot when it restarts and simply receives the state
// again. The data files are consistent throughout.
func TestJoinerCrashBeforeLocalSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping a 3-node TCP test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	n1 := startTCP(t, ctx, 1, dirs[0], nil)
	defer n1.Close()
	n2 := startTCP(t, ctx, 2, dirs[1], []string{n1.HWG().Addr()})
	defer n2.Close()
	seeds := []string{n1.HWG().Addr(), n2.HWG().Addr()}
	n3 := startTCP(t, ctx, 3, dirs[2], seeds)
	const pad = 3 << 20 // over ChunkSize: stored by the donor, streamed to the joiner
	big := func(rsm.ObjectID) (rsm.StateMachine, error) { return &rsmtest.Counter{Pad: pad}, nil }
	var objs []*rsm.Object
	for _, n := range []*rsm.Node{n1, n2} {
		o, err := n.Open(ctx, "big", big)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	if _, err := objs[0].Propose(ctx, rsmtest.Add(7)); err != nil {
		t.Fatal(err)
	}
	// received reports, for a node, the snapshots it restored from a donor
	// and the local snapshots it took.
	watch := func(n *rsm.Node) (received, taken *atomic.Int64) {
		received, taken = new(atomic.Int64), new(atomic.Int64)
		n.Observe(func(e rsm.Event) {
			switch e.Type {
			case rsm.EventSnapshotReceived:
				received.Add(1)
			case rsm.EventSnapshotTaken:
				taken.Add(1)
			}
		})
		return received, taken
	}
	received, taken := watch(n3)
	o3, err := n3.Open(ctx, "big", rsmtest.NewCounter)
	if err != nil {
		t.Fatal(err)
	}
	if received.Load() != 1 || taken.Load() != 0 {
		t.Fatalf("joiner restored %d snapshots and took %d, want 1 and none yet", received.Load(), taken.Load())
	}
	if got, want := query(t, o3, "digest"), query(t, objs[0], "digest"); !bytes.Equal(got, want) {
		t.Fatalf("joiner's digest %x, donor's %x", got, want)
	}
	if err := n3.Crash(); err != nil { // before any local snapshot
		t.Fatal(err)
	}
	db, err := storage.Open(dirs[2]+"/node.db", storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Check(t, db)
	if _, ok, err := db.Snapshot("big"); ok || err != nil {
		t.Fatalf("the crashed joiner has a local snapshot (%v, %v)", ok, err)
	}
	db.Close()

	n3 = startTCP(t, ctx, 3, dirs[2], seeds)
	defer n3.Close()
	received, _ = watch(n3)
	o3, err = n3.Open(ctx, "big", rsmtest.NewCounter)
	if err != nil {
		t.Fatal(err)
	}
	if received.Load() != 1 {
		t.Fatalf("restarted joiner restored %d snapshots, want 1", received.Load())
	}
	if _, err := objs[1].Propose(ctx, rsmtest.Add(9)); err != nil {
		t.Fatal(err)
	}
	converge(t, ctx, []*rsm.Object{objs[0], objs[1], o3}, 2)
	for _, n := range []*rsm.Node{n1, n2, n3} {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range dirs {
		db, err := storage.Open(dir+"/node.db", storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		storagetest.Check(t, db)
		db.Close()
	}
}

// TestStartDropsUnrecordedState: a data file holding the snapshot and
// applied index of an object that was never recorded (a crash between its
// first snapshot and its record) loses them at Start; a recorded object
// keeps its own.
func TestStartDropsUnrecordedState(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	n := startTCP(t, ctx, 1, dir, nil)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "node.db")
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutObject("kept", nil); err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"kept", "orphan"} {
		w, err := db.CreateSnapshot(o, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("state of " + o)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := db.SetApplied(o, 7); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	n = startTCP(t, ctx, 1, dir, nil)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for o, want := range map[string]bool{"kept": true, "orphan": false} {
		_, snap, err := db.Snapshot(o)
		_, applied, aerr := db.Applied(o)
		if err != nil || aerr != nil || snap != want || applied != want {
			t.Errorf("%s after Start: snapshot %v, applied %v (%v, %v); want %v", o, snap, applied, err, aerr, want)
		}
	}
	storagetest.Check(t, db)
}
