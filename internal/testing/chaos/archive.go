package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// maxSegmentBytes bounds one segment read by the checks.
const maxSegmentBytes = 1 << 30

// archiveContent is what the archive holds, read directly from the
// catalog and the segments (not through the restorer).
type archiveContent struct {
	ids      map[uuid.UUID]uint16 // event id → times archived
	txns     map[event.Position]*txnSeen
	segments int
	events   int
	wm       catalog.Watermark
	// ahead describes the first event archived by an entry whose
	// predecessor's watermark already covered it ("" when none).
	ahead string
}

// txnSeen tracks one archived transaction's events.
type txnSeen struct {
	count int
	seen  []bool
	dups  int
	bad   string // inconsistent Count or Index
}

// readArchive loads the catalog and decodes every segment it lists.
func readArchive(ctx context.Context, store objstore.Store) (*archiveContent, error) {
	cat, err := catalog.LoadWith(ctx, store, catalog.LoadOptions{IgnoreCheckpoints: true})
	if err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	a := &archiveContent{ids: map[uuid.UUID]uint16{}, txns: map[event.Position]*txnSeen{}, wm: cat.Watermark()}
	var prev catalog.Watermark // the watermark before the entry being read
	for _, en := range cat.Entries() {
		before := prev
		prev = en.Watermark
		if en.Segment == nil {
			continue
		}
		ref := *en.Segment
		data, err := objstore.ReadAll(ctx, store, ref.Key, maxSegmentBytes)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", ref.Key, err)
		}
		seg, err := segment.Decode(ref.Key, data, segment.ReadOptions{})
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", ref.Key, err)
		}
		a.segments++
		idCol := event.LayoutOf(seg.Header.Table).EventID
		for _, ev := range seg.Events {
			a.events++
			if ev.EndLSN <= before.LSN && a.ahead == "" && !ev.Snapshot {
				a.ahead = fmt.Sprintf("catalog entry %d archives the transaction at %s (committed %s), but entry %d had already set the watermark to %s: "+
					"the watermark ran ahead of the archived data (a crash in between would drop the transaction as a duplicate, and capture may confirm the slot past it)",
					en.Seq, ev.EndLSN, ev.CommitTime.Format(time.RFC3339Nano), en.Seq-1, before.LSN)
			}
			id, err := uuid.ParseBytes(ev.Value(idCol))
			if err != nil {
				return nil, fmt.Errorf("%s: event without a valid id at %s: %w", ref.Key, ev.EndLSN, err)
			}
			a.ids[id]++
			a.addTxn(ev)
		}
	}
	return a, nil
}

func (a *archiveContent) addTxn(ev *event.Event) {
	t := a.txns[ev.EndLSN]
	if t == nil {
		t = &txnSeen{count: ev.Count, seen: make([]bool, max(ev.Count, 0))}
		a.txns[ev.EndLSN] = t
	}
	switch {
	case ev.Count != t.count:
		t.bad = fmt.Sprintf("events disagree on the transaction's size (%d and %d)", t.count, ev.Count)
	case ev.Index < 0 || ev.Index >= t.count:
		t.bad = fmt.Sprintf("index %d outside the transaction's %d events", ev.Index, t.count)
	case t.seen[ev.Index]:
		t.dups++
	default:
		t.seen[ev.Index] = true
	}
}

// sourceIDs streams the source's event ids with their commit time.
func sourceIDs(ctx context.Context, sourceURL string, each func(id uuid.UUID, commit time.Time) error) error {
	conn, err := pgx.Connect(ctx, sourceURL)
	if err != nil {
		return fmt.Errorf("connect source: %w", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT event_id, pg_xact_commit_timestamp(xmin) FROM eventcore_events`)
	if err != nil {
		return fmt.Errorf("read source ids: %w", err)
	}
	var id uuid.UUID
	var ct *time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &ct}, func() error {
		var t time.Time
		if ct != nil {
			t = *ct
		}
		return each(id, t)
	})
	if err != nil {
		return fmt.Errorf("read source ids: %w", err)
	}
	return nil
}

// checkArchive compares the archive with the source: I1 (every source
// event committed at or before the watermark is archived), I2 (no event
// archived twice), I3 (nothing the source never committed), I4 (every
// archived transaction whole). expectExtra is how many archived events the
// source may lack (rows a scenario deleted on purpose).
func checkArchive(ctx context.Context, a *archiveContent, sourceURL string, expectExtra int, cutoff time.Time) []*Violation {
	var out []*Violation
	if a.ahead != "" {
		out = append(out, violation("I6", "%s", a.ahead))
	}
	missing, late := 0, 0
	var firstMissing uuid.UUID
	seen := make(map[uuid.UUID]uint16, len(a.ids))
	err := sourceIDs(ctx, sourceURL, func(id uuid.UUID, commit time.Time) error {
		n := a.ids[id]
		seen[id] = n
		if n == 0 {
			if commit.After(a.wm.CommitTime) || (!cutoff.IsZero() && commit.After(cutoff)) {
				late++ // committed after the watermark: not required yet
				return nil
			}
			if missing == 0 {
				firstMissing = id
			}
			missing++
		}
		return nil
	})
	if err != nil {
		return []*Violation{violation("I1", "cannot read the source: %v", err)}
	}
	if missing > 0 {
		out = append(out, violation("I1", "%d committed events are not in the archive (first: %s; watermark %s at %s)",
			missing, firstMissing, a.wm.LSN, a.wm.CommitTime.Format(time.RFC3339Nano)))
	}
	dups, extra := 0, 0
	for id, n := range a.ids {
		if n > 1 {
			dups++
		}
		if _, ok := seen[id]; !ok {
			extra++
		}
	}
	if dups > 0 {
		out = append(out, violation("I2", "%d events are archived more than once", dups))
	}
	if extra != expectExtra {
		out = append(out, violation("I3", "%d archived events are not in the source (want %d)", extra, expectExtra))
	}
	partial, txnDups := 0, 0
	var example string
	for pos, t := range a.txns {
		txnDups += t.dups
		whole := t.bad == ""
		for _, s := range t.seen {
			whole = whole && s
		}
		if !whole {
			partial++
			if example == "" {
				example = fmt.Sprintf("transaction at %s: %s", pos, t.describe())
			}
		}
	}
	if partial > 0 {
		out = append(out, violation("I4", "%d archived transactions are not whole (%s)", partial, example))
	}
	if txnDups > 0 && dups == 0 {
		out = append(out, violation("I2", "%d transaction positions are archived more than once", txnDups))
	}
	_ = late
	return out
}

func (t *txnSeen) describe() string {
	if t.bad != "" {
		return t.bad
	}
	n := 0
	for _, s := range t.seen {
		if s {
			n++
		}
	}
	return fmt.Sprintf("%d of %d events", n, t.count)
}
