package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/tidemark/tidemark/internal/event"
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
		{"zstd+age", WriterOptions{Compression: Zstd, Keyring: ring}},
	}
}

// BenchmarkWriter measures writing a segment; MB/s counts raw record bytes.
func BenchmarkWriter(b *testing.B) {
	events := benchEvents(b)
	for _, bc := range benchCases(b) {
		b.Run(bc.name, func(b *testing.B) {
			opts := bc.opts
			opts.Table = testTable()
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
				got, _, err := streamCount("bench", data, ReadOptions{Keyring: ring})
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

// streamCount streams data and counts the events, keeping none.
func streamCount(name string, data []byte, opts ReadOptions) (int, *Reader, error) {
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
