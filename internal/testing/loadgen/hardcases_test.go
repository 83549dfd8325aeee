package loadgen_test

import (
	"context"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func TestHardCases(t *testing.T) {
	pg := testrig.StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url, conn := newStore(t, pg)
	count := func(where string) int64 {
		return queryInt(t, conn, "SELECT count(*) FROM eventcore_events WHERE "+where)
	}

	t.Run("huge transaction", func(t *testing.T) {
		if err := loadgen.HugeTransaction(ctx, url, 20000, true); err != nil {
			t.Fatalf("commit: %v", err)
		}
		if err := loadgen.HugeTransaction(ctx, url, 5000, false); err != nil {
			t.Fatalf("rollback: %v", err)
		}
		if got := count("stream_id LIKE 'huge-%'"); got != 20000 {
			t.Fatalf("huge rows = %d, want 20000", got)
		}
		if got := queryInt(t, conn, "SELECT count(DISTINCT xmin::text) FROM eventcore_events WHERE stream_id LIKE 'huge-%'"); got != 1 {
			t.Fatalf("huge rows span %d transactions, want 1", got)
		}
		if got := count("stream_id LIKE 'huge-%' AND substr(event_id::text, 15, 1) <> '7'"); got != 0 {
			t.Fatalf("%d huge rows without UUIDv7 ids", got)
		}
	})
	t.Run("rolled back", func(t *testing.T) {
		if err := loadgen.RolledBack(ctx, url); err != nil {
			t.Fatal(err)
		}
		if got := count("stream_id LIKE 'rolledback-%'"); got != 0 {
			t.Fatalf("rolled back rows visible: %d", got)
		}
	})
	t.Run("savepoint rolled back", func(t *testing.T) {
		if err := loadgen.SavepointRolledBack(ctx, url); err != nil {
			t.Fatal(err)
		}
		if got := count("stream_id LIKE 'savepoint-%'"); got != 2 {
			t.Fatalf("savepoint rows = %d, want 2", got)
		}
		if got := count("event_type = 'InsideRolledBackSavepoint'"); got != 0 {
			t.Fatalf("rows from the rolled-back savepoint visible: %d", got)
		}
	})
	t.Run("long running", func(t *testing.T) {
		if err := loadgen.LongRunning(ctx, url, 3); err != nil {
			t.Fatal(err)
		}
		// The long transaction committed last, though it began first.
		var longCommit, laterCommit time.Time
		if err := conn.QueryRow(ctx, `SELECT
			(SELECT pg_xact_commit_timestamp(xmin) FROM eventcore_events WHERE event_type = 'LongStarted'),
			(SELECT max(pg_xact_commit_timestamp(xmin)) FROM eventcore_events WHERE event_type = 'CommittedMeanwhile')`).
			Scan(&longCommit, &laterCommit); err != nil {
			t.Fatalf("commit times: %v", err)
		}
		if !longCommit.After(laterCommit) {
			t.Fatalf("long commit %v not after later commits %v", longCommit, laterCommit)
		}
		if got := count("event_type = 'CommittedMeanwhile'"); got != 3 {
			t.Fatalf("later rows = %d, want 3", got)
		}
	})
	t.Run("weird stream ids", func(t *testing.T) {
		if err := loadgen.WeirdStreamIDs(ctx, url); err != nil {
			t.Fatal(err)
		}
		if got := count("event_type = 'WeirdStreamWritten'"); got != int64(len(loadgen.WeirdStreamIDList)) {
			t.Fatalf("weird rows = %d, want %d", got, len(loadgen.WeirdStreamIDList))
		}
		if got := count("stream_id LIKE 'emoji-🚀#%'"); got != 1 {
			t.Fatalf("emoji stream rows = %d, want 1", got)
		}
	})
	t.Run("big payload", func(t *testing.T) {
		if err := loadgen.BigPayload(ctx, url); err != nil {
			t.Fatal(err)
		}
		size := queryInt(t, conn, "SELECT length(event_data::text) FROM eventcore_events WHERE stream_id LIKE 'big-%'")
		if size < loadgen.BigPayloadBytes {
			t.Fatalf("big payload is %d bytes, want >= %d", size, loadgen.BigPayloadBytes)
		}
	})
}
