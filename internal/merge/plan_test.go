package merge

import (
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
)

// TestPlan_LeavesLargeEventsUnmerged: a segment whose events average more
// than MaxEventBytes (one holding a value of hundreds of megabytes) is not
// merged, and its neighbours are not merged across it.
func TestPlan_LeavesLargeEventsUnmerged(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	seg := func(i int, events int, raw int64) catalog.SegmentRef {
		return catalog.SegmentRef{Key: string(rune('a' + i)), Table: "public.t", TableID: "t", Events: events, RawBytes: raw,
			FirstEndLSN: event.Position(10 * (i + 1)), LastEndLSN: event.Position(10*(i+1) + 5),
			MinCommitTime: t0.Add(time.Duration(i) * time.Second), MaxCommitTime: t0.Add(time.Duration(i) * time.Second)}
	}
	live := []catalog.SegmentRef{seg(0, 100, 1<<20), seg(1, 100, 1<<20), seg(2, 1, 200<<20), seg(3, 100, 1<<20), seg(4, 100, 1<<20)}
	wm := catalog.Watermark{LSN: 1000, CommitTime: t0.Add(time.Hour)}
	groups := Plan(live, wm, Policy{Levels: []time.Duration{time.Minute}})
	if len(groups) != 2 {
		t.Fatalf("%d groups, want 2 (either side of the large segment): %+v", len(groups), groups)
	}
	for _, g := range groups {
		for _, in := range g.Inputs {
			if in.Key == "c" {
				t.Fatalf("the segment holding a 200 MiB event is merged: %+v", g)
			}
		}
	}
	if groups := Plan(live, wm, Policy{Levels: []time.Duration{time.Minute}, MaxEventBytes: 1 << 30}); len(groups) != 1 || len(groups[0].Inputs) != 5 {
		t.Fatalf("with MaxEventBytes 1 GiB: %+v, want one group of 5", groups)
	}
}
