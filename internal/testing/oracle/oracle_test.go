package oracle_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/oracle"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

const table = "eventcore_events"

// plainTable is eventcore_events without triggers, as a restore target.
const plainTable = `CREATE TABLE eventcore_events (
	event_id UUID PRIMARY KEY, stream_id TEXT NOT NULL, stream_version BIGINT NOT NULL,
	event_type TEXT NOT NULL, event_data JSONB NOT NULL, metadata JSONB NOT NULL,
	created_at TIMESTAMPTZ NOT NULL)`

func mustExec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// copyRows copies every source row into the target's plain table.
func copyRows(t *testing.T, src, dst *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	rows, err := src.Query(ctx, "SELECT event_id, stream_id, stream_version, event_type, event_data, metadata, created_at FROM eventcore_events")
	if err != nil {
		t.Fatalf("read source: %v", err)
	}
	values, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
	if err != nil {
		t.Fatalf("collect: %v", err)
	}
	if _, err := dst.CopyFrom(ctx, pgx.Identifier{table},
		[]string{"event_id", "stream_id", "stream_version", "event_type", "event_data", "metadata", "created_at"},
		pgx.CopyFromRows(values)); err != nil {
		t.Fatalf("copy: %v", err)
	}
}

func TestCompareTable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pg := testrig.StartPostgres(t)
	srcURL := pg.NewDatabase(t)
	src := testrig.Connect(t, srcURL)
	if err := eventcore.Apply(ctx, src); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if _, err := loadgen.Run(ctx, srcURL, loadgen.Config{Writers: 3, Events: 300, Streams: 20, Seed: 3}); err != nil {
		t.Fatalf("loadgen: %v", err)
	}
	if err := loadgen.WeirdStreamIDs(ctx, srcURL); err != nil {
		t.Fatalf("weird streams: %v", err)
	}
	total := 300 + len(loadgen.WeirdStreamIDList)
	times, err := oracle.CommitTimes(ctx, srcURL, table)
	if err != nil {
		t.Fatalf("commit times: %v", err)
	}
	if len(times) < 2 {
		t.Fatalf("only %d commit times", len(times))
	}
	last := times[len(times)-1]

	t.Run("expected is ordered and cut at T", func(t *testing.T) {
		all, err := oracle.Expected(ctx, srcURL, table, last)
		if err != nil {
			t.Fatalf("expected: %v", err)
		}
		if len(all) != total {
			t.Fatalf("expected %d rows at the last commit, got %d", total, len(all))
		}
		for i := 1; i < len(all); i++ {
			if all[i].CommitTime.Before(all[i-1].CommitTime) {
				t.Fatalf("row %d commit time %v before row %d's %v", i, all[i].CommitTime, i-1, all[i-1].CommitTime)
			}
		}
		mid := times[len(times)/2]
		part, err := oracle.Expected(ctx, srcURL, table, mid)
		if err != nil {
			t.Fatalf("expected at mid: %v", err)
		}
		if len(part) == 0 || len(part) >= len(all) {
			t.Fatalf("expected at mid has %d of %d rows", len(part), len(all))
		}
		for _, r := range part {
			if r.CommitTime.After(mid) {
				t.Fatalf("row %s committed at %v, after T %v", r.EventID, r.CommitTime, mid)
			}
		}
		if !part[len(part)-1].CommitTime.Equal(mid) {
			t.Fatalf("last row at mid committed %v, want exactly %v", part[len(part)-1].CommitTime, mid)
		}
		before, err := oracle.Expected(ctx, srcURL, table, times[0].Add(-time.Microsecond))
		if err != nil || len(before) != 0 {
			t.Fatalf("expected before the first commit: %d rows, %v", len(before), err)
		}
	})

	dstURL := pg.NewDatabase(t)
	dst := testrig.Connect(t, dstURL)
	mustExec(t, dst, plainTable)
	copyRows(t, src, dst)

	t.Run("identical copy", func(t *testing.T) {
		d, err := oracle.CompareTable(ctx, srcURL, dstURL, table, last)
		if err != nil {
			t.Fatalf("compare: %v", err)
		}
		if !d.Empty() || d.Expected != total || d.Actual != total {
			t.Fatalf("diff of identical copy: %s", d)
		}
	})

	t.Run("dropped row is missing", func(t *testing.T) {
		var dropped string
		if err := dst.QueryRow(ctx, "DELETE FROM eventcore_events WHERE event_id = (SELECT event_id FROM eventcore_events ORDER BY event_id LIMIT 1 OFFSET 7) RETURNING event_id::text").Scan(&dropped); err != nil {
			t.Fatalf("drop: %v", err)
		}
		d, err := oracle.CompareTable(ctx, srcURL, dstURL, table, last)
		if err != nil {
			t.Fatalf("compare: %v", err)
		}
		if d.Empty() || d.Missing != 1 || d.Unexpected != 0 || d.Mismatched != 0 {
			t.Fatalf("diff = %s, want exactly one missing", d)
		}
		if d.MissingExamples[0].EventID != dropped || !strings.Contains(d.String(), dropped) {
			t.Fatalf("missing %s not reported: %s", dropped, d)
		}
	})

	t.Run("changed, extra and duplicated rows", func(t *testing.T) {
		mustExec(t, dst, "ALTER TABLE eventcore_events DROP CONSTRAINT eventcore_events_pkey")
		var changed string
		if err := dst.QueryRow(ctx, `UPDATE eventcore_events SET event_data = event_data || '{"tampered":true}'
			WHERE event_id = (SELECT event_id FROM eventcore_events ORDER BY event_id DESC LIMIT 1) RETURNING event_id::text`).Scan(&changed); err != nil {
			t.Fatalf("tamper: %v", err)
		}
		mustExec(t, dst, `INSERT INTO eventcore_events VALUES (gen_random_uuid(), 'extra', 1, 'Extra', '{}', '{}', now())`)
		mustExec(t, dst, `INSERT INTO eventcore_events SELECT * FROM eventcore_events WHERE stream_id <> 'extra' ORDER BY event_id LIMIT 1`)
		mustExec(t, dst, `UPDATE eventcore_events SET stream_version = stream_version + 100
			WHERE event_id = (SELECT event_id FROM eventcore_events ORDER BY event_id LIMIT 1 OFFSET 20)`)
		d, err := oracle.CompareTable(ctx, srcURL, dstURL, table, last)
		if err != nil {
			t.Fatalf("compare: %v", err)
		}
		if d.Missing != 1 || d.Unexpected != 2 || d.Mismatched != 2 {
			t.Fatalf("diff = %s, want 1 missing, 2 unexpected, 2 mismatched", d)
		}
		fields := map[string]bool{}
		for _, m := range d.MismatchedExamples {
			fields[strings.Join(m.Fields, ",")] = true
		}
		if !fields["event_data"] || !fields["stream_version"] {
			t.Fatalf("mismatched fields = %v, want event_data and stream_version", fields)
		}
		t.Logf("diff:\n%s", d)
	})

	t.Run("target ahead of T", func(t *testing.T) {
		d, err := oracle.CompareTable(ctx, srcURL, dstURL, table, times[0])
		if err != nil {
			t.Fatalf("compare: %v", err)
		}
		if d.Unexpected == 0 {
			t.Fatalf("diff at the first commit reports no unexpected rows: %s", d)
		}
	})
}
