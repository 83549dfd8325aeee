package segment

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/testing/golden"
)

// update rewrites the golden files instead of comparing with them:
// go test ./internal/segment -run Golden -update
var update = flag.Bool("update", false, "rewrite golden files")

// goldenDir holds segments written by the version-1 writer. They pin the
// format (docs/segment-format.md): a reader change that cannot read them,
// or a writer change that no longer reproduces them, fails a test.
const goldenDir = "testdata/golden"

// goldenCase is one stored segment: the same events with one codec.
type goldenCase struct {
	file        string
	compression Compression
	encrypted   bool
	// level and format make a merged segment (level ≥ 1), columnar when
	// format is ColumnarVersion.
	level, format int
}

var goldenCases = []goldenCase{
	{"none.tms", None, false, 0, 0},
	{"gzip.tms", Gzip, false, 0, 0},
	{"zstd.tms", Zstd, false, 0, 0},
	// age output is random (a fresh file key and ephemeral share per
	// segment), so only its envelope and size are compared on re-encoding.
	{"age-zstd.tms", Zstd, true, 0, 0},
	// Merged segments: the header's "level" member, and the columnar body.
	{"merged-l2-zstd.tms", Zstd, false, 2, 0},
	{"columnar-l3-zstd.tms", Zstd, false, 3, ColumnarVersion},
}

// goldenSystemID is the source system id in the golden segments' headers.
const goldenSystemID = "7300000000000000001"

// goldenKeyID is the key id of testdata/golden/test.key (a test key).
const goldenKeyID = "a97afaf796ee2e93"

// goldenClock is the writer's clock for the golden segments: not UTC and
// with nanoseconds, so the header shows the conversion and truncation.
var goldenClock = time.Date(2026, 11, 25, 11, 15, 0, 123456789, time.FixedZone("CET", 3600))

// goldenCreated is what the header records for goldenClock.
var goldenCreated = time.Date(2026, 11, 25, 10, 15, 0, 123456000, time.UTC)

func goldenKeyring(tb testing.TB) *Keyring {
	tb.Helper()
	k, err := LoadKeyring(filepath.Join(goldenDir, "test.key"))
	if err != nil {
		tb.Fatal(err)
	}
	if k.ActiveID() != goldenKeyID {
		tb.Fatalf("test key id %s, want %s", k.ActiveID(), goldenKeyID)
	}
	return k
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// goldenEvents are the golden segments' events: the tail of a snapshot
// transaction whose first event is in an earlier segment (snapshot rows,
// synthetic positions), a snapshot transaction with a known commit time,
// a whole streamed transaction, and the head of a transaction that goes on
// in the next segment, with an earlier commit time than the one before.
// Values include NULL and the empty string in the nullable metadata
// column, an empty event type, and non-ASCII text in stream ids and JSON.
func goldenEvents() []*event.Event {
	const tbl = "public.eventcore_events"
	row := func(id, stream, version, typ, data string, meta []byte, created string) [][]byte {
		return [][]byte{[]byte(id), []byte(stream), []byte(version), []byte(typ), []byte(data), meta, []byte(created)}
	}
	snap := utc("2026-11-25T10:14:59.5Z")
	t3 := utc("2026-11-25T10:15:00.000001Z")
	t4 := utc("2026-11-25T10:14:58.999999Z")
	return []*event.Event{
		{Table: tbl, CommitLSN: 1, EndLSN: 1, PrevLSN: 0, CommitTime: snap, XID: 700, Index: 1, Count: 3, Snapshot: true,
			Values: row("0191f3a0-0000-7000-8000-000000000002", "order-1", "2", "OrderShipped",
				`{"carrier": "DHL"}`, []byte(`{}`), "2026-11-25 09:00:00.25+00")},
		{Table: tbl, CommitLSN: 1, EndLSN: 1, PrevLSN: 0, CommitTime: snap, XID: 700, Index: 2, Count: 3, Snapshot: true,
			Values: row("0191f3a0-0000-7000-8000-000000000003", "kunde-ü", "1", "KundeAngelegt",
				`{"ort": "Köln", "name": "Jürgen Groß"}`, nil, "2026-11-25 09:00:00.25+00")},
		{Table: tbl, CommitLSN: 2, EndLSN: 2, PrevLSN: 1, CommitTime: utc("2026-11-25T09:30:00Z"), XID: 701, Index: 0, Count: 1,
			Values: row("0191f3a0-0000-7000-8000-000000000004", "order-2", "1", "",
				`{}`, []byte{}, "2026-11-25 09:30:00+00")},
		{Table: tbl, CommitLSN: 0x16B374C8, EndLSN: 0x16B374F8, PrevLSN: 0x16B37400, CommitTime: t3, XID: 1001, Index: 0, Count: 3,
			Values: row("0191f3a0-0000-7000-8000-000000000005", "order.42", "1", "OrderPlaced",
				`{"items": ["ü", "😀"], "total": 12.5}`, []byte(`{"correlation_id": "c-1"}`), "2026-11-25 10:15:00.000001+00")},
		{Table: tbl, CommitLSN: 0x16B374C8, EndLSN: 0x16B374F8, PrevLSN: 0x16B37400, CommitTime: t3, XID: 1001, Index: 1, Count: 3,
			Values: row("0191f3a0-0000-7000-8000-000000000006", "order.42", "2", "OrderPaid",
				`{"amount": 12.5}`, nil, "2026-11-25 10:15:00.000001+00")},
		{Table: tbl, CommitLSN: 0x16B374C8, EndLSN: 0x16B374F8, PrevLSN: 0x16B37400, CommitTime: t3, XID: 1001, Index: 2, Count: 3,
			Values: row("0191f3a0-0000-7000-8000-000000000007", "Straße 5", "1", "Adresse geändert",
				`{"line": "a\tb"}`, []byte{}, "2026-11-25 10:15:00.000001+00")},
		{Table: tbl, CommitLSN: 0x16B37528, EndLSN: 0x16B37558, PrevLSN: 0x16B374F8, CommitTime: t4, XID: 1002, Index: 0, Count: 4,
			Values: row("0191f3a0-0000-7000-8000-000000000008", "order.42", "3", "OrderShipped",
				`{}`, nil, "2026-11-25 10:14:58.999999+00")},
		{Table: tbl, CommitLSN: 0x16B37528, EndLSN: 0x16B37558, PrevLSN: 0x16B374F8, CommitTime: t4, XID: 1002, Index: 1, Count: 4,
			Values: row("0191f3a0-0000-7000-8000-000000000009", "order-1", "3", "OrderShipped",
				`{"n": 1}`, []byte(`{"by": "✓"}`), "2026-11-25 10:14:58.999999+00")},
	}
}

// goldenTrailer is the trailer every golden segment stores (StoredBytes
// and SHA256 describe each object and are checked separately).
func goldenTrailer() Trailer {
	return Trailer{Events: 8, Transactions: 4,
		FirstCommitLSN: 1, LastCommitLSN: 0x16B37528, FirstEndLSN: 1, LastEndLSN: 0x16B37558, PrevLSN: 0,
		MinCommitTime: utc("2026-11-25T09:30:00Z"), MaxCommitTime: utc("2026-11-25T10:15:00.000001Z"),
		Streams: map[string]VersionRange{
			"order-1": {Min: 2, Max: 3}, "kunde-ü": {Min: 1, Max: 1}, "order-2": {Min: 1, Max: 1},
			"order.42": {Min: 1, Max: 3}, "Straße 5": {Min: 1, Max: 1},
		},
		RawBytes: 1109}
}

// encodeGolden writes the golden events with c's codec and the fixed clock.
func encodeGolden(tb testing.TB, c goldenCase) []byte {
	tb.Helper()
	old := now
	now = func() time.Time { return goldenClock }
	defer func() { now = old }()
	opts := WriterOptions{Compression: c.compression, SystemID: goldenSystemID, Table: goldenTable(),
		MergeLevel: c.level, Format: c.format}
	if c.encrypted {
		opts.Keyring = goldenKeyring(tb)
	}
	data, _ := encode(tb, opts, goldenEvents())
	return data
}

// TestWriter_Golden re-encodes the golden events and requires the stored
// bytes: a writer change that alters any byte of a plaintext segment
// fails here. Encrypted output differs in its age section every time, so
// for it the envelope and the size must match.
//
// The gzip and zstd bytes also depend on github.com/klauspost/compress
// (pinned in go.mod). An upgrade that compresses differently changes no
// format: check that TestDecode_Golden still passes on the old files, then
// rewrite them with -update in the same commit as the upgrade.
func TestWriter_Golden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join(goldenDir, c.file)
			got := encodeGolden(t, c)
			if !c.encrypted {
				golden.Check(t, path, got, *update)
				return
			}
			want, err := os.ReadFile(path)
			same := err == nil && sameEnvelope(got, want)
			switch {
			case *update && !same:
				golden.Check(t, path, got, true)
			case *update:
				// Rewriting would only replace the random age section.
			case err != nil:
				t.Fatalf("read golden file: %v (a new golden file is written with -update)", err)
			case !same:
				env := min(prefixLen+int(binary.BigEndian.Uint32(want[8:prefixLen])), len(want), len(got))
				t.Errorf("%s: envelope or size differs from the golden file: %s", path, golden.Diff(want[:env], got[:env]))
			}
		})
	}
}

// sameEnvelope reports whether two encrypted segments have the same size
// and the same plaintext envelope (prefix and header).
func sameEnvelope(a, b []byte) bool {
	if len(a) != len(b) || len(a) < prefixLen {
		return false
	}
	env := prefixLen + int(binary.BigEndian.Uint32(a[8:prefixLen]))
	return env <= len(a) && bytes.Equal(a[:env], b[:env])
}

// TestWriter_GoldenDeterministic checks what the byte comparison relies
// on: with the pinned compressors, encoding twice, with fresh and with
// pooled encoders, gives identical bytes.
func TestWriter_GoldenDeterministic(t *testing.T) {
	for _, c := range goldenCases {
		if c.encrypted {
			continue
		}
		t.Run(c.file, func(t *testing.T) {
			pooling = false
			fresh := encodeGolden(t, c)
			pooling = true
			first, second := encodeGolden(t, c), encodeGolden(t, c)
			if !bytes.Equal(fresh, first) || !bytes.Equal(first, second) {
				t.Fatalf("%s output is not deterministic: %s / %s", c.compression, golden.Diff(fresh, first), golden.Diff(first, second))
			}
		})
	}
}

// TestDecode_Golden reads the stored segments with today's reader and
// compares the envelope, every header and trailer field and every event
// field with the values above.
func TestDecode_Golden(t *testing.T) {
	ring := goldenKeyring(t)
	for _, c := range goldenCases {
		t.Run(c.file, func(t *testing.T) {
			data := golden.Read(t, filepath.Join(goldenDir, c.file))
			checkGoldenLayout(t, data, c)
			name := "segments/golden/" + c.file
			seg, err := Decode(name, data, ReadOptions{Keyring: ring})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			checkGoldenHeader(t, &seg.Header, c)
			checkGoldenTrailer(t, &seg.Trailer, data)
			want := goldenEvents()
			if len(seg.Events) != len(want) {
				t.Fatalf("decoded %d events, want %d", len(seg.Events), len(want))
			}
			for i := range want {
				if d := diffEvent(seg.Events[i], want[i]); d != "" {
					t.Errorf("event %d: %s", i, d)
				}
			}
			h, tr, err := ReadTrailer(name, data, ReadOptions{Keyring: ring})
			if err != nil {
				t.Fatalf("ReadTrailer: %v", err)
			}
			checkGoldenHeader(t, h, c)
			checkGoldenTrailer(t, tr, data)
		})
	}
}

// checkGoldenLayout checks the prefix and footer bytes (§2.1, §2.6).
func checkGoldenLayout(t *testing.T, data []byte, c goldenCase) {
	t.Helper()
	if len(data) < prefixLen+footerLen {
		t.Fatalf("golden segment of %d bytes", len(data))
	}
	var flags byte
	if c.encrypted {
		flags = 0x01
	}
	hlen := int(binary.BigEndian.Uint32(data[8:12]))
	foot := data[len(data)-footerLen:]
	sum := sha256.Sum256(data[:len(data)-footerLen])
	version := byte(1)
	if c.format == ColumnarVersion {
		version = ColumnarVersion
	}
	switch {
	case string(data[:5]) != "TMSEG" || data[5] != version || data[6] != flags || data[7] != 0:
		t.Errorf("prefix % x, want magic TMSEG, version %d, flags %#x, reserved 0", data[:8], version, flags)
	case data[prefixLen] != '{' || data[prefixLen+hlen-1] != '}':
		t.Errorf("header_len %d does not delimit the header JSON", hlen)
	case string(foot[40:]) != "TMSEGEND":
		t.Errorf("footer magic %q", foot[40:])
	case binary.BigEndian.Uint64(foot[:8]) != uint64(len(data)-prefixLen-hlen-footerLen):
		t.Errorf("sealed_len %d, object %d bytes, header %d", binary.BigEndian.Uint64(foot[:8]), len(data), hlen)
	case !bytes.Equal(foot[8:40], sum[:]):
		t.Errorf("footer checksum does not cover the bytes before it")
	}
}

func checkGoldenHeader(t *testing.T, h *Header, c goldenCase) {
	t.Helper()
	keyID := ""
	if c.encrypted {
		keyID = goldenKeyID
	}
	version := 1
	if c.format == ColumnarVersion {
		version = ColumnarVersion
	}
	want := Header{Version: version, Compression: c.compression, KeyID: keyID, SystemID: goldenSystemID,
		Table: goldenTable(), Created: goldenCreated, Level: c.level}
	if !reflect.DeepEqual(*h, want) {
		t.Errorf("header\n got %+v\nwant %+v", *h, want)
	}
	if h.Created.Location() != time.UTC {
		t.Errorf("header created in %s, want UTC", h.Created.Location())
	}
}

func checkGoldenTrailer(t *testing.T, tr *Trailer, data []byte) {
	t.Helper()
	want := goldenTrailer()
	sum := sha256.Sum256(data)
	want.StoredBytes, want.SHA256 = int64(len(data)), hex.EncodeToString(sum[:])
	if !reflect.DeepEqual(*tr, want) {
		t.Errorf("trailer\n got %+v\nwant %+v", *tr, want)
	}
}

// diffEvent names the fields in which got differs from want, or "".
func diffEvent(got, want *event.Event) string {
	var d string
	add := func(field string, g, w any) { d += fmt.Sprintf("%s %v, want %v; ", field, g, w) }
	if got.Table != want.Table {
		add("Table", got.Table, want.Table)
	}
	if got.CommitLSN != want.CommitLSN {
		add("CommitLSN", got.CommitLSN, want.CommitLSN)
	}
	if got.EndLSN != want.EndLSN {
		add("EndLSN", got.EndLSN, want.EndLSN)
	}
	if got.PrevLSN != want.PrevLSN {
		add("PrevLSN", got.PrevLSN, want.PrevLSN)
	}
	if !got.CommitTime.Equal(want.CommitTime) || got.CommitTime.Location() != time.UTC {
		add("CommitTime", got.CommitTime, want.CommitTime)
	}
	if got.XID != want.XID {
		add("XID", got.XID, want.XID)
	}
	if got.Index != want.Index || got.Count != want.Count {
		add("Index/Count", fmt.Sprint(got.Index, "/", got.Count), fmt.Sprint(want.Index, "/", want.Count))
	}
	if got.Snapshot != want.Snapshot {
		add("Snapshot", got.Snapshot, want.Snapshot)
	}
	if len(got.Values) != len(want.Values) {
		add("len(Values)", len(got.Values), len(want.Values))
		return d
	}
	for i := range want.Values {
		g, w := got.Values[i], want.Values[i]
		if (g == nil) != (w == nil) || !bytes.Equal(g, w) {
			add(fmt.Sprintf("Values[%d]", i), showValue(g), showValue(w))
		}
	}
	return d
}

func showValue(v []byte) string {
	if v == nil {
		return "NULL"
	}
	return fmt.Sprintf("%q", v)
}

// goldenTable is the table definition the golden segments carry. It is
// part of what they pin (the header and the table id), so it is written
// out here rather than taken from the fixture, which may evolve.
func goldenTable() event.Table {
	return event.Table{Schema: "public", Name: "eventcore_events", Columns: []event.Column{
		{Name: "event_id", Type: "uuid", OID: 2950, NotNull: true, Key: true},
		{Name: "stream_id", Type: "text", OID: 25, NotNull: true},
		{Name: "stream_version", Type: "bigint", OID: 20, NotNull: true},
		{Name: "event_type", Type: "text", OID: 25, NotNull: true},
		{Name: "event_data", Type: "jsonb", OID: 3802, NotNull: true},
		{Name: "metadata", Type: "jsonb", OID: 3802},
		{Name: "created_at", Type: "timestamp with time zone", OID: 1184, NotNull: true},
	}}
}
