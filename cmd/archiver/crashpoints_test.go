package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/archive/archivetest"
	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// TestArchiver_FailpointOnlyWithTag checks that the archiver's crash
// failpoint exists only in a binary built with testrig.FailpointsTag: the
// default build does not even contain its variable's name, and the tagged
// build refuses a malformed value as a usage error naming it.
func TestArchiver_FailpointOnlyWithTag(t *testing.T) {
	prod, err := os.ReadFile(testrig.BuildBinary(t, "./cmd/archiver"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(prod, []byte(crashEnv)) {
		t.Errorf("the default build of the archiver contains %s", crashEnv)
	}
	bin := testrig.BuildBinary(t, "./cmd/archiver", testrig.FailpointsTag)
	for _, bad := range []string{"uploadd:1", "uploaded:0", "uploaded"} {
		cmd := exec.Command(bin, "run")
		cmd.Env = append(cmd.Environ(), crashEnv+"="+bad)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), crashEnv) {
			t.Errorf("%s=%s: %v, want exit 2 naming the variable; output:\n%s", crashEnv, bad, err, out)
		}
	}
}

// crashPoint is where one archiver process of the crash test dies.
type crashPoint struct {
	stage string        // crash hook stage, or "" for a plain kill -9
	n     int           // the hit of the stage that exits
	after time.Duration // for kill -9: how long after start
}

func (c crashPoint) String() string {
	if c.stage == "" {
		return fmt.Sprintf("kill -9 after %s", c.after)
	}
	return fmt.Sprintf("%s:%d", c.stage, c.n)
}

// crashPoints returns 20 seeded points: three per stage of the durability
// sequence, and five random kill -9 timings.
func crashPoints(seed uint64) []crashPoint {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	var pts []crashPoint
	for _, stage := range archive.Stages {
		for range 3 {
			pts = append(pts, crashPoint{stage: stage, n: 1 + rng.IntN(4)})
		}
	}
	for range 5 {
		pts = append(pts, crashPoint{after: time.Duration(50+rng.IntN(700)) * time.Millisecond})
	}
	rng.Shuffle(len(pts), func(i, j int) { pts[i], pts[j] = pts[j], pts[i] })
	return pts
}

// TestArchiver_CrashPoints stops archiver processes, built with their crash
// failpoint, at 20 seeded points of the durability sequence and checks that
// the archive ends complete, listed once and verifiable.
func TestArchiver_CrashPoints(t *testing.T) {
	bin := testrig.BuildBinary(t, "./cmd/archiver", testrig.FailpointsTag)
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, "TIDEMARK")
	dir, store := fileStore(t)
	pub := startPublisher(f, 3*time.Millisecond)
	seed := uint64(20261125)
	if v := os.Getenv("TIDEMARK_CRASH_SEED"); v != "" { // to explore other points by hand
		fmt.Sscan(v, &seed)
	}
	t.Logf("crash seed %d", seed)
	for i, pt := range crashPoints(seed) {
		var env []string
		if pt.stage != "" {
			env = append(env, crashEnv+"="+pt.stage+":"+fmt.Sprint(pt.n))
		}
		p := startProc(t, bin, env, archiverArgs(nats.URL, dir, "crash-test")...)
		if pt.stage == "" {
			time.Sleep(pt.after)
			_ = p.Signal(syscall.SIGKILL)
			if code := p.ExitCode(t, 10*time.Second); code != -1 {
				t.Fatalf("point %d (%s): exit code %d before the kill; log:\n%s", i, pt, code, p.LogTail(40))
			}
			continue
		}
		if code := p.ExitCode(t, 20*time.Second); code != 137 {
			t.Fatalf("point %d (%s): exit code %d, want 137; log:\n%s", i, pt, code, p.LogTail(40))
		}
		if !strings.Contains(p.Output(), "crash hook: exiting at "+pt.stage) {
			t.Fatalf("point %d (%s): no crash hook message; log:\n%s", i, pt, p.LogTail(40))
		}
	}
	items := pub.finish(t)
	addr := testkit.FreeAddrT(t)
	final := startProc(t, bin, nil, append(archiverArgs(nats.URL, dir, "crash-test"), "--http", addr)...)
	archivetest.WaitWatermark(t, store, items[len(items)-1].Pos(), 60*time.Second)
	checkOps(t, addr)
	arch := archivetest.Load(t, store, nil)
	arch.Check(t, archivetest.EventIDs(items...))
	t.Logf("%d items, %d events in %d segments, %d catalog entries", len(items), arch.Events, len(arch.Segments), len(arch.Catalog.Entries()))
	// Uploads cut off before their entries are recorded as debris by the
	// next term: verify finds nothing to warn about.
	vrep, err := catalog.Verify(context.Background(), store, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range vrep.Findings {
		if fd.Severity != catalog.OK && fd.Check != "stream" { // the synthetic feed numbers versions globally
			t.Errorf("verify after the crashes: %s", fd)
		}
	}
	t.Logf("verify: %d segments verified, %d debris objects recorded", vrep.Verified, vrep.Debris)

	// status reads the same state from outside.
	out, err := exec.Command(bin, "status", "--json",
		"--nats-url", nats.URL, "--store", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var rep archive.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("status output: %v\n%s", err, out)
	}
	if rep.Watermark.LSN != items[len(items)-1].Pos() || rep.Segments != len(arch.Segments) || !rep.ConsumerFound ||
		rep.Leader != "crash-test" || !rep.LeaseLive || rep.MetaWatermark.LSN != rep.Watermark.LSN {
		t.Fatalf("status report %+v", rep)
	}
	_ = final.Signal(syscall.SIGTERM)
	if code := final.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("archiver exit code %d after SIGTERM; log:\n%s", code, final.LogTail(40))
	}

	// rebuild --dry-run finds every segment.
	out, err = exec.Command(bin, "catalog", "rebuild", "--dry-run", "--store", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("catalog rebuild --dry-run: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("would rebuild the catalog from %d segments", len(arch.Segments))) {
		t.Fatalf("rebuild output:\n%s", out)
	}
}

// checkOps checks the leader's /livez, /readyz and /metrics.
func checkOps(t *testing.T, addr string) {
	t.Helper()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/livez", "/readyz"} {
		if code, body := get(p); code != 200 {
			t.Fatalf("%s = %d %s", p, code, body)
		}
	}
	_, metrics := get("/metrics")
	for _, want := range []string{"tidemark_archiver_is_leader 1", "tidemark_archiver_events_archived_total",
		"tidemark_archiver_segments_uploaded_total", "tidemark_archiver_upload_latency_seconds_bucket",
		"tidemark_archiver_watermark_lag_seconds", "tidemark_archiver_puts_per_hour_estimate",
		"tidemark_archiver_consumer_ack_pending", "tidemark_archiver_chain_hole 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
