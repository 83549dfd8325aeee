package restore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/segment"
)

// synth generates EventCore-shaped transactions of 1–5 events with chain
// positions, deterministically, one at a time, so that archives of any
// size can be written without holding their events.
type synth struct {
	t        event.Table
	rng      *rand.Rand
	pad      []byte
	versions map[string]int
	pos      event.Position
	start    time.Time
	n, txns  int
}

func newSynth(t event.Table, payload int) *synth {
	return &synth{t: t, rng: rand.New(rand.NewPCG(1, 2)), pad: bytes.Repeat([]byte("x"), payload),
		versions: map[string]int{}, pos: 0x1_0000_0000, start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// next returns the next transaction.
func (s *synth) next() []*event.Event {
	k := 1 + s.rng.IntN(5)
	ct := s.start.Add(time.Duration(s.txns) * time.Millisecond)
	prev := s.pos
	s.pos += 0x100
	tx := make([]*event.Event, k)
	for j := range tx {
		stream := fmt.Sprintf("stream-%d", s.rng.IntN(1000))
		s.versions[stream]++
		id := fmt.Sprintf("00000000-0000-7000-8000-%012d", s.n)
		data := fmt.Sprintf(`{"amount": %d, "note": "%s", "seq": %d}`, s.rng.IntN(100000), s.pad, s.n)
		tx[j] = &event.Event{Table: s.t.QualifiedName(), CommitLSN: s.pos - 8, EndLSN: s.pos, PrevLSN: prev, CommitTime: ct,
			XID: uint32(s.txns + 1000), Index: j, Count: k, Values: [][]byte{
				[]byte(id), []byte(stream), []byte(strconv.Itoa(s.versions[stream])), []byte("FundsDeposited"),
				[]byte(data), []byte(`{"source": "memory test"}`), []byte(ct.Format("2006-01-02 15:04:05.999999-07")),
			}}
		s.n++
	}
	s.txns++
	return tx
}

// putSegment writes the transactions gen yields, whole, until it holds at
// least events, as one segment of level and stores it; it returns the catalog reference (with the events
// digest for a merged segment).
func putSegment(ctx context.Context, tb testing.TB, st objstore.Store, gen *synth, events, level int) catalog.SegmentRef {
	tb.Helper()
	tmp, err := os.CreateTemp(tb.TempDir(), "segment-*")
	if err != nil {
		tb.Fatal(err)
	}
	defer tmp.Close()
	opts := segment.WriterOptions{Compression: segment.Zstd, Level: 3, SystemID: "7300000000000000042",
		Table: gen.t, MergeLevel: level}
	if level > 0 {
		opts.Format, opts.Level = segment.ColumnarVersion, 0 // as the merger writes the top levels
	}
	w, err := segment.NewWriter(tmp, opts)
	if err != nil {
		tb.Fatal(err)
	}
	var digest segment.EventsDigest
	for n := 0; n < events; {
		for _, e := range gen.next() {
			if err := w.Append(e); err != nil {
				tb.Fatal(err)
			}
			digest.Add(e)
			n++
		}
	}
	tr, err := w.Close()
	if err != nil {
		tb.Fatal(err)
	}
	key := segment.KeyWithLevel(segment.Key(tr.MinCommitTime.Truncate(time.Minute), tr.FirstEndLSN, tr.LastEndLSN, gen.t.ID()), level)
	if _, err := tmp.Seek(0, 0); err != nil {
		tb.Fatal(err)
	}
	if err := st.Put(ctx, key, tmp, tr.StoredBytes, objstore.PutOptions{IfAbsent: true}); err != nil {
		tb.Fatal(err)
	}
	ref := catalog.SegmentRef{Key: key, Size: tr.StoredBytes, SHA256: tr.SHA256, Events: tr.Events, Transactions: tr.Transactions,
		Table: gen.t.QualifiedName(), TableID: gen.t.ID(), Compression: "zstd", FirstEndLSN: tr.FirstEndLSN, LastEndLSN: tr.LastEndLSN,
		PrevLSN: tr.PrevLSN, MinCommitTime: tr.MinCommitTime, MaxCommitTime: tr.MaxCommitTime, RawBytes: tr.RawBytes, Level: level}
	if level > 0 {
		ref.EventsDigest = digest.Sum()
	}
	return ref
}

// mergedArchive writes, into a new file store, about events synthetic
// events (whole transactions) as flush segments of about perFlush events,
// then the same events as one merged segment (level 1) that a merge entry
// puts in their place: the archive's only live segment.
// alter, when set, changes the merged segment's reference before the merge
// entry records it.
func mergedArchive(tb testing.TB, def event.Table, events, perFlush, payload int, alter func(*catalog.SegmentRef)) string {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	st, err := file.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	lease, err := catalog.AcquireLease(ctx, st, "memory-test", time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	defer lease.Release(ctx)
	c, err := catalog.Load(ctx, st)
	if err != nil {
		tb.Fatal(err)
	}
	w := catalog.NewWriter(st, c, "memory-test", lease.Epoch())
	gen := newSynth(def, payload)
	var inputs []catalog.MergeInput
	n := 0
	for n < events {
		ref := putSegment(ctx, tb, st, gen, min(perFlush, events-n), 0)
		n += ref.Events
		if _, err := w.Append(ctx, &ref, catalog.Watermark{LSN: ref.LastEndLSN, CommitTime: ref.MaxCommitTime}); err != nil {
			tb.Fatal(err)
		}
		inputs = append(inputs, ref.Input())
	}
	out := putSegment(ctx, tb, st, newSynth(def, payload), n, 1)
	if alter != nil {
		alter(&out)
	}
	if _, err := w.AppendMerge(ctx, catalog.Merge{Inputs: inputs, Output: out}); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// heapPeak samples the Go heap while it runs: the largest live heap any
// garbage collection found (what the program holds, whatever the GC's
// pacing) and the largest heap in use (what the process needed for it).
type heapPeak struct {
	stop     chan struct{}
	done     sync.WaitGroup
	live, in uint64
	base     uint64 // the live heap when sampling started
}

func sampleHeap() *heapPeak {
	h := &heapPeak{stop: make(chan struct{})}
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	runtime.GC()
	metrics.Read(s)
	h.base = s[0].Value.Uint64()
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			h.live, h.in = max(h.live, s[0].Value.Uint64()), max(h.in, s[1].Value.Uint64())
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapPeak) end() (live, inUse uint64) {
	runtime.GC() // the last live heap counts too
	close(h.stop)
	h.done.Wait()
	return h.live, h.in
}

const mib = 1 << 20

// TestRestore_MemoryIndependentOfSegmentSize restores a plan of one merged
// segment, once of 2,000 and once of 20,000 events (~4 KiB each: 8 and 80
// MiB of records), into PostgreSQL: the largest live heap stays under the
// same bound for both, far below the larger segment's size (the previous
// restorer held every planned segment decoded). No time is measured.
func TestRestore_MemoryIndependentOfSegmentSize(t *testing.T) {
	def := eventCoreDef(t)
	ctx := context.Background()
	const bound = 40 * mib
	var peaks []uint64
	for _, events := range []int{2_000, 20_000} {
		dir := mergedArchive(t, def, events, events/4, 4000, nil)
		a := openArchive(t, dir, nil)
		if segs := a.Catalog.Segments(); len(segs) != 1 || segs[0].Level != 1 {
			t.Fatalf("live segments %+v, want one merged segment", segs)
		}
		p, err := a.Plan(a.Window().Watermark, "")
		if err != nil {
			t.Fatal(err)
		}
		target := newEventCoreDB(t)
		runtime.GC()
		h := sampleHeap()
		res, err := Restore(ctx, p, Options{TargetURL: target, BatchRows: 5000})
		live, inUse := h.end()
		if err != nil {
			t.Fatal(err)
		}
		if res.Events != p.MaxEvents || res.Verification.Status != VerifyOK {
			t.Fatalf("%d events restored of %d, verification %+v", res.Events, p.MaxEvents, res.Verification)
		}
		t.Logf("%d events, %.1f MiB of records in one merged segment: peak live heap %.1f MiB (%.1f before), heap in use %.1f MiB",
			res.Events, float64(p.RawBytes)/mib, float64(live)/mib, float64(h.base)/mib, float64(inUse)/mib)
		if live > bound {
			t.Fatalf("peak live heap %.1f MiB restoring %d events, above %d MiB", float64(live)/mib, res.Events, bound/mib)
		}
		peaks = append(peaks, live)
	}
	if peaks[1] > peaks[0]+8*mib {
		t.Fatalf("peak live heap grew from %.1f to %.1f MiB with ten times the segment", float64(peaks[0])/mib, float64(peaks[1])/mib)
	}
}

// eventCoreDef reads EventCore's table definition from a fresh database.
func eventCoreDef(tb testing.TB) event.Table {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, newEventCoreDB(tb))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	def, err := readDef(ctx, conn)
	if err != nil {
		tb.Fatal(err)
	}
	return def
}

// peakRSS resets the process's peak resident set size (Linux
// /proc/self/clear_refs) and returns a function reading it (VmHWM).
func peakRSS(tb testing.TB) func() uint64 {
	tb.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		tb.Fatalf("reset peak RSS: %v", err)
	}
	return func() uint64 {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			tb.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				return kb << 10
			}
		}
		tb.Fatal("no VmHWM in /proc/self/status")
		return 0
	}
}
