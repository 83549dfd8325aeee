package feed_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// A consumer of the live feed: it reads every event of one stream id from
// the start of the stream, decodes it with its table definition from the
// META bucket, and skips re-deliveries and capture re-sends by event id.
// Set NATS_URL to run it against a real server (docs/feed.md explains the
// format).
func Example_consumer() {
	url := os.Getenv("NATS_URL")
	if url == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := nats.Connect(url)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	meta, err := js.KeyValue(ctx, feed.MetaBucket("TIDEMARK"))
	if err != nil {
		log.Fatal(err)
	}
	// Only stream "order.42" (any event type): the stream id is one
	// encoded subject token, so a wildcard cannot match part of it.
	filter := "tidemark.events.public.eventcore_events.*." + feed.EncodeToken("order.42")
	cons, err := js.OrderedConsumer(ctx, "TIDEMARK", jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		log.Fatal(err)
	}
	tables := map[string]*event.Table{}
	seen := map[string]bool{} // at-least-once: deduplicate by event id
	msgs, err := cons.Messages()
	if err != nil {
		log.Fatal(err)
	}
	defer msgs.Stop()
	for {
		m, err := msgs.Next()
		if err != nil {
			return
		}
		nm := &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
		def := nm.Header.Get(feed.HeaderSchemaID)
		if tables[def] == nil {
			entry, err := meta.Get(ctx, feed.TableKey(def))
			if err != nil {
				log.Fatal(err)
			}
			tables[def] = &event.Table{}
			if err := json.Unmarshal(entry.Value(), tables[def]); err != nil {
				log.Fatal(err)
			}
		}
		ev, err := feed.DecodeEvent(nm, tables[def])
		if err != nil {
			log.Fatal(err)
		}
		l := event.LayoutOf(*tables[def])
		if id := string(ev.Value(l.EventID)); seen[id] {
			continue
		} else {
			seen[id] = true
		}
		fmt.Printf("%s v%s %s committed %s\n", ev.Value(l.StreamID), ev.Value(l.StreamVersion),
			ev.Value(l.EventType), ev.CommitTime.Format(time.RFC3339Nano))
	}
}

// Decoding one event message: the headers carry the chain position
// (Tidemark-Txn) and the table definition, the body the row.
func ExampleDecodeEvent() {
	table := event.Table{Schema: "public", Name: "eventcore_events", Columns: []event.Column{
		{Name: "event_id", Type: "uuid", OID: 2950, NotNull: true, Key: true},
		{Name: "stream_id", Type: "text", OID: 25, NotNull: true},
		{Name: "stream_version", Type: "bigint", OID: 20, NotNull: true},
		{Name: "event_type", Type: "text", OID: 25, NotNull: true},
		{Name: "event_data", Type: "jsonb", OID: 3802, NotNull: true},
	}}
	e := &event.Event{
		Table: "public.eventcore_events", CommitLSN: 0x16B374D848, EndLSN: 0x16B374D880, PrevLSN: 0x16B374D000,
		CommitTime: time.Date(2026, 11, 25, 10, 15, 30, 123456000, time.UTC), XID: 991, Index: 0, Count: 1,
		Values: [][]byte{[]byte("0191f3a0-0000-7000-8000-000000000001"), []byte("order.42"), []byte("7"),
			[]byte("OrderPlaced"), []byte(`{"total": 12.5}`)},
	}
	m := feed.Subjects{Prefix: "tidemark"}.EncodeEvent("7301", &table, event.LayoutOf(table), e)
	fmt.Println(m.Subject)
	for _, h := range []string{feed.HeaderMsgID, feed.HeaderFeed, feed.HeaderKind, feed.HeaderSchemaID, feed.HeaderTxn} {
		fmt.Printf("%s: %s\n", h, m.Header.Get(h))
	}
	fmt.Println(string(m.Data))
	env, _ := feed.DecodeEnvelope(m)
	fmt.Println(env.EndLSN, env.PrevLSN, env.CommitTime.Format(time.RFC3339Nano), env.Index, env.Count)
	back, err := feed.DecodeEvent(m, &table)
	fmt.Println(back.Equal(e), err)
	// Output:
	// tidemark.events.public.eventcore_events.OrderPlaced.order~2E42
	// Nats-Msg-Id: 7301-16b374d848-0
	// Tidemark-Feed: 2
	// Tidemark-Kind: event
	// Tidemark-Table-Def: e50525ea7973ed5e
	// Tidemark-Txn: 7301 16/B374D880 16/B374D000 16/B374D848 2026-11-25T10:15:30.123456Z 991 0/1
	// {"event_id":"0191f3a0-0000-7000-8000-000000000001","stream_id":"order.42","stream_version":7,"event_type":"OrderPlaced","event_data":{"total": 12.5}}
	// 16/B374D880 16/B374D000 2026-11-25T10:15:30.123456Z 0 1
	// true <nil>
}
