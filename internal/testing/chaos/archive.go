package chaos

import (
	"context"
	"errors"
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
	// diverged are the ids of archived events a resync marked diverged
	// (catalog.Diverged): left out of ids and txns, checked against the
	// source on their own.
	diverged  []uuid.UUID
	divRanges []catalog.DivergedRange
}

// txnSeen tracks one archived transaction's events.
type txnSeen struct {
	count int
	seen  []bool
	dups  int
	bad   string // inconsistent Count or Index
}

// readArchive loads the catalog and decodes every live segment it lists
// (what a restore reads: merged segments in place of their inputs). The
// watermark check (ahead) runs over every flush entry the catalog still
// holds, reading superseded inputs while garbage collection has left them.
func readArchive(ctx context.Context, store objstore.Store) (*archiveContent, error) {
	cat, err := loadForChecks(ctx, store)
	if err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	a := &archiveContent{ids: map[uuid.UUID]uint16{}, txns: map[event.Position]*txnSeen{}, wm: cat.Watermark(), divRanges: cat.Diverged()}
	before := map[string]entryBefore{} // flush segment key → its entry and the watermark before it
	var prev catalog.Watermark
	var order []string
	for _, en := range cat.Entries() {
		if en.Segment != nil {
			before[en.Segment.Key] = entryBefore{seq: en.Seq, wm: prev}
			order = append(order, en.Segment.Key)
		}
		prev = en.Watermark
	}
	live := map[string]bool{}
	for _, ref := range cat.Segments() {
		live[ref.Key] = true
		seg, err := decodeSegment(ctx, store, ref.Key)
		if err != nil {
			return nil, err
		}
		a.segments++
		if err := a.addSegment(ref.Key, seg); err != nil {
			return nil, err
		}
		if b, ok := before[ref.Key]; ok {
			a.checkAhead(b, seg)
		}
	}
	for _, key := range order {
		if live[key] {
			continue
		}
		seg, err := decodeSegment(ctx, store, key)
		if errors.Is(err, objstore.ErrNotFound) {
			continue // superseded by a merge and collected
		}
		if err != nil {
			return nil, err
		}
		a.checkAhead(before[key], seg)
	}
	return a, nil
}

// loadForChecks reads every catalog entry from seq 1, or, once garbage
// collection has deleted entry 1, from the newest checkpoint (as Load and
// verify do).
func loadForChecks(ctx context.Context, store objstore.Store) (*catalog.Catalog, error) {
	if _, err := store.Stat(ctx, catalog.EntryKey(1)); errors.Is(err, objstore.ErrNotFound) {
		return catalog.Load(ctx, store)
	}
	return catalog.LoadWith(ctx, store, catalog.LoadOptions{IgnoreCheckpoints: true})
}

// entryBefore is a flush entry's seq and the watermark of the entry before it.
type entryBefore struct {
	seq uint64
	wm  catalog.Watermark
}

func decodeSegment(ctx context.Context, store objstore.Store, key string) (*segment.Segment, error) {
	data, err := objstore.ReadAll(ctx, store, key, maxSegmentBytes)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	seg, err := segment.Decode(key, data, segment.ReadOptions{})
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	return seg, nil
}

// addSegment counts a live segment's events and transactions.
func (a *archiveContent) addSegment(key string, seg *segment.Segment) error {
	idCol := event.LayoutOf(seg.Header.Table).EventID
	for _, ev := range seg.Events {
		a.events++
		id, err := uuid.ParseBytes(ev.Value(idCol))
		if err != nil {
			return fmt.Errorf("%s: event without a valid id at %s: %w", key, ev.EndLSN, err)
		}
		if catalog.IsDiverged(a.divRanges, ev.EndLSN) {
			a.diverged = append(a.diverged, id)
			continue
		}
		a.ids[id]++
		a.addTxn(ev)
	}
	return nil
}

// checkAhead records the first event of a flush entry's segment that the
// watermark before the entry already covered.
func (a *archiveContent) checkAhead(b entryBefore, seg *segment.Segment) {
	for _, ev := range seg.Events {
		if ev.EndLSN <= b.wm.LSN && a.ahead == "" && !ev.Snapshot {
			a.ahead = fmt.Sprintf("catalog entry %d archives the transaction at %s (committed %s), but entry %d had already set the watermark to %s: "+
				"the watermark ran ahead of the archived data (a crash in between would drop the transaction as a duplicate, and capture may confirm the slot past it)",
				b.seq, ev.EndLSN, ev.CommitTime.Format(time.RFC3339Nano), b.seq-1, b.wm.LSN)
		}
	}
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
	onSource := 0
	for _, id := range a.diverged {
		if _, ok := seen[id]; ok {
			onSource++
		}
	}
	if onSource > 0 {
		out = append(out, violation("I3", "%d of %d archived events marked diverged are on the source (the new primary): a restore would lack them",
			onSource, len(a.diverged)))
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
