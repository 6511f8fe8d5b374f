package hwg

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestEntryLogChunks(t *testing.T) {
	var l entryLog
	const n = 3*logChunk + 5
	for s := uint64(1); s <= n; s++ {
		l.append(Entry{Seq: s})
	}
	check := func(base uint64) {
		t.Helper()
		for s := base + 1; s <= n; s++ {
			if got := l.at(s).Seq; got != s {
				t.Fatalf("base %d: at(%d) has seq %d", base, s, got)
			}
		}
		for _, r := range [][2]uint64{{base, base + 1}, {base, n}, {logChunk - 3, logChunk + 3}, {logChunk, 2 * logChunk}, {n - 1, n}} {
			from, to := max(r[0], base), min(r[1], n)
			if from > to {
				continue
			}
			s := l.slice(from, to)
			if uint64(len(s)) != to-from {
				t.Fatalf("slice(%d, %d) has %d entries", from, to, len(s))
			}
			for i, e := range s {
				if e.Seq != from+1+uint64(i) {
					t.Fatalf("slice(%d, %d)[%d] has seq %d", from, to, i, e.Seq)
				}
			}
			// Within one chunk the slice is the log's own memory.
			if len(s) > 0 && (from)/logChunk == (to-1)/logChunk && &s[0] != l.at(from+1) {
				t.Fatalf("slice(%d, %d) within a chunk was copied", from, to)
			}
		}
		if got := l.clone(base, n); len(got) != int(n-base) || (len(got) > 0 && got[0].Seq != base+1) {
			t.Fatalf("clone(%d, %d): %d entries", base, n, len(got))
		}
	}
	check(0)
	kept := l.slice(10, 20)
	for _, base := range []uint64{logChunk - 1, logChunk, 2*logChunk + 7, n} {
		l.collect(base)
		check(base)
		if want := int((n-1)/logChunk - base/logChunk + 1); base < n && len(l.chunks) != want {
			t.Fatalf("collect(%d) kept %d chunks, want %d", base, len(l.chunks), want)
		}
	}
	// What was handed out before stays intact.
	for i, e := range kept {
		if e.Seq != 11+uint64(i) {
			t.Fatalf("a slice handed out changed: [%d] has seq %d", i, e.Seq)
		}
	}
	if l.slice(n, n) != nil {
		t.Fatal("an empty slice is not nil")
	}
}

// A view long enough to span several chunks of the log, ended by the
// coordinator's crash while thousands of messages are in flight: the
// survivors deliver the same messages in the same order, every survivor's
// multicast in FIFO order; and collecting as the runtime does yields
// exactly what Ready does.
func TestLongViewAcrossLogChunks(t *testing.T) {
	run := func(reuse bool) *cluster {
		c := newCluster(t, Config{MaxBatch: 100}, procs(3)...)
		c.reuse = reuse
		c.rng = rand.New(rand.NewPCG(3, 4))
		sent := 0
		for round := range 3*logChunk/99 + 1 {
			for range 99 {
				sent++
				c.multicast(NodeID(1+sent%3), fmt.Sprint(sent))
			}
			if round%4 != 3 {
				c.pump()
			}
		}
		for range 700 {
			sent++
			c.multicast(NodeID(1+sent%3), fmt.Sprint(sent))
		}
		c.collect()
		for range 500 { // part of it is in flight
			if len(c.queue) > 0 {
				m := c.queue[0]
				c.queue = c.queue[1:]
				if err := c.g(m.To.Node).Step(m); err != nil {
					t.Fatal(err)
				}
			}
		}
		c.crash(1)
		c.suspect(proc(1))
		c.tick(40)
		assertLastView(t, c, View{ID: 2, Members: []Process{proc(2), proc(3)}}, 2, 3)
		d2, d3 := c.delivered(2, 1), c.delivered(3, 1)
		if len(d2) < 2*logChunk || !slices.Equal(d2, d3) {
			t.Fatalf("view 1: node 2 delivered %d, node 3 %d messages (the same: %v)", len(d2), len(d3), slices.Equal(d2, d3))
		}
		// Every multicast of nodes 2 and 3 is delivered, in FIFO order.
		all := strings.Fields(strings.Join(c.delivered(2, 0), " "))
		for _, from := range []int{2, 3} {
			last := 0
			for _, p := range all {
				var k int
				fmt.Sscan(p, &k)
				if 1+k%3 == from {
					if k <= last {
						t.Fatalf("node %d's %d delivered after its %d", from, k, last)
					}
					last = k
				}
			}
			if sent-last >= 3 {
				t.Fatalf("node %d's last delivered multicast is %d of %d", from, last, sent)
			}
		}
		return c
	}
	a, b := run(false), run(true)
	if !reflect.DeepEqual(a.readies, b.readies) {
		t.Fatal("Ready and the runtime's way of collecting differ")
	}
}
