package loadgen_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func newStore(t *testing.T, pg *testrig.Postgres) (string, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	url := pg.NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	if err := eventcore.Apply(ctx, conn); err != nil {
		t.Fatalf("apply schema: %v", err)
	}
	return url, conn
}

func queryInt(t *testing.T, conn *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestRun(t *testing.T) {
	pg := testrig.StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("event budget with contention", func(t *testing.T) {
		url, conn := newStore(t, pg)
		stats, err := loadgen.Run(ctx, url, loadgen.Config{Writers: 6, Events: 600, Streams: 5, Seed: 7})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if stats.Events != 600 {
			t.Fatalf("stats.Events = %d, want 600", stats.Events)
		}
		if got := queryInt(t, conn, "SELECT count(*) FROM eventcore_events"); got != 600 {
			t.Fatalf("table holds %d events, want 600", got)
		}
		if got := queryInt(t, conn, "SELECT count(DISTINCT xmin::text) FROM eventcore_events"); got != stats.Transactions {
			t.Fatalf("table has %d transactions, stats say %d", got, stats.Transactions)
		}
		gaps := queryInt(t, conn, `SELECT count(*) FROM (SELECT stream_id, max(stream_version) AS m, count(*) AS c
			FROM eventcore_events GROUP BY stream_id) s WHERE m <> c`)
		if gaps != 0 {
			t.Fatalf("%d streams have version gaps", gaps)
		}
		if got := queryInt(t, conn, "SELECT count(*) FROM eventcore_events WHERE stream_id NOT LIKE 'loadgen-%'"); got != 0 {
			t.Fatalf("%d events outside the loadgen streams", got)
		}
		t.Logf("stats: %+v", stats)
	})

	t.Run("payload shape", func(t *testing.T) {
		url, conn := newStore(t, pg)
		if _, err := loadgen.Run(ctx, url, loadgen.Config{Writers: 1, Events: 50, Seed: 1, StreamPrefix: "shape"}); err != nil {
			t.Fatalf("run: %v", err)
		}
		rows, err := conn.Query(ctx, "SELECT event_id::text, event_type, event_data::text, metadata::text FROM eventcore_events")
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		types := map[string]bool{}
		for _, want := range loadgen.EventTypes {
			types[want] = true
		}
		var id, typ, data, meta string
		n := 0
		_, err = pgx.ForEachRow(rows, []any{&id, &typ, &data, &meta}, func() error {
			n++
			if id[14] != '7' {
				t.Errorf("event id %s is not a UUIDv7", id)
			}
			if !types[typ] {
				t.Errorf("unknown event type %q", typ)
			}
			if len(data) < 250 || len(data) > 800 {
				t.Errorf("event_data is %d bytes, want ~300-600", len(data))
			}
			var m map[string]string
			if err := json.Unmarshal([]byte(meta), &m); err != nil || m["correlation_id"] == "" || m["causation_id"] == "" || m["user_id"] == "" {
				t.Errorf("metadata %s lacks ids (%v)", meta, err)
			}
			return nil
		})
		if err != nil || n != 50 {
			t.Fatalf("read %d rows: %v", n, err)
		}
	})

	t.Run("duration and rate", func(t *testing.T) {
		url, conn := newStore(t, pg)
		stats, err := loadgen.Run(ctx, url, loadgen.Config{Writers: 2, Duration: 500 * time.Millisecond, Rate: 200})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if stats.Events == 0 {
			t.Fatal("no events written")
		}
		if got := queryInt(t, conn, "SELECT count(*) FROM eventcore_events"); got != stats.Events {
			t.Fatalf("table holds %d events, stats say %d", got, stats.Events)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		url, _ := newStore(t, pg)
		cctx, ccancel := context.WithCancel(ctx)
		ccancel()
		if _, err := loadgen.Run(cctx, url, loadgen.Config{Events: 10}); err == nil {
			t.Fatal("run with cancelled context returned nil error")
		}
	})

	t.Run("invalid config", func(t *testing.T) {
		if _, err := loadgen.Run(ctx, "postgres://unused", loadgen.Config{Writers: -1}); err == nil {
			t.Fatal("negative writers accepted")
		}
	})
}
