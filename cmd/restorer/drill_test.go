package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// scratchDatabases lists the databases on the test cluster that start
// with prefix.
func scratchDatabases(t *testing.T, admin, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, prefix)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestRestorer_Drill runs drills on the fixture's archive: against the
// source (every step OK, an RTO, the scratch databases dropped), against
// the archive's own oracle with a stale-watermark threshold (fails naming
// the freshness step), on a damaged archive (fails naming verify), and
// with the source database as the scratch server (refused).
func TestRestorer_Drill(t *testing.T) {
	f := fixture(t)
	admin := shared.PG.Get(t).URL("postgres")
	const prefix = "tm_drill_test_"
	args := func(store string, more ...string) []string {
		return append([]string{"drill", "--json", "--store", store, "--scratch", admin, "--prefix", prefix, "--seed", "7"}, more...)
	}

	r := runCmd(t, args(f.Dir, "--max-age", "87600h", "--source", f.SourceURL)...)
	recs := records(t, r.stdout)
	if r.code != 0 || len(recs) != 1 || recs[0]["type"] != "drill" || recs[0]["status"] != "OK" || recs[0]["oracle"] != "source" {
		t.Fatalf("drill against the source: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var events int
	for _, tx := range f.Txns {
		events += len(tx)
	}
	steps := recs[0]["steps"].([]any)
	var names []string
	for _, s := range steps {
		m := s.(map[string]any)
		names = append(names, m["name"].(string))
		if m["status"] != "OK" {
			t.Errorf("step %v: %v", m["name"], m)
		}
	}
	if strings.Join(names, ",") != "freshness,verify,full,partial,pitr" {
		t.Fatalf("steps %v", names)
	}
	rto := recs[0]["rto"].(map[string]any)
	if rto["events"].(float64) != float64(events) || rto["rto_ns"].(float64) <= 0 || rto["seconds_per_gib"].(float64) <= 0 {
		t.Fatalf("rto %v, want %d events", rto, events)
	}
	if left := scratchDatabases(t, admin, prefix); len(left) != 0 {
		t.Fatalf("scratch databases left behind: %v", left)
	}

	// the archive as the oracle; a watermark older than --max-age fails freshness
	r = runCmd(t, args(f.Dir, "--max-age", "1ns", "--instants", "1")...)
	recs = records(t, r.stdout)
	if r.code != 3 || len(recs) != 2 || recs[0]["oracle"] != "archive" || recs[0]["failed_step"] != "freshness" ||
		!strings.Contains(r.stderr, "drill failed at step freshness") {
		t.Fatalf("stale drill: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, s := range recs[0]["steps"].([]any) {
		if m := s.(map[string]any); m["name"] != "freshness" && m["status"] != "OK" {
			t.Errorf("step %v with the archive oracle: %v", m["name"], m)
		}
	}

	// a damaged segment: verify fails, and the drill names it
	dir := testkit.CopyDir(t, f.Dir)
	var victim string
	_ = filepath.Walk(filepath.Join(dir, "segments"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && victim == "" {
			victim = p
		}
		return nil
	})
	b, _ := os.ReadFile(victim)
	b[len(b)/2] ^= 1
	if err := os.WriteFile(victim, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCmd(t, append([]string{"drill"}, args(dir, "--max-age", "87600h")[2:]...)...)
	if r.code != 3 || !strings.Contains(r.stderr, "drill failed at step verify") || !strings.Contains(r.stdout, "FAILURE  verify") {
		t.Fatalf("damaged drill: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("damaged:\n%s%s", r.stdout, r.stderr)
	if left := scratchDatabases(t, admin, prefix); len(left) != 0 {
		t.Fatalf("scratch databases left behind: %v", left)
	}

	// the source database as the scratch server: refused
	r = runCmd(t, "drill", "--store", f.Dir, "--scratch", f.SourceURL, "--source", f.SourceURL)
	if r.code != 2 || !strings.Contains(r.stderr, "is the source database") {
		t.Fatalf("scratch = source: exit %d\n%s", r.code, r.stderr)
	}
}

// TestRestorer_DrillInterval runs the long-running drill as a process:
// /livez answers at once, /readyz once the first drill has finished, and
// /metrics then carries the drill's result and RTO; SIGTERM stops it with
// exit 0 and no scratch database left.
func TestRestorer_DrillInterval(t *testing.T) {
	f := fixture(t)
	admin := shared.PG.Get(t).URL("postgres")
	const prefix = "tm_drill_interval_"
	port, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(testrig.BuildBinary(t, "./cmd/restorer"), "drill", "--store", f.Dir, "--scratch", admin, "--prefix", prefix,
		"--max-age", "87600h", "--instants", "1", "--interval", "1h", "--http", addr)
	p := testkit.StartT(t, "restorer-drill", cmd)
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testkit.WaitForLog(t, time.Minute, "/livez", func() bool { code, _ := get("/livez"); return code == 200 }, func() string { return p.LogTail(40) })
	testkit.WaitForLog(t, 5*time.Minute, "/readyz after the first drill", func() bool { code, _ := get("/readyz"); return code == 200 },
		func() string { return p.LogTail(40) })
	code, metrics := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{"tidemark_drill_last_ok 1", `tidemark_drill_runs_total{status="OK"} 1`, `tidemark_drill_step_duration_seconds{step="full"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	rto := regexp.MustCompile(`(?m)^tidemark_drill_rto_seconds ([0-9.e+-]+)$`).FindStringSubmatch(metrics)
	if rto == nil || rto[1] == "0" {
		t.Errorf("no positive tidemark_drill_rto_seconds in /metrics: %v", rto)
	}
	if err := p.Stop(time.Minute, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exited(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.LogTail(20))
	}
	if left := scratchDatabases(t, admin, prefix); len(left) != 0 {
		t.Fatalf("scratch databases left behind: %v", left)
	}
}

// TestRestorer_DrillEveryStore drills the primary and a copy of a policy
// file in turn: one drill record per store, both OK; then, with a segment
// deleted from the copy only, the run fails naming the copy and the step
// while the primary's drill still passes.
func TestRestorer_DrillEveryStore(t *testing.T) {
	f := fixture(t)
	admin := shared.PG.Get(t).URL("postgres")
	const prefix = "tm_drill_stores_"
	replica := testkit.CopyDir(t, f.Dir)
	policy := filepath.Join(t.TempDir(), "stores.yaml")
	body := fmt.Sprintf("stores:\n  - name: primary\n    url: %s\n  - name: replica\n    url: %s\n", f.Dir, replica)
	if err := os.WriteFile(policy, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"drill", "--json", "--stores", policy, "--every-store", "--scratch", admin, "--prefix", prefix,
		"--seed", "7", "--max-age", "87600h", "--instants", "2", "--streams", "2"}
	r := runCmd(t, args...)
	recs := records(t, r.stdout)
	if r.code != 0 || len(recs) != 2 || recs[0]["store_name"] != "primary" || recs[1]["store_name"] != "replica" ||
		recs[0]["status"] != "OK" || recs[1]["status"] != "OK" {
		t.Fatalf("drill of both stores: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var victim string
	_ = filepath.Walk(filepath.Join(replica, "segments"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && victim == "" {
			victim = p
		}
		return nil
	})
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	r = runCmd(t, args...)
	recs = records(t, r.stdout)
	if r.code != 3 || len(recs) < 2 || recs[0]["status"] != "OK" || recs[1]["status"] != "FAILURE" ||
		!strings.Contains(r.stderr, "drill failed for store replica at step verify") {
		t.Fatalf("drill with the copy damaged: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if left := scratchDatabases(t, admin, prefix); len(left) != 0 {
		t.Fatalf("scratch databases left behind: %v", left)
	}
}
