package restore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/merge"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/segment"
)

// expectedIDs decodes the live segments of the archive in dir and returns,
// in chain order, the ids of the events a restore to at selects.
func expectedIDs(t *testing.T, dir string, at time.Time) []string {
	t.Helper()
	a := openArchive(t, dir, nil)
	wm := a.Window().WatermarkLSN
	var ids []string
	for _, ref := range a.Catalog.Segments() {
		b, err := os.ReadFile(filepath.Join(dir, ref.Key))
		if err != nil {
			t.Fatal(err)
		}
		seg, err := segment.Decode(ref.Key, b, segment.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l := event.LayoutOf(seg.Header.Table)
		for _, e := range seg.Events {
			if !e.CommitTime.After(at) && e.EndLSN <= wm {
				ids = append(ids, string(e.Value(l.EventID)))
			}
		}
	}
	return ids
}

// addOrderColumn gives the target table a bigserial column: COPY fills it
// in the order rows arrive, so the restored order can be read back.
func addOrderColumn(t *testing.T, url string) {
	t.Helper()
	execSQL(t, url, `ALTER TABLE eventcore_events ADD COLUMN restored_order bigserial`)
}

func execSQL(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// restoredIDs returns the target's event ids in the order they were restored.
func restoredIDs(t *testing.T, url string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT event_id::text FROM eventcore_events ORDER BY restored_order`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// sameIDs fails unless got holds exactly want, in the same order.
func sameIDs(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events restored, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d is %s, want %s (restored twice, skipped or reordered)", i, got[i], want[i])
		}
	}
}

// lastPosition reads the chain position the restore state recorded.
func lastPosition(t *testing.T, url string) event.Position {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, `SELECT last_end_lsn::text FROM tidemark_restore_state`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	p, err := event.ParsePosition(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// mergeAndCollect merges the live segments pick chooses (consecutive, at
// least two) with internal/merge's Merger, then deletes what the merge
// superseded with catalog.Collect, as `archiver gc` does once the grace
// period is over. It returns the merged segment, nil when pick chose fewer
// than two.
func mergeAndCollect(t *testing.T, dir string, pick func(live []catalog.SegmentRef) []catalog.SegmentRef) *catalog.SegmentRef {
	t.Helper()
	ctx := context.Background()
	st, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := catalog.AcquireLease(ctx, st, "restore-test-merger", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(ctx)
	c, err := catalog.Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	inputs := pick(c.Segments())
	if len(inputs) < 2 {
		return nil
	}
	level := 0
	for _, in := range inputs {
		level = max(level, in.Level)
	}
	m := &merge.Merger{Store: st, Catalog: c, Writer: catalog.NewWriter(st, c, "restore-test-merger", lease.Epoch()), TempDir: t.TempDir()}
	out, _, err := m.Merge(ctx, merge.Group{Level: level + 1, Bucket: inputs[0].MinCommitTime.UTC().Truncate(time.Minute), Inputs: inputs})
	if err != nil {
		t.Fatalf("merge %d segments: %v", len(inputs), err)
	}
	later := func() time.Time { return time.Now().Add(time.Hour) }
	res, err := catalog.Collect(ctx, st, catalog.GCOptions{Grace: time.Minute, Clock: later})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range inputs {
		if _, err := st.Stat(ctx, in.Key); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("gc left superseded %s (%v); deleted %v", in.Key, err, res.Deleted)
		}
	}
	return out
}

// from returns the live segments from the one holding position pos (plus
// skip), n of them.
func from(pos event.Position, skip, n int) func([]catalog.SegmentRef) []catalog.SegmentRef {
	return func(live []catalog.SegmentRef) []catalog.SegmentRef {
		for i, s := range live {
			if s.LastEndLSN >= pos {
				i += skip
				return live[min(i, len(live)):min(i+n, len(live))]
			}
		}
		return nil
	}
}

// TestRestore_ReplansWhenMergedSegmentsAreCollected merges segments the
// restore has partly read and not yet downloaded, and garbage-collects the
// superseded objects, twice during one restore into PostgreSQL and once
// during a restore to a file: each restore re-plans and holds exactly the
// events of an undisturbed one, each once, in chain order.
func TestRestore_ReplansWhenMergedSegmentsAreCollected(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	at := f.times[len(f.times)*9/10]
	t.Run("database", func(t *testing.T) {
		dir := copyArchive(t, f.dir)
		want := expectedIDs(t, dir, at)
		target := newEventCoreDB(t)
		addOrderColumn(t, target)
		p, err := openArchive(t, dir, nil).Plan(at, "")
		if err != nil {
			t.Fatal(err)
		}
		var merged []string
		res, err := Restore(ctx, p, Options{TargetURL: target, BatchRows: 400, Parallel: 2,
			AfterBatch: func(n int, _ int64) error {
				if n == 2 || n == 6 {
					// from the segment being read to ones not downloaded yet
					if out := mergeAndCollect(t, dir, from(lastPosition(t, target), 0, 6)); out != nil {
						merged = append(merged, out.Key)
					}
				}
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		if len(merged) != 2 || res.Replans != 2 {
			t.Fatalf("%d merges, %d re-plans; want 2 of each", len(merged), res.Replans)
		}
		t.Logf("merged %v; %d re-plans; notes %v", merged, res.Replans, res.Notes)
		sameIDs(t, restoredIDs(t, target), want)
		if res.Verification.Status != VerifyOK || res.Events != int64(len(want)) {
			t.Fatalf("result: %d events, verification %+v", res.Events, res.Verification)
		}
	})
	t.Run("file", func(t *testing.T) {
		dir := copyArchive(t, f.dir)
		want := expectedIDs(t, dir, at)
		st, err := file.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		hooked := &getHook{Store: st}
		hooked.before = func(n int, key string) {
			if n == 3 { // the segment before the third one, that one and later ones
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
		p, err := a.Plan(at, "")
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		res, err := Restore(ctx, p, Options{Output: &out, Parallel: 1})
		if err != nil {
			t.Fatal(err)
		}
		if res.Replans != 1 {
			t.Fatalf("%d re-plans, want 1", res.Replans)
		}
		sameIDs(t, lineIDs(t, out.Bytes()), want)
	})
}

// getHook calls before ahead of the n-th Get of a segment object (from 1).
type getHook struct {
	objstore.Store
	mu     sync.Mutex
	gets   int
	before func(n int, key string)
}

func (h *getHook) Get(ctx context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	if strings.HasPrefix(key, catalog.SegmentsPrefix) {
		h.mu.Lock()
		h.gets++
		h.before(h.gets, key)
		h.mu.Unlock()
	}
	return h.Store.Get(ctx, key)
}

// lineIDs returns the event ids of JSON lines, in order.
func lineIDs(t *testing.T, b []byte) []string {
	t.Helper()
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 8<<20)
	for sc.Scan() {
		var row struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, row.EventID)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestRestore_ResumesAcrossMerges interrupts a restore, merges segments
// around where it stopped and collects the superseded objects, and resumes
// it with a fresh plan: by chain position (the segment it stopped in, and
// the archive's first segment, are gone), and for a state row an older
// restorer wrote (no position columns: the recorded segment is kept, later
// ones are merged).
func TestRestore_ResumesAcrossMerges(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	at := f.last
	for _, tc := range []struct {
		name   string
		legacy bool
	}{{"by position", false}, {"old state row", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyArchive(t, f.dir)
			want := expectedIDs(t, dir, at)
			target := newEventCoreDB(t)
			addOrderColumn(t, target)
			p, err := openArchive(t, dir, nil).Plan(at, "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = Restore(ctx, p, Options{TargetURL: target, BatchRows: 500, Parallel: 2,
				AfterBatch: func(n int, _ int64) error {
					if n == 3 {
						return errKilled
					}
					return nil
				}})
			if !errors.Is(err, errKilled) {
				t.Fatalf("interrupted restore: %v", err)
			}
			pos := lastPosition(t, target)
			if tc.legacy {
				execSQL(t, target, `ALTER TABLE tidemark_restore_state DROP COLUMN last_end_lsn, DROP COLUMN last_index, DROP COLUMN archive_origin`)
				mergeAndCollect(t, dir, from(pos, 1, 5))
			} else {
				// from the archive's first segment to two past the one it stopped in
				mergeAndCollect(t, dir, func(live []catalog.SegmentRef) []catalog.SegmentRef {
					return live[:len(from(pos, 0, 3)(live))+slices.IndexFunc(live, func(s catalog.SegmentRef) bool { return s.LastEndLSN >= pos })]
				})
			}
			p2, err := openArchive(t, dir, nil).Plan(at, "")
			if err != nil {
				t.Fatal(err)
			}
			if !tc.legacy && p2.ArchiveID == p.ArchiveID {
				t.Fatalf("the first segment was merged but the archive id stayed %s", p.ArchiveID)
			}
			res, err := Restore(ctx, p2, Options{TargetURL: target, BatchRows: 500})
			if err != nil {
				t.Fatalf("resume: %v", err)
			}
			if !res.Resumed || res.EventsThisRun >= res.Events {
				t.Fatalf("resumed %v, wrote %d of %d", res.Resumed, res.EventsThisRun, res.Events)
			}
			sameIDs(t, restoredIDs(t, target), want)
			if lastPosition(t, target) == 0 {
				t.Fatal("the state row records no position after the resumed run")
			}
		})
	}
}

// TestRestore_ReplanLimit lets garbage collection delete the next segments
// again after every re-plan: the restore gives up after maxReplans with an
// error that says why and to run it again (not an integrity error: the
// archive is fine), and running it again resumes and finishes with every
// event exactly once.
func TestRestore_ReplanLimit(t *testing.T) {
	defer func(n int) { maxReplans = n }(maxReplans)
	maxReplans = 1
	f := sharedFixture(t)
	ctx := context.Background()
	dir := copyArchive(t, f.dir)
	want := expectedIDs(t, dir, f.last)
	target := newEventCoreDB(t)
	addOrderColumn(t, target)
	p, err := openArchive(t, dir, nil).Plan(f.last, "")
	if err != nil {
		t.Fatal(err)
	}
	merges := 0
	_, err = Restore(ctx, p, Options{TargetURL: target, BatchRows: 400, Parallel: 1,
		AfterBatch: func(int, int64) error {
			// merge the flush segments after the one being read
			out := mergeAndCollect(t, dir, func(live []catalog.SegmentRef) []catalog.SegmentRef {
				next := from(lastPosition(t, target), 1, 4)(live)
				if len(next) < 2 || next[0].Level > 0 {
					return nil
				}
				return next
			})
			if out != nil {
				merges++
			}
			return nil
		}})
	if err == nil || errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), "giving up after 1 re-plans") || HintOf(err) == "" {
		t.Fatalf("restore with objects collected after every re-plan (%d merges): %v", merges, err)
	}
	t.Logf("%v\n  Try: %s", err, HintOf(err))
	maxReplans = 5
	p, err = openArchive(t, dir, nil).Plan(f.last, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Restore(ctx, p, Options{TargetURL: target})
	if err != nil || !res.Resumed {
		t.Fatalf("run again: resumed %v, %v", res != nil && res.Resumed, err)
	}
	sameIDs(t, restoredIDs(t, target), want)
}

// TestRestore_TrailerMismatchAtEndOfStream restores an archive whose second
// segment's trailer disagrees with its events (its transaction count), in
// an object re-checksummed so that its size and SHA-256 match the catalog:
// only the streaming reader's recomputed trailer, at the segment's end,
// finds it. The restore fails naming the segment, after committing the
// batches before the end; a second run resumes and fails the same way,
// never restoring an event twice.
func TestRestore_TrailerMismatchAtEndOfStream(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	dir := tamperedArchive(t, f.dir, 1)
	a := openArchive(t, dir, nil)
	victim := a.Catalog.Segments()[1]
	p, err := a.Plan(a.Window().Watermark, "")
	if err != nil {
		t.Fatal(err)
	}
	target := newEventCoreDB(t)
	addOrderColumn(t, target)
	for run := 1; run <= 2; run++ {
		res, err := Restore(ctx, p, Options{TargetURL: target, BatchRows: 100, Parallel: 2})
		if !errors.Is(err, ErrIntegrity) || !errors.Is(err, segment.ErrCorrupt) || !strings.Contains(err.Error(), victim.Key) {
			t.Fatalf("run %d: %v (result %+v); want a corrupt-segment error naming %s", run, err, res, victim.Key)
		}
		t.Logf("run %d: %v", run, err)
	}
	got := restoredIDs(t, target)
	ids := expectedIDs(t, f.dir, a.Window().Watermark)
	first := a.Catalog.Segments()[0].Events
	if len(got) <= first || len(got) >= first+victim.Events {
		t.Fatalf("%d rows committed; want those of the first segment (%d) and some of the damaged one's %d", len(got), first, victim.Events)
	}
	sameIDs(t, got, ids[:len(got)])
}

// tamperedArchive copies the archive in src, rewriting the trailer of
// segment i so that its transaction count is one less, re-checksumming the
// object and writing a new catalog that lists it with its new size and
// SHA-256.
func tamperedArchive(t *testing.T, src string, victim int) string {
	t.Helper()
	ctx := context.Background()
	orig := openArchive(t, src, nil)
	dir := t.TempDir()
	st, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := catalog.AcquireLease(ctx, st, "restore-test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(ctx)
	c, err := catalog.Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	w := catalog.NewWriter(st, c, "restore-test", lease.Epoch())
	n := 0
	for _, e := range orig.Catalog.Entries() {
		var ref *catalog.SegmentRef
		if e.Segment != nil {
			r := *e.Segment
			b, err := os.ReadFile(filepath.Join(src, r.Key))
			if err != nil {
				t.Fatal(err)
			}
			if n == victim {
				b = lessTransactions(t, b)
				sum := sha256.Sum256(b)
				r.Size, r.SHA256 = int64(len(b)), hex.EncodeToString(sum[:])
			}
			if err := st.Put(ctx, r.Key, bytes.NewReader(b), int64(len(b)), objstore.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			ref = &r
			n++
		}
		if _, err := w.Append(ctx, ref, e.Watermark); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// lessTransactions rewrites a plaintext segment's trailer with one
// transaction fewer and fixes the footer (docs/segment-format.md §2).
func lessTransactions(t *testing.T, b []byte) []byte {
	t.Helper()
	hl := int(binary.BigEndian.Uint32(b[8:12]))
	env := b[:12+hl]
	inner := b[12+hl : len(b)-48]
	tl := int(binary.BigEndian.Uint32(inner[len(inner)-4:]))
	body, tj := inner[:len(inner)-4-tl], inner[len(inner)-4-tl:len(inner)-4]
	var tr map[string]any
	d := json.NewDecoder(bytes.NewReader(tj))
	d.UseNumber()
	if err := d.Decode(&tr); err != nil {
		t.Fatal(err)
	}
	n, err := tr["transactions"].(json.Number).Int64()
	if err != nil || n < 2 {
		t.Fatalf("transactions %v: %v", tr["transactions"], err)
	}
	tr["transactions"] = n - 1
	tj, err = json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	out := slices.Concat(env, body, tj, binary.BigEndian.AppendUint32(nil, uint32(len(tj))))
	sealed := len(out) - len(env)
	sum := sha256.Sum256(out)
	out = binary.BigEndian.AppendUint64(out, uint64(sealed))
	out = append(out, sum[:]...)
	return append(out, "TMSEGEND"...)
}
