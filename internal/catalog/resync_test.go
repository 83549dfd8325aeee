package catalog

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/testing/golden"
)

// resyncGoldenDir pins the resync entry kind (docs/catalog.md, "Resync
// entries"): a segment entry, a resync begin, a resync done and the
// checkpoint after them, written with a fixed clock.
const resyncGoldenDir = "testdata/resync"

var resyncGoldenObjects = []string{EntryKey(1), EntryKey(2), EntryKey(3), CheckpointKey(3)}

func goldenResync() event.Resync {
	return event.Resync{Phase: event.ResyncBegin, ID: "2-16-1B3A0F0", From: gtime("2026-11-25T09:55:00.000001Z"),
		SnapshotTime: gtime("2026-11-25T10:00:09.25Z"), Timeline: 2, PrevTimeline: 1, ForkLSN: 0x16_00B3A000,
		Base: 0x16_00B3A0F0, SlotLSN: 0x16_01B3A0F0}
}

// writeResyncCatalog writes the resync golden catalog into a fresh store.
func writeResyncCatalog(t *testing.T) *Catalog {
	t.Helper()
	st := fileStore(t)
	clock := useFakeClock(t)
	set := func(s string) {
		clock.mu.Lock()
		clock.t = gtime(s)
		clock.mu.Unlock()
	}
	set("2026-11-25T10:00:04Z")
	lease, err := AcquireLease(ctxT(t), st, goldenHolderA, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(st, c, goldenHolderA, lease.Epoch())
	w.CheckpointEvery = 3
	seg := goldenSegments()[0]
	set("2026-11-25T10:00:05Z")
	mustAppend(t, w, &seg, Watermark{LSN: seg.LastEndLSN, CommitTime: seg.MaxCommitTime})
	r := goldenResync()
	set("2026-11-25T10:00:10Z")
	first, last := gtime("2026-11-25T09:59:59.5Z"), gtime("2026-11-25T09:59:59.9Z")
	begin := Resync{Resync: r, DivergedEvents: 3, DivergedTransactions: 2, DivergedFirst: &first, DivergedLast: &last}
	if _, err := w.AppendResync(ctxT(t), begin, Watermark{LSN: r.Base + 1, CommitTime: seg.MaxCommitTime}); err != nil {
		t.Fatal(err)
	}
	if _, open := c.OpenResync(); !open {
		t.Fatal("no open resync after its begin")
	}
	done := begin
	done.Appended, done.Held = 12, 1188
	done.Phase, done.Rows, done.Transactions = event.ResyncDone, 1200, 410
	set("2026-11-25T10:00:12.5Z")
	if _, err := w.AppendResync(ctxT(t), done, Watermark{LSN: r.SlotLSN, CommitTime: gtime("2026-11-25T10:00:09.1Z")}); err != nil {
		t.Fatal(err)
	}
	if err := w.CheckpointError(); err != nil {
		t.Fatal(err)
	}
	for _, key := range resyncGoldenObjects {
		golden.Check(t, filepath.Join(resyncGoldenDir, filepath.FromSlash(key)), getRaw(t, st, key), *update)
	}
	return c
}

// TestResync_Golden writes the resync catalog byte for byte, then loads
// the golden objects with and without the checkpoint: both fold the two
// resync records, and none is left open.
func TestResync_Golden(t *testing.T) {
	c := writeResyncCatalog(t)
	if _, open := c.OpenResync(); open {
		t.Fatal("resync still open after its done entry")
	}
	st := fileStore(t)
	for _, key := range append([]string{EpochKey(1)}, resyncGoldenObjects...) {
		if key == EpochKey(1) {
			continue
		}
		putRaw(t, st, key, golden.Read(t, filepath.Join(resyncGoldenDir, filepath.FromSlash(key))))
	}
	for _, opts := range []LoadOptions{{}, {IgnoreCheckpoints: true}} {
		got, err := LoadWith(ctxT(t), st, opts)
		if err != nil {
			t.Fatal(err)
		}
		recs := got.Resyncs()
		if len(recs) != 2 || recs[0].Phase != event.ResyncBegin || recs[1].Phase != event.ResyncDone ||
			recs[1].Appended != 12 || recs[1].Held != 1188 || recs[1].Seq != 3 || !recs[0].From.Equal(goldenResync().From) {
			t.Fatalf("load %+v: resyncs %+v", opts, recs)
		}
		if _, open := got.OpenResync(); open {
			t.Fatalf("load %+v: resync open", opts)
		}
		div := got.Diverged()
		if len(div) != 1 || div[0].After != 0x16_00B3A000 || div[0].Through != 0x16_00B3A0F0 ||
			recs[0].DivergedEvents != 3 || recs[1].DivergedTransactions != 2 || !recs[1].DivergedLast.Equal(gtime("2026-11-25T09:59:59.9Z")) {
			t.Fatalf("load %+v: diverged %+v, records %+v", opts, div, recs)
		}
		if !IsDiverged(div, 0x16_00B3A0F0) || IsDiverged(div, 0x16_00B3A000) || IsDiverged(div, 0x16_00B3A0F1) {
			t.Fatalf("IsDiverged: the range is (fork, base]")
		}
	}
}

// TestResync_Refused: a done without its begin, a watermark that does not
// pass the heartbeat, and a resync entry with a segment are refused.
func TestResync_Refused(t *testing.T) {
	st := fileStore(t)
	lease, err := AcquireLease(ctxT(t), st, goldenHolderA, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(st, c, goldenHolderA, lease.Epoch())
	r := goldenResync()
	done := Resync{Resync: r}
	done.Phase = event.ResyncDone
	if _, err := w.AppendResync(ctxT(t), done, Watermark{LSN: r.SlotLSN}); !errors.Is(err, ErrInvalidEntry) {
		t.Fatalf("done without begin: %v, want ErrInvalidEntry", err)
	}
	if _, err := w.AppendResync(ctxT(t), Resync{Resync: r}, Watermark{LSN: r.Base}); !errors.Is(err, ErrInvalidEntry) {
		t.Fatalf("begin below its heartbeat: %v, want ErrInvalidEntry", err)
	}
	seg := goldenSegments()[0]
	if _, err := w.write(ctxT(t), Entry{Segment: &seg, Resync: &Resync{Resync: r}, Watermark: Watermark{LSN: r.Base + 1}}); !errors.Is(err, ErrInvalidEntry) {
		t.Fatalf("resync with a segment: %v, want ErrInvalidEntry", err)
	}
	bad := Resync{Resync: r}
	bad.Phase = "middle"
	if _, err := w.AppendResync(ctxT(t), bad, Watermark{LSN: r.SlotLSN}); !errors.Is(err, ErrInvalidEntry) {
		t.Fatalf("unknown phase: %v, want ErrInvalidEntry", err)
	}
}

// TestDivergedRanges: a later resync's diverged range skips the positions
// of an earlier resync's re-read rows; a resync whose base is not past its
// fork has none.
func TestDivergedRanges(t *testing.T) {
	rec := func(id string, fork, base, slot event.Position) ResyncRecord {
		return ResyncRecord{Resync: Resync{Resync: event.Resync{Phase: event.ResyncBegin, ID: id, ForkLSN: fork, Base: base, SlotLSN: slot}}}
	}
	ranges := divergedRanges([]ResyncRecord{rec("a", 500, 400, 1000), rec("b", 300, 1200, 2000)})
	if len(ranges) != 1 || ranges[0].Resync != "b" {
		t.Fatalf("ranges %+v, want only b's", ranges)
	}
	for pos, want := range map[event.Position]bool{300: false, 301: true, 400: true, 401: false, 999: false, 1000: true, 1200: true, 1201: false} {
		if got := IsDiverged(ranges, pos); got != want {
			t.Errorf("IsDiverged(%d) = %v, want %v", pos, got, want)
		}
	}
}
