package eventcore_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tidemark/tidemark/internal/restore/restoretest"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// newStore returns a pool on a fresh database of pg with the schema applied.
func newStore(t *testing.T, pg *testrig.Postgres) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pg.NewDatabase(t))
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := eventcore.Apply(ctx, pool); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return pool
}

func TestApply(t *testing.T) {
	pg := testrig.StartPostgres(t)
	t.Run("idempotent", func(t *testing.T) { testApplyIdempotent(t, pg) })
	t.Run("gap-free versions under concurrent writers", func(t *testing.T) { testConcurrentVersions(t, pg) })
	t.Run("version conflict on stale expectation", func(t *testing.T) { testVersionConflict(t, pg) })
	t.Run("expectation advances within a statement", func(t *testing.T) { testMultiRowExpectation(t, pg) })
	t.Run("update and delete refused", func(t *testing.T) { testImmutable(t, pg) })
	t.Run("TableDef is the applied table", func(t *testing.T) { testTableDef(t, pg) })
}

func testTableDef(t *testing.T, pg *testrig.Postgres) {
	ctx := context.Background()
	conn := testrig.Connect(t, newStore(t, pg).Config().ConnConfig.ConnString())
	got, err := restoretest.ReadTableDef(ctx, conn, "public", eventcore.Table)
	if err != nil {
		t.Fatalf("read definition: %v", err)
	}
	if want := eventcore.TableDef(); !reflect.DeepEqual(got, want) {
		t.Fatalf("applied table:\n%+v\nTableDef:\n%+v", got, want)
	}
}

func testApplyIdempotent(t *testing.T, pg *testrig.Postgres) {
	ctx := context.Background()
	pool := newStore(t, pg)
	if err := eventcore.Apply(ctx, pool); err != nil {
		t.Fatalf("second apply: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid = 'eventcore_events'::regclass AND tgname = ANY($1)`,
		eventcore.Triggers).Scan(&n); err != nil {
		t.Fatalf("count triggers: %v", err)
	}
	if n != len(eventcore.Triggers) {
		t.Fatalf("triggers = %d, want %d", n, len(eventcore.Triggers))
	}
	for _, table := range []string{"eventcore_subscription_versions", "eventcore_command_state_snapshots"} {
		if _, err := pool.Exec(ctx, "SELECT * FROM "+table); err != nil {
			t.Fatalf("side table %s: %v", table, err)
		}
	}
}

// insert appends rows events to stream, one statement each, in one
// transaction with the given expectations (nil: none).
func insert(ctx context.Context, pool *pgxpool.Pool, stream string, expected map[string]int64, rows int) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if expected != nil {
			var b strings.Builder
			b.WriteString("{")
			i := 0
			for s, v := range expected {
				if i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, "%q:%d", s, v)
				i++
			}
			b.WriteString("}")
			if _, err := tx.Exec(ctx, "SELECT set_config($1, $2, true)", eventcore.ExpectedVersionsSetting, b.String()); err != nil {
				return err
			}
		}
		for range rows {
			if _, err := tx.Exec(ctx,
				`INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data) VALUES ($1, $2, 'Tested', '{"k":1}')`,
				uuid.Must(uuid.NewV7()), stream); err != nil {
				return err
			}
		}
		return nil
	})
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func testConcurrentVersions(t *testing.T, pg *testrig.Postgres) {
	ctx := context.Background()
	pool := newStore(t, pg)
	const writers, perWriter = 8, 25
	streams := []string{"order-1", "order-2"}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := streams[w%len(streams)]
			for i := 0; i < perWriter; {
				var current int64
				if err := pool.QueryRow(ctx, "SELECT COALESCE(max(stream_version), 0) FROM eventcore_events WHERE stream_id = $1", stream).Scan(&current); err != nil {
					errs <- err
					return
				}
				err := insert(ctx, pool, stream, map[string]int64{stream: current}, 1)
				switch sqlState(err) {
				case "":
					if err != nil {
						errs <- err
						return
					}
					i++
				case eventcore.VersionConflictCode, "23505": // lost the race: re-read and retry
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %v", err)
	}
	for _, s := range streams {
		rows, err := pool.Query(ctx, "SELECT stream_version FROM eventcore_events WHERE stream_id = $1 ORDER BY stream_version", s)
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatalf("collect: %v", err)
		}
		want := writers / len(streams) * perWriter
		if len(versions) != want {
			t.Fatalf("stream %s has %d events, want %d", s, len(versions), want)
		}
		for i, v := range versions {
			if v != int64(i+1) {
				t.Fatalf("stream %s: version #%d = %d, want %d (gap or duplicate)", s, i, v, i+1)
			}
		}
	}
}

func testVersionConflict(t *testing.T, pg *testrig.Postgres) {
	ctx := context.Background()
	pool := newStore(t, pg)
	if err := insert(ctx, pool, "acct-1", map[string]int64{"acct-1": 0}, 1); err != nil {
		t.Fatalf("first insert: %v", err)
	}
	err := insert(ctx, pool, "acct-1", map[string]int64{"acct-1": 0}, 1)
	if sqlState(err) != eventcore.VersionConflictCode || !strings.Contains(err.Error(), "version_conflict") {
		t.Fatalf("stale insert: err = %v, want version_conflict (P0001)", err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM eventcore_events").Scan(&n); err != nil {
		t.Fatalf("count: %v", err)
	}
	if n != 1 {
		t.Fatalf("events = %d, want 1", n)
	}
}

func testMultiRowExpectation(t *testing.T, pg *testrig.Postgres) {
	ctx := context.Background()
	pool := newStore(t, pg)
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('eventcore.expected_versions', $1, true)", `{"a":0,"b":0}`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data)
			VALUES ($1, 'a', 'T', '{}'), ($2, 'b', 'T', '{}'), ($3, 'a', 'T', '{}'), ($4, 'a', 'T', '{}')`,
			uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()))
		return err
	})
	if err != nil {
		t.Fatalf("multi-row insert: %v", err)
	}
	var got string
	if err := pool.QueryRow(ctx, "SELECT string_agg(stream_id || stream_version, ',' ORDER BY stream_id, stream_version) FROM eventcore_events").Scan(&got); err != nil {
		t.Fatalf("query: %v", err)
	}
	if got != "a1,a2,a3,b1" {
		t.Fatalf("versions = %s, want a1,a2,a3,b1", got)
	}
}

func testImmutable(t *testing.T, pg *testrig.Postgres) {
	ctx := context.Background()
	pool := newStore(t, pg)
	if err := insert(ctx, pool, "s", nil, 1); err != nil {
		t.Fatalf("insert: %v", err)
	}
	for _, q := range []string{
		"UPDATE eventcore_events SET event_type = 'Changed'",
		"DELETE FROM eventcore_events",
	} {
		_, err := pool.Exec(ctx, q)
		if sqlState(err) != eventcore.ImmutableCode {
			t.Fatalf("%s: err = %v, want SQLSTATE P0002", q, err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM eventcore_events WHERE event_type = 'Tested'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count = %d (%v), want 1 unchanged event", n, err)
	}
}
