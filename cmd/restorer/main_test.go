package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/restore/restoretest"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// One PostgreSQL cluster and one archive fixture per test binary.
var shared = restoretest.Shared{Events: 2500}

func TestMain(m *testing.M) { testkit.Main(m, shared.Close) }

func fixture(tb testing.TB) *restoretest.Fixture {
	tb.Helper()
	return shared.Fixture(tb)
}

func eventCoreDB(tb testing.TB) string {
	tb.Helper()
	return shared.PG.Get(tb).NewEventCoreDatabase(tb)
}

// result is one in-process run of the command.
type result struct {
	code           int
	stdout, stderr string
}

func runCmd(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// records parses --json output: one object per line.
func records(t *testing.T, stdout string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		if _, ok := m["type"]; !ok {
			t.Fatalf("record without type: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func TestRestorer_RestoreHumanAndJSON(t *testing.T) {
	f := fixture(t)
	at := f.Times[len(f.Times)/2]
	target := shared.PG.Get(t).NewDatabase(t)
	r := runCmd(t, "restore", "--store", f.Dir, "--target", target, "--to", at.Format(time.RFC3339Nano), "--create-table",
		"--batch-rows", "100", "--progress-interval", "1ms")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "restore progress") || !strings.Contains(r.stderr, "events_applied=") {
		t.Fatalf("no progress lines on stderr: %s", r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "Target time: "+restore.FormatTime(at)+" (UTC)\n") || !strings.Contains(r.stdout, "Verify:      OK") {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	t.Logf("stdout:\n%s", r.stdout)
	restoretest.Compare(t, f.SourceURL, target, at)

	// --json: the same restore into another database, as records
	local := at.In(mustZone(t, "Asia/Kolkata")).Format("2006-01-02 15:04:05.999999")
	target2 := eventCoreDB(t)
	r = runCmd(t, "restore", "--json", "--store", "file://"+f.Dir, "--target", target2, "--to", local, "--tz", "Asia/Kolkata")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	recs := records(t, r.stdout)
	if len(recs) != 3 || recs[0]["type"] != "target" || recs[1]["type"] != "plan" || recs[2]["type"] != "result" {
		t.Fatalf("records: %v", recs)
	}
	if recs[0]["target_time"] != at.Format(time.RFC3339Nano) {
		t.Fatalf("target_time %v, want %s", recs[0]["target_time"], at.Format(time.RFC3339Nano))
	}
	if v := recs[2]["verification"].(map[string]any); v["status"] != "ok" {
		t.Fatalf("verification %v", v)
	}
	restoretest.Compare(t, f.SourceURL, target2, at)
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestRestorer_DryRunListVerify(t *testing.T) {
	f := fixture(t)
	target := eventCoreDB(t)
	before := restoretest.TargetState(t, target)
	r := runCmd(t, "restore", "--json", "--dry-run", "--store", f.Dir, "--target", target, "--to", "latest")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	recs := records(t, r.stdout)
	if len(recs) != 3 || recs[1]["type"] != "plan" || recs[1]["segments"].(float64) < 1 || recs[2]["type"] != "thaw" || len(recs[2]["objects"].([]any)) != 0 {
		t.Fatalf("dry run records %v", recs)
	}
	if after := restoretest.TargetState(t, target); after != before {
		t.Fatalf("dry run touched the target: %s -> %s", before, after)
	}
	r = runCmd(t, "list", "--store", f.Dir)
	if r.code != 0 || !strings.Contains(r.stdout, "Window:") || !strings.Contains(r.stdout, "Gaps:        none") {
		t.Fatalf("list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("list:\n%s", r.stdout)
	r = runCmd(t, "list", "--json", "--store", f.Dir)
	if recs := records(t, r.stdout); r.code != 0 || len(recs) != 1 || recs[0]["type"] != "list" {
		t.Fatalf("list --json: %d %s", r.code, r.stdout)
	}
	r = runCmd(t, "verify", "--json", "--store", f.Dir, "--against", f.SourceURL)
	recs = records(t, r.stdout)
	if r.code != 0 || len(recs) != 1 || recs[0]["status"] != "OK" {
		t.Fatalf("verify --json: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// damage: verify fails with 3 and names the object
	dir := testkit.CopyDir(t, f.Dir)
	var victim string
	_ = filepath.Walk(filepath.Join(dir, "segments"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && victim == "" {
			victim = p
		}
		return nil
	})
	b, _ := os.ReadFile(victim)
	b[len(b)/2] ^= 4
	if err := os.WriteFile(victim, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(dir, victim)
	r = runCmd(t, "verify", "--store", dir)
	if r.code != 3 || !strings.Contains(r.stdout, rel) || !strings.Contains(r.stdout, "Result:      FAILURE") {
		t.Fatalf("verify damaged: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("verify damaged:\n%s%s", r.stdout, r.stderr)
}

func TestRestorer_OutputFile(t *testing.T) {
	f := fixture(t)
	at := f.Times[len(f.Times)/3]
	want := 0
	for _, tx := range f.Txns {
		if !tx[0].CommitTime.After(at) {
			want += len(tx)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	r := runCmd(t, "restore", "--store", f.Dir, "--output", path, "--to", at.Format(time.RFC3339Nano))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != want {
		t.Fatalf("%d lines, want %d", len(lines), want)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first["commit_time"] == nil || first["commit_lsn"] == nil || first["event_id"] == nil {
		t.Fatalf("first line %q: %v", lines[0], err)
	}
	// to stdout: events only on stdout, messages on stderr
	r = runCmd(t, "restore", "--store", f.Dir, "--output", "-", "--to", at.Format(time.RFC3339Nano))
	if r.code != 0 || strings.Count(r.stdout, "\n") != want || !strings.Contains(r.stderr, "Target time:") {
		t.Fatalf("--output -: exit %d, %d lines\nstderr: %s", r.code, strings.Count(r.stdout, "\n"), r.stderr)
	}
	// a failed restore leaves no file behind
	damaged := testkit.CopyDir(t, f.Dir)
	_ = filepath.Walk(filepath.Join(damaged, "segments"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			return os.Remove(p)
		}
		return nil
	})
	bad := filepath.Join(dir, "bad.jsonl")
	r = runCmd(t, "restore", "--store", damaged, "--output", bad, "--to", "latest")
	if r.code != 3 {
		t.Fatalf("restore from a store without segments: exit %d: %s", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("files left behind: %v", entries)
	}
}
