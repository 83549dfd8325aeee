package archive

import (
	"fmt"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
)

// fakeMsg records how it was settled.
type fakeMsg struct {
	acked int
	naked int
}

func (m *fakeMsg) Ack() error                         { m.acked++; return nil }
func (m *fakeMsg) Nak() error                         { m.naked++; return nil }
func (m *fakeMsg) NakWithDelay(_ time.Duration) error { m.naked++; return nil }

var chainTable = &event.Table{Schema: "public", Name: "t", Columns: []event.Column{{Name: "v", Type: "text", OID: 25}}}

func ev(end, prev event.Position, index, count int) *event.Event {
	return &event.Event{Table: "public.t", CommitLSN: end - 1, EndLSN: end, PrevLSN: prev, Index: index, Count: count,
		CommitTime: time.Unix(int64(end), 0).UTC(), Values: [][]byte{[]byte(fmt.Sprint(end, index))}}
}

// takeAll returns the positions next yields until it yields nothing.
func takeAll(c *chain) (accepted, dups []uint64) {
	for {
		it, dup := c.next()
		if it == nil {
			return
		}
		if dup {
			dups = append(dups, uint64(it.pos))
		} else {
			accepted = append(accepted, uint64(it.pos))
		}
	}
}

func TestChain_InOrderAndDuplicates(t *testing.T) {
	c := newChain(10, 100, nil)
	c.addEvent(ev(20, 10, 0, 2), chainTable, "s", &fakeMsg{})
	if got, _ := takeAll(c); len(got) != 0 {
		t.Fatalf("incomplete transaction accepted: %v", got)
	}
	if stuck, _ := c.gap(); !stuck {
		t.Fatal("incomplete head not reported as waiting")
	}
	c.addEvent(ev(20, 10, 1, 2), chainTable, "s", &fakeMsg{})
	c.addHeartbeat(event.Heartbeat{LSN: 25, PrevLSN: 20}, "s", &fakeMsg{})
	acc, _ := takeAll(c)
	if fmt.Sprint(acc) != "[20 25]" || c.w != 25 {
		t.Fatalf("accepted %v, w %d", acc, c.w)
	}
	if res, _ := c.addEvent(ev(20, 10, 0, 2), chainTable, "s", &fakeMsg{}); res != duplicate {
		t.Fatalf("re-delivered archived event: %v, want duplicate", res)
	}
	if res, _ := c.addHeartbeat(event.Heartbeat{LSN: 25, PrevLSN: 20}, "s", &fakeMsg{}); res != duplicate {
		t.Fatalf("re-delivered heartbeat: %v, want duplicate", res)
	}
	// A redelivery of a held event is merged: its message settles with the item.
	c.addEvent(ev(30, 25, 0, 2), chainTable, "s", &fakeMsg{})
	c.addEvent(ev(30, 25, 0, 2), chainTable, "s", &fakeMsg{})
	if c.buffered() != 1 {
		t.Fatalf("buffered %d events, want 1", c.buffered())
	}
	c.addEvent(ev(30, 25, 1, 2), chainTable, "s", &fakeMsg{})
	it, dup := c.next()
	if it == nil || dup || len(it.msgs) != 3 || it.events[0] == nil || it.events[1] == nil {
		t.Fatalf("item = %+v dup %v", it, dup)
	}
}

func TestChain_HoleThenFill(t *testing.T) {
	c := newChain(10, 100, nil)
	c.addHeartbeat(event.Heartbeat{LSN: 40, PrevLSN: 30}, "s", &fakeMsg{})
	c.addEvent(ev(30, 20, 0, 1), chainTable, "s", &fakeMsg{})
	if acc, _ := takeAll(c); len(acc) != 0 {
		t.Fatalf("accepted across a hole: %v", acc)
	}
	stuck, missing := c.gap()
	if !stuck || missing != 20 {
		t.Fatalf("gap = %v %d, want stuck waiting for 20", stuck, missing)
	}
	c.addEvent(ev(20, 10, 0, 1), chainTable, "s", &fakeMsg{})
	acc, _ := takeAll(c)
	if fmt.Sprint(acc) != "[20 30 40]" {
		t.Fatalf("accepted %v", acc)
	}
	if stuck, _ := c.gap(); stuck {
		t.Fatal("still stuck after fill")
	}
}

func TestChain_RewindReplayConnects(t *testing.T) {
	// After a rewind capture restarts at the slot position (5 <= w) and the
	// first item carries PrevLSN 5: items up to w are duplicates, the rest chain.
	c := newChain(20, 100, nil)
	c.addHeartbeat(event.Heartbeat{LSN: 40, PrevLSN: 30}, "s", &fakeMsg{})
	c.addEvent(ev(30, 5, 0, 1), chainTable, "s", &fakeMsg{})
	acc, _ := takeAll(c)
	if fmt.Sprint(acc) != "[30 40]" {
		t.Fatalf("accepted %v", acc)
	}
}

func TestChain_BufferLimit(t *testing.T) {
	c := newChain(10, 3, nil)
	msgs := map[event.Position]*fakeMsg{}
	for _, p := range []event.Position{50, 60, 70} {
		msgs[p] = &fakeMsg{}
		if res, _ := c.addEvent(ev(p, p-10, 0, 1), chainTable, "s", msgs[p]); res != added {
			t.Fatalf("add %d: %v", p, res)
		}
	}
	if res, _ := c.addEvent(ev(80, 70, 0, 1), chainTable, "s", &fakeMsg{}); res != rejected {
		t.Fatalf("add above a full buffer: %v, want rejected", res)
	}
	// A lower item evicts the highest one.
	res, evicted := c.addEvent(ev(40, 30, 0, 1), chainTable, "s", &fakeMsg{})
	if res != added || len(evicted) != 1 || evicted[0].pos != 70 {
		t.Fatalf("add 40: %v evicted %v", res, evicted)
	}
	// The head is always taken, even when nothing can be evicted.
	c2 := newChain(10, 2, nil)
	c2.addEvent(ev(20, 10, 0, 3), chainTable, "s", &fakeMsg{})
	c2.addEvent(ev(20, 10, 1, 3), chainTable, "s", &fakeMsg{})
	if res, _ := c2.addEvent(ev(20, 10, 2, 3), chainTable, "s", &fakeMsg{}); res != added {
		t.Fatalf("head transaction larger than the buffer: %v, want added", res)
	}
	if acc, _ := takeAll(c2); fmt.Sprint(acc) != "[20]" {
		t.Fatalf("accepted %v", acc)
	}
}

func TestChain_ManyItemsStayIndexed(t *testing.T) {
	c := newChain(0, 1<<20, nil)
	for i := event.Position(1); i <= 5000; i++ {
		c.addEvent(ev(i*10, (i-1)*10, 0, 1), chainTable, "s", &fakeMsg{})
		if it, dup := c.next(); it == nil || dup {
			t.Fatalf("item %d not accepted", i)
		}
	}
	if len(c.asc) > 200 || len(c.desc) > 200 {
		t.Fatalf("stale index entries pile up: asc %d desc %d", len(c.asc), len(c.desc))
	}
	if len(c.drain()) != 0 || c.buffered() != 0 {
		t.Fatal("drain of an empty buffer returned items")
	}
}

func TestChain_LargeTransactionStreams(t *testing.T) {
	const n = streamMinEvents + 10
	c := newChain(10, 100, nil)
	// Not connected yet (a hole before it): buffered up to the limit only.
	for i := range 150 {
		res, _ := c.addEvent(ev(30, 20, i, n), chainTable, "s", &fakeMsg{})
		if want := added; i >= 100 {
			want = rejected
			if res != want {
				t.Fatalf("event %d of a disconnected large transaction over the limit: %v, want rejected", i, res)
			}
		} else if res != want {
			t.Fatalf("event %d: %v", i, res)
		}
	}
	if c.streamHead() != nil {
		t.Fatal("a disconnected transaction is streamed")
	}
	// The item that fills the hole evicts the buffered transaction (its
	// stream has not begun); it comes back with redeliveries.
	_, evicted := c.addHeartbeat(event.Heartbeat{LSN: 20, PrevLSN: 10}, "s", &fakeMsg{})
	if len(evicted) != 1 || evicted[0].pos != 30 || len(evicted[0].allMsgs()) != 100 {
		t.Fatalf("evicted %v, want the large transaction with its 100 messages", evicted)
	}
	if it, dup := c.next(); it == nil || dup || it.pos != 20 {
		t.Fatalf("heartbeat not accepted: %v", it)
	}
	for i := range 100 {
		c.addEvent(ev(30, 20, i, n), chainTable, "s", &fakeMsg{})
	}
	head := c.streamHead()
	if head == nil {
		t.Fatal("connected large transaction is not the stream head")
	}
	taken := 0
	take := func() {
		for {
			h, ok := c.takeNext(head)
			if !ok {
				return
			}
			if h.e.Index != taken {
				t.Fatalf("took index %d, want %d", h.e.Index, taken)
			}
			taken++
		}
	}
	take()
	if taken != 100 || c.buffered() != 0 {
		t.Fatalf("took %d, buffered %d", taken, c.buffered())
	}
	// Redeliveries of streamed events are settled with the stream.
	if res, _ := c.addEvent(ev(30, 20, 5, n), chainTable, "s", &fakeMsg{}); res != streamedEvent {
		t.Fatalf("redelivered streamed event: %v", res)
	}
	// Out of order above the limit: rejected, except the one the stream waits for.
	for i := 200; i < 300; i++ {
		c.addEvent(ev(30, 20, i, n), chainTable, "s", &fakeMsg{})
	}
	if res, _ := c.addEvent(ev(30, 20, 300, n), chainTable, "s", &fakeMsg{}); res != rejected {
		t.Fatalf("out-of-order event over the limit: %v, want rejected", res)
	}
	for i := 100; i < n; i++ {
		if res, _ := c.addEvent(ev(30, 20, i, n), chainTable, "s", &fakeMsg{}); res != added && !(i >= 200 && i < 300) {
			t.Fatalf("in-order event %d: %v", i, res)
		}
		take()
	}
	if taken != n || c.buffered() != 0 {
		t.Fatalf("took %d of %d, buffered %d", taken, n, c.buffered())
	}
	it, dup := c.next()
	if it == nil || dup || it.pos != 30 || c.w != 30 {
		t.Fatalf("streamed transaction not accepted once complete: %v", it)
	}
}

func TestChain_PartiallyArchivedTransaction(t *testing.T) {
	for _, tc := range []struct {
		name            string
		count, archived int
	}{
		{"small", 5, 3},
		{"small-all", 5, 5},
		{"large", streamMinEvents + 5, 2000},
		{"large-all", streamMinEvents + 5, streamMinEvents + 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newChain(10, 100, map[event.Position]int{20: tc.archived})
			if res, _ := c.addEvent(ev(20, 10, 0, tc.count), chainTable, "s", &fakeMsg{}); res != archivedEvent {
				t.Fatalf("archived event: %v, want archivedEvent", res)
			}
			for i := tc.archived; i < tc.count; i++ {
				if res, _ := c.addEvent(ev(20, 10, i, tc.count), chainTable, "s", &fakeMsg{}); res != added {
					t.Fatalf("event %d: %v", i, res)
				}
				if head := c.streamHead(); head != nil {
					for _, ok := c.takeNext(head); ok; _, ok = c.takeNext(head) {
					}
				}
			}
			it, _ := c.next()
			if it == nil || it.pos != 20 {
				t.Fatalf("transaction not accepted: %v", it)
			}
			if !it.large {
				for i, e := range it.events {
					if (e == nil) != (i < tc.archived) {
						t.Fatalf("event %d held: %v", i, e != nil)
					}
				}
			}
		})
	}
}
