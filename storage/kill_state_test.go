package storage_test

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/lwgkit/lwgkit/storage"
	"github.com/lwgkit/lwgkit/storage/storagetest"
)

// writerEnv, when set to a file path, turns TestHelperProcess into the
// child process of TestStateSurvivesKill.
const writerEnv = "LWGKIT_STORAGE_WRITER_FILE"

// What the writer child writes: killObjects objects, each with its own
// goroutine, and killGroups groups, whose views one goroutine saves.
const (
	killObjects = 3
	killGroups  = 2
)

// The writer's options: snapshots of up to 24 KiB in 512-byte chunks, 2 per
// transaction, span up to 24 transactions.
var killOpts = storage.Options{ChunkSize: 512, ChunksPerTx: 2}

// killPayload is the snapshot an object writes at an applied index.
func killPayload(object string, index uint64) []byte {
	h := fnv.New64a()
	h.Write([]byte(object))
	seed := h.Sum64() ^ index
	return payload(seed, int(seed%(24<<10)))
}

// writeUntilKilled is the child of TestStateSurvivesKill. It continues from
// what the file holds, and prints a line once each change is on disk:
//
//	applied OBJECT INDEX     SetApplied returned
//	snap OBJECT GEN INDEX    Commit returned GEN, for the snapshot at INDEX
//	view GROUP ID            SaveView returned
//
// Each object's goroutine sets the applied index to the next one, and at
// every third index writes the object's snapshot (killPayload, with the
// index as its Meta). It stops after 30 s if nobody kills it.
func writeUntilKilled(path string) {
	die := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	db, err := storage.Open(path, killOpts)
	if err != nil {
		die(err)
	}
	fmt.Println("ready") // os.Stdout is unbuffered: each line is one write
	for o := range killObjects {
		go func() {
			object := fmt.Sprintf("obj-%d", o)
			index, _, err := db.Applied(object)
			if err != nil {
				die(err)
			}
			for {
				index++
				if err := db.SetApplied(object, index); err != nil {
					die(err)
				}
				fmt.Printf("applied %s %d\n", object, index)
				if index%3 != 0 {
					continue
				}
				w, err := db.CreateSnapshot(object, []byte(strconv.FormatUint(index, 10)))
				if err != nil {
					die(err)
				}
				data := killPayload(object, index)
				for len(data) > 0 { // in pieces that do not line up with chunks
					k := min(700, len(data))
					if _, err := w.Write(data[:k]); err != nil {
						die(err)
					}
					data = data[k:]
				}
				info, err := w.Commit()
				if err != nil {
					die(err)
				}
				fmt.Printf("snap %s %d %d\n", object, info.Gen, index)
			}
		}()
	}
	go func() {
		views, err := db.Views()
		if err != nil {
			die(err)
		}
		for {
			for g := range killGroups {
				group := fmt.Sprintf("group-%d", g)
				id := views[group].ID + 1
				if err := db.SaveView(group, id, []byte(fmt.Sprintf("members of %d", id))); err != nil {
					die(err)
				}
				views[group] = storage.SavedView{ID: id}
				fmt.Printf("view %s %d\n", group, id)
			}
		}
	}()
	time.Sleep(30 * time.Second) // the parent is gone; don't run forever
	os.Exit(0)
}

// acked is what the writer child reported on disk, over all its runs.
type acked struct {
	applied map[string]uint64    // object → highest index
	snap    map[string][2]uint64 // object → generation, index of the last commit
	view    map[string]uint64    // group → highest id
}

func (a *acked) parse(t *testing.T, out string) (lines int) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		nums := make([]uint64, len(f))
		for i := 2; i < len(f); i++ {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				nums = nil // cut by the kill
				break
			}
			nums[i] = n
		}
		switch {
		case nums == nil:
		case len(f) == 3 && f[0] == "applied":
			if nums[2] != a.applied[f[1]]+1 {
				t.Fatalf("%q after applied index %d", line, a.applied[f[1]])
			}
			a.applied[f[1]] = nums[2]
		case len(f) == 4 && f[0] == "snap":
			if last := a.snap[f[1]]; nums[2] <= last[0] || nums[3] <= last[1] {
				t.Fatalf("%q after snapshot generation %d at %d", line, last[0], last[1])
			}
			a.snap[f[1]] = [2]uint64{nums[2], nums[3]}
		case len(f) == 3 && f[0] == "view":
			if nums[2] != a.view[f[1]]+1 {
				t.Fatalf("%q after view %d", line, a.view[f[1]])
			}
			a.view[f[1]] = nums[2]
		default:
			continue // the last, partial line
		}
		lines++
	}
	return lines
}

// pendingAfterCrash counts, with raw bbolt, the snapshots the killed child
// was writing and the chunks they left.
func pendingAfterCrash(t *testing.T, path string) (gens, chunks int) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("pending")).ForEach(func(k, _ []byte) error {
			gens++
			c := tx.Bucket([]byte("chunks")).Cursor()
			for ck, _ := c.Seek(k); ck != nil && bytes.HasPrefix(ck, k); ck, _ = c.Next() {
				chunks++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return gens, chunks
}

// TestStateSurvivesKill SIGKILLs, at random points, a process that writes
// multi-chunk, multi-transaction snapshots, applied indexes (three objects
// at once, group-committed) and views, and checks after each kill that the
// file is consistent (storagetest.Check, which also checks every snapshot's
// chunks and sums), that Open removed what unfinished snapshots left, that
// every current snapshot reads back whole with the right bytes, and that
// nothing the process was told is on disk was lost.
func TestStateSurvivesKill(t *testing.T) {
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
	got := acked{applied: map[string]uint64{}, snap: map[string][2]uint64{}, view: map[string]uint64{}}
	stored := acked{applied: map[string]uint64{}, snap: map[string][2]uint64{}, view: map[string]uint64{}}

	const wantKills = 12
	kills, lines, crashedWriters, orphanChunks := 0, 0, 0, 0
	for deadline := time.Now().Add(20 * time.Second); kills < wantKills && time.Now().Before(deadline); {
		cmd, out, stderr := startKillable(t, exe, writerEnv, path, kills)
		// Not a protocol test: a real process, killed at a random time.
		time.Sleep(20*time.Millisecond + time.Duration(rng.Int64N(int64(200*time.Millisecond))))
		if err := cmd.Process.Kill(); err != nil {
			t.Fatalf("kill: %v", err)
		}
		rest, _ := io.ReadAll(out)
		cmd.Wait()
		if cmd.ProcessState.Exited() {
			t.Fatalf("writer exited by itself (%v) instead of being killed; stderr: %s",
				cmd.ProcessState, stderr.Bytes())
		}
		kills++
		lines += got.parse(t, string(rest))

		gens, chunks := pendingAfterCrash(t, path)
		if gens > 0 {
			crashedWriters++
			orphanChunks += chunks
		}
		db, err := storage.Open(path, storage.Options{})
		if err != nil {
			t.Fatalf("kill %d: Open: %v", kills, err)
		}
		storagetest.Check(t, db)
		if gens, chunks := leftovers(t, db); gens+chunks != 0 {
			t.Fatalf("kill %d: after Open, %d unfinished snapshots with %d chunks remain", kills, gens, chunks)
		}
		checkAfterKill(t, kills, db, &got, &stored)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if kills == 0 {
		t.Fatal("no kills within the time limit")
	}
	t.Logf("%d kills, %d acknowledged changes, %d kills during a snapshot (%d orphaned chunks removed by Open); stored: applied %v, snapshots %v, views %v",
		kills, lines, crashedWriters, orphanChunks, stored.applied, stored.snap, stored.view)
	if len(got.snap) == 0 {
		t.Fatal("the writer committed no snapshot: the test tested little")
	}
	if kills == wantKills && crashedWriters == 0 {
		t.Fatal("no kill came while a snapshot was being written: the test tested little")
	}
	storagetest.CheckFile(t, path)
}

// leftovers counts, in an open DB, snapshots recorded as being written and
// chunks of no committed generation.
func leftovers(t *testing.T, db *storage.DB) (gens, chunks int) {
	t.Helper()
	err := db.Bolt().View(func(tx *bbolt.Tx) error {
		gens = tx.Bucket([]byte("pending")).Stats().KeyN
		return tx.Bucket([]byte("chunks")).ForEach(func(k, _ []byte) error {
			if tx.Bucket([]byte("generations")).Get(k[:8]) == nil {
				chunks++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return gens, chunks
}

// checkAfterKill compares the reopened file with what the writer was told
// (got) and what the file held after the previous kill (stored), and
// updates stored. Each object and group has one change in flight at a
// time, so the file holds what was acknowledged or, if the kill came
// between a commit and its print, the one change after it.
func checkAfterKill(t *testing.T, kill int, db *storage.DB, got, stored *acked) {
	t.Helper()
	for o := range killObjects {
		object := fmt.Sprintf("obj-%d", o)
		index, _, err := db.Applied(object)
		if err != nil {
			t.Fatalf("kill %d: Applied(%s): %v", kill, object, err)
		}
		if base := max(got.applied[object], stored.applied[object]); index < got.applied[object] || index > base+1 {
			t.Fatalf("kill %d: %s applied index %d on disk, acknowledged %d, stored before %d",
				kill, object, index, got.applied[object], stored.applied[object])
		}
		stored.applied[object] = index
		got.applied[object] = index // the child goes on from here

		info, ok, err := db.Snapshot(object)
		if err != nil {
			t.Fatalf("kill %d: Snapshot(%s): %v", kill, object, err)
		}
		last := got.snap[object]
		if !ok {
			if last[0] != 0 {
				t.Fatalf("kill %d: %s has no snapshot, but generation %d was committed", kill, object, last[0])
			}
			continue
		}
		at, err := strconv.ParseUint(string(info.Meta), 10, 64)
		switch {
		case err != nil:
			t.Fatalf("kill %d: %s snapshot meta %q", kill, object, info.Meta)
		case info.Gen < last[0]:
			t.Fatalf("kill %d: %s current snapshot generation %d, but %d was committed", kill, object, info.Gen, last[0])
		case info.Gen == last[0] && at != last[1]:
			t.Fatalf("kill %d: %s generation %d is at index %d, was committed at %d", kill, object, info.Gen, at, last[1])
		case at > index || at%3 != 0:
			t.Fatalf("kill %d: %s snapshot at index %d, applied %d", kill, object, at, index)
		}
		data, err := readAll(t, db, object, info.Gen)
		if err != nil {
			t.Fatalf("kill %d: reading %s generation %d: %v", kill, object, info.Gen, err)
		}
		if !bytes.Equal(data, killPayload(object, at)) {
			t.Fatalf("kill %d: %s generation %d: %d bytes that are not the snapshot at %d", kill, object, info.Gen, len(data), at)
		}
		stored.snap[object] = [2]uint64{info.Gen, at}
		got.snap[object] = stored.snap[object]
	}
	views, err := db.Views()
	if err != nil {
		t.Fatalf("kill %d: Views: %v", kill, err)
	}
	for g := range killGroups {
		group := fmt.Sprintf("group-%d", g)
		v := views[group]
		if base := max(got.view[group], stored.view[group]); v.ID < got.view[group] || v.ID > base+1 {
			t.Fatalf("kill %d: %s view %d on disk, acknowledged %d, stored before %d",
				kill, group, v.ID, got.view[group], stored.view[group])
		}
		if v.ID > 0 && string(v.Members) != fmt.Sprintf("members of %d", v.ID) {
			t.Fatalf("kill %d: %s view %d with members %q", kill, group, v.ID, v.Members)
		}
		stored.view[group] = v.ID
		got.view[group] = v.ID
	}
}
