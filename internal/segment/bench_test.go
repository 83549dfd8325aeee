package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
)

// benchEvents are EventCore-like rows (~500-byte event_data, ~150-byte
// metadata) in transactions of 1–5 events.
func benchEvents(b *testing.B) []*event.Event {
	b.Helper()
	events := newGen(99, 1000).events(20000)
	var data, meta int
	for _, e := range events {
		data += len(e.Values[4])
		meta += len(e.Values[5])
	}
	b.Logf("%d events, mean event_data %d bytes, mean metadata %d bytes", len(events), data/len(events), meta/len(events))
	return events
}

type benchCase struct {
	name string
	opts WriterOptions
}

func benchCases(b *testing.B) []benchCase {
	ring := mustKeyring(b, fuzzKey)
	return []benchCase{
		{"none", WriterOptions{Compression: None}},
		{"gzip", WriterOptions{Compression: Gzip}},
		{"zstd", WriterOptions{Compression: Zstd}},
		{"zstd-level1", WriterOptions{Compression: Zstd, Level: 1}},
		{"zstd-merged", WriterOptions{Compression: Zstd, MergeLevel: 1}},
		{"zstd-v2", WriterOptions{Compression: Zstd, MergeLevel: 1, Format: ColumnarVersion}},
		{"zstd-v2+age", WriterOptions{Compression: Zstd, MergeLevel: 1, Format: ColumnarVersion, Keyring: ring}},
		{"zstd+age", WriterOptions{Compression: Zstd, Keyring: ring}},
	}
}

// BenchmarkWriter measures writing a segment; MB/s counts raw record bytes.
func BenchmarkWriter(b *testing.B) {
	events := benchEvents(b)
	for _, bc := range benchCases(b) {
		b.Run(bc.name, func(b *testing.B) {
			opts := bc.opts
			opts.Table = eventcore.TableDef()
			var buf bytes.Buffer
			var tr *Trailer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				w, err := NewWriter(&buf, opts)
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range events {
					if err := w.Append(e); err != nil {
						b.Fatal(err)
					}
				}
				if tr, err = w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(tr.RawBytes)
			b.ReportMetric(float64(tr.RawBytes)/float64(tr.StoredBytes), "ratio")
			b.ReportMetric(float64(len(events))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkDecode measures verifying and decoding a segment; MB/s counts raw
// record bytes.
func BenchmarkDecode(b *testing.B) {
	events := benchEvents(b)
	ring := mustKeyring(b, fuzzKey)
	for _, bc := range benchCases(b) {
		b.Run(bc.name, func(b *testing.B) {
			data, tr := encode(b, bc.opts, events)
			b.SetBytes(tr.RawBytes)
			b.ReportAllocs()
			for b.Loop() {
				seg, err := Decode("bench", data, ReadOptions{Keyring: ring})
				if err != nil {
					b.Fatal(err)
				}
				if len(seg.Events) != len(events) {
					b.Fatal(fmt.Sprint(len(seg.Events)))
				}
			}
			b.ReportMetric(float64(tr.RawBytes)/float64(tr.StoredBytes), "ratio")
			b.ReportMetric(float64(len(events))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkReader measures verifying and streaming a segment with
// OpenReader (from memory, through io.ReaderAt); MB/s counts raw record
// bytes.
func BenchmarkReader(b *testing.B) {
	events := benchEvents(b)
	ring := mustKeyring(b, fuzzKey)
	for _, bc := range benchCases(b) {
		b.Run(bc.name, func(b *testing.B) {
			data, tr := encode(b, bc.opts, events)
			b.SetBytes(tr.RawBytes)
			b.ReportAllocs()
			for b.Loop() {
				got, _, err := countStreamed("bench", data, ReadOptions{Keyring: ring})
				if err != nil {
					b.Fatal(err)
				}
				if got != len(events) {
					b.Fatal(fmt.Sprint(got))
				}
			}
			b.ReportMetric(float64(tr.RawBytes)/float64(tr.StoredBytes), "ratio")
			b.ReportMetric(float64(len(events))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// countStreamed streams data and counts the events, keeping none.
func countStreamed(name string, data []byte, opts ReadOptions) (int, *Reader, error) {
	r, err := OpenReader(name, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		return 0, nil, err
	}
	defer r.Close()
	n := 0
	for {
		_, err := r.Next()
		if errors.Is(err, io.EOF) {
			return n, r, nil
		}
		if err != nil {
			return n, r, err
		}
		n++
	}
}

// BenchmarkBaselineZstd compresses and decompresses the same raw records
// with bare klauspost zstd (EncodeAll/DecodeAll, default level), as a
// yardstick for the format's overhead on this machine.
func BenchmarkBaselineZstd(b *testing.B) {
	var raw []byte
	for _, e := range benchEvents(b) {
		raw, _ = appendRecord(raw, e)
	}
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	defer dec.Close()
	comp := enc.EncodeAll(raw, nil)
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		dst := make([]byte, 0, len(comp)*2)
		for b.Loop() {
			dst = enc.EncodeAll(raw, dst[:0])
		}
		b.ReportMetric(float64(len(raw))/float64(len(dst)), "ratio")
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		dst := make([]byte, 0, len(raw))
		for b.Loop() {
			var err error
			if dst, err = dec.DecodeAll(comp, dst[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkArchiveRatio measures "archive bytes ÷ raw JSON" (docs/
// benchmarks.md) on EventCore rows as the benchmarks load them: the stored
// segments' bytes over the rows' row_to_json size, as flush segments (one
// per second of events at 30,000 events/s) and as one merged segment per
// format. Run it alone, once:
//
//	go test -run '^$' -bench ArchiveRatio -benchtime 1x ./internal/segment/
func BenchmarkArchiveRatio(b *testing.B) {
	const n, rate = 300_000, 30_000
	events := newEventCoreGen(7, rate).events(n)
	var jsonBytes, raw int64
	for _, e := range events {
		jsonBytes += int64(rowJSONBytes(e))
		raw += int64(recordSize(e))
	}
	b.Logf("%d events, %d bytes of row JSON (%d per row), %d bytes of records", len(events), jsonBytes, jsonBytes/int64(len(events)), raw)
	for _, tc := range []struct {
		name  string
		opts  WriterOptions
		split int
	}{
		{"v1-default-flush-1s", WriterOptions{}, rate},
		{"v1-default", WriterOptions{}, 0},
		{"v1-merged", WriterOptions{MergeLevel: 1}, 0},
		{"v1-merged-best", WriterOptions{MergeLevel: 1, Level: 19}, 0},
		{"v2-merged", WriterOptions{MergeLevel: 1, Format: ColumnarVersion}, 0},
		{"v2-merged-default", WriterOptions{MergeLevel: 1, Format: ColumnarVersion, Level: 3}, 0},
		{"v2-merged-best", WriterOptions{MergeLevel: 1, Format: ColumnarVersion, Level: 19}, 0},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var stored int64
			var segs [][]byte
			for b.Loop() {
				stored, segs = 0, segs[:0]
				for _, part := range splitEvents(events, tc.split) {
					data, tr := encode(b, tc.opts, part)
					stored += tr.StoredBytes
					segs = append(segs, data)
				}
			}
			b.ReportMetric(float64(stored)/float64(jsonBytes), "archive/json")
			b.ReportMetric(float64(stored)/float64(len(events)), "B/event")
			b.ReportMetric(float64(jsonBytes)/1e6/(b.Elapsed().Seconds()/float64(b.N)), "json-MB/s-write")
			start := time.Now()
			for _, data := range segs {
				if _, _, err := countStreamed("ratio", data, ReadOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(jsonBytes)/1e6/time.Since(start).Seconds(), "json-MB/s-read")
		})
	}
}

// splitEvents cuts events into parts of about size events at transaction
// boundaries; size 0 is one part.
func splitEvents(events []*event.Event, size int) [][]*event.Event {
	if size == 0 {
		return [][]*event.Event{events}
	}
	var out [][]*event.Event
	start := 0
	for i := range events {
		if i-start >= size && events[i].Index == 0 {
			out = append(out, events[start:i])
			start = i
		}
	}
	return append(out, events[start:])
}
