package cdc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// startCaptureProc starts the capture binary with args; it is killed when
// the test ends.
func startCaptureProc(t *testing.T, bin string, args ...string) *testkit.Proc {
	t.Helper()
	return startCaptureProcEnv(t, bin, nil, args...)
}

func (e *env) procArgs(extra ...string) []string {
	return append([]string{"run", "--pg", e.pgURL, "--nats-url", e.nats.URL, "--slot", e.slot, "--http", "",
		"--heartbeat-interval", "300ms", "--status-interval", "100ms"}, extra...)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestCaptureProcess_KillNine kills the capture process with SIGKILL at
// seeded random points under concurrent load (TIDEMARK_KILL_POINTS points,
// default 20; seed TIDEMARK_KILL_SEED, default 1). A follower plays the
// archiver and publishes the watermark. Every committed event must reach the
// stream, and the slot's confirmed position, sampled throughout, must never
// pass the watermark published so far.
func TestCaptureProcess_KillNine(t *testing.T) {
	t.Parallel() // a separate process: no shared in-process metrics
	bin := testrig.BuildBinary(t, "./cmd/capture")
	e := newEnv(t, nil)
	points := envInt("TIDEMARK_KILL_POINTS", 20)
	seed := uint64(envInt("TIDEMARK_KILL_SEED", 1))
	rng := rand.New(rand.NewPCG(seed, 99))
	ctx := context.Background()

	// First start: wait until the slot has its consistent point.
	p := startCaptureProc(t, bin, e.procArgs()...)
	created := waitSlotCreated(t, e)
	f := startFollower(t, e.js, "TIDEMARK")
	// The initial snapshot must be complete before the first kill: a capture
	// killed inside its snapshot refuses to restart by design (covered by
	// TestCapture_SnapshotInterrupted). The slot says nothing about the
	// snapshot, so wait for the archive side to pass the consistent point.
	testkit.WaitFor(t, 60*time.Second, "initial snapshot archived", func() bool { return f.watermark() >= created })

	// Sample the slot's confirmed position against the published watermark.
	var samples, violations atomic.Int64
	var firstViolation atomic.Value
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for sampleCtx.Err() == nil {
			s := e.slotStateCtx(sampleCtx)
			w := f.publishedLSN() // read after the slot: the watermark capture could have seen
			if s.Exists {
				samples.Add(1)
				if s.ConfirmedFlushLSN > created && s.ConfirmedFlushLSN > w {
					violations.Add(1)
					firstViolation.CompareAndSwap(nil, fmt.Sprintf("confirmed %s > watermark %s (slot created at %s)", s.ConfirmedFlushLSN, w, created))
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan error, 1)
	go func() {
		_, err := loadgen.Run(loadCtx, e.pgURL, loadgen.Config{Writers: 2, Rate: 800, Streams: 100, Seed: seed})
		loadDone <- err
	}()

	for i := 0; i < points; i++ {
		if i > 0 {
			p = startCaptureProc(t, bin, e.procArgs()...)
		}
		d := time.Duration(200+rng.IntN(1300)) * time.Millisecond
		time.Sleep(d)
		p.Kill()
		if testing.Verbose() {
			t.Logf("kill point %d after %s; watermark %s", i+1, d, f.watermark())
		}
	}
	stopLoad()
	if err := <-loadDone; err != nil && loadCtx.Err() == nil {
		t.Fatal(err)
	}

	last := startCaptureProc(t, bin, e.procArgs()...)
	e.waitAllCaptured("TIDEMARK", 120*time.Second)
	wantW := e.currentWAL()
	testkit.WaitFor(t, 30*time.Second, "watermark and confirmed position to pass the last commit", func() bool {
		return f.watermark() >= wantW && e.slotState().ConfirmedFlushLSN >= wantW
	})
	_ = last.Signal(syscall.SIGTERM)
	if code := last.ExitCode(t, 30*time.Second); code != 0 {
		t.Fatalf("capture exited %d after SIGTERM; output:\n%s", code, last.Output())
	}
	stopSampling()
	sampler.Wait()
	if v := violations.Load(); v > 0 {
		t.Fatalf("%d of %d samples saw the slot confirmed beyond the watermark; first: %v", v, samples.Load(), firstViolation.Load())
	}
	if samples.Load() < 100 {
		t.Fatalf("only %d samples", samples.Load())
	}
	t.Logf("%d kill points, %d events, %d samples, no confirmation beyond the watermark", points, len(e.sourceIDs()), samples.Load())
}

// waitSlotCreated waits until the slot is active and has found its
// consistent point, and returns that point: the confirmed_flush_lsn
// PostgreSQL itself gives a new slot, the only position not confirmed by
// capture (which confirms nothing before a watermark exists). The slot is
// active from the moment CREATE_REPLICATION_SLOT starts, but its
// confirmed_flush_lsn is NULL (read as 0/0) until every transaction then
// running anywhere in the cluster has ended, which on the shared cluster
// can take as long as another test's huge transaction: read at the first
// "active", the slot's start would be taken for 0/0 and its consistent
// point for a confirmation beyond the watermark.
func waitSlotCreated(t *testing.T, e *env) event.Position {
	t.Helper()
	var s slotState
	testkit.WaitFor(t, 60*time.Second, "slot created at its consistent point", func() bool {
		s = e.slotState()
		return s.Active && s.ConfirmedFlushLSN != 0
	})
	return s.ConfirmedFlushLSN
}

func (e *env) slotStateCtx(ctx context.Context) slotState {
	conn, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		return slotState{}
	}
	defer conn.Close(context.Background())
	s, _ := readSlot(ctx, conn, e.slot)
	return s
}

func (e *env) currentWAL() event.Position {
	e.t.Helper()
	var s string
	e.queryRow("SELECT pg_current_wal_lsn()::text", &s)
	p, err := event.ParsePosition(s)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}
