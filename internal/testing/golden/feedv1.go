package golden

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// feed-v1 is a short feed as capture published it: an initial snapshot
// of two transactions closed by its snapshot-done heartbeat, then streamed
// transactions over three commit-time minutes (10:00, 10:01, 10:02 UTC)
// with heartbeats between them, one transaction published before the one
// it follows (a publish retry reorders), one re-sent (capture restarted),
// and a tamper report. testdata/feed-v1/stream.msgs holds the messages in
// publish order and testdata/feed-v1/meta/ the META records capture wrote
// (table.<id>); internal/feed's TestStream_Golden writes them with -update
// and checks them otherwise. testdata/archive-v1 is what today's archiver
// made of this feed (internal/archive's TestSession_GoldenArchive).
//
// The values are what capture reads from EventCore's table: PostgreSQL's
// text output (jsonb normalised, timestamps in UTC), so a restore into
// EventCore's schema reads them back unchanged.

// FeedV1SystemID is the source system id of feed-v1.
const FeedV1SystemID = "7300000000000000042"

// FeedV1CP is the consistent point of feed-v1's slot: the snapshot-done
// heartbeat's position, from which streaming starts.
const FeedV1CP event.Position = 0x16_B3740000

// FeedV1Subjects is feed-v1's subject prefix (the default).
var FeedV1Subjects = feed.Subjects{Prefix: "tidemark"}

// FeedV1Table is EventCore's eventcore_events as capture records it.
func FeedV1Table() event.Table {
	return event.Table{Schema: "public", Name: "eventcore_events", Columns: []event.Column{
		{Name: "event_id", Type: "uuid", OID: 2950, NotNull: true, Key: true},
		{Name: "stream_id", Type: "text", OID: 25, NotNull: true},
		{Name: "stream_version", Type: "bigint", OID: 20, NotNull: true},
		{Name: "event_type", Type: "text", OID: 25, NotNull: true},
		{Name: "event_data", Type: "jsonb", OID: 3802, NotNull: true},
		{Name: "metadata", Type: "jsonb", OID: 3802, NotNull: true},
		{Name: "created_at", Type: "timestamp with time zone", OID: 1184, NotNull: true},
	}}
}

// feedV1Item is one chain item or tamper report in publish order.
type feedV1Item struct {
	txn       []*event.Event
	snapshot  bool // published by the initial snapshot
	heartbeat *event.Heartbeat
	tamper    *feed.Tamper
}

// fv1Row is one row: event id number, stream, version, type, data, metadata.
type fv1Row struct {
	id            int
	stream        string
	version       int64
	typ, data, md string
}

func fv1Time(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// fv1Txn builds a transaction at commit/end positions (offsets from the
// consistent point for streamed ones) following prev.
func fv1Txn(commit, end, prev event.Position, xid uint32, at string, snapshot bool, rows ...fv1Row) []*event.Event {
	ct := fv1Time(at)
	out := make([]*event.Event, len(rows))
	for i, r := range rows {
		out[i] = &event.Event{Table: "public.eventcore_events", CommitLSN: commit, EndLSN: end, PrevLSN: prev,
			CommitTime: ct, XID: xid, Index: i, Count: len(rows), Snapshot: snapshot,
			Values: [][]byte{
				[]byte(fmt.Sprintf("0191f3a0-0000-7000-8000-%012d", r.id)),
				[]byte(r.stream), []byte(fmt.Sprint(r.version)), []byte(r.typ), []byte(r.data), []byte(r.md),
				[]byte(ct.Format("2006-01-02 15:04:05.999999") + "+00"),
			}}
	}
	return out
}

func fv1HB(lsn, prev event.Position, at string, done bool) *feedV1Item {
	return &feedV1Item{heartbeat: &event.Heartbeat{LSN: lsn, PrevLSN: prev, Time: fv1Time(at), SnapshotDone: done}}
}

// feedV1Items is the script of feed-v1, in publish order.
func feedV1Items() []*feedV1Item {
	c := FeedV1CP
	s1 := fv1Txn(1, 1, 0, 700, "2026-11-25T10:00:00.5Z", false,
		fv1Row{1, "order-1", 1, "OrderPlaced", `{"sku": "A-1", "total": 12.5}`, `{}`},
		fv1Row{2, "order-1", 2, "OrderPaid", `{"amount": 12.5, "method": "card"}`, `{"user": "u-1"}`})
	// Commit time unknown to the source (no track_commit_timestamp for
	// this xid): the snapshot's time, flagged.
	s2 := fv1Txn(2, 2, 1, 705, "2026-11-25T10:00:01Z", true,
		fv1Row{3, "kunde-ü", 1, "KundeAngelegt", `{"ort": "Köln", "name": "Jürgen Groß"}`, `{}`})
	t1 := fv1Txn(c+0x100, c+0x130, c, 1001, "2026-11-25T10:00:10.000001Z", false,
		fv1Row{4, "order-1", 3, "OrderShipped", `{"carrier": "DHL"}`, `{"user": "u-1"}`},
		fv1Row{5, "order.42", 1, "OrderPlaced", `{"note": "Grüße 😀", "items": ["ü", "✓"]}`, `{}`})
	t2 := fv1Txn(c+0x200, c+0x230, c+0x130, 1002, "2026-11-25T10:00:20.5Z", false,
		fv1Row{6, "Straße 5", 1, "Adresse geändert", `{"line": "a\tb"}`, `{}`})
	// Committed after t2 in WAL order but with an earlier commit time.
	t3 := fv1Txn(c+0x300, c+0x330, c+0x230, 1003, "2026-11-25T10:00:19.999999Z", false,
		fv1Row{7, "order.42", 2, "OrderPaid", `{"amount": 7}`, `{}`},
		fv1Row{8, "order.42", 3, "OrderPacked", `{}`, `{}`},
		fv1Row{9, "kunde-ü", 2, "AdresseGeändert", `{"ort": "Düsseldorf"}`, `{"user": "ß"}`})
	t4 := fv1Txn(c+0x500, c+0x530, c+0x400, 1004, "2026-11-25T10:01:05Z", false,
		fv1Row{10, "order-2", 1, "OrderPlaced", `{"sku": "B-2", "total": 3}`, `{}`})
	t5 := fv1Txn(c+0x600, c+0x630, c+0x530, 1005, "2026-11-25T10:01:30.25Z", false,
		fv1Row{11, "order-2", 2, "OrderPaid", `{"amount": 3}`, `{}`},
		fv1Row{12, "order-1", 4, "OrderDelivered", `{}`, `{"source": "api"}`})
	t6 := fv1Txn(c+0x900, c+0x930, c+0x800, 1006, "2026-11-25T10:02:05Z", false,
		fv1Row{13, "order.42", 4, "OrderShipped", `{"carrier": "UPS"}`, `{}`})
	t7 := fv1Txn(c+0xA00, c+0xA30, c+0x930, 1007, "2026-11-25T10:02:10.123456Z", false,
		fv1Row{14, "order-3", 1, "OrderPlaced", `{"sku": "C-3", "total": 99.99}`, `{}`},
		fv1Row{15, "order-3", 2, "OrderCancelled", `{"reason": "größe"}`, `{}`})
	t8 := fv1Txn(c+0xB00, c+0xB30, c+0xA30, 1008, "2026-11-25T10:02:30Z", false,
		fv1Row{16, "kunde-ü", 3, "KundeGelöscht", `{}`, `{}`})
	tamper := &feed.Tamper{Op: "update", Table: "public.eventcore_events", XID: 1009, CommitLSN: c + 0x380,
		CommitTime: "2026-11-25T10:00:30.000000Z",
		Old:        json.RawMessage(`{"event_id":"0191f3a0-0000-7000-8000-000000000005"}`),
		New: json.RawMessage(`{"event_id":"0191f3a0-0000-7000-8000-000000000005","stream_id":"order.42","stream_version":1,` +
			`"event_type":"Forged","event_data":{},"metadata":{},"created_at":"2026-11-25 10:00:10.000001+00"}`)}
	return []*feedV1Item{
		{txn: s1, snapshot: true},
		{txn: s2, snapshot: true},
		fv1HB(c, 2, "2026-11-25T10:00:01.5Z", true),
		{txn: t1},
		{txn: t3}, // published before t2, which it follows
		{txn: t2},
		{tamper: tamper},
		fv1HB(c+0x400, c+0x330, "2026-11-25T10:00:45Z", false),
		{txn: t4},
		{txn: t4}, // re-sent by a restarted capture
		{txn: t5},
		fv1HB(c+0x700, c+0x630, "2026-11-25T10:01:40Z", false),
		fv1HB(c+0x800, c+0x700, "2026-11-25T10:01:50Z", false),
		{txn: t6},
		{txn: t7},
		{txn: t8},
		fv1HB(c+0xC00, c+0xB30, "2026-11-25T10:02:40Z", false),
		fv1HB(c+0xD00, c+0xC00, "2026-11-25T10:02:50Z", false),
	}
}

// FeedV1Heartbeats returns the positions of feed-v1's heartbeats in chain
// order: the snapshot-done heartbeat at FeedV1CP first.
func FeedV1Heartbeats() []event.Position {
	var out []event.Position
	for _, it := range feedV1Items() {
		if it.heartbeat != nil {
			out = append(out, it.heartbeat.LSN)
		}
	}
	return out
}

// FeedV1Events returns every event of feed-v1 once, in chain order.
func FeedV1Events() []*event.Event {
	var out []*event.Event
	seen := map[event.Position]bool{}
	for _, it := range feedV1Items() {
		if len(it.txn) > 0 && !seen[it.txn[0].EndLSN] {
			seen[it.txn[0].EndLSN] = true
			out = append(out, it.txn...)
		}
	}
	slices.SortStableFunc(out, func(a, b *event.Event) int {
		if a.EndLSN != b.EndLSN {
			return cmp.Compare(a.EndLSN, b.EndLSN)
		}
		return a.Index - b.Index
	})
	return out
}

// FeedV1Messages returns feed-v1's messages in publish order, composed as
// capture composed them in feed version 1.
func FeedV1Messages() []*nats.Msg {
	t := FeedV1Table()
	et := feed.NewEventTable(&t)
	var out []*nats.Msg
	for _, it := range feedV1Items() {
		switch {
		case it.heartbeat != nil:
			out = append(out, CaptureHeartbeatV1(FeedV1Subjects, FeedV1SystemID, *it.heartbeat))
		case it.tamper != nil:
			out = append(out, CaptureTamperV1(FeedV1Subjects, FeedV1SystemID, t.Schema, t.Name, 0, *it.tamper))
		default:
			var cp event.Position
			if it.snapshot {
				cp = FeedV1CP
			}
			for _, e := range it.txn {
				out = append(out, CaptureEventV1(FeedV1Subjects, FeedV1SystemID, cp, et, e))
			}
		}
	}
	return out
}

// FeedV1Dir is the directory of the recorded feed-v1.
func FeedV1Dir() string { return filepath.Join(Testdata(), "feed-v1") }

// ArchiveV1Dir is the directory of archive-v1: a file store root
// (segments/…, catalog/…) the archiver wrote from feed-v1.
func ArchiveV1Dir() string { return filepath.Join(Testdata(), "archive-v1") }

// FeedV1StreamFile is the recorded stream, in MarshalMsgs form.
func FeedV1StreamFile() string { return filepath.Join(FeedV1Dir(), "stream.msgs") }

// FeedV1MetaDir holds the recorded META records, one file per key.
func FeedV1MetaDir() string { return filepath.Join(FeedV1Dir(), "meta") }

// ReadFeedV1 returns the recorded feed-v1: its messages in publish order
// and its META records by key.
func ReadFeedV1() ([]*nats.Msg, map[string][]byte, error) {
	b, err := os.ReadFile(FeedV1StreamFile())
	if err != nil {
		return nil, nil, err
	}
	msgs, err := UnmarshalMsgs(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", FeedV1StreamFile(), err)
	}
	entries, err := os.ReadDir(FeedV1MetaDir())
	if err != nil {
		return nil, nil, err
	}
	meta := map[string][]byte{}
	for _, e := range entries {
		if meta[e.Name()], err = os.ReadFile(filepath.Join(FeedV1MetaDir(), e.Name())); err != nil {
			return nil, nil, err
		}
	}
	return msgs, meta, nil
}
