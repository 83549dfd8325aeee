package feed_test

import (
	"cmp"
	"encoding/json"
	"flag"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/testing/golden"
)

// update rewrites the golden files instead of comparing with them:
// go test ./internal/feed -run Golden -update
var update = flag.Bool("update", false, "rewrite golden files")

// goldenDir holds the messages capture publishes and the META records
// capture and the archiver write, one per file, as today's code encodes
// them. They pin docs/feed.md.
const goldenDir = "testdata/golden"

const goldenSystemID = "7300000000000000001"

var goldenSubjects = feed.Subjects{Prefix: "tidemark"}

// goldenTable is EventCore's table plus a nullable text column, so that
// a message shows both SQL NULL and the empty string.
var goldenTable = event.Table{Schema: "public", Name: "eventcore_events", Columns: []event.Column{
	{Name: "event_id", Type: "uuid", OID: 2950, NotNull: true, Key: true},
	{Name: "stream_id", Type: "text", OID: 25, NotNull: true},
	{Name: "stream_version", Type: "bigint", OID: 20, NotNull: true},
	{Name: "event_type", Type: "text", OID: 25, NotNull: true},
	{Name: "event_data", Type: "jsonb", OID: 3802, NotNull: true},
	{Name: "metadata", Type: "jsonb", OID: 3802, NotNull: true},
	{Name: "created_at", Type: "timestamp with time zone", OID: 1184, NotNull: true},
	{Name: "note", Type: "text", OID: 25},
}}

// goldenTableID is goldenTable.ID(): messages name their table's
// definition by it (Tidemark-Table-Def, META key table.<id>).
const goldenTableID = "882f1390e09fec32"

// goldenCP is the consistent point of the snapshot the snapshot row
// belongs to.
const goldenCP event.Position = 0x16_B3740000

func ftime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// goldenEvent is a streamed event: a stream id that needs escaping in the
// subject, non-ASCII JSON, and NULL in the nullable column.
func goldenEvent() *event.Event {
	return &event.Event{Table: "public.eventcore_events", CommitLSN: 0x16_B37400C8, EndLSN: 0x16_B37400F8,
		PrevLSN: 0x16_B3740000, CommitTime: ftime("2026-11-25T10:15:00.000001Z"), XID: 1001, Index: 1, Count: 3,
		Values: [][]byte{[]byte("0191f3a0-0000-7000-8000-000000000005"), []byte("order.42"), []byte("7"),
			[]byte("OrderPlaced"), []byte(`{"items": ["ü", "😀"], "total": 12.5}`), []byte(`{"user": "u-1"}`),
			[]byte("2026-11-25 10:15:00.000001+00"), nil}}
}

// goldenSnapshotEvent is a row of the initial snapshot whose commit time
// is unknown (Snapshot): synthetic positions, an empty event type (the
// subject token "~"), a non-ASCII stream id and an empty string.
func goldenSnapshotEvent() *event.Event {
	return &event.Event{Table: "public.eventcore_events", CommitLSN: 2, EndLSN: 2, PrevLSN: 1,
		CommitTime: ftime("2026-11-25T10:14:59.5Z"), XID: 705, Index: 0, Count: 1, Snapshot: true,
		Values: [][]byte{[]byte("0191f3a0-0000-7000-8000-000000000003"), []byte("kunde-ü"), []byte("1"),
			[]byte(""), []byte(`{"ort": "Köln"}`), []byte(`{}`), []byte("2026-11-25 09:00:00.25+00"), []byte("")}}
}

func goldenHeartbeat() event.Heartbeat {
	return event.Heartbeat{LSN: 0x16_B3740400, PrevLSN: 0x16_B37400F8, Time: ftime("2026-11-25T10:15:10.5Z")}
}

func goldenSnapshotDone() event.Heartbeat {
	return event.Heartbeat{LSN: goldenCP, PrevLSN: 2, Time: ftime("2026-11-25T10:15:00Z"), SnapshotDone: true}
}

func goldenTamperUpdate() feed.Tamper {
	return feed.Tamper{Op: "update", Table: "public.eventcore_events", XID: 1010, CommitLSN: 0x16_B3740500,
		CommitTime: "2026-11-25T10:15:20.000000Z",
		Old:        json.RawMessage(`{"event_id":"0191f3a0-0000-7000-8000-000000000005"}`),
		New: json.RawMessage(feed.AppendRow(nil, &goldenTable, [][]byte{[]byte("0191f3a0-0000-7000-8000-000000000005"),
			[]byte("order.42"), []byte("7"), []byte("Forged"), []byte(`{}`), []byte(`{}`), []byte("2026-11-25 10:15:00+00"), nil}))}
}

func goldenTamperTruncate() feed.Tamper {
	return feed.Tamper{Op: "truncate", Table: "public.eventcore_events", XID: 1011, CommitLSN: 0x16_B3740600,
		CommitTime: "2026-11-25T10:15:30.123456Z"}
}

// goldenMsg is one golden message: how capture builds it, and the
// headers and body docs/feed.md says it carries.
type goldenMsg struct {
	file    string
	build   func() *nats.Msg
	subject string
	headers map[string]string
	data    string
	decode  func(t *testing.T, m *nats.Msg)
}

// goldenMsgsV1 are the messages of feed version 1 (testdata/golden/v1),
// which capture wrote before version 2; readers still decode them.
func goldenMsgsV1() []goldenMsg {
	et := feed.NewEventTable(&goldenTable)
	return []goldenMsg{{
		file:    "event.msg",
		build:   func() *nats.Msg { return golden.CaptureEventV1(goldenSubjects, goldenSystemID, 0, et, goldenEvent()) },
		subject: "tidemark.events.public.eventcore_events.OrderPlaced.order~2E42",
		headers: map[string]string{
			"Nats-Msg-Id": "7300000000000000001-16b37400c8-1", "Tidemark-Kind": "event",
			"Tidemark-System-Id": goldenSystemID, "Tidemark-Table": "public.eventcore_events",
			"Tidemark-Table-Def": goldenTableID, "Tidemark-Event-Id": "0191f3a0-0000-7000-8000-000000000005",
			"Tidemark-Stream-Id": "order.42", "Tidemark-Stream-Version": "7", "Tidemark-Event-Type": "OrderPlaced",
			"Tidemark-Commit-Lsn": "16/B37400C8", "Tidemark-End-Lsn": "16/B37400F8", "Tidemark-Prev-Lsn": "16/B3740000",
			"Tidemark-Commit-Time": "2026-11-25T10:15:00.000001Z", "Tidemark-Xid": "1001",
			"Tidemark-Index": "1", "Tidemark-Count": "3",
		},
		data: `{"event_id":"0191f3a0-0000-7000-8000-000000000005","stream_id":"order.42","stream_version":7,` +
			`"event_type":"OrderPlaced","event_data":{"items": ["ü", "😀"], "total": 12.5},"metadata":{"user": "u-1"},` +
			`"created_at":"2026-11-25 10:15:00.000001+00","note":null}`,
		decode: decodeEventCheck(goldenEvent()),
	}, {
		file: "event-snapshot.msg",
		build: func() *nats.Msg {
			return golden.CaptureEventV1(goldenSubjects, goldenSystemID, goldenCP, et, goldenSnapshotEvent())
		},
		subject: "tidemark.events.public.eventcore_events.~.kunde-~C3~BC",
		headers: map[string]string{
			"Nats-Msg-Id": "7300000000000000001.snap.16b3740000-2-0", "Tidemark-Kind": "event",
			"Tidemark-System-Id": goldenSystemID, "Tidemark-Table": "public.eventcore_events",
			"Tidemark-Table-Def": goldenTableID, "Tidemark-Event-Id": "0191f3a0-0000-7000-8000-000000000003",
			"Tidemark-Stream-Id": "kunde-ü", "Tidemark-Stream-Version": "1", "Tidemark-Event-Type": "",
			"Tidemark-Commit-Lsn": "0/2", "Tidemark-End-Lsn": "0/2", "Tidemark-Prev-Lsn": "0/1",
			"Tidemark-Commit-Time": "2026-11-25T10:14:59.500000Z", "Tidemark-Xid": "705",
			"Tidemark-Index": "0", "Tidemark-Count": "1", "Tidemark-Snapshot": "true",
		},
		data: `{"event_id":"0191f3a0-0000-7000-8000-000000000003","stream_id":"kunde-ü","stream_version":1,` +
			`"event_type":"","event_data":{"ort": "Köln"},"metadata":{},"created_at":"2026-11-25 09:00:00.25+00","note":""}`,
		decode: decodeEventCheck(goldenSnapshotEvent()),
	}, {
		file:    "heartbeat.msg",
		build:   func() *nats.Msg { return golden.CaptureHeartbeatV1(goldenSubjects, goldenSystemID, goldenHeartbeat()) },
		subject: "tidemark.heartbeat",
		headers: map[string]string{
			"Nats-Msg-Id": "7300000000000000001-hb-16b3740400", "Tidemark-Kind": "heartbeat",
			"Tidemark-System-Id": goldenSystemID, "Tidemark-End-Lsn": "16/B3740400", "Tidemark-Prev-Lsn": "16/B37400F8",
			"Tidemark-Commit-Time": "2026-11-25T10:15:10.500000Z",
		},
		data:   `{"lsn":"16/B3740400","prev_lsn":"16/B37400F8","time":"2026-11-25T10:15:10.500000Z"}`,
		decode: decodeHeartbeatCheck(goldenHeartbeat()),
	}, {
		file: "heartbeat-snapshot-done.msg",
		build: func() *nats.Msg {
			return golden.CaptureHeartbeatV1(goldenSubjects, goldenSystemID, goldenSnapshotDone())
		},
		subject: "tidemark.heartbeat",
		headers: map[string]string{
			"Nats-Msg-Id": "7300000000000000001-hb-16b3740000", "Tidemark-Kind": "heartbeat",
			"Tidemark-System-Id": goldenSystemID, "Tidemark-End-Lsn": "16/B3740000", "Tidemark-Prev-Lsn": "0/2",
			"Tidemark-Commit-Time": "2026-11-25T10:15:00.000000Z",
		},
		data:   `{"lsn":"16/B3740000","prev_lsn":"0/2","time":"2026-11-25T10:15:00.000000Z","snapshot_done":true}`,
		decode: decodeHeartbeatCheck(goldenSnapshotDone()),
	}, {
		file: "tamper-update.msg",
		build: func() *nats.Msg {
			return golden.CaptureTamperV1(goldenSubjects, goldenSystemID, "public", "eventcore_events", 0, goldenTamperUpdate())
		},
		subject: "tidemark.tamper.public.eventcore_events.update",
		headers: map[string]string{
			"Nats-Msg-Id": "7300000000000000001-tamper-16b3740500-0", "Tidemark-Kind": "tamper",
			"Tidemark-System-Id": goldenSystemID, "Tidemark-Table": "public.eventcore_events",
			"Tidemark-Commit-Lsn": "16/B3740500",
		},
		data: `{"op":"update","table":"public.eventcore_events","xid":1010,"commit_lsn":"16/B3740500",` +
			`"commit_time":"2026-11-25T10:15:20.000000Z","old":{"event_id":"0191f3a0-0000-7000-8000-000000000005"},` +
			`"new":{"event_id":"0191f3a0-0000-7000-8000-000000000005","stream_id":"order.42","stream_version":7,` +
			`"event_type":"Forged","event_data":{},"metadata":{},"created_at":"2026-11-25 10:15:00+00","note":null}}`,
		decode: decodeTamperCheck(goldenTamperUpdate()),
	}, {
		file: "tamper-truncate.msg",
		build: func() *nats.Msg {
			return golden.CaptureTamperV1(goldenSubjects, goldenSystemID, "public", "eventcore_events", 3, goldenTamperTruncate())
		},
		subject: "tidemark.tamper.public.eventcore_events.truncate",
		headers: map[string]string{
			"Nats-Msg-Id": "7300000000000000001-tamper-16b3740600-3", "Tidemark-Kind": "tamper",
			"Tidemark-System-Id": goldenSystemID, "Tidemark-Table": "public.eventcore_events",
			"Tidemark-Commit-Lsn": "16/B3740600",
		},
		data:   `{"op":"truncate","table":"public.eventcore_events","xid":1011,"commit_lsn":"16/B3740600","commit_time":"2026-11-25T10:15:30.123456Z"}`,
		decode: decodeTamperCheck(goldenTamperTruncate()),
	}}
}

// goldenMsgsV2 are the messages of feed version 2 (testdata/golden/v2),
// which capture writes: events carry five headers, every message
// Tidemark-Feed: 2.
func goldenMsgsV2() []goldenMsg {
	var out []goldenMsg
	for _, g := range goldenMsgsV1() {
		g := g
		h := map[string]string{"Nats-Msg-Id": g.headers["Nats-Msg-Id"], "Tidemark-Feed": "2", "Tidemark-Kind": g.headers["Tidemark-Kind"]}
		switch g.file {
		case "event.msg":
			h["Tidemark-Table-Def"] = goldenTableID
			h["Tidemark-Txn"] = goldenSystemID + " 16/B37400F8 16/B3740000 16/B37400C8 2026-11-25T10:15:00.000001Z 1001 1/3"
			g.build = func() *nats.Msg { return golden.CaptureEvent(goldenSubjects, goldenSystemID, 0, et(), goldenEvent()) }
		case "event-snapshot.msg":
			h["Tidemark-Table-Def"] = goldenTableID
			h["Tidemark-Txn"] = goldenSystemID + " 0/2 0/1 0/2 2026-11-25T10:14:59.500000Z 705 0/1 snapshot"
			g.build = func() *nats.Msg {
				return golden.CaptureEvent(goldenSubjects, goldenSystemID, goldenCP, et(), goldenSnapshotEvent())
			}
		default:
			// Heartbeats and tamper reports are version 1's plus the version header.
			for k, v := range g.headers {
				h[k] = v
			}
			v1 := g.build
			g.build = func() *nats.Msg {
				m := v1()
				m.Header.Set(feed.HeaderFeed, "2")
				return m
			}
		}
		g.headers = h
		out = append(out, g)
	}
	// The builders above for heartbeats and tamper reports add the header
	// by hand; require capture's own encoders to agree.
	for i, g := range out {
		switch g.file {
		case "heartbeat.msg":
			out[i].build = func() *nats.Msg { return golden.CaptureHeartbeat(goldenSubjects, goldenSystemID, goldenHeartbeat()) }
		case "heartbeat-snapshot-done.msg":
			out[i].build = func() *nats.Msg { return golden.CaptureHeartbeat(goldenSubjects, goldenSystemID, goldenSnapshotDone()) }
		case "tamper-update.msg":
			out[i].build = func() *nats.Msg {
				return golden.CaptureTamper(goldenSubjects, goldenSystemID, "public", "eventcore_events", 0, goldenTamperUpdate())
			}
		case "tamper-truncate.msg":
			out[i].build = func() *nats.Msg {
				return golden.CaptureTamper(goldenSubjects, goldenSystemID, "public", "eventcore_events", 3, goldenTamperTruncate())
			}
		}
	}
	return out
}

func et() *feed.EventTable { return feed.NewEventTable(&goldenTable) }

// goldenVersions maps each feed version's directory to its messages.
var goldenVersions = []struct {
	dir  string
	msgs func() []goldenMsg
}{{"v1", goldenMsgsV1}, {"v2", goldenMsgsV2}}

// TestSubjects_EncodeGolden encodes each message as capture does and
// requires the golden file: subject, every header and the body.
func TestSubjects_EncodeGolden(t *testing.T) {
	for _, v := range goldenVersions {
		for _, g := range v.msgs() {
			t.Run(v.dir+"/"+g.file, func(t *testing.T) {
				m := g.build()
				golden.Check(t, filepath.Join(goldenDir, v.dir, g.file), golden.MarshalMsgs(goldenComment, m), *update)
			})
		}
	}
}

const goldenComment = `A JetStream message as capture publishes it (docs/feed.md), in the text
form of internal/testing/golden. Regenerate: go test ./internal/feed -run Golden -update`

// TestDecode_Golden parses each golden message and compares its subject,
// every header and its body with the values above, then decodes it with
// today's decoders and compares every field.
func TestDecode_Golden(t *testing.T) {
	for _, v := range goldenVersions {
		for _, g := range v.msgs() {
			t.Run(v.dir+"/"+g.file, func(t *testing.T) {
				testDecodeGolden(t, filepath.Join(goldenDir, v.dir, g.file), g)
			})
		}
	}
}

func testDecodeGolden(t *testing.T, path string, g goldenMsg) {
	{
		{
			msgs, err := golden.UnmarshalMsgs(golden.Read(t, path))
			if err != nil || len(msgs) != 1 {
				t.Fatalf("parse golden message: %d messages, %v", len(msgs), err)
			}
			m := msgs[0]
			want := &nats.Msg{Subject: g.subject, Header: nats.Header{}, Data: []byte(g.data)}
			for k, v := range g.headers {
				want.Header[k] = []string{v}
			}
			if d := golden.DiffMsg(m, want); d != "" {
				t.Errorf("golden message: %s", d)
			}
			g.decode(t, m)
		}
	}
}

func decodeEventCheck(want *event.Event) func(*testing.T, *nats.Msg) {
	return func(t *testing.T, m *nats.Msg) {
		if feed.IsHeartbeat(m) || feed.IsTamper(m) {
			t.Fatal("event classified as heartbeat or tamper report")
		}
		got, err := feed.DecodeEvent(m, &goldenTable)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(want) || got.CommitTime.Location() != time.UTC {
			t.Errorf("decoded event\n got %+v\nwant %+v", got, want)
		}
		for i := range want.Values {
			if (got.Values[i] == nil) != (want.Values[i] == nil) {
				t.Errorf("column %s: NULL %v, want %v", goldenTable.Columns[i].Name, got.Values[i] == nil, want.Values[i] == nil)
			}
		}
		tokens := strings.Split(m.Subject, ".")
		if len(tokens) != 6 {
			t.Fatalf("subject %q has %d tokens", m.Subject, len(tokens))
		}
		l := event.LayoutOf(goldenTable)
		for i, w := range []string{"tidemark", "events", "public", "eventcore_events",
			string(want.Value(l.EventType)), string(want.Value(l.StreamID))} {
			if tok, err := feed.DecodeToken(tokens[i]); err != nil || tok != w {
				t.Errorf("subject token %d %q decodes to %q, %v; want %q", i, tokens[i], tok, err, w)
			}
		}
	}
}

func decodeHeartbeatCheck(want event.Heartbeat) func(*testing.T, *nats.Msg) {
	return func(t *testing.T, m *nats.Msg) {
		if !feed.IsHeartbeat(m) || feed.IsTamper(m) {
			t.Fatal("heartbeat not classified as one")
		}
		got, err := feed.DecodeHeartbeat(m)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("decoded heartbeat %+v, want %+v", got, want)
		}
		if _, err := feed.DecodeEvent(m, &goldenTable); err != feed.ErrNotEvent {
			t.Errorf("DecodeEvent(heartbeat) = %v, want ErrNotEvent", err)
		}
	}
}

func decodeTamperCheck(want feed.Tamper) func(*testing.T, *nats.Msg) {
	return func(t *testing.T, m *nats.Msg) {
		if !feed.IsTamper(m) || feed.IsHeartbeat(m) {
			t.Fatal("tamper report not classified as one")
		}
		var got feed.Tamper
		if err := json.Unmarshal(m.Data, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decoded tamper report\n got %+v\nwant %+v", got, want)
		}
		if _, err := feed.DecodeEvent(m, &goldenTable); err != feed.ErrNotEvent {
			t.Errorf("DecodeEvent(tamper) = %v, want ErrNotEvent", err)
		}
	}
}

// goldenMeta is one META record: its key, how its writer encodes it, the
// stored value, and how a reader decodes it.
type goldenMeta struct {
	file  string
	key   string
	value func() any
	data  string
	into  func() any
}

func goldenMetas() []goldenMeta {
	return []goldenMeta{{
		// capture, cdc.tableRegistry.ensure
		file: "meta-table.json", key: feed.TableKey(goldenTableID),
		value: func() any { return goldenTable },
		data: `{"schema":"public","name":"eventcore_events","columns":[` +
			`{"name":"event_id","type":"uuid","oid":2950,"not_null":true,"key":true},` +
			`{"name":"stream_id","type":"text","oid":25,"not_null":true},` +
			`{"name":"stream_version","type":"bigint","oid":20,"not_null":true},` +
			`{"name":"event_type","type":"text","oid":25,"not_null":true},` +
			`{"name":"event_data","type":"jsonb","oid":3802,"not_null":true},` +
			`{"name":"metadata","type":"jsonb","oid":3802,"not_null":true},` +
			`{"name":"created_at","type":"timestamp with time zone","oid":1184,"not_null":true},` +
			`{"name":"note","type":"text","oid":25}]}`,
		into: func() any { return new(event.Table) },
	}, {
		// archiver, archive.meta.putWatermark
		file: "meta-watermark.json", key: feed.KeyWatermark,
		value: func() any {
			return feed.Watermark{LSN: 0x16_B3740400, CommitTime: ftime("2026-11-25T10:15:10.5Z"), CatalogSeq: 42,
				UpdatedAt: ftime("2026-11-25T10:15:11.987654321Z")}
		},
		data: `{"lsn":"16/B3740400","commit_time":"2026-11-25T10:15:10.5Z","catalog_seq":42,"updated_at":"2026-11-25T10:15:11.987654321Z"}`,
		into: func() any { return new(feed.Watermark) },
	}, {
		// archiver, archive.meta.putRewind
		file: "meta-rewind.json", key: feed.KeyRewind,
		value: func() any {
			return feed.RewindRequest{After: 0x16_B3740400, Missing: 0x16_B3740530, At: ftime("2026-11-25T10:15:14.000001Z")}
		},
		data: `{"after":"16/B3740400","missing":"16/B3740530","at":"2026-11-25T10:15:14.000001Z"}`,
		into: func() any { return new(feed.RewindRequest) },
	}}
}

// TestMeta_Golden encodes each META record as its writer does
// (json.Marshal) and requires the golden file, then decodes the stored
// value as its reader does and compares every field.
func TestMeta_Golden(t *testing.T) {
	if id := goldenTable.ID(); id != goldenTableID {
		t.Errorf("table definition id %s, want %s (event.Table.ID changed: every message's Tidemark-Table-Def changes)", id, goldenTableID)
	}
	for _, g := range goldenMetas() {
		t.Run(g.file, func(t *testing.T) {
			b, err := json.Marshal(g.value())
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(goldenDir, g.file)
			golden.Check(t, path, b, *update)
			stored := golden.Read(t, path)
			if string(stored) != g.data {
				t.Errorf("META %s holds %s, want %s", g.key, stored, g.data)
			}
			got := g.into()
			if err := json.Unmarshal(stored, got); err != nil {
				t.Fatal(err)
			}
			if want := g.value(); !reflect.DeepEqual(reflect.ValueOf(got).Elem().Interface(), want) {
				t.Errorf("decoded META %s\n got %+v\nwant %+v", g.key, got, want)
			}
		})
	}
	if got := feed.TableKey(goldenTableID); got != "table.882f1390e09fec32" || feed.MetaBucket("TIDEMARK") != "TIDEMARK_META" {
		t.Errorf("META key %s, bucket %s", got, feed.MetaBucket("TIDEMARK"))
	}
}

// TestStream_Golden pins feed-v1, the recorded stream the archiver's and
// restorer's golden tests consume (internal/testing/golden): capture's
// encoding of the whole script must reproduce the recording, and today's
// decoders must read every message of the recording back to the script's
// events and heartbeats.
func TestStream_Golden(t *testing.T) {
	tbl := golden.FeedV1Table()
	def, err := json.Marshal(tbl) // as cdc's tableRegistry.ensure stores it
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join(golden.FeedV1MetaDir(), feed.TableKey(tbl.ID())), def, *update)
	golden.Check(t, golden.FeedV1StreamFile(), golden.MarshalMsgs(streamComment, golden.FeedV1Messages()...), *update)

	msgs, meta, err := golden.ReadFeedV1()
	if err != nil {
		t.Fatal(err)
	}
	var (
		events     []*event.Event
		heartbeats []event.Position
		seen       = map[string]bool{}
		tampers    int
	)
	for i, m := range msgs {
		switch {
		case feed.IsTamper(m):
			tampers++
		case feed.IsHeartbeat(m):
			hb, err := feed.DecodeHeartbeat(m)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			heartbeats = append(heartbeats, hb.LSN)
		default:
			var def event.Table
			if err := json.Unmarshal(meta[feed.TableKey(m.Header.Get(feed.HeaderSchemaID))], &def); err != nil {
				t.Fatalf("message %d: table definition %s: %v", i, m.Header.Get(feed.HeaderSchemaID), err)
			}
			e, err := feed.DecodeEvent(m, &def)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if id := m.Header.Get(feed.HeaderMsgID); !seen[id] {
				seen[id] = true
				events = append(events, e)
			}
		}
	}
	want := golden.FeedV1Events()
	slices.SortStableFunc(events, func(a, b *event.Event) int {
		if c := cmp.Compare(a.EndLSN, b.EndLSN); c != 0 {
			return c
		}
		return a.Index - b.Index
	})
	if len(events) != len(want) || len(msgs) != len(want)+1+1+len(heartbeats) {
		t.Fatalf("%d distinct events in %d messages, want %d events (one transaction re-sent, one tamper report, %d heartbeats)",
			len(events), len(msgs), len(want), len(heartbeats))
	}
	for i := range want {
		if !events[i].Equal(want[i]) {
			t.Errorf("event %d\n got %+v\nwant %+v", i, events[i], want[i])
		}
	}
	if !slices.Equal(heartbeats, golden.FeedV1Heartbeats()) || tampers != 1 {
		t.Errorf("heartbeats %v, tamper reports %d", heartbeats, tampers)
	}
}

const streamComment = `feed-v1: a feed as capture published it, in publish order (see internal/testing/golden/feedv1.go).
Regenerate: go test ./internal/feed -run TestStream_Golden -update`
