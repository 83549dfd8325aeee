package cdc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func wantProblem(t *testing.T, err error, check, fix string) {
	t.Helper()
	var ce *CheckError
	if !errors.As(err, &ce) || !errors.Is(err, ErrSourceNotReady) {
		t.Fatalf("err = %v, want *CheckError", err)
	}
	for _, p := range ce.Problems {
		if p.Check == check {
			if !strings.Contains(p.Fix, fix) {
				t.Fatalf("problem %s: fix %q does not say %q", check, p.Fix, fix)
			}
			return
		}
	}
	t.Fatalf("no %s problem in %v", check, err)
}

func TestCapture_BadSettings(t *testing.T) {
	t.Run("wal_level replica", func(t *testing.T) {
		pg := testrig.StartPostgres(t, testrig.WithConf("wal_level", "replica"))
		e := newEnv(t, pg)
		err := e.runToError(e.config())
		wantProblem(t, err, "wal_level", "set wal_level = logical in postgresql.conf and restart")
	})
	t.Run("role without replication", func(t *testing.T) {
		e := newEnv(t, nil)
		e.exec("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tm_norepl') THEN CREATE ROLE tm_norepl LOGIN; END IF; END $$")
		cfg := e.config()
		cfg.PGURL = strings.Replace(e.pgURL, "postgres://postgres@", "postgres://tm_norepl@", 1)
		err := e.runToError(cfg)
		wantProblem(t, err, "replication_role", "ALTER ROLE tm_norepl REPLICATION")
		wantProblem(t, err, "table_privilege", "GRANT SELECT ON public.eventcore_events TO tm_norepl")
	})
	t.Run("missing table", func(t *testing.T) {
		e := newEnv(t, nil)
		cfg := e.config()
		cfg.Tables = []string{"public.eventcore_events", "public.nope"}
		err := e.runToError(cfg)
		wantProblem(t, err, "table", "correct --tables")
		if !strings.Contains(err.Error(), "public.nope does not exist") {
			t.Errorf("error %q does not name the table", err)
		}
	})
	t.Run("table without primary key", func(t *testing.T) {
		e := newEnv(t, nil)
		e.exec("CREATE TABLE nopk (x int)")
		cfg := e.config()
		cfg.Tables = []string{"public.nopk"}
		err := e.runToError(cfg)
		wantProblem(t, err, "primary_key", "ALTER TABLE public.nopk ADD PRIMARY KEY")
	})
	t.Run("unreachable nats", func(t *testing.T) {
		e := newEnv(t, nil)
		cfg := e.config()
		cfg.NATSURL = "nats://127.0.0.1:1"
		err := e.runToError(cfg)
		var fe *FatalError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "connect to NATS at nats://127.0.0.1:1") || !strings.Contains(fe.Hint, "NATS_URL") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestSetup_DryRunChangesNothing(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config()
	ctx := context.Background()
	rep, err := Setup(ctx, cfg, SetupOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rep.Actions, "\n")
	for _, want := range []string{"CREATE PUBLICATION tidemark FOR TABLE public.eventcore_events;", `"discard":"new"`, `"storage":"file"`, "TIDEMARK_META"} {
		if !strings.Contains(all, want) {
			t.Errorf("dry run actions lack %q:\n%s", want, all)
		}
	}
	var n int
	e.queryRow("SELECT count(*) FROM pg_publication", &n)
	if n != 0 {
		t.Fatal("dry run created the publication")
	}
	if _, err := e.js.Stream(ctx, cfg.Stream); err == nil {
		t.Fatal("dry run created the stream")
	}
	// A real run applies it; a second is a no-op.
	if _, err := Setup(ctx, cfg, SetupOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err = Setup(ctx, cfg, SetupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(rep.Actions, "\n"), "PUBLICATION") {
		t.Errorf("second setup changes the publication again: %v", rep.Actions)
	}
	info, err := e.js.Stream(ctx, cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	sc := info.CachedInfo().Config
	if sc.Discard.String() != "DiscardNew" || sc.Duplicates != cfg.DuplicateWindow || sc.Storage.String() != "File" {
		t.Errorf("stream config %+v", sc)
	}
}

// TestCaptureProcess_BadSettingsMessage: the binary prints the problem and
// what to do, and exits 1.
func TestCaptureProcess_BadSettingsMessage(t *testing.T) {
	bin := testrig.BuildBinary(t, "./cmd/capture")
	e := newEnv(t, nil)
	p := startCaptureProc(t, bin, e.procArgs("--tables", "public.eventcore_events,public.nope")...)
	if code := p.ExitCode(t, 30*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, p.Output())
	}
	out := p.Output()
	for _, want := range []string{"error: source not ready for capture: table public.nope does not exist", "Try: make the changes above"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
