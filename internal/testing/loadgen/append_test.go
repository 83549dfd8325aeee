package loadgen

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// TestAppendEvents_BatchIsOneTransaction checks that the pipelined batch
// behaves as BEGIN … COMMIT: the expected versions reach the trigger, a
// conflict rolls the whole batch back, and a success is one transaction.
func TestAppendEvents_BatchIsOneTransaction(t *testing.T) {
	ctx := context.Background()
	pg := testrig.StartPostgres(t)
	url := pg.NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if err := eventcore.Apply(ctx, conn); err != nil {
		t.Fatalf("apply schema: %v", err)
	}
	count := func(sql string) int64 {
		t.Helper()
		var n int64
		if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	events := func(streams ...string) []pendingEvent {
		var es []pendingEvent
		for _, s := range streams {
			es = append(es, pendingEvent{id: uuid.Must(uuid.NewV7()), stream: s, typ: "T", data: []byte(`{}`), metadata: []byte(`{}`)})
		}
		return es
	}

	if err := appendEvents(ctx, conn, map[string]int64{"a": 0, "b": 0}, events("a", "a", "b")); err != nil {
		t.Fatalf("first append: %v", err)
	}
	if n := count("SELECT count(DISTINCT xmin::text) FROM eventcore_events"); n != 1 {
		t.Fatalf("first append wrote %d transactions, want 1", n)
	}

	// b is at version 1, not 0: the trigger must refuse, and the row for
	// a (inserted first in the same statement) must go with it.
	err = appendEvents(ctx, conn, map[string]int64{"a": 2, "b": 0}, events("a", "b"))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "P0001" || !IsConflict(err) {
		t.Fatalf("append with a stale expectation: err = %v, want version_conflict (P0001)", err)
	}
	if n := count("SELECT count(*) FROM eventcore_events"); n != 3 {
		t.Fatalf("table holds %d events after the refused append, want 3", n)
	}

	// The expectation is transaction-local: the next batch on the same
	// connection starts without it.
	if err := appendEvents(ctx, conn, map[string]int64{"a": 2, "b": 1}, events("a", "b")); err != nil {
		t.Fatalf("append with current expectations: %v", err)
	}
	if n := count("SELECT count(*) FROM eventcore_events WHERE stream_id = 'a'"); n != 3 {
		t.Fatalf("stream a holds %d events, want 3", n)
	}
	var setting string
	if err := conn.QueryRow(ctx, "SELECT coalesce(current_setting('eventcore.expected_versions', true), '')").Scan(&setting); err != nil || setting != "" {
		t.Fatalf("expected versions outlived the transaction: %q (%v)", setting, err)
	}
}
