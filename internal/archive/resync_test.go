package archive

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark/tidemark/internal/archive/archivetest"
	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// reread copies a transaction as a resync re-reads it from the new
// primary: the same rows and commit time at a new chain position.
func reread(it archivetest.Item, pos, prev event.Position) archivetest.Item {
	out := archivetest.Item{Tables: it.Tables}
	for _, e := range it.Events {
		c := *e
		c.CommitLSN, c.EndLSN, c.PrevLSN = pos, pos, prev
		out.Events = append(out.Events, &c)
	}
	return out
}

// TestArchiver_Run_Resync feeds an archive twenty transactions from the
// old primary, then a resync whose fork point lies after the fifteenth:
// the new primary re-reads the first fifteen (held: skipped), has two
// transactions the archive lacks (appended), and holds again, with a new
// commit time, a row of a transaction past the fork (an application
// retry: appended). The catalog records the resync with those counts, the
// five transactions past the fork as diverged, and the archive holds every
// row once, the retried one twice (its diverged original and the new one).
func TestArchiver_Run_Resync(t *testing.T) {
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, testStream)
	store := fileStore(t)
	start(t, f, store, nil, testConfig("a1"))
	var old []archivetest.Item
	for range 20 {
		old = append(old, f.Txn(2, 0))
	}
	f.Publish(t, false, old...)
	archivetest.WaitWatermark(t, store, last(old), 30*time.Second)

	base := last(old)
	mark := event.Resync{Phase: event.ResyncBegin, ID: "2-test", From: old[0].Events[0].CommitTime.Add(-time.Hour),
		SnapshotTime: time.Date(2026, 3, 1, 10, 5, 0, 0, time.UTC), Timeline: 2, PrevTimeline: 1,
		ForkLSN: old[14].Pos(), Base: base, SlotLSN: base + 0x100000}
	begin := mark
	items := []archivetest.Item{{Heartbeat: &event.Heartbeat{LSN: base + 1, PrevLSN: base, Time: mark.SnapshotTime, Resync: &begin}}}
	pos := base + 1
	next := func() (event.Position, event.Position) { pos++; return pos, pos - 1 }
	for _, it := range old[:15] {
		p, prev := next()
		items = append(items, reread(it, p, prev))
	}
	fresh := []archivetest.Item{f.Txn(1, 0), f.Txn(3, 0)}
	for _, it := range fresh {
		p, prev := next()
		items = append(items, reread(it, p, prev))
	}
	retried := *old[17].Events[0]
	retried.CommitTime = mark.SnapshotTime.Add(-time.Second)
	retried.Index, retried.Count = 0, 1
	p, prev := next()
	items = append(items, reread(archivetest.Item{Events: []*event.Event{&retried}, Tables: old[17].Tables[:1]}, p, prev))
	done := mark
	done.Phase, done.Rows, done.Transactions = event.ResyncDone, 15*2+4+1, 18
	items = append(items, archivetest.Item{Heartbeat: &event.Heartbeat{LSN: mark.SlotLSN, PrevLSN: pos, Time: mark.SnapshotTime, SnapshotDone: true, Resync: &done}})

	divergedBefore := testutil.ToFloat64(divergedEventsTotal)
	f.Publish(t, false, items...)
	archivetest.WaitWatermark(t, store, mark.SlotLSN, 30*time.Second)

	arch := archivetest.Load(t, store, nil)
	recs := arch.Catalog.Resyncs()
	if len(recs) != 2 || recs[0].Phase != event.ResyncBegin || recs[1].Phase != event.ResyncDone {
		t.Fatalf("resync records %+v, want a begin and a done", recs)
	}
	r := recs[1]
	if r.Held != 30 || r.Appended != 5 || r.DivergedEvents != 10 || r.DivergedTransactions != 5 {
		t.Fatalf("done resync: held %d appended %d diverged %d events in %d transactions; want 30, 5, 10 in 5",
			r.Held, r.Appended, r.DivergedEvents, r.DivergedTransactions)
	}
	if got := testutil.ToFloat64(divergedEventsTotal) - divergedBefore; got != 10 {
		t.Fatalf("tidemark_archiver_diverged_events_total rose by %v, want 10", got)
	}
	if _, open := arch.Catalog.OpenResync(); open {
		t.Fatal("resync still open")
	}
	div := arch.Catalog.Diverged()
	for i, it := range old {
		if got, want := catalog.IsDiverged(div, it.Pos()), i >= 15; got != want {
			t.Fatalf("transaction %d (at %s): diverged %v, want %v", i, it.Pos(), got, want)
		}
	}
	want := archivetest.EventIDs(old...)
	want = append(want, archivetest.EventIDs(fresh...)...)
	retriedID := string(retried.Values[0])
	if arch.IDs[retriedID] != 2 {
		t.Fatalf("the retried row %s is archived %d times, want twice (diverged original and the new primary's)", retriedID, arch.IDs[retriedID])
	}
	arch.IDs[retriedID] = 1
	arch.Check(t, want)
	if arch.Events != len(want)+1 {
		t.Fatalf("%d events archived, want %d", arch.Events, len(want)+1)
	}
}
