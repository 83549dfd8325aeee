package segment

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
)

// streamAll opens data with OpenReader and reads every event; err is the
// first error other than io.EOF.
func streamAll(name string, data []byte, opts ReadOptions) ([]*event.Event, *Reader, error) {
	r, err := OpenReader(name, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	var out []*event.Event
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, r, nil
		}
		if err != nil {
			return out, r, err
		}
		out = append(out, e)
	}
}

func TestOpenReader_RoundTrip(t *testing.T) {
	events := newGen(1, 20).events(300)
	ring := mustKeyring(t, mustGenerateKey(t))
	for _, c := range []Compression{None, Gzip, Zstd} {
		for _, enc := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/encrypted=%v", c, enc), func(t *testing.T) {
				opts := WriterOptions{Compression: c}
				if enc {
					opts.Keyring = ring
				}
				data, tr := encode(t, opts, events)
				got, r, err := streamAll("segments/x.tms", data, ReadOptions{Keyring: ring})
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(events) {
					t.Fatalf("streamed %d events, wrote %d", len(got), len(events))
				}
				for i := range events {
					if !got[i].Equal(events[i]) {
						t.Fatalf("event %d: got %+v, want %+v", i, got[i], events[i])
					}
				}
				rt := r.Trailer()
				if d := diffTrailer(tr, rt); d != "" || rt.SHA256 != tr.SHA256 || rt.StoredBytes != tr.StoredBytes {
					t.Fatalf("Trailer differs from Close's: %s", d)
				}
				seg, err := Decode("segments/x.tms", data, ReadOptions{Keyring: ring})
				if err != nil {
					t.Fatal(err)
				}
				if h := r.Header(); fmt.Sprint(*h) != fmt.Sprint(seg.Header) {
					t.Fatalf("Header = %+v, Decode's %+v", *h, seg.Header)
				}
			})
		}
	}
}

// TestReader_EventsOwnTheirMemory keeps every event and checks them after
// the Reader has moved on and closed.
func TestReader_EventsOwnTheirMemory(t *testing.T) {
	events := newGen(2, 5).events(2000)
	data, _ := encode(t, WriterOptions{}, events)
	got, _, err := streamAll("own.tms", data, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i].Values[0] = append(got[i].Values[0], "scribble"...) // must not spill into a neighbour
	}
	for i := range got {
		got[i].Values[0] = got[i].Values[0][:len(events[i].Values[0])]
		if !got[i].Equal(events[i]) {
			t.Fatalf("event %d changed after reading on: %+v", i, got[i])
		}
	}
}

func TestReader_Close(t *testing.T) {
	data, _ := encode(t, WriterOptions{}, newGen(3, 5).events(10))
	r, err := OpenReader("close.tms", bytes.NewReader(data), int64(len(data)), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err = r.Next(); err != nil {
			break
		}
	}
	if _, err2 := r.Next(); !errors.Is(err, io.EOF) || !errors.Is(err2, io.EOF) {
		t.Fatalf("Next at and after the end = %v, %v; want io.EOF", err, err2)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err == nil || errors.Is(err, io.EOF) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Next after Close = %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// failingReaderAt fails every read at or after offset at.
type failingReaderAt struct {
	r  io.ReaderAt
	at int64
}

var errDisk = errors.New("disk on fire")

func (f failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.at {
		return 0, errDisk
	}
	return f.r.ReadAt(p, off)
}

// TestOpenReader_ReadError: an error of the io.ReaderAt is returned as
// such, not as corruption, wherever it strikes; so is an object shorter
// than its stated size.
func TestOpenReader_ReadError(t *testing.T) {
	ring := mustKeyring(t, mustGenerateKey(t))
	events := newGen(4, 5).events(300)
	for _, enc := range []*Keyring{nil, ring} {
		data, _ := encode(t, WriterOptions{Keyring: enc}, events)
		for _, at := range []int64{0, 20, int64(len(data)) / 2, int64(len(data)) - 10} {
			r, err := OpenReader("io.tms", failingReaderAt{bytes.NewReader(data), at}, int64(len(data)), ReadOptions{Keyring: ring})
			if err == nil {
				t.Fatalf("read failing at %d: OpenReader succeeded", at)
			}
			if !errors.Is(err, errDisk) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "io.tms") {
				t.Fatalf("read failing at %d: %v", at, err)
			}
			_ = r
		}
		_, err := OpenReader("short.tms", bytes.NewReader(data[:len(data)-1]), int64(len(data)), ReadOptions{Keyring: ring})
		if !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrCorrupt) {
			t.Fatalf("short object: %v", err)
		}
	}
}

func TestOpenReader_BitFlip(t *testing.T) {
	const name = "segments/2026/11/25/10/15/flip.tms"
	for _, cc := range corruptCases(t) {
		t.Run(cc.name, func(t *testing.T) {
			for i := range cc.data {
				bad := bytes.Clone(cc.data)
				bad[i] ^= 1 << (i % 8)
				_, _, err := streamAll(name, bad, ReadOptions{Keyring: cc.ring})
				wantCorrupt(t, name, err, "flip at byte "+strconv.Itoa(i))
			}
		})
	}
}

func TestOpenReader_Truncated(t *testing.T) {
	const name = "trunc.tms"
	for _, cc := range corruptCases(t) {
		t.Run(cc.name, func(t *testing.T) {
			for n := 0; n < len(cc.data); n += 1 + n%5 {
				_, _, err := streamAll(name, cc.data[:n], ReadOptions{Keyring: cc.ring})
				wantCorrupt(t, name, err, "truncated to "+strconv.Itoa(n))
			}
		})
	}
}

func TestOpenReader_AppendedJunk(t *testing.T) {
	const name = "junk.tms"
	for _, cc := range corruptCases(t) {
		t.Run(cc.name, func(t *testing.T) {
			footer := cc.data[len(cc.data)-footerLen:]
			for what, bad := range map[string][]byte{
				"zero byte":       append(bytes.Clone(cc.data), 0),
				"junk":            append(bytes.Clone(cc.data), "junk junk junk"...),
				"repeated footer": append(bytes.Clone(cc.data), footer...),
				"two segments":    append(bytes.Clone(cc.data), cc.data...),
				"prefixed":        append([]byte("x"), cc.data...),
			} {
				_, _, err := streamAll(name, bad, ReadOptions{Keyring: cc.ring})
				wantCorrupt(t, name, err, what)
				if what != "prefixed" {
					_, _, err = streamAll(name, rehash(bad), ReadOptions{Keyring: cc.ring})
					wantCorrupt(t, name, err, what+" (rehashed)")
				}
			}
		})
	}
}

func TestOpenReader_SwappedHeader(t *testing.T) {
	const name = "swap.tms"
	ring := mustKeyring(t, mustGenerateKey(t))
	events := newGen(12, 4).events(12)
	for _, enc := range []*Keyring{nil, ring} {
		a, _ := encode(t, WriterOptions{Keyring: enc, SystemID: "1111111111111111111"}, events)
		b, _ := encode(t, WriterOptions{Keyring: enc, SystemID: "2222222222222222222"}, events)
		swapped := append(bytes.Clone(b[:envelopeEnd(b)]), a[envelopeEnd(a):]...)
		_, _, err := streamAll(name, rehash(swapped), ReadOptions{Keyring: ring})
		wantCorrupt(t, name, err, "swapped header")
		if !strings.Contains(err.Error(), "header_sha256") {
			t.Fatalf("swapped header reported as %v", err)
		}
	}
}

// streamHostileWant overrides hostileWant where the stream notices the same
// damage differently: it has no total raw limit, and it meets a body that
// outlasts raw_bytes at the record that crosses it.
var streamHostileWant = map[string]string{
	"raw bytes above limit":   "decompressed body shorter than declared",
	"raw bytes short of body": "record length exceeds body",
}

func TestOpenReader_Hostile(t *testing.T) {
	const name = "hostile.tms"
	for what, mk := range hostileCases(t) {
		t.Run(what, func(t *testing.T) {
			_, _, err := streamAll(name, mk(), ReadOptions{})
			if what == "forged but valid" {
				if err != nil {
					t.Fatalf("the forging helper is broken: %v", err)
				}
				return
			}
			wantCorrupt(t, name, err, what)
			want, ok := streamHostileWant[what]
			if !ok {
				want = hostileWant[what]
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q, want it to contain %q", err, want)
			}
		})
	}
}

// TestOpenReader_Bomb streams the bombs of TestDecode_Bomb: memory stays
// under memoryBound.
func TestOpenReader_Bomb(t *testing.T) {
	const name = "bomb.tms"
	for _, tc := range bombCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			allocated, peak := measure(func() { _, _, err = streamAll(name, tc.data, tc.opts) })
			wantCorrupt(t, name, err, tc.name)
			t.Logf("allocated %d KiB, peak heap growth %d KiB: %v", allocated>>10, peak>>10, err)
			if allocated > memoryBound || peak > memoryBound {
				t.Fatalf("streaming allocated %d bytes (peak heap growth %d), bound %d", allocated, peak, memoryBound)
			}
		})
	}
}

// streamHeapBound is what streaming the large segments below may add to the
// heap at any moment: a new zstd decoder and its history (8 MiB window) or
// a version-2 block (up to 16 MiB of streams; 8 MiB of records), read-ahead
// buffers, and the garbage of the events between collections, which the
// GC lets grow to about the live heap — not the segment. Measured: 29–36
// MiB (version 1), 16–20 MiB (version 2); the live heap stays at 8.6 and
// 4.5 MiB from the first event to the last.
const streamHeapBound = 48 << 20

// TestReader_LargeSegmentBoundedHeap streams large segments from a file —
// version 1, a million events (650 MB of raw records); version 2, 300,000
// (200 MB); a tenth of each under -race — and checks the heap never grows
// by more than streamHeapBound while it does, and that the trailer checks
// out at the end.
func TestReader_LargeSegmentBoundedHeap(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   WriterOptions
		events int
	}{
		{"v1", WriterOptions{}, 1_000_000},
		{"v2", WriterOptions{MergeLevel: 1, Format: ColumnarVersion}, 300_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			total := tc.events
			if raceEnabled {
				total /= 10
			}
			f, err := os.Create(filepath.Join(t.TempDir(), "large.tms"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tr := writeRepeated(t, f, tc.opts, newGen(5, 50).events(1000), total)
			t.Logf("%d events, %d MB raw, %d MB stored", tr.Events, tr.RawBytes>>20, tr.StoredBytes>>20)
			if minRaw := int64(total) * 600; tr.RawBytes < minRaw {
				t.Fatalf("raw %d bytes, want ≥ %d", tr.RawBytes, minRaw)
			}
			var n int
			allocated, peak := measure(func() { n = streamFile(t, f, tr.StoredBytes, nil) })
			t.Logf("streamed %d events: allocated %d MB in total, peak heap growth %d MiB (bound %d MiB)",
				n, allocated>>20, peak>>20, streamHeapBound>>20)
			if n != total {
				t.Fatalf("streamed %d events, want %d", n, total)
			}
			if peak > streamHeapBound {
				t.Fatalf("peak heap growth %d bytes, bound %d", peak, streamHeapBound)
			}
			checkLiveHeap(t, f, tr.StoredBytes, total)
		})
	}
}

// streamLiveBound bounds the live heap a Reader holds (after a collection):
// the zstd decoder's history or a version-2 block, and buffers.
const streamLiveBound = 24 << 20

// checkLiveHeap streams the segment again, collecting garbage at five
// points: the live heap must stay under streamLiveBound and not grow.
func checkLiveHeap(t *testing.T, f *os.File, size int64, total int) {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	base := int64(m.HeapAlloc)
	var live []int64
	streamFile(t, f, size, func(n int) {
		if n%(total/5) == total/10 {
			runtime.GC()
			runtime.ReadMemStats(&m)
			live = append(live, int64(m.HeapAlloc)-base)
		}
	})
	t.Logf("live heap growth at 10%%, 30%%, …, 90%% of the events: %d KiB", func() []int64 {
		k := make([]int64, len(live))
		for i := range live {
			k[i] = live[i] >> 10
		}
		return k
	}())
	for _, l := range live {
		if l > streamLiveBound || l > live[0]+1<<20 {
			t.Fatalf("live heap growth %d bytes, bound %d, first %d", l, streamLiveBound, live[0])
		}
	}
}

// streamFile streams the segment in f and returns how many events it has,
// calling at (if not nil) with each event's number.
func streamFile(t *testing.T, f *os.File, size int64, at func(n int)) int {
	r, err := OpenReader("large.tms", f, size, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Index >= e.Count {
			t.Fatal("bad event")
		}
		if at != nil {
			at(n)
		}
		n++
	}
}

// writeRepeated writes a segment of total events to w: pattern over and
// over, with positions moved on each round so the chain stays in order.
func writeRepeated(tb testing.TB, w io.Writer, opts WriterOptions, pattern []*event.Event, total int) *Trailer {
	tb.Helper()
	opts.Table, opts.SystemID = eventcore.TableDef(), "1"
	sw, err := NewWriter(w, opts)
	if err != nil {
		tb.Fatal(err)
	}
	span := pattern[len(pattern)-1].EndLSN - pattern[0].PrevLSN + 1
	var e event.Event
	for i := 0; i < total; i++ {
		p := pattern[i%len(pattern)]
		shift := event.Position(i/len(pattern)) * span
		e = *p
		e.CommitLSN, e.EndLSN, e.PrevLSN = p.CommitLSN+shift, p.EndLSN+shift, p.PrevLSN+shift
		e.CommitTime = p.CommitTime.Add(time.Duration(i/len(pattern)) * time.Minute)
		if i%len(pattern) == 0 && i > 0 && e.Index != 0 {
			tb.Fatal("pattern does not start a transaction")
		}
		if err := sw.Append(&e); err != nil {
			tb.Fatal(err)
		}
	}
	tr, err := sw.Close()
	if err != nil {
		tb.Fatal(err)
	}
	return tr
}

// TestOpenReader_FileMatchesDecode checks a segment read from a file gives
// the same SHA-256 as the bytes.
func TestOpenReader_FileMatchesDecode(t *testing.T) {
	data, _ := encode(t, WriterOptions{}, newGen(6, 5).events(50))
	path := filepath.Join(t.TempDir(), "s.tms")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := OpenReader("s.tms", f, int64(len(data)), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sum := sha256.Sum256(data)
	if r.Trailer().SHA256 != hex.EncodeToString(sum[:]) || r.Trailer().StoredBytes != int64(len(data)) {
		t.Fatalf("trailer %+v", r.Trailer())
	}
}
