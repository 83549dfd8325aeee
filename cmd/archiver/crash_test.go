package main

import (
	"context"
	"encoding/json"
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
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func TestCrashHook_Parse(t *testing.T) {
	for _, bad := range []string{"uploaded", "uploaded:0", "uploaded:x", "nowhere:1", ":1"} {
		if _, err := crashHook(bad, nil); err == nil {
			t.Errorf("crashHook(%q) accepted", bad)
		}
	}
	if h, err := crashHook("", nil); h != nil || err != nil {
		t.Fatalf("empty spec: %v, %v", h != nil, err)
	}
	h, err := crashHook(archive.StageCataloged+":3", nil)
	if err != nil || h == nil {
		t.Fatalf("valid spec: %v", err)
	}
	h(archive.StageUploaded) // other stages never count
	h(archive.StageCataloged)
	h(archive.StageCataloged) // the third hit would exit the test binary
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
	for _, stage := range crashStages {
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

func TestArchiver_CrashPoints(t *testing.T) {
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
		p := startProc(t, env, archiverArgs(nats.URL, dir, "crash-test")...)
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
	final := startProc(t, nil, append(archiverArgs(nats.URL, dir, "crash-test"), "--http", addr)...)
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
	out, err := exec.Command(testrig.BuildBinary(t, "./cmd/archiver"), "status", "--json",
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
	out, err = exec.Command(testrig.BuildBinary(t, "./cmd/archiver"), "catalog", "rebuild", "--dry-run", "--store", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("catalog rebuild --dry-run: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("would rebuild the catalog from %d segments", len(arch.Segments))) {
		t.Fatalf("rebuild output:\n%s", out)
	}
}

func TestArchiver_PausedWriterIsFenced(t *testing.T) {
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, "TIDEMARK")
	dir, store := fileStore(t)
	ctx := context.Background()
	a := startProc(t, nil, archiverArgs(nats.URL, dir, "writer-a", "--flush-interval", "1500ms")...)
	waitLease(t, store, "writer-a")
	b := startProc(t, nil, archiverArgs(nats.URL, dir, "writer-b")...)

	first := batch(f, 20)
	f.Publish(t, false, first...)
	archivetest.WaitWatermark(t, store, first[len(first)-1].Pos(), 20*time.Second)

	// A holds the second batch in its open segment when it is paused.
	second := batch(f, 20)
	f.Publish(t, false, second...)
	time.Sleep(300 * time.Millisecond)
	if err := a.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitLease(t, store, "writer-b")
	third := batch(f, 20)
	f.Publish(t, false, third...)
	archivetest.WaitWatermark(t, store, third[len(third)-1].Pos(), 30*time.Second)

	// A wakes up with a stale lease and an open segment: it must not write.
	if err := a.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testkit.WaitForLog(t, 15*time.Second, "the woken writer to step down", func() bool {
		return strings.Contains(a.Output(), "stepping down to standby")
	}, func() string { return a.LogTail(40) })
	fourth := batch(f, 20)
	f.Publish(t, false, fourth...)
	last := fourth[len(fourth)-1].Pos()
	archivetest.WaitWatermark(t, store, last, 30*time.Second)
	select {
	case <-a.Done():
		t.Fatalf("woken writer exited; log:\n%s", a.LogTail(40))
	default:
	}
	if lease, err := catalog.CurrentLease(ctx, store); err != nil || lease.Holder != "writer-b" {
		t.Fatalf("lease after the wake-up: %+v, %v", lease, err)
	}

	arch := archivetest.Load(t, store, nil)
	arch.Check(t, archivetest.EventIDs(append(append(append(first, second...), third...), fourth...)...))
	arch.CheckFenced(t, "writer-a", "writer-b")
	for _, line := range strings.Split(a.Output(), "\n") {
		if strings.Contains(line, "stepping down") || strings.Contains(line, "segment") && strings.Contains(line, "WARN") {
			t.Logf("woken writer: %s", line)
		}
	}
	if !strings.Contains(b.Output(), "msg=leading") {
		t.Fatalf("standby never led; log:\n%s", b.LogTail(40))
	}
	// The woken writer's lease had lapsed by its own clock, so it uploaded
	// nothing either: no unlisted object is left behind.
	rep, err := catalog.Verify(ctx, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range rep.Findings {
		if fd.Severity != catalog.OK && fd.Check != "stream" {
			t.Errorf("verify after the fenced wake-up: %s", fd)
		}
	}
}

// batch generates n transactions and a closing heartbeat.
func batch(f *archivetest.Feed, n int) []archivetest.Item {
	var items []archivetest.Item
	for i := range n {
		items = append(items, f.Txn(1+i%3, 0))
	}
	return append(items, f.HeartbeatItem())
}

// waitLease waits until holder holds the catalog lease.
func waitLease(t *testing.T, store objstore.Store, holder string) {
	t.Helper()
	var lease *catalog.LeaseInfo
	var err error
	testkit.WaitForLog(t, 20*time.Second, holder+" to hold the lease", func() bool {
		lease, err = catalog.CurrentLease(context.Background(), store)
		return err == nil && lease != nil && lease.Holder == holder && !lease.Expired(time.Now())
	}, func() string { return fmt.Sprintf("lease %+v, %v", lease, err) })
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
