package main

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/redact"
	"github.com/tidemark/tidemark/internal/restore/restoretest"
	"github.com/tidemark/tidemark/internal/segment"
)

func TestRestorer_ExitCodes(t *testing.T) {
	f := fixture(t)
	ctx := context.Background()
	nonEmpty := eventCoreDB(t)
	restoretest.InsertEvent(t, nonEmpty)
	empty := eventCoreDB(t)
	noTable := shared.PG.Get(t).NewDatabase(t)

	// an encrypted archive, and a key file with another key
	encDir := t.TempDir()
	right, _ := segment.GenerateKey()
	wrong, _ := segment.GenerateKey()
	kr, _ := segment.ParseKeyring(right)
	st, err := file.Open(encDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := restoretest.WriteArchive(ctx, st, f.Table, restoretest.Clone(f.Txns[:len(f.Txns)/5]), restoretest.Options{Keyring: kr}); err != nil {
		t.Fatal(err)
	}
	wrongKey := filepath.Join(t.TempDir(), "wrong.key")
	if err := os.WriteFile(wrongKey, []byte(wrong), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyStore := t.TempDir()
	after := f.Last.Add(time.Hour).Format(time.RFC3339)

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string // substring of the message
		target string // must be unchanged
	}{
		{"unparseable --to", []string{"restore", "--store", f.Dir, "--target", empty, "--to", "next tuesday"}, cli.ExitUsage, "cannot read --to", empty},
		{"missing --to", []string{"restore", "--store", f.Dir, "--target", empty}, cli.ExitUsage, "--to is required", empty},
		{"bad --tz", []string{"restore", "--store", f.Dir, "--target", empty, "--to", "2026-01-01 00:00:00", "--tz", "Mars/Olympus"}, cli.ExitUsage, "unknown --tz", empty},
		{"store path missing", []string{"restore", "--store", "/nonexistent/archive", "--target", empty, "--to", "latest"}, cli.ExitOutOfWindow, "no archive at", empty},
		{"store scheme unknown", []string{"restore", "--store", "gopher://x/y", "--target", empty, "--to", "latest"}, cli.ExitUsage, "open store", empty},
		{"store without catalog", []string{"restore", "--store", emptyStore, "--target", empty, "--to", "latest"}, cli.ExitOutOfWindow, "no archive at", empty},
		{"after the watermark", []string{"restore", "--store", f.Dir, "--target", empty, "--to", after}, cli.ExitOutOfWindow, "restorer list", empty},
		{"non-empty target", []string{"restore", "--store", f.Dir, "--target", nonEmpty, "--to", "latest"}, cli.ExitUsage, "is not empty", nonEmpty},
		{"target without the table", []string{"restore", "--store", f.Dir, "--target", noTable, "--to", "latest"}, cli.ExitUsage, "does not exist", noTable},
		{"wrong decryption key", []string{"restore", "--store", encDir, "--encryption-key-file", wrongKey, "--target", empty, "--to", "latest"}, cli.ExitUsage, "not in the keyring", empty},
		{"no decryption key", []string{"restore", "--store", encDir, "--target", empty, "--to", "latest"}, cli.ExitUsage, "not in the keyring", empty},
		{"unknown flag", []string{"restore", "--bogus"}, cli.ExitUsage, "unknown flag", ""},
		{"file and database", []string{"restore", "--store", f.Dir, "--target", empty, "--output", "x.jsonl", "--to", "latest"}, cli.ExitUsage, "both set", empty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before string
			if tc.target != "" {
				before = restoretest.TargetState(t, tc.target)
			}
			r := runCmd(t, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) || !strings.Contains(r.stderr, "error: ") {
				t.Fatalf("exit %d (want %d)\nstderr: %s", r.code, tc.code, r.stderr)
			}
			if tc.code != cli.ExitUsage || tc.name != "unknown flag" {
				if !strings.Contains(r.stderr, "Try: ") {
					t.Fatalf("no hint: %s", r.stderr)
				}
			}
			t.Logf("exit %d: %s", r.code, strings.TrimSpace(r.stderr))
			if tc.target != "" {
				if after := restoretest.TargetState(t, tc.target); after != before {
					t.Fatalf("target changed: %s -> %s", before, after)
				}
			}
			// the same failure in --json mode is an error record on stdout
			r = runCmd(t, append([]string{"--json"}, tc.args...)...)
			recs := records(t, r.stdout)
			if r.code != tc.code || len(recs) == 0 || recs[len(recs)-1]["type"] != "error" || recs[len(recs)-1]["exit_code"] != float64(tc.code) {
				t.Fatalf("--json: exit %d, stdout %s", r.code, r.stdout)
			}
		})
	}
	if _, err := os.Stat("/nonexistent/archive"); err == nil {
		t.Fatal("the restorer created the missing store directory")
	}
	if entries, _ := os.ReadDir(emptyStore); len(entries) != 0 {
		t.Fatalf("the restorer wrote into an empty store: %v", entries)
	}
}

func TestRestorer_RightKeyAndEnvironment(t *testing.T) {
	f := fixture(t)
	ctx := context.Background()
	encDir := t.TempDir()
	key, _ := segment.GenerateKey()
	kr, _ := segment.ParseKeyring(key)
	st, err := file.Open(encDir)
	if err != nil {
		t.Fatal(err)
	}
	n := len(f.Txns) / 2
	if err := restoretest.WriteArchive(ctx, st, f.Table, restoretest.Clone(f.Txns[:n]), restoretest.Options{Keyring: kr, SegmentEvents: 300}); err != nil {
		t.Fatal(err)
	}
	target := eventCoreDB(t)
	t.Setenv("TIDEMARK_RESTORER_STORE", encDir)
	t.Setenv("TIDEMARK_RESTORER_ENCRYPTION_KEY", key)
	t.Setenv("TIDEMARK_RESTORER_TARGET", target)
	at := f.Txns[n-1][0].CommitTime
	r := runCmd(t, "restore", "--to", at.Format(time.RFC3339Nano))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "AGE-SECRET-KEY") {
		t.Fatal("key material printed")
	}
	if f.Txns[n][0].CommitTime.After(at) {
		restoretest.Compare(t, f.SourceURL, target, at)
	}
}

func TestRestorer_PostgresCredentialsRejected(t *testing.T) {
	f := fixture(t)
	pg := shared.PG.Get(t)
	ctx := context.Background()
	// password authentication for one role on this cluster
	hba := filepath.Join(pg.DataDir, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	line := "host all tm_pw_user 127.0.0.1/32 scram-sha-256\n"
	if !strings.HasPrefix(string(old), line) {
		if err := os.WriteFile(hba, append([]byte(line), old...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	admin, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `DO $$ BEGIN CREATE ROLE tm_pw_user LOGIN PASSWORD 'right-password'; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
		SELECT pg_reload_conf()`); err != nil {
		t.Fatal(err)
	}
	target := eventCoreDB(t)
	u, _ := url.Parse(target)
	u.User = url.UserPassword("tm_pw_user", "s3cr3t-wrong-pw")
	// the postmaster rereads pg_hba.conf asynchronously after the reload signal
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := pgx.Connect(ctx, u.String())
		if err != nil && strings.Contains(err.Error(), "28P01") {
			break
		}
		if c != nil {
			c.Close(ctx)
		}
		if time.Now().After(deadline) {
			t.Fatalf("password authentication not active: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := runCmd(t, "restore", "--store", f.Dir, "--target", u.String(), "--to", "latest")
	if r.code != cli.ExitCredentials {
		t.Fatalf("exit %d (want 12): %s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "s3cr3t-wrong-pw") {
		t.Fatalf("password printed: %s", r.stderr)
	}
	t.Log(strings.TrimSpace(r.stderr))
	if got := redact.URL(u.String()); strings.Contains(got, "s3cr3t") || !strings.Contains(got, "tm_pw_user") {
		t.Fatalf("redact.URL = %s", got)
	}
}
