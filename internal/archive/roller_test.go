package archive

import (
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/segment"
)

func txnItem(end, prev event.Position, at time.Time, n int) *item {
	it := &item{pos: end, prev: prev, time: at, systemID: "s"}
	for i := range n {
		e := ev(end, prev, i, n)
		e.CommitTime = at
		it.events = append(it.events, e)
		it.tables = append(it.tables, chainTable)
		it.have++
	}
	return it
}

func TestRoller_BucketsAndCoverage(t *testing.T) {
	r := newRoller(segment.WriterOptions{Compression: segment.None}, time.Minute)
	t0 := time.Date(2026, 3, 1, 10, 0, 59, 0, time.UTC)
	if !r.fits(r.bucketOf(t0), "s") || !r.empty() {
		t.Fatal("an empty roller must take anything")
	}
	if _, err := r.add(txnItem(10, 0, t0, 2), nil, t0); err != nil {
		t.Fatal(err)
	}
	if r.fits(r.bucketOf(t0.Add(2*time.Second)), "s") {
		t.Fatal("a transaction of the next bucket fits the open segment")
	}
	if r.fits(r.bucketOf(t0), "other-system") {
		t.Fatal("a transaction of another source fits the open segment")
	}
	// Covered events (already in a listed segment) are skipped.
	n, err := r.add(txnItem(20, 10, t0, 3), map[string]event.Position{chainTable.ID(): 20}, t0)
	if err != nil || n != 0 {
		t.Fatalf("covered transaction added %d events, %v", n, err)
	}
	if _, err := r.add(txnItem(30, 20, t0.Add(-30*time.Second), 1), nil, t0); err != nil {
		t.Fatal(err)
	}
	if r.age(t0.Add(time.Second)) != time.Second || r.rawSum == 0 {
		t.Fatalf("age %s raw %d", r.age(t0.Add(time.Second)), r.rawSum)
	}
	segs, err := r.close()
	if err != nil || len(segs) != 1 {
		t.Fatalf("close: %d segments, %v", len(segs), err)
	}
	want := segment.Key(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), 10, 30, chainTable.ID())
	if segs[0].key != want || segs[0].trailer.Events != 3 || segs[0].trailer.Transactions != 2 {
		t.Fatalf("segment %s with %+v, want key %s and 3 events", segs[0].key, segs[0].trailer, want)
	}
	if !r.empty() {
		t.Fatal("roller not empty after close")
	}
}
