package hwg

import (
	"fmt"
	"testing"
)

// The node's event queue hands out single events and runs of deliveries
// in order, one event at a time, across chunks and while refilled.
func TestEventQueueOrder(t *testing.T) {
	var q eventQueue
	var want []Event
	next := uint64(0)
	push := func(k int) {
		if k == 0 {
			next++
			e := Event{Type: EventBlock, Msg: MsgID{Seq: next}}
			want = append(want, e)
			q.push(output{ev: e})
			return
		}
		run := make([]Entry, k)
		for i := range run {
			next++
			run[i] = Entry{ID: MsgID{Seq: next}, Payload: fmt.Append(nil, next)}
			want = append(want, Event{Type: EventDeliver, Msg: run[i].ID, Payload: run[i].Payload})
		}
		q.push(output{ev: Event{Type: EventDeliver}, run: run})
	}
	var got []Event
	pop := func(k int) {
		for ; k > 0 && q.len() > 0; k-- {
			got = append(got, q.peek())
			q.pop()
		}
	}
	for round := range 50 {
		for i := range 3 * eventChunk / 2 {
			push((round + i) % 5)
		}
		pop(1 + round*97%1500)
	}
	pop(q.len())
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Type != want[i].Type || got[i].Msg != want[i].Msg || string(got[i].Payload) != string(want[i].Payload) {
			t.Fatalf("event %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if q.len() != 0 || len(q.chunks) > 1 {
		t.Fatalf("queue not empty: %d events in %d chunks", q.len(), len(q.chunks))
	}
}
