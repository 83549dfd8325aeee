package testrig_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func TestPostgres_LogicalSlotStreamsInsert(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pg := testrig.StartPostgres(t)
	url := pg.NewDatabase(t)

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		"CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)",
		"CREATE PUBLICATION items_pub FOR TABLE items",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	repl, err := pgconn.Connect(ctx, url+"&replication=database")
	if err != nil {
		t.Fatalf("replication connect: %v", err)
	}
	defer repl.Close(ctx)
	if _, err := pglogrepl.CreateReplicationSlot(ctx, repl, "items_slot", "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true}); err != nil {
		t.Fatalf("create slot: %v", err)
	}
	if err := pglogrepl.StartReplication(ctx, repl, "items_slot", 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'items_pub'"},
	}); err != nil {
		t.Fatalf("start replication: %v", err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO items VALUES (1, 'first')"); err != nil {
		t.Fatalf("insert: %v", err)
	}

	var got []string
	for len(got) < 3 || got[len(got)-1] != "commit" {
		msg, err := repl.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("receive (got %v): %v", got, err)
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok || len(cd.Data) == 0 || cd.Data[0] != pglogrepl.XLogDataByteID {
			continue
		}
		xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
		if err != nil {
			t.Fatalf("parse xlogdata: %v", err)
		}
		lm, err := pglogrepl.Parse(xld.WALData)
		if err != nil {
			t.Fatalf("parse logical message: %v", err)
		}
		switch m := lm.(type) {
		case *pglogrepl.BeginMessage:
			got = append(got, "begin")
		case *pglogrepl.InsertMessage:
			cols := m.Tuple.Columns
			if len(cols) != 2 || string(cols[1].Data) != "first" {
				t.Fatalf("insert tuple = %+v, want (1, first)", cols)
			}
			got = append(got, "insert")
		case *pglogrepl.CommitMessage:
			got = append(got, "commit")
		}
	}
	if strings.Join(got, ",") != "begin,insert,commit" {
		t.Fatalf("messages = %v, want begin,insert,commit", got)
	}
}

func TestPostgres_StopImmediateAndStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testrig.StartPostgres(t, testrig.WithConf("max_connections", "50"))
	id := pg.SystemIdentifier(t)
	if id == "" || id == "0" {
		t.Fatalf("system identifier = %q", id)
	}
	url := pg.NewDatabase(t)
	mustExec(t, url, "CREATE TABLE t (x int)", "INSERT INTO t VALUES (42)")
	oldPID := pg.PID()
	if err := pg.StopImmediate(); err != nil {
		t.Fatalf("stop immediate: %v", err)
	}
	if err := pg.Start(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if pg.PID() == oldPID {
		t.Fatalf("pid unchanged after restart: %d", oldPID)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect after restart: %v", err)
	}
	defer conn.Close(ctx)
	var x int
	var mc string
	if err := conn.QueryRow(ctx, "SELECT x, current_setting('max_connections') FROM t").Scan(&x, &mc); err != nil {
		t.Fatalf("query after restart: %v", err)
	}
	if x != 42 || mc != "50" {
		t.Fatalf("after restart x=%d max_connections=%s, want 42 and 50", x, mc)
	}
	if got := pg.SystemIdentifier(t); got != id {
		t.Fatalf("system identifier changed: %s -> %s", id, got)
	}
}

func mustExec(t *testing.T, url string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestStartPostgres_LongDirectoryName(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), strings.Repeat("deeply-nested-directory-", 5))
	pg, err := testrig.StartPostgresProcess(ctx, dir)
	if err != nil {
		t.Fatalf("start in %s: %v", dir, err)
	}
	defer pg.Stop()
	mustExec(t, pg.URL("postgres"), "SELECT 1")
}
