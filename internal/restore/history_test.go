package restore

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore/file"
)

// History reads the archive's events in chain order up to the watermark,
// after any chain position, and — with Since — every event committed after
// that instant.
func TestHistory_ChainOrderAfterPositions(t *testing.T) {
	fx := sharedFixture(t)
	a := openArchive(t, fx.dir, nil)
	var all []*event.Event
	for _, tx := range fx.txns {
		all = append(all, tx...)
	}
	slices.SortFunc(all, func(x, y *event.Event) int {
		if x.EndLSN != y.EndLSN {
			return cmpPos(x.EndLSN, y.EndLSN)
		}
		return x.Index - y.Index
	})
	read := func(opts HistoryOptions) []*event.Event {
		t.Helper()
		h, err := a.History(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		var out []*event.Event
		for {
			e, err := h.Next(context.Background())
			if errors.Is(err, io.EOF) {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
	}
	same := func(what string, got, want []*event.Event) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
		}
		for i := range got {
			if !got[i].Equal(want[i]) {
				t.Fatalf("%s: event %d is %s#%d, want %s#%d\n got %s %v %q\nwant %s %v %q", what, i, got[i].EndLSN, got[i].Index, want[i].EndLSN, want[i].Index,
					got[i].CommitTime, got[i].Snapshot, got[i].Values, want[i].CommitTime, want[i].Snapshot, want[i].Values)
			}
		}
	}
	same("from the beginning", read(HistoryOptions{}), all)
	for _, i := range []int{0, len(all) / 3, len(all) / 2, len(all) - 2} {
		p := all[i]
		same("after "+p.EndLSN.String(), read(HistoryOptions{AfterEnd: p.EndLSN, AfterIndex: p.Index}), all[i+1:])
	}
	since := fx.times[len(fx.times)/2]
	var want []*event.Event
	for _, e := range read(HistoryOptions{Since: since}) {
		if e.CommitTime.After(since) {
			want = append(want, e)
		}
	}
	var later []*event.Event
	for _, e := range all {
		if e.CommitTime.After(since) {
			later = append(later, e)
		}
	}
	same("committed after "+FormatTime(since), want, later)
	if wm := a.Catalog.Watermark().LSN; wm < all[len(all)-1].EndLSN {
		t.Fatalf("watermark %s before the last event %s", wm, all[len(all)-1].EndLSN)
	}
}

func cmpPos(a, b event.Position) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Segments merged and garbage-collected while History reads are re-planned
// by table (not by instant): every event once, in chain order.
func TestHistory_ReplansWhenMergedSegmentsAreCollected(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	dir := copyArchive(t, f.dir)
	want := expectedIDs(t, dir, historyEnd)
	st, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	hooked := &getHook{Store: st}
	hooked.before = func(n int, key string) {
		if n == 3 {
			mergeAndCollect(t, dir, func(live []catalog.SegmentRef) []catalog.SegmentRef {
				i := slices.IndexFunc(live, func(s catalog.SegmentRef) bool { return s.Key == key })
				return live[max(i-1, 0):min(i+5, len(live))]
			})
		}
	}
	a, err := Open(ctx, hooked, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := a.History(HistoryOptions{Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	def := event.LayoutOf(f.table)
	var got []string
	for {
		e, err := h.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(e.Value(def.EventID)))
	}
	if h.c.replans != 1 {
		t.Fatalf("%d re-plans, want 1", h.c.replans)
	}
	sameIDs(t, got, want)
}
