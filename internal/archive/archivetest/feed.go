package archivetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
)

// SystemID is the source system id the synthetic feed carries.
const SystemID = "7300000000000000001"

// Table is the synthetic feed's table: EventCore's first five columns,
// event_id to event_data, the ones the feed fills.
var Table = func() event.Table {
	t := eventcore.TableDef()
	t.Columns = t.Columns[:5]
	return t
}()

// OtherTable is a second table, for transactions that span two tables.
var OtherTable = event.Table{Schema: "public", Name: "side_effects", Columns: []event.Column{
	{Name: "event_id", Type: "uuid", OID: 2950, NotNull: true, Key: true},
	{Name: "note", Type: "text", OID: 25},
}}

// Feed is a stream plus a generator of chain items.
type Feed struct {
	JS       jetstream.JetStream
	Conn     *nats.Conn
	Stream   string
	Subjects feed.Subjects

	mu     sync.Mutex
	pos    event.Position // position of the last generated item
	prev   event.Position // PrevLSN of the next item: 0 first, as after capture's snapshot
	xid    uint32
	serial int
	clock  time.Time
	rng    *rand.Rand
}

// Item is one generated chain item: a transaction's events or a heartbeat.
type Item struct {
	Events    []*event.Event
	Tables    []*event.Table
	Heartbeat *event.Heartbeat
}

// Pos returns the item's chain position.
func (it Item) Pos() event.Position {
	if it.Heartbeat != nil {
		return it.Heartbeat.LSN
	}
	return it.Events[0].EndLSN
}

// NewFeed connects to url, creates stream (subjects <prefix>.>, file
// storage, limits retention) and its META bucket with both tables'
// definitions.
func NewFeed(tb testing.TB, url, stream string) *Feed {
	tb.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		tb.Fatalf("connect nats: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	f := &Feed{JS: js, Conn: nc, Stream: stream, Subjects: feed.Subjects{Prefix: "tidemark"},
		pos: 0x1_0000_0000, clock: time.Date(2026, 3, 1, 10, 0, 50, 0, time.UTC), rng: rand.New(rand.NewPCG(1, 2))}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{f.Subjects.All()},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute}); err != nil {
		tb.Fatalf("create stream: %v", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: feed.MetaBucket(stream)})
	if err != nil {
		tb.Fatalf("create META: %v", err)
	}
	for _, t := range []event.Table{Table, OtherTable} {
		b, _ := json.Marshal(t)
		if _, err := kv.Put(ctx, feed.TableKey(t.ID()), b); err != nil {
			tb.Fatalf("put table: %v", err)
		}
	}
	return f
}

// Txn generates the next transaction of n events of Table (and, when
// other > 0, other more of OtherTable), committing step after the previous
// item. Commit times wobble by up to a second to be non-monotonic.
func (f *Feed) Txn(n, other int) Item {
	f.mu.Lock()
	defer f.mu.Unlock()
	prev := f.prev
	f.pos += event.Position(0x100 + f.rng.IntN(0x100))
	f.prev = f.pos
	f.xid++
	f.clock = f.clock.Add(100 * time.Millisecond)
	commit := f.clock.Add(time.Duration(f.rng.IntN(1000)-500) * time.Millisecond).Truncate(time.Microsecond)
	count := n + other
	it := Item{}
	for i := range count {
		f.serial++
		e := &event.Event{Table: Table.QualifiedName(), CommitLSN: f.pos - 0x20, EndLSN: f.pos, PrevLSN: prev,
			CommitTime: commit, XID: f.xid, Index: i, Count: count}
		t := &Table
		id := []byte(fmt.Sprintf("00000000-0000-7000-8000-%012d", f.serial))
		if i < n {
			stream := fmt.Sprintf("order-%d", f.serial%7)
			e.Values = [][]byte{id, []byte(stream), []byte(fmt.Sprint(f.serial)), []byte("OrderPlaced"),
				[]byte(fmt.Sprintf(`{"n": %d, "pad": "%s"}`, f.serial, padding(f.serial)))}
		} else {
			t = &OtherTable
			e.Table = OtherTable.QualifiedName()
			e.Values = [][]byte{id, nil}
		}
		it.Events = append(it.Events, e)
		it.Tables = append(it.Tables, t)
	}
	return it
}

// NextPos returns the position PublishLargeTxn gives the next transaction.
func (f *Feed) NextPos() event.Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pos + 0x100
}

// PublishLargeTxn generates the next transaction as n events of Table
// and publishes them in index order, a few thousand at a time, without
// keeping them: a transaction too large to hold in memory comfortably. It
// returns the transaction's position and its event ids.
func (f *Feed) PublishLargeTxn(tb testing.TB, n int) (event.Position, []string) {
	tb.Helper()
	const chunk = 5000
	f.mu.Lock()
	prev := f.prev
	f.pos += 0x100
	f.prev = f.pos
	f.xid++
	f.clock = f.clock.Add(100 * time.Millisecond)
	pos, xid, commit := f.pos, f.xid, f.clock
	first := f.serial + 1
	f.serial += n
	f.mu.Unlock()
	ids := make([]string, 0, n)
	for start := 0; start < n; start += chunk {
		it := Item{}
		for i := start; i < min(start+chunk, n); i++ {
			serial := first + i
			id := fmt.Sprintf("00000000-0000-7000-8000-%012d", serial)
			ids = append(ids, id)
			it.Events = append(it.Events, &event.Event{Table: Table.QualifiedName(), CommitLSN: pos - 0x20, EndLSN: pos,
				PrevLSN: prev, CommitTime: commit, XID: xid, Index: i, Count: n,
				Values: [][]byte{[]byte(id), []byte(fmt.Sprintf("big-%d", serial%7)), []byte(fmt.Sprint(serial)),
					[]byte("Imported"), []byte(fmt.Sprintf(`{"n": %d}`, serial))}})
			it.Tables = append(it.Tables, &Table)
		}
		f.Publish(tb, false, it)
	}
	return pos, ids
}

// HeartbeatItem generates the next heartbeat.
func (f *Feed) HeartbeatItem() Item {
	f.mu.Lock()
	defer f.mu.Unlock()
	prev := f.prev
	f.pos += 0x40
	f.prev = f.pos
	f.clock = f.clock.Add(100 * time.Millisecond)
	return Item{Heartbeat: &event.Heartbeat{LSN: f.pos, PrevLSN: prev, Time: f.clock}}
}

// Publish publishes items in order. With resend, messages carry a fresh
// message id, as a capture re-send outside the duplicate window would.
func (f *Feed) Publish(tb testing.TB, resend bool, items ...Item) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var futures []jetstream.PubAckFuture
	wait := func() {
		for _, fut := range futures {
			select {
			case <-fut.Ok():
			case err := <-fut.Err():
				tb.Fatalf("publish: %v", err)
			case <-ctx.Done():
				tb.Fatal("publish: no ack within 60s")
			}
		}
		futures = futures[:0]
	}
	for _, it := range items {
		for _, m := range f.Messages(it) {
			if resend {
				m.Header.Set(feed.HeaderMsgID, m.Header.Get(feed.HeaderMsgID)+fmt.Sprintf("-resend-%d", f.rng.Int()))
			}
			fut, err := f.JS.PublishMsgAsync(m)
			if err != nil {
				tb.Fatalf("publish: %v", err)
			}
			if futures = append(futures, fut); len(futures) >= 1000 {
				wait()
			}
		}
	}
	wait()
}

// Messages returns the feed messages of an item.
func (f *Feed) Messages(it Item) []*nats.Msg {
	if it.Heartbeat != nil {
		return []*nats.Msg{f.Subjects.EncodeHeartbeat(SystemID, *it.Heartbeat)}
	}
	out := make([]*nats.Msg, len(it.Events))
	for i, e := range it.Events {
		out[i] = f.Subjects.EncodeEvent(SystemID, it.Tables[i], event.LayoutOf(*it.Tables[i]), e)
	}
	return out
}

// EventIDs returns the event ids (first column) of items' events.
func EventIDs(items ...Item) []string {
	var out []string
	for _, it := range items {
		for _, e := range it.Events {
			out = append(out, string(e.Values[0]))
		}
	}
	return out
}

func padding(n int) string {
	b := make([]byte, 40+n%60)
	for i := range b {
		b[i] = 'a' + byte((n+i)%26)
	}
	return string(b)
}
