package restore

import (
	"bufio"
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/testing/golden"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// TestRestore_GoldenArchiveV1 restores archive-v1 — the archive today's
// archiver wrote from the recorded feed-v1 (internal/testing/golden) —
// into EventCore databases at three instants and compares every column of
// every row with feed-v1's events committed by then. One instant lies
// between two transactions whose commit times run against their WAL
// order. The archive must verify clean first, and a JSON-lines restore
// must hold the same events.
func TestRestore_GoldenArchiveV1(t *testing.T) {
	ctx := context.Background()
	dir := testkit.CopyDir(t, golden.ArchiveV1Dir())
	st, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := catalog.Verify(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Worst() != catalog.OK {
		t.Fatalf("verify archive-v1: %v", rep.Findings)
	}
	a := openArchive(t, dir, nil)
	w := a.Window()
	if w.Empty || !w.First.Equal(goldenTime("2026-11-25T10:00:00.5Z")) || !w.Watermark.Equal(goldenTime("2026-11-25T10:02:50Z")) {
		t.Fatalf("window %s", w)
	}
	all := golden.FeedV1Events()
	for _, at := range []string{"2026-11-25T10:00:19.999999Z", "2026-11-25T10:01:30.25Z", "2026-11-25T10:02:50Z"} {
		t.Run(at, func(t *testing.T) {
			target, res := restoreAt(t, a, goldenTime(at), Options{})
			var want []*event.Event
			for _, e := range all {
				if !e.CommitTime.After(goldenTime(at)) {
					want = append(want, e)
				}
			}
			if res.Events != int64(len(want)) || res.Verification.Status != VerifyOK {
				t.Errorf("restored %d events (verification %+v), want %d", res.Events, res.Verification, len(want))
			}
			compareRows(t, target, want)
		})
	}
	var out bytes.Buffer
	p, err := a.Plan(w.Watermark, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Restore(ctx, p, Options{Output: &out})
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	for sc := bufio.NewScanner(&out); sc.Scan(); lines++ {
	}
	if res.Events != int64(len(all)) || lines != len(all) {
		t.Errorf("JSON-lines restore: %d events, %d lines, want %d", res.Events, lines, len(all))
	}
}

func goldenTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// compareRows reads the target's eventcore_events as text, in UTC, and
// compares it with want's values column by column.
func compareRows(t *testing.T, target string, want []*event.Event) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT event_id::text, stream_id, stream_version::text, event_type,
		event_data::text, metadata::text, created_at::text FROM eventcore_events ORDER BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]string, error) {
		v := make([]string, 7)
		err := r.Scan(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6])
		return v, err
	})
	if err != nil {
		t.Fatal(err)
	}
	exp := make([][]string, len(want))
	for i, e := range want {
		for _, v := range e.Values {
			exp[i] = append(exp[i], string(v))
		}
	}
	slices.SortFunc(exp, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	if len(got) != len(exp) {
		t.Fatalf("target holds %d rows, want %d", len(got), len(exp))
	}
	for i := range exp {
		if !slices.Equal(got[i], exp[i]) {
			t.Errorf("row %d\n got %q\nwant %q", i, got[i], exp[i])
		}
	}
}
