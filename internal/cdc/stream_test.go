package cdc

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
)

func TestCapture_TransactionsArriveWhole(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config()
	stop, _ := e.run(cfg)
	e.waitStreaming()

	ctx := context.Background()
	// A multi-event, multi-stream transaction.
	e.exec(`INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data, metadata) VALUES
		('0191f3a0-0000-7000-8000-000000000001', 'order-1', 'OrderPlaced', '{"n": 1}', '{"m": "x"}'),
		('0191f3a0-0000-7000-8000-000000000002', 'order-2', 'OrderPlaced', '{"n": 2}', '{}'),
		('0191f3a0-0000-7000-8000-000000000003', 'order-1', 'OrderShipped', '{"n": 3}', '{}')`)
	if err := loadgen.RolledBack(ctx, e.pgURL); err != nil {
		t.Fatal(err)
	}
	if err := loadgen.SavepointRolledBack(ctx, e.pgURL); err != nil {
		t.Fatal(err)
	}
	if err := loadgen.WeirdStreamIDs(ctx, e.pgURL); err != nil {
		t.Fatal(err)
	}
	if _, err := loadgen.Run(ctx, e.pgURL, loadgen.Config{Writers: 2, Events: 300, Streams: 20, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	fl := e.waitAllCaptured(cfg.Stream, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("capture stopped with %v", err)
	}

	src := e.sourceIDs()
	if len(fl.ids) != len(src) {
		t.Errorf("stream has %d distinct event ids, source %d", len(fl.ids), len(src))
	}
	for id, n := range fl.ids {
		if !src[id] {
			t.Errorf("event %s in the stream is not in the source", id)
		}
		if n != 1 {
			t.Errorf("event %s appears %d times", id, n)
		}
	}
	for _, ev := range fl.events {
		ty := string(ev.Values[3])
		if ty == "ShouldNeverExist" || ty == "InsideRolledBackSavepoint" {
			t.Errorf("rolled-back event %s (%s) reached the feed", ev, ty)
		}
	}

	// Transactions are whole, consecutive and chained.
	var prev event.Position
	for i := 0; i < len(fl.events); {
		first := fl.events[i]
		if first.Index != 0 {
			t.Fatalf("transaction at %s starts with index %d", first.EndLSN, first.Index)
		}
		if first.PrevLSN < prev {
			t.Errorf("transaction %s: prev %s before the previous item %s", first.EndLSN, first.PrevLSN, prev)
		}
		for j := 0; j < first.Count; j++ {
			ev := fl.events[i+j]
			if ev.EndLSN != first.EndLSN || ev.Index != j || ev.Count != first.Count || ev.XID != first.XID ||
				ev.CommitLSN != first.CommitLSN || !ev.CommitTime.Equal(first.CommitTime) {
				t.Fatalf("transaction %s event %d inconsistent: %+v", first.EndLSN, j, ev)
			}
		}
		if first.EndLSN <= first.CommitLSN || first.PrevLSN >= first.EndLSN {
			t.Errorf("positions out of order: commit %s end %s prev %s", first.CommitLSN, first.EndLSN, first.PrevLSN)
		}
		prev = first.EndLSN
		i += first.Count
	}

	// The explicit transaction: headers and body.
	var found int
	for i, ev := range fl.events {
		if string(ev.Values[0]) != "0191f3a0-0000-7000-8000-000000000002" {
			continue
		}
		found++
		m := fl.eventMsgs[i]
		sysid := e.pg.SystemIdentifier(t)
		txn := strings.Join([]string{sysid, ev.EndLSN.String(), ev.PrevLSN.String(), ev.CommitLSN.String(),
			ev.CommitTime.Format(feed.TimeLayout), strconv.FormatUint(uint64(ev.XID), 10), "1/3"}, " ")
		want := map[string]string{
			feed.HeaderMsgID: feed.MsgID(sysid, ev),
			feed.HeaderFeed:  "2",
			feed.HeaderKind:  "event",
			feed.HeaderTxn:   txn,
		}
		for h, v := range want {
			if got := m.Header.Get(h); got != v {
				t.Errorf("header %s = %q, want %q", h, got, v)
			}
		}
		if len(m.Header) != 5 {
			t.Errorf("%d headers, want 5 (feed version 2): %v", len(m.Header), m.Header)
		}
		if m.Subject != "tidemark.events.public.eventcore_events.OrderPlaced.order-2" {
			t.Errorf("subject %q", m.Subject)
		}
		if string(ev.Values[4]) != `{"n": 2}` {
			t.Errorf("event_data %q", ev.Values[4])
		}
	}
	if found != 1 {
		t.Fatalf("explicit event found %d times", found)
	}
	if len(fl.heartbeats) == 0 {
		t.Error("no heartbeat in the feed")
	}
	// Consumers filter by stream id with one encoded token (docs/feed.md).
	weird := 0
	for _, ev := range fl.events {
		if string(ev.Values[3]) != "WeirdStreamWritten" {
			continue
		}
		weird++
		sid := string(ev.Values[1])
		filter := "tidemark.events.public.eventcore_events.*." + feed.EncodeToken(sid)
		cons, err := e.js.OrderedConsumer(ctx, cfg.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.FetchNoWait(10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for m := range batch.Messages() {
			// The body is exact; a header cannot hold CR or LF.
			var row map[string]any
			if err := json.Unmarshal(m.Data(), &row); err != nil {
				t.Fatal(err)
			}
			got = append(got, row["stream_id"].(string))
		}
		if len(got) != 1 || got[0] != sid {
			t.Errorf("filter %q for stream %q matched %q", filter, sid, got)
		}
	}
	if weird != len(loadgen.WeirdStreamIDList) {
		t.Errorf("%d weird stream ids captured, want %d", weird, len(loadgen.WeirdStreamIDList))
	}
	if s := e.slotState(); s.Active || s.ConfirmedFlushLSN < prev {
		t.Errorf("after shutdown slot active=%v confirmed %s, want inactive and >= last transaction %s", s.Active, s.ConfirmedFlushLSN, prev)
	}
}
