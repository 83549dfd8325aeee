package segment

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
)

// v2 returns writer options for a format-version-2 merged segment.
func v2(c Compression) WriterOptions {
	return WriterOptions{Compression: c, MergeLevel: 1, Format: ColumnarVersion}
}

// checkRoundTrip writes events with opts and checks Decode and OpenReader
// give them back with the writer's trailer.
func checkRoundTrip(t *testing.T, opts WriterOptions, ring *Keyring, events []*event.Event) []byte {
	t.Helper()
	data, tr := encode(t, opts, events)
	seg, err := Decode("segments/v2.tms", data, ReadOptions{Keyring: ring})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	got, r, err := streamAll("segments/v2.tms", data, ReadOptions{Keyring: ring})
	if err != nil {
		t.Fatalf("OpenReader: %v", err)
	}
	if len(seg.Events) != len(events) || len(got) != len(events) {
		t.Fatalf("Decode %d, stream %d events; wrote %d", len(seg.Events), len(got), len(events))
	}
	for i := range events {
		if !seg.Events[i].Equal(events[i]) || !got[i].Equal(events[i]) {
			t.Fatalf("event %d: Decode %+v, stream %+v, want %+v", i, seg.Events[i], got[i], events[i])
		}
		for c, v := range events[i].Values {
			if (v == nil) != (seg.Events[i].Values[c] == nil) || (v == nil) != (got[i].Values[c] == nil) {
				t.Fatalf("event %d column %d: NULL and empty string confused", i, c)
			}
		}
	}
	if d := diffTrailer(tr, &seg.Trailer); d != "" || seg.Trailer.SHA256 != tr.SHA256 {
		t.Fatalf("Decode trailer differs from Close's: %s", d)
	}
	if d := diffTrailer(tr, r.Trailer()); d != "" {
		t.Fatalf("stream trailer differs from Close's: %s", d)
	}
	if seg.Header.Version != opts.Format || seg.Header.Level != opts.MergeLevel {
		t.Fatalf("header version %d level %d", seg.Header.Version, seg.Header.Level)
	}
	return data
}

func TestColumnar_RoundTrip(t *testing.T) {
	ring := mustKeyring(t, mustGenerateKey(t))
	sets := map[string][]*event.Event{
		"gen":       newGen(41, 30).events(1000),
		"eventcore": newEventCoreGen(41, 30000).events(1000),
		"fuzz":      fuzzEvents(),
	}
	for name, events := range sets {
		for _, c := range []Compression{None, Gzip, Zstd} {
			for _, enc := range []*Keyring{nil, ring} {
				if enc != nil && c != Zstd {
					continue
				}
				t.Run(fmt.Sprintf("%s/%s/encrypted=%v", name, c, enc != nil), func(t *testing.T) {
					opts := v2(c)
					if name == "fuzz" {
						opts.Table = fuzzTable
					}
					opts.Keyring = enc
					data := checkRoundTrip(t, opts, ring, events)
					if data[5] != ColumnarVersion {
						t.Fatalf("version byte %d", data[5])
					}
				})
			}
		}
	}
}

// oddValues are values that test every path of the value encoding.
var oddValues = []string{
	"", "x", "{", "[", "{}", "[]", "{ }", "[1,2,3]", "[1, 2.5e-3, -7, 1E+9, true, false, null]",
	`{"a":1}`, `{"a": "b", "c": [1, {"d": null}], "e": {"f": "g"}}`, "{\n  \"a\" : 1 ,\n\t\"b\":\"\"\n}",
	`{"a\"b": "c\"d", "e\\": "\\"}`, `{"u": "\u0000", "v": "caf\u00e9", "w": "日本"}`, `{"x": "a"}x`, `{"x": }`,
	`{"k": "0e3fc9a8-3a5b-4c5e-9f1a-2b3c4d5e6f70"}`, `{"k": "0E3FC9A8-3A5B-4C5E-9F1A-2B3C4D5E6F70"}`,
	`["0e3fc9a8-3a5b-4c5e-9f1a-2b3c4d5e6f70", "0e3fc9a8-3a5b-4c5e-9f1a-2b3c4d5e6f7"]`,
	"0e3fc9a8-3a5b-4c5e-9f1a-2b3c4d5e6f70", "0E3FC9A8-3A5B-4C5E-9F1A-2B3C4D5E6F70", "0e3fc9a8-3a5b-4c5e-9f1a-2b3c4d5e6f7g",
	"0e3fc9a83a5b4c5e9f1a2b3c4d5e6f70", "{0e3fc9a8-3a5b-4c5e-9f1a-2b3c4d5e6f7}", `"quoted"`, "42", "-0", "true",
	"\x00\x01\xff", "{\x00}", "{\"a\": \"\x00\"}", "[\"\x00\"]", strings.Repeat("[", 100) + strings.Repeat("]", 100),
	`{"deep": ` + strings.Repeat(`{"a": `, 50) + "1" + strings.Repeat("}", 50) + "}",
}

// oddEvents puts oddValues, NULLs and their neighbours through one table,
// in transactions of every shape: split at both ends, snapshot rows,
// extreme positions, times and xids.
func oddEvents() []*event.Event {
	var out []*event.Event
	end := event.Position(1 << 40)
	// add appends events first..last-1 of a transaction of count events.
	add := func(first, last, count int, commit, prev event.Position, us int64, xid uint32, snapshot bool, vals func(i int) [][]byte) {
		for i := first; i < last; i++ {
			out = append(out, &event.Event{Table: "s.odd", CommitLSN: commit, EndLSN: end, PrevLSN: prev,
				CommitTime: time.UnixMicro(us).UTC(), XID: xid, Index: i, Count: count, Snapshot: snapshot, Values: vals(i)})
		}
	}
	val := func(i int) []byte { return []byte(oddValues[i%len(oddValues)]) }
	add(3, 5, 5, end-8, end-100, 1795601700000000, 7, false, func(i int) [][]byte { return [][]byte{val(i), nil, val(i + 1)} })
	for k := range oddValues {
		end += event.Position(1 + k*1000)
		n := 1 + k%3
		add(0, n, n, end+5, end-1, int64(-k)*1e9, uint32(math.MaxUint32-k), k%4 == 0, func(i int) [][]byte {
			v := [][]byte{val(k + i), val(k), nil}
			if k%2 == 0 {
				v[2] = []byte{}
			}
			return v
		})
	}
	end = math.MaxUint64
	add(0, 2, maxIndex, 0, end-1, math.MaxInt64/2, 0, false, func(i int) [][]byte { return [][]byte{nil, nil, val(i)} })
	return out
}

var oddTable = event.Table{Schema: "s", Name: "odd", Columns: []event.Column{
	{Name: "a", Type: "text"}, {Name: "b", Type: "jsonb"}, {Name: "c", Type: "uuid"}}}

func TestColumnar_OddValues(t *testing.T) {
	events := oddEvents()
	for _, c := range []Compression{None, Gzip, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			opts := v2(c)
			opts.Table = oddTable
			checkRoundTrip(t, opts, nil, events)
		})
	}
}

// TestColumnar_Blocks crosses block boundaries by size and by event count,
// with transactions split between blocks, and writes a block of one event
// larger than the multi-event block limit.
func TestColumnar_Blocks(t *testing.T) {
	smallBlocks := func(t *testing.T, raw, events int) {
		r, e := blockTargetRaw, blockTargetEvents
		blockTargetRaw, blockTargetEvents = raw, events
		t.Cleanup(func() { blockTargetRaw, blockTargetEvents = r, e })
	}
	t.Run("by size", func(t *testing.T) {
		smallBlocks(t, 16<<10, maxBlockEvents)
		events := newGen(43, 50).events(300) // ~750-byte records: ~14 blocks
		data := checkRoundTrip(t, v2(Zstd), nil, events)
		if n := countBlocks(t, data); n < 10 {
			t.Fatalf("%d blocks", n)
		}
	})
	t.Run("by count", func(t *testing.T) {
		if !raceEnabled {
			smallBlocks(t, blockTargetRaw, 1000) // the format's own limit is tested without -race only
		}
		tbl := event.Table{Schema: "s", Name: "t", Columns: []event.Column{{Name: "v", Type: "int"}}}
		var events []*event.Event
		for i := range blockTargetEvents + 100 {
			end := event.Position(100 + i/7)
			events = append(events, &event.Event{Table: "s.t", CommitLSN: end - 1, EndLSN: end, PrevLSN: end - 1,
				CommitTime: time.UnixMicro(int64(i / 7)).UTC(), XID: uint32(i / 7), Index: i % 7, Count: 7,
				Values: [][]byte{[]byte(fmt.Sprint(i))}})
		}
		events = events[:len(events)-3] // the last transaction stops early
		opts := v2(Zstd)
		opts.Table = tbl
		data := checkRoundTrip(t, opts, nil, events)
		if n := countBlocks(t, data); n != 2 {
			t.Fatalf("%d blocks", n)
		}
	})
	t.Run("one large event", func(t *testing.T) {
		g := newGen(44, 5)
		events := g.events(10)
		big := g.tx(1)[0]
		big.Values[4] = bytes.Repeat([]byte(`{"k": "0e3fc9a8-3a5b-4c5e-9f1a-2b3c4d5e6f70", "n": [1, 2, 3]}`), maxBlockStreamBytes/50)
		big.Values[5] = bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz"), maxBlockStreamBytes/20)
		events = append(events, big)
		events = append(events, g.events(10)...)
		c := Zstd // a stream above the window: no declared content size
		if raceEnabled {
			c = None
		}
		data := checkRoundTrip(t, v2(c), nil, events)
		if n := countBlocks(t, data); n < 3 {
			t.Fatalf("%d blocks", n)
		}
	})
}

// countBlocks counts the blocks in a plaintext version-2 segment.
func countBlocks(t *testing.T, data []byte) int {
	t.Helper()
	v, err := verify("count.tms", memSource(data), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := newBlockStream("count.tms", v, DefaultMaxRawBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.close()
	for bs.src.n < bs.size {
		if err := bs.readBlock(); err != nil {
			t.Fatal(err)
		}
	}
	return bs.blocks
}

// TestColumnar_SkeletonLimits: documents beyond a column's skeleton budget
// are stored as text, and round-trip all the same.
func TestColumnar_SkeletonLimits(t *testing.T) {
	tbl := event.Table{Schema: "s", Name: "t", Columns: []event.Column{{Name: "doc", Type: "jsonb"}}}
	var events []*event.Event
	for i := range 2*maxColumnSkeletons + 10 {
		doc := fmt.Sprintf(`{"k%d": %d}`, i, i) // a new skeleton every time
		if i%50 == 0 {
			doc = "[" + strings.Repeat("1,", maxColumnSlots) + "1]" // too many placeholders
		}
		events = append(events, &event.Event{Table: "s.t", CommitLSN: event.Position(i), EndLSN: event.Position(i + 1),
			PrevLSN: event.Position(i), CommitTime: time.UnixMicro(int64(i)).UTC(), Count: 1, Values: [][]byte{[]byte(doc)}})
	}
	opts := v2(None)
	opts.Table = tbl
	checkRoundTrip(t, opts, nil, events)
	enc := newBlockEncoder(None, 0, 1)
	evs := make([]event.Event, len(events))
	for i, e := range events {
		evs[i] = *e
	}
	if err := enc.build(evs); err != nil {
		t.Fatal(err)
	}
	if n := len(enc.cols[0].skels); n != maxColumnSkeletons {
		t.Fatalf("%d skeletons, want the budget of %d", n, maxColumnSkeletons)
	}
}

// TestColumnar_Ratio guards the point of format version 2: on EventCore
// rows a merged segment stores at most 0.12 of the rows' JSON
// (BenchmarkArchiveRatio measures it on 300,000 rows).
func TestColumnar_Ratio(t *testing.T) {
	g := newEventCoreGen(42, 30000)
	g.streams = 500 // the trailer's stream ranges in proportion to a larger segment's
	events := g.events(5000)
	var js int
	for _, e := range events {
		js += rowJSONBytes(e)
	}
	_, tr := encode(t, v2(Zstd), events)
	ratio := float64(tr.StoredBytes) / float64(js)
	t.Logf("%d events: %d bytes of row JSON, %d stored: %.4f", len(events), js, tr.StoredBytes, ratio)
	if ratio > 0.12 {
		t.Fatalf("archive/json %.4f, want ≤ 0.12", ratio)
	}
}
