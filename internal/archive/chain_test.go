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
	c := newChain(10, 100)
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
	c := newChain(10, 100)
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
	c := newChain(20, 100)
	c.addHeartbeat(event.Heartbeat{LSN: 40, PrevLSN: 30}, "s", &fakeMsg{})
	c.addEvent(ev(30, 5, 0, 1), chainTable, "s", &fakeMsg{})
	acc, _ := takeAll(c)
	if fmt.Sprint(acc) != "[30 40]" {
		t.Fatalf("accepted %v", acc)
	}
}

func TestChain_BufferLimit(t *testing.T) {
	c := newChain(10, 3)
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
	c2 := newChain(10, 2)
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
	c := newChain(0, 1<<20)
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
