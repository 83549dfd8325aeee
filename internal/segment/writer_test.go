package segment

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
)

func TestDecode_RoundTrip(t *testing.T) {
	events := newGen(1, 20).events(300)
	ring := mustKeyring(t, mustGenerateKey(t))
	for _, c := range []Compression{None, Gzip, Zstd} {
		for _, level := range []int{0, 1, 9} {
			if c == None && level != 0 {
				continue
			}
			for _, enc := range []bool{false, true} {
				name := fmt.Sprintf("%s/level%d/encrypted=%v", c, level, enc)
				t.Run(name, func(t *testing.T) {
					opts := WriterOptions{Compression: c, Level: level}
					if enc {
						opts.Keyring = ring
					}
					data, tr := encode(t, opts, events)
					if (data[6] == flagEncrypted) != enc {
						t.Fatalf("flags byte %#x", data[6])
					}
					if enc && bytes.Contains(data, []byte("account-1")) {
						t.Fatal("encrypted segment contains plaintext event data")
					}
					sum := sha256.Sum256(data)
					if tr.SHA256 != hex.EncodeToString(sum[:]) || tr.StoredBytes != int64(len(data)) {
						t.Fatalf("Close trailer SHA/size = %s/%d, object %x/%d", tr.SHA256, tr.StoredBytes, sum, len(data))
					}
					seg, err := Decode("segments/x.tms", data, ReadOptions{Keyring: ring})
					if err != nil {
						t.Fatalf("Decode: %v", err)
					}
					if len(seg.Events) != len(events) {
						t.Fatalf("decoded %d events, wrote %d", len(seg.Events), len(events))
					}
					for i := range events {
						if !seg.Events[i].Equal(events[i]) {
							t.Fatalf("event %d: got %+v, want %+v", i, seg.Events[i], events[i])
						}
					}
					if d := diffTrailer(tr, &seg.Trailer); d != "" || seg.Trailer.SHA256 != tr.SHA256 || seg.Trailer.StoredBytes != tr.StoredBytes {
						t.Fatalf("decoded trailer differs from Close's: %s", d)
					}
					h := seg.Header
					if h.Version != Version || h.Compression != c || h.SystemID != "7345034223590588888" ||
						(h.KeyID != "") != enc || h.Table.ID() != testTable().ID() || time.Since(h.Created) > time.Minute {
						t.Fatalf("header = %+v", h)
					}
					if enc && h.KeyID != ring.ActiveID() {
						t.Fatalf("key id %s, want %s", h.KeyID, ring.ActiveID())
					}
					hh, tt, err := ReadTrailer("segments/x.tms", data, ReadOptions{Keyring: ring})
					if err != nil || hh.KeyID != h.KeyID || diffTrailer(tr, tt) != "" || tt.SHA256 != tr.SHA256 {
						t.Fatalf("ReadTrailer = %+v, %+v, %v", hh, tt, err)
					}
				})
			}
		}
	}
}

func TestDecode_NullDistinctFromEmpty(t *testing.T) {
	tbl := event.Table{Schema: "s", Name: "t", Columns: []event.Column{{Name: "a", Type: "text"}, {Name: "b", Type: "text"}, {Name: "c", Type: "text"}}}
	e := &event.Event{Table: "s.t", CommitLSN: 1, EndLSN: 2, PrevLSN: 0, CommitTime: time.UnixMicro(5).UTC(),
		Count: 1, Snapshot: true, Values: [][]byte{nil, {}, []byte("x")}}
	for _, c := range []Compression{None, Gzip, Zstd} {
		data, _ := encode(t, WriterOptions{Table: tbl, Compression: c}, []*event.Event{e})
		seg, err := Decode("n", data, ReadOptions{})
		if err != nil {
			t.Fatalf("%s: Decode: %v", c, err)
		}
		v := seg.Events[0].Values
		if v[0] != nil || v[1] == nil || len(v[1]) != 0 || string(v[2]) != "x" || !seg.Events[0].Snapshot {
			t.Fatalf("%s: values %q (nil? %v %v), snapshot %v", c, v, v[0] == nil, v[1] == nil, seg.Events[0].Snapshot)
		}
		if seg.Trailer.Streams != nil {
			t.Fatalf("table without stream columns has streams %v", seg.Trailer.Streams)
		}
	}
}

func TestWriter_Trailer(t *testing.T) {
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	ev := func(end event.Position, idx, count int, sec int, stream, version string) *event.Event {
		var sv []byte
		if version != "" {
			sv = []byte(version)
		}
		var sid []byte
		if stream != "" {
			sid = []byte(stream)
		}
		return &event.Event{Table: "public.eventcore_events", CommitLSN: end - 8, EndLSN: end, PrevLSN: end - 100,
			CommitTime: base.Add(time.Duration(sec) * time.Second), XID: uint32(end), Index: idx, Count: count,
			Values: [][]byte{[]byte("id"), sid, sv, []byte("T"), []byte("{}"), nil, []byte("now")}}
	}
	// Commit times go 10, 5, 20, 3 seconds: min is the 4th transaction's, max the 3rd's.
	events := []*event.Event{
		ev(1000, 0, 2, 10, "a", "1"), ev(1000, 1, 2, 10, "b", "7"),
		ev(2000, 0, 1, 5, "a", "2"),
		ev(3000, 0, 3, 20, "a", "3"), ev(3000, 1, 3, 20, "", "9"), ev(3000, 2, 3, 20, "c", "x"),
		ev(4000, 0, 1, 3, "b", "-2"),
	}
	data, tr := encode(t, WriterOptions{}, events)
	want := Trailer{Events: 7, Transactions: 4, FirstCommitLSN: 992, LastCommitLSN: 3992, FirstEndLSN: 1000,
		LastEndLSN: 4000, PrevLSN: 900, MinCommitTime: base.Add(3 * time.Second), MaxCommitTime: base.Add(20 * time.Second),
		Streams: map[string]VersionRange{"a": {1, 3}, "b": {-2, 7}}, RawBytes: tr.RawBytes}
	if d := diffTrailer(&want, tr); d != "" {
		t.Fatalf("Close trailer: %s (got %+v)", d, tr)
	}
	if tr.RawBytes <= 0 {
		t.Fatalf("raw bytes %d", tr.RawBytes)
	}
	seg, err := Decode("n", data, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := diffTrailer(&want, &seg.Trailer); d != "" {
		t.Fatalf("decoded trailer: %s", d)
	}
}

func TestWriter_StreamsSkipInvalidUTF8(t *testing.T) {
	tbl := event.Table{Schema: "s", Name: "t", Columns: []event.Column{{Name: "stream_id", Type: "text"}, {Name: "stream_version", Type: "bigint"}}}
	mk := func(end event.Position, id, v string) *event.Event {
		return &event.Event{Table: "s.t", CommitLSN: end, EndLSN: end, Count: 1, CommitTime: time.UnixMicro(int64(end)).UTC(),
			Values: [][]byte{[]byte(id), []byte(v)}}
	}
	events := []*event.Event{mk(1, "ok", "1"), mk(2, "bad\xff", "2"), mk(3, "<&>\u2028", "3"), mk(4, "ok", "99999999999999999999")}
	data, tr := encode(t, WriterOptions{Table: tbl}, events)
	want := map[string]VersionRange{"ok": {1, 1}, "<&>\u2028": {3, 3}}
	if fmt.Sprint(tr.Streams) != fmt.Sprint(want) {
		t.Fatalf("streams %v, want %v", tr.Streams, want)
	}
	seg, err := Decode("n", data, ReadOptions{})
	if err != nil || fmt.Sprint(seg.Trailer.Streams) != fmt.Sprint(want) {
		t.Fatalf("Decode = %v; streams %v", err, seg.Trailer.Streams)
	}
}

func TestWriter_TransactionSplitAcrossSegments(t *testing.T) {
	txn := newGen(3, 5).tx(5)
	for _, part := range [][]*event.Event{txn[:2], txn[2:]} {
		data, tr := encode(t, WriterOptions{}, part)
		if tr.Transactions != 1 || tr.Events != len(part) {
			t.Fatalf("trailer %+v", tr)
		}
		if _, err := Decode("n", data, ReadOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWriter_Append(t *testing.T) {
	g := newGen(2, 3)
	a, b := g.tx(2), g.tx(1)
	mod := func(e *event.Event, f func(*event.Event)) *event.Event { c := *e; f(&c); return &c }
	for _, tc := range []struct {
		name   string
		events []*event.Event
		want   string
	}{
		{"wrong table", []*event.Event{mod(a[0], func(e *event.Event) { e.Table = "public.other" })}, "writer is for table"},
		{"missing values", []*event.Event{mod(a[0], func(e *event.Event) { e.Values = e.Values[:3] })}, "3 values for 7 columns"},
		{"index outside count", []*event.Event{mod(a[0], func(e *event.Event) { e.Index = 2 })}, "outside count"},
		{"skipped index", []*event.Event{a[0], mod(a[1], func(e *event.Event) { e.Index = 0 })}, "does not continue"},
		{"xid changes", []*event.Event{a[0], mod(a[1], func(e *event.Event) { e.XID++ })}, "does not continue"},
		{"incomplete transaction", []*event.Event{a[0], b[0]}, "has only 1 of 2"},
		{"out of order", []*event.Event{b[0], a[0]}, "not chain order"},
		{"new transaction mid-way", []*event.Event{a[0], a[1], mod(b[0], func(e *event.Event) { e.Index, e.Count = 1, 2 })}, "starts at index 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, WriterOptions{Table: testTable()})
			if err != nil {
				t.Fatal(err)
			}
			var last error
			accepted := 0
			for _, e := range tc.events {
				if last = w.Append(e); last != nil {
					break
				}
				accepted++
			}
			if last == nil || !strings.Contains(last.Error(), tc.want) {
				t.Fatalf("Append error = %v, want one containing %q", last, tc.want)
			}
			// A rejected event leaves the segment valid with what was accepted.
			tr, err := w.Close()
			if err != nil || tr.Events != accepted {
				t.Fatalf("Close = %+v, %v; want %d events", tr, err, accepted)
			}
			if _, err := Decode("n", buf.Bytes(), ReadOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := w.Append(a[0]); err == nil {
				t.Fatal("Append after Close succeeded")
			}
			if _, err := w.Close(); err == nil {
				t.Fatal("second Close succeeded")
			}
		})
	}
}

func TestNewWriter_Options(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts WriterOptions
		want string
	}{
		{"keyring without keys", WriterOptions{Table: testTable(), Keyring: &Keyring{}}, "keyring has no keys"},
		{"zstd level", WriterOptions{Table: testTable(), Level: 23}, "out of range"},
		{"gzip level", WriterOptions{Table: testTable(), Compression: Gzip, Level: 10}, "out of range"},
		{"level without compression", WriterOptions{Table: testTable(), Compression: None, Level: 3}, "without compression"},
		{"unknown compression", WriterOptions{Table: testTable(), Compression: 9}, "unknown compression"},
		{"no table", WriterOptions{}, "no name"},
		{"no columns", WriterOptions{Table: event.Table{Name: "t"}}, "0 columns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewWriter error = %v, want one containing %q", err, tc.want)
			}
			if w != nil || buf.Len() != 0 {
				t.Fatalf("NewWriter wrote %d bytes / returned a writer despite the error", buf.Len())
			}
		})
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after < len(p) {
		return 0, errors.New("disk full")
	}
	f.after -= len(p)
	return len(p), nil
}

func TestWriter_IOError(t *testing.T) {
	w, err := NewWriter(&failingWriter{after: 1000}, WriterOptions{Table: testTable()})
	if err != nil {
		t.Fatal(err)
	}
	var appendErr error
	for _, e := range newGen(4, 5).events(2000) {
		if appendErr = w.Append(e); appendErr != nil {
			break
		}
	}
	_, closeErr := w.Close()
	if err := errors.Join(appendErr, closeErr); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("errors = %v, want disk full", err)
	}
}

func TestWriter_EmptySegment(t *testing.T) {
	data, tr := encode(t, WriterOptions{}, nil)
	if tr.Events != 0 || tr.Transactions != 0 || !tr.MinCommitTime.IsZero() {
		t.Fatalf("trailer %+v", tr)
	}
	seg, err := Decode("n", data, ReadOptions{})
	if err != nil || len(seg.Events) != 0 || seg.Trailer.Events != 0 {
		t.Fatalf("Decode = %+v, %v", seg, err)
	}
}

func TestWriter_RawBytes(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, WriterOptions{Table: testTable()})
	if err != nil {
		t.Fatal(err)
	}
	prev := int64(0)
	for _, e := range newGen(5, 5).events(50) {
		if err := w.Append(e); err != nil {
			t.Fatal(err)
		}
		if w.RawBytes() <= prev {
			t.Fatalf("RawBytes did not grow: %d", w.RawBytes())
		}
		prev = w.RawBytes()
	}
	tr, err := w.Close()
	if err != nil || tr.RawBytes != prev || w.Events() != tr.Events {
		t.Fatalf("Close = %+v, %v; RawBytes %d", tr, err, prev)
	}
}

func TestCompression_Parse(t *testing.T) {
	for in, want := range map[string]Compression{"": Zstd, "zstd": Zstd, "ZSTD": Zstd, "gzip": Gzip, "none": None} {
		got, err := ParseCompression(in)
		if err != nil || got != want {
			t.Errorf("ParseCompression(%q) = %v, %v; want %v", in, got, err, want)
		}
		if in != "" && in != "ZSTD" && got.String() != in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
	if _, err := ParseCompression("lz4"); err == nil {
		t.Error("ParseCompression(lz4) succeeded")
	}
	var zero Compression
	if zero != Zstd {
		t.Error("zero Compression is not Zstd")
	}
}

func TestWriter_MergeLevel(t *testing.T) {
	events := newGen(31, 10).events(200)
	created := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	for _, level := range []int{0, 1, 3, MaxLevel} {
		t.Run(fmt.Sprint(level), func(t *testing.T) {
			opts := WriterOptions{MergeLevel: level, Created: created}
			data, _ := encode(t, opts, events)
			env := data[prefixLen:envelopeEnd(data)]
			if has := bytes.Contains(env, []byte(`"level"`)); has != (level > 0) {
				t.Fatalf("header %s: has a level member %v at level %d", env, has, level)
			}
			if level > 0 && !bytes.Contains(env, []byte(fmt.Sprintf(`"level":%d`, level))) {
				t.Fatalf("header %s does not record level %d", env, level)
			}
			seg, err := Decode("l.tms", data, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := created.UTC().Truncate(time.Microsecond)
			if seg.Header.Level != level || !seg.Header.Created.Equal(want) || seg.Header.Created.Location() != time.UTC {
				t.Fatalf("header level %d created %s, want %d %s", seg.Header.Level, seg.Header.Created, level, want)
			}
			again, _ := encode(t, opts, events)
			if !bytes.Equal(data, again) {
				t.Fatal("same events, options and Created gave different bytes")
			}
			if w := zstdWindowOf(t, data[envelopeEnd(data):]); w > maxZstdWindow || (level == 0 && w != zstdWindow) {
				t.Fatalf("zstd window %d at level %d", w, level)
			}
		})
	}
	var buf bytes.Buffer
	for _, bad := range []int{-1, MaxLevel + 1} {
		if _, err := NewWriter(&buf, WriterOptions{Table: testTable(), MergeLevel: bad}); err == nil || !strings.Contains(err.Error(), "merge level") {
			t.Fatalf("MergeLevel %d: %v", bad, err)
		}
	}
}

// zstdWindowOf returns the window size a zstd frame header declares.
func zstdWindowOf(t *testing.T, frame []byte) int {
	t.Helper()
	if !bytes.HasPrefix(frame, []byte{0x28, 0xB5, 0x2F, 0xFD}) {
		t.Fatalf("not a zstd frame: % x", frame[:4])
	}
	if fhd := frame[4]; fhd&0x20 != 0 {
		t.Fatal("single-segment frame")
	}
	wd := frame[5]
	base := 1 << (10 + wd>>3)
	return base + base/8*int(wd&7)
}

// TestDecode_HeaderMembers: readers ignore header members they do not know
// (so a version-1 reader that predates "level" reads merged segments), and
// reject a level out of range.
func TestDecode_HeaderMembers(t *testing.T) {
	good := newGen(32, 4).events(5)
	var raw []byte
	for _, e := range good {
		raw, _ = appendRecord(raw, e)
	}
	_, tr := encode(t, WriterOptions{Compression: None}, good)
	h := map[string]any{"version": 1, "compression": "none", "system_id": "1", "table": testTable(),
		"created": "2026-01-01T00:00:00Z", "level": 2, "merged_from": []string{"a", "b"}, "future": map[string]any{"x": 1}}
	j := tr.toJSON("")
	seg, err := Decode("m.tms", forge(h, raw, &j), ReadOptions{})
	if err != nil || seg.Header.Level != 2 {
		t.Fatalf("Decode = %+v, %v", seg, err)
	}
	for _, level := range []any{-1, MaxLevel + 1, "2", 1.5} {
		h["level"] = level
		j := tr.toJSON("")
		_, err := Decode("m.tms", forge(h, raw, &j), ReadOptions{})
		wantCorrupt(t, "m.tms", err, fmt.Sprintf("level %v", level))
	}
}
