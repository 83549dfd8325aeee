package consumer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

var chainTable = event.Table{Schema: "public", Name: "eventcore_events", Columns: []event.Column{
	{Name: "event_id", Type: "text", OID: 25}, {Name: "stream_id", Type: "text", OID: 25},
	{Name: "stream_version", Type: "bigint", OID: 20}, {Name: "event_type", Type: "text", OID: 25},
}}

// chainItem is a transaction (events > 0) or a heartbeat in a test chain.
type chainItem struct {
	pos, prev event.Position
	events    int
}

// messages encodes the items as capture publishes them.
func messages(items []chainItem) []*nats.Msg {
	s := feed.Subjects{Prefix: "tidemark"}
	var out []*nats.Msg
	for _, it := range items {
		if it.events == 0 {
			out = append(out, s.EncodeHeartbeat("7301", event.Heartbeat{LSN: it.pos, PrevLSN: it.prev, Time: time.Unix(1, 0)}))
			continue
		}
		for i := range it.events {
			e := &event.Event{Table: chainTable.QualifiedName(), CommitLSN: it.pos - 8, EndLSN: it.pos, PrevLSN: it.prev,
				CommitTime: time.Unix(int64(it.pos), 0).UTC(), XID: uint32(it.pos), Index: i, Count: it.events,
				Values: [][]byte{fmt.Appendf(nil, "%d-%d", it.pos, i), []byte("s"), fmt.Appendf(nil, "%d", it.pos*10+event.Position(i)), []byte("T")}}
			out = append(out, s.EncodeEvent("7301", &chainTable, event.LayoutOf(chainTable), e))
		}
	}
	return out
}

func testFeed(c *Cursor) *liveFeed {
	return &liveFeed{c: c, tables: map[string]*event.Table{chainTable.ID(): &chainTable}, assembling: map[event.Position]*txnParts{}}
}

// drain returns the event ids the chain delivers now.
func drain(t *testing.T, l *liveFeed) []string {
	t.Helper()
	var ids []string
	for {
		tx, err := l.ready(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if tx == nil {
			return ids
		}
		for _, e := range tx.Events {
			ids = append(ids, e.EventID)
		}
	}
}

// The feed's order is not the chain's (re-sends after a timeout) and holds
// duplicates (re-sends after the duplicate window, a capture restart): the
// cursor delivers each event once, in chain order, whatever the order.
func TestLiveFeed_ChainOrderAndDuplicates(t *testing.T) {
	items := []chainItem{{100, 50, 2}, {150, 100, 0}, {200, 150, 1}, {300, 200, 3}, {350, 300, 0}, {400, 350, 2}}
	want := []string{"100-0", "100-1", "200-0", "300-0", "300-1", "300-2", "400-0", "400-1"}
	msgs := messages(items)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		feedMsgs := append([]*nats.Msg(nil), msgs...)
		for range rng.IntN(6) { // re-sends
			feedMsgs = append(feedMsgs, msgs[rng.IntN(len(msgs))])
		}
		rng.Shuffle(len(feedMsgs), func(i, j int) { feedMsgs[i], feedMsgs[j] = feedMsgs[j], feedMsgs[i] })
		c := &Cursor{w: 50, known: true}
		l := testFeed(c)
		var got []string
		for _, m := range feedMsgs {
			if err := l.add(m); err != nil {
				t.Fatal(err)
			}
			got = append(got, drain(t, l)...)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d: delivered %v, want %v", round, got, want)
		}
		if c.w != 400 || l.held != 0 || len(l.pending) != 0 {
			t.Fatalf("round %d: w %s, %d held, %d pending after the chain's end", round, c.w, l.held, len(l.pending))
		}
	}
}

// A cursor resumed in the middle of a transaction delivers the rest of it
// and nothing before.
func TestLiveFeed_ResumeMidTransaction(t *testing.T) {
	items := []chainItem{{100, 50, 3}, {200, 100, 1}}
	p := Position{End: 100, Index: 1}
	c := &Cursor{w: 99, partial: &p, known: true}
	l := testFeed(c)
	var got []string
	for _, m := range messages(items) {
		if err := l.add(m); err != nil {
			t.Fatal(err)
		}
		got = append(got, drain(t, l)...)
	}
	if want := "[100-2 200-0]"; fmt.Sprint(got) != want {
		t.Fatalf("delivered %v, want %s", got, want)
	}
}

// An item whose predecessor is missing waits: nothing after a hole is
// delivered before the hole closes.
func TestLiveFeed_HoleWaits(t *testing.T) {
	msgs := messages([]chainItem{{100, 50, 1}, {200, 100, 1}, {300, 200, 1}})
	c := &Cursor{w: 50, known: true}
	l := testFeed(c)
	for _, m := range []*nats.Msg{msgs[1], msgs[2]} {
		if err := l.add(m); err != nil {
			t.Fatal(err)
		}
		if got := drain(t, l); len(got) != 0 {
			t.Fatalf("delivered %v across a hole", got)
		}
	}
	if len(l.pending) != 2 {
		t.Fatalf("%d pending, want 2", len(l.pending))
	}
	// the archive delivered up to 100 meanwhile
	c.advance(100)
	l.sweep()
	if got := drain(t, l); fmt.Sprint(got) != "[200-0 300-0]" {
		t.Fatalf("after the hole closed: %v", got)
	}
}

// FuzzLiveFeedAdd feeds arbitrary messages to the chain follower: it must
// return errors, never panic or allocate by a count the message states.
func FuzzLiveFeedAdd(f *testing.F) {
	for _, m := range messages([]chainItem{{100, 50, 2}, {150, 100, 0}}) {
		f.Add(m.Header.Get(feed.HeaderKind), m.Header.Get(feed.HeaderTxn), m.Header.Get(feed.HeaderSchemaID), m.Data)
	}
	f.Add("event", "7301 0/64 0/32 0/60 1970-01-01T00:01:40Z 100 5/2147483647", chainTable.ID(), []byte(`{}`))
	f.Fuzz(func(t *testing.T, kind, txn, def string, body []byte) {
		m := nats.NewMsg("tidemark.events.public.eventcore_events.T.s")
		m.Header.Set(feed.HeaderFeed, "2")
		m.Header.Set(feed.HeaderKind, kind)
		m.Header.Set(feed.HeaderTxn, txn)
		m.Header.Set(feed.HeaderSchemaID, def)
		m.Data = body
		c := &Cursor{w: 10, known: true}
		l := testFeed(c)
		if err := l.add(m); err != nil {
			return
		}
		_, _ = l.ready(context.Background())
	})
}
