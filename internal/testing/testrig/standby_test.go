package testrig_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// TestStandby_StreamsPromotesAndFollowsMultiHost builds a standby, checks
// it replays the primary's writes, crashes the primary, promotes the
// standby, and checks a multi-host read-write URL now reaches the standby,
// on a new timeline with the primary's system identifier.
func TestStandby_StreamsPromotesAndFollowsMultiHost(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	primary := testrig.StartPostgres(t)
	url := primary.NewDatabase(t)
	pc := testrig.Connect(t, url)
	if _, err := pc.Exec(ctx, "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	standby := testrig.StartStandby(t, primary)
	if rec, err := standby.InRecovery(ctx); err != nil || !rec {
		t.Fatalf("standby InRecovery = %v, %v; want true", rec, err)
	}
	if _, err := pc.Exec(ctx, "INSERT INTO items VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	if err := standby.WaitReplayed(ctx, primary); err != nil {
		t.Fatal(err)
	}
	db := dbName(t, url)
	multi := testrig.MultiHostURL(db, primary, standby)
	if got := serverPort(ctx, t, multi); got != primary.Port {
		t.Fatalf("multi-host URL reached port %d before failover, want the primary's %d", got, primary.Port)
	}
	if err := primary.StopImmediate(); err != nil {
		t.Fatal(err)
	}
	tli, err := standby.Promote(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tli != 2 {
		t.Fatalf("timeline after promotion = %d, want 2", tli)
	}
	if got := serverPort(ctx, t, multi); got != standby.Port {
		t.Fatalf("multi-host URL reached port %d after failover, want the promoted standby's %d", got, standby.Port)
	}
	sc := testrig.Connect(t, multi)
	var n int
	if err := sc.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows on the promoted standby = %d, %v; want 3", n, err)
	}
	if err := primary.Start(); err != nil {
		t.Fatal(err)
	}
	if a, b := primary.SystemIdentifier(t), standby.SystemIdentifier(t); a != b {
		t.Fatalf("system identifiers differ: primary %s, promoted standby %s", a, b)
	}
}

func dbName(t *testing.T, url string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

func serverPort(ctx context.Context, t *testing.T, url string) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	var port int
	if err := conn.QueryRow(ctx, "SELECT current_setting('port')::int").Scan(&port); err != nil {
		t.Fatal(err)
	}
	return port
}
