package restoretest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/oracle"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// TargetState summarises a restore target for "untouched" checks: the
// public schema's relations with their kinds and, when the event table
// exists, its row count and a checksum of its event ids. It fails tb when
// the target cannot be read.
func TargetState(tb testing.TB, url string) string {
	tb.Helper()
	ctx := context.Background()
	conn := testrig.Connect(tb, url)
	var s string
	err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(c.relname || ':' || c.relkind::text, ',' ORDER BY c.relname), '')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'`).Scan(&s)
	if err != nil {
		tb.Fatal(err)
	}
	var reg *string
	if err := conn.QueryRow(ctx, `SELECT to_regclass('public.eventcore_events')::text`).Scan(&reg); err != nil {
		tb.Fatal(err)
	}
	if reg != nil {
		var n int64
		var sum *string
		if err := conn.QueryRow(ctx, `SELECT count(*), md5(string_agg(event_id::text, ',' ORDER BY event_id)) FROM eventcore_events`).Scan(&n, &sum); err != nil {
			tb.Fatal(err)
		}
		s += " rows=" + strconv.FormatInt(n, 10)
		if sum != nil {
			s += " " + *sum
		}
	}
	return s
}

// Compare fails tb when the event table at targetURL differs from what a
// restore to at must hold: the oracle's reading of the source at sourceURL.
func Compare(tb testing.TB, sourceURL, targetURL string, at time.Time) {
	tb.Helper()
	d, err := oracle.CompareTable(context.Background(), sourceURL, targetURL, eventcore.Table, at)
	if err != nil {
		tb.Fatal(err)
	}
	if !d.Empty() {
		tb.Fatalf("restore to %s differs from the oracle: %s", at.UTC().Format(time.RFC3339Nano), d)
	}
}

// InsertEvent appends one event to the event table at url, making it a
// target the restorer refuses as not empty.
func InsertEvent(tb testing.TB, url string) {
	tb.Helper()
	ctx := context.Background()
	conn := testrig.Connect(tb, url)
	if _, err := conn.Exec(ctx, `INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data)
		VALUES (gen_random_uuid(), 's', 't', '{}')`); err != nil {
		tb.Fatal(err)
	}
}
