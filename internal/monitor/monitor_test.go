package monitor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/restore/restoretest"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

var shared = restoretest.Shared{Events: 1500}

func TestMain(m *testing.M) { testkit.Main(m, shared.Close) }

func openStore(t *testing.T, dir string) objstore.Store {
	t.Helper()
	st, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func checks(r *Round) string {
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString(f.Check + ": " + f.Message + "\n")
	}
	return b.String()
}

func has(r *Round, check string) bool {
	for _, f := range r.Findings {
		if f.Check == check && f.KnownGap == 0 {
			return true
		}
	}
	return false
}

func exec(t *testing.T, url string, sqls ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range sqls {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestMonitor_Round: a round over the fixture finds nothing; each injected
// fault — a deleted segment (then accepted as a known gap), the slot
// confirmed past the watermark, an archived event's row updated or deleted
// in the source with the triggers off — is found by the next round. A
// round compares a whole segment's events here (Sample above the segment
// size), so which segment it draws does not matter.
func TestMonitor_Round(t *testing.T) {
	f := shared.Fixture(t)
	ctx := context.Background()
	opts := Options{Store: openStore(t, f.Dir), SourceURL: f.SourceURL, Sample: 5000}

	r, err := RunOnce(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 0 || r.Compared == 0 || r.Segment == "" {
		t.Fatalf("healthy: compared %d of %s, findings:\n%s", r.Compared, r.Segment, checks(r))
	}

	t.Run("deleted segments, then a known gap", func(t *testing.T) {
		dir := testkit.CopyDir(t, f.Dir)
		st := openStore(t, dir)
		c, err := catalog.Load(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, s := range c.Segments() {
			keys = append(keys, s.Key)
			if err := os.Remove(filepath.Join(dir, s.Key)); err != nil {
				t.Fatal(err)
			}
		}
		o := opts
		o.Store = st
		r, err := RunOnce(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if !has(r, CheckSegmentMissing) || r.Violations() != 1 {
			t.Fatalf("deleted segments: findings:\n%s", checks(r))
		}
		if _, err := catalog.RecordKnownGap(ctx, st, "monitor-test", catalog.KnownGap{Objects: keys, Reason: "test", Operator: "t"}); err != nil {
			t.Fatal(err)
		}
		r, err = RunOnce(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Findings) != 1 || r.Findings[0].KnownGap == 0 || r.Violations() != 0 {
			t.Fatalf("with a known gap: findings %+v", r.Findings)
		}
	})

	t.Run("slot past the watermark", func(t *testing.T) {
		// an archive whose watermark is far behind the source's WAL: the slot,
		// created now, is confirmed past it
		dir := t.TempDir()
		st := openStore(t, dir)
		lease, err := catalog.AcquireLease(ctx, st, "monitor-test", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		c, err := catalog.Load(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		w := catalog.NewWriter(st, c, "monitor-test", lease.Epoch())
		if _, err := w.Append(ctx, nil, catalog.Watermark{LSN: 0x10, CommitTime: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
		exec(t, f.SourceURL, `SELECT pg_create_logical_replication_slot('monitor_test', 'pgoutput')`)
		t.Cleanup(func() { exec(t, f.SourceURL, `SELECT pg_drop_replication_slot('monitor_test')`) })
		o := opts
		o.Store, o.Slot = st, "monitor_test"
		r, err := RunOnce(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if !has(r, CheckSlot) || r.SlotConfirmed <= r.Watermark {
			t.Fatalf("slot %s, watermark %s: findings:\n%s", r.SlotConfirmed, r.Watermark, checks(r))
		}
		// on the fixture's archive (positions above the source's WAL) the slot is behind
		o.Store = opts.Store
		if r, err = RunOnce(ctx, o); err != nil || has(r, CheckSlot) {
			t.Fatalf("slot behind the watermark: %v, findings:\n%s", err, checks(r))
		}
	})

	t.Run("source rows changed and deleted after capture", func(t *testing.T) {
		exec(t, f.SourceURL,
			`SET session_replication_role = replica`,
			`UPDATE eventcore_events SET metadata = '{"tampered": true}'::jsonb WHERE stream_version % 2 = 0`,
			`DELETE FROM eventcore_events WHERE stream_version % 2 = 1 AND stream_version > 1`)
		r, err := RunOnce(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !has(r, CheckSourceChanged) || !has(r, CheckSourceMissing) {
			t.Fatalf("tampered source, segment %s: findings:\n%s", r.Segment, checks(r))
		}
	})
}

// TestSourceLookupSQL_UsesTheIndex: the lookup by event id is planned as
// an index scan. Comparing the id column cast to text (as it once did)
// cannot use the primary key and scanned the table for every sampled
// event; with sequential scans disabled, such a plan still shows one.
func TestSourceLookupSQL_UsesTheIndex(t *testing.T) {
	f := shared.Fixture(t)
	ctx := context.Background()
	conn, err := connect(ctx, f.SourceURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	table := eventcore.TableDef()
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	rows, err := conn.Query(ctx, "EXPLAIN "+sourceLookupSQL(&table, event.LayoutOf(table)), "0191f3a0-0000-7000-8000-000000000005")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan.String(), "Index") || strings.Contains(plan.String(), "Seq Scan") {
		t.Fatalf("the lookup does not use the primary key's index:\n%s", plan.String())
	}

	// An archived id that is no value of the column's type (a damaged or
	// forged archive) is a finding, not a failed round.
	e := &event.Event{Values: make([][]byte, len(table.Columns))}
	l := event.LayoutOf(table)
	e.Values[l.EventID], e.Values[l.StreamID] = []byte("not-a-uuid"), []byte("s-1")
	var r Round
	if err := compareWithSource(ctx, conn, &table, "segments/x.tms", e, &r); err != nil {
		t.Fatal(err)
	}
	if !has(&r, CheckSourceMissing) || r.Findings[0].EventID != "not-a-uuid" {
		t.Fatalf("an id that does not parse: findings %+v", r.Findings)
	}
}
