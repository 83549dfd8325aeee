package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/archive/archivetest"
	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
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
	for _, stage := range []string{archive.StageMergeWritten, archive.StageMergeUploaded, archive.StageMergeRecorded} {
		if h, err := crashHook(stage+":1", nil); err != nil || h == nil {
			t.Errorf("crashHook(%q): %v", stage+":1", err)
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
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			if code := p.exitCode(t, 10*time.Second); code != -1 {
				t.Fatalf("point %d (%s): exit code %d before the kill; log:\n%s", i, pt, code, tail(p.log.String()))
			}
			continue
		}
		if code := p.exitCode(t, 20*time.Second); code != 137 {
			t.Fatalf("point %d (%s): exit code %d, want 137; log:\n%s", i, pt, code, tail(p.log.String()))
		}
		if !strings.Contains(p.log.String(), "crash hook: exiting at "+pt.stage) {
			t.Fatalf("point %d (%s): no crash hook message; log:\n%s", i, pt, tail(p.log.String()))
		}
	}
	items := pub.finish(t)
	addr := freeAddr(t)
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
	_ = final.cmd.Process.Signal(syscall.SIGTERM)
	if code := final.exitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("archiver exit code %d after SIGTERM; log:\n%s", code, tail(final.log.String()))
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

	// A holds the second batch when it is paused: delivered to it, and
	// acknowledged only once durable.
	second := batch(f, 20)
	f.Publish(t, false, second...)
	waitDelivered(t, f)
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if c, err := catalog.Load(ctx, store); err == nil {
		t.Logf("A paused at watermark %s; the second batch ends at %s", c.Watermark().LSN, second[len(second)-1].Pos())
	}
	waitLease(t, store, "writer-b")
	third := batch(f, 20)
	f.Publish(t, false, third...)
	archivetest.WaitWatermark(t, store, third[len(third)-1].Pos(), 30*time.Second)

	// A wakes up with a stale lease and an open segment: it must not write.
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(a.log.String(), "stepping down to standby") {
		if time.Now().After(deadline) {
			t.Fatalf("woken writer did not step down; log:\n%s", tail(a.log.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	fourth := batch(f, 20)
	f.Publish(t, false, fourth...)
	last := fourth[len(fourth)-1].Pos()
	archivetest.WaitWatermark(t, store, last, 30*time.Second)
	select {
	case <-a.done:
		t.Fatalf("woken writer exited; log:\n%s", tail(a.log.String()))
	default:
	}
	if lease, err := catalog.CurrentLease(ctx, store); err != nil || lease.Holder != "writer-b" {
		t.Fatalf("lease after the wake-up: %+v, %v", lease, err)
	}

	arch := archivetest.Load(t, store, nil)
	arch.Check(t, archivetest.EventIDs(append(append(append(first, second...), third...), fourth...)...))
	firstB := uint64(0)
	for _, e := range arch.Catalog.Entries() {
		switch {
		case e.Writer == "writer-b" && firstB == 0:
			firstB = e.Seq
		case e.Writer == "writer-a" && firstB != 0:
			t.Fatalf("entry %d written by the paused writer after the takeover (entry %d)", e.Seq, firstB)
		}
	}
	if firstB == 0 {
		t.Fatal("the standby wrote nothing")
	}
	for _, line := range strings.Split(a.log.String(), "\n") {
		if strings.Contains(line, "stepping down") || strings.Contains(line, "segment") && strings.Contains(line, "WARN") {
			t.Logf("woken writer: %s", line)
		}
	}
	if !strings.Contains(b.log.String(), "msg=leading") {
		t.Fatalf("standby never led; log:\n%s", tail(b.log.String()))
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
	deadline := time.Now().Add(20 * time.Second)
	for {
		lease, err := catalog.CurrentLease(context.Background(), store)
		if err == nil && lease != nil && lease.Holder == holder && !lease.Expired(time.Now()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not get the lease: %+v, %v", holder, lease, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitDelivered waits until the archivers' consumer has delivered every
// message in the feed's stream.
func waitDelivered(t *testing.T, f *archivetest.Feed) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var last, delivered uint64
		s, err := f.JS.Stream(ctx, f.Stream)
		if err == nil {
			last = s.CachedInfo().State.LastSeq
			var c jetstream.Consumer
			if c, err = f.JS.Consumer(ctx, f.Stream, archive.DefaultConsumer); err == nil {
				delivered = c.CachedInfo().Delivered.Stream
			}
		}
		if err == nil && delivered >= last {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer delivered up to stream sequence %d of %d: %v", delivered, last, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeAddr returns a free loopback address.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
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
