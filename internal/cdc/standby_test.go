package cdc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// PostgreSQL releases a new slot when CREATE_REPLICATION_SLOT returns, so
// while the capture that created it publishes the initial snapshot the slot
// is inactive. These tests check that other captures (and
// `setup --reset-slot`) treat it as in use until the snapshot is handed over
// to streaming, and as abandoned only once its creator has gone.

// waitOr polls cond until it holds, failing after timeout with what and
// the output of the processes or logs involved.
func waitOr(t *testing.T, timeout time.Duration, what string, cond func() bool, output func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; output:\n%s", timeout, what, output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metaSlotRecord reads the slot record capture keeps in META (nil if none).
func (e *env) metaSlotRecord(stream string) *slotRecord {
	e.t.Helper()
	ctx := context.Background()
	kv, err := e.js.KeyValue(ctx, feed.MetaBucket(stream))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	rec, err := getSlotRecord(ctx, kv, e.slot)
	if err != nil {
		e.t.Fatal(err)
	}
	return rec
}

// TestCapture_StandbyWaitsWhileSnapshotLive plays the capture that creates
// the slot step by step: META says "creating" (its replication connection
// named), the slot exists, META says "snapshot" (the exported snapshot
// named). A capture started meanwhile waits and says why; `setup
// --reset-slot` refuses. Once the creator's connection closes (a capture
// that died during its snapshot) the waiting capture stops with
// ErrSnapshotIncomplete and the reset is allowed.
func TestCapture_StandbyWaitsWhileSnapshotLive(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	cfg := e.config()
	cfg.SlotRetryInterval = 200 * time.Millisecond
	// At debug level capture logs every retry: the sign that it has
	// judged the slot again.
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(e.logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.exec("INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data) SELECT gen_random_uuid(), 'seed-' || g, 'Seed', '{}' FROM generate_series(1, 10) g")
	rep, err := Setup(ctx, cfg, SetupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := e.js.KeyValue(ctx, feed.MetaBucket(cfg.Stream))
	if err != nil {
		t.Fatal(err)
	}
	sql, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer sql.Close(ctx)

	// The creator: a replication connection, named in META as "creating".
	creatorConn, err := connectReplication(ctx, e.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn(creatorConn)
	creator, err := backendOf(ctx, sql, creatorConn.PID())
	if err != nil {
		t.Fatal(err)
	}
	rec := slotRecord{Slot: e.slot, SystemID: rep.SystemID, State: slotCreating, Creator: &creator}
	if err := putSlotRecord(ctx, kv, rec); err != nil {
		t.Fatal(err)
	}
	_, done := e.run(cfg)
	c := e.last
	stillWaiting := func(want string) {
		t.Helper()
		waitOr(t, time.Minute, fmt.Sprintf("capture not ready because %q", want), func() bool {
			err := c.Ready()
			return err != nil && strings.Contains(err.Error(), want)
		}, e.logs.String)
		select {
		case err := <-done:
			t.Fatalf("capture stopped while it should wait: %v\n%s", err, e.logs.String())
		default:
		}
	}
	// retried waits until the capture has found the slot busy for reason
	// n more times, failing at once if it stops instead. The first of them
	// may have judged the slot before the test's last change; the later
	// ones certainly did so after it.
	retried := func(reason string, n int) {
		t.Helper()
		count := func() int { return strings.Count(e.logs.String(), reason+", retrying") }
		want := count() + n
		waitOr(t, time.Minute, fmt.Sprintf("%d more retries because %q", n, reason), func() bool {
			select {
			case err := <-done:
				t.Fatalf("capture stopped while it should wait: %v\n%s", err, e.logs.String())
			default:
			}
			return count() >= want
		}, e.logs.String)
	}
	resetRefused := func() {
		t.Helper()
		for _, dry := range []bool{true, false} {
			_, err := Setup(ctx, cfg, SetupOptions{ResetSlot: true, DryRun: dry})
			var fe *FatalError
			if !errors.Is(err, ErrSnapshotInProgress) || !errors.As(err, &fe) || !strings.Contains(err.Error(), "still publishing its initial snapshot") {
				t.Fatalf("reset (dry run %v) while a capture creates the slot: err = %v, want a *FatalError wrapping ErrSnapshotInProgress", dry, err)
			}
		}
	}

	// 1. No slot yet: the capture must not create one of its own.
	stillWaiting("another capture is creating the slot")
	resetRefused()
	if e.slotState().Exists {
		t.Fatal("the waiting capture created the slot")
	}
	// 2. The slot exists (and, released by CREATE_REPLICATION_SLOT, is
	// inactive); META still says "creating".
	res, err := pglogrepl.CreateReplicationSlot(ctx, creatorConn, e.slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT",
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := e.slotState(); s.Active {
		t.Fatalf("slot active for PID %d after CREATE_REPLICATION_SLOT returned; this test assumes PostgreSQL releases it", s.ActivePID)
	}
	retried("another capture is creating the slot", 2)
	stillWaiting("another capture is creating the slot")
	// 3. META says "snapshot", naming the exported snapshot.
	rec.State, rec.Snapshot = slotSnapshot, res.SnapshotName
	if rec.ConsistentPoint, err = event.ParsePosition(res.ConsistentPoint); err != nil {
		t.Fatal(err)
	}
	if err := putSlotRecord(ctx, kv, rec); err != nil {
		t.Fatal(err)
	}
	snapshotBusy := "another capture is publishing the initial snapshot (exported snapshot " + res.SnapshotName + ")"
	stillWaiting(snapshotBusy)
	retried(snapshotBusy, 2)
	stillWaiting(snapshotBusy)
	resetRefused()
	if !e.slotState().Exists {
		t.Fatal("the refused reset dropped the slot")
	}
	logs := e.logs.String()
	if n := strings.Count(logs, `level=INFO msg="`+snapshotBusy+", retrying"); n != 1 {
		t.Errorf("the wait for the snapshot was logged at INFO %d times, want once:\n%s", n, logs)
	}

	// The creator dies: its snapshot can no longer be imported.
	closeConn(creatorConn)
	select {
	case err := <-done:
		wantFatal(t, err, ErrSnapshotIncomplete, "--reset-slot")
	case <-time.After(time.Minute):
		t.Fatalf("capture kept waiting for a snapshot whose creator is gone:\n%s", e.logs.String())
	}
	if _, err := Setup(ctx, cfg, SetupOptions{ResetSlot: true}); err != nil {
		t.Fatalf("reset after the creator died: %v", err)
	}
	if e.slotState().Exists {
		t.Fatal("reset left the slot")
	}
}

// TestCapture_StandbyWinsBeforeStartReplication: between META saying
// "streaming" and its START_REPLICATION, the capture that published the
// initial snapshot leaves the slot inactive. A standby that takes the slot
// there streams from the consistent point; the first capture then waits as
// the standby (it does not stop), and takes over when the other stops.
// Nothing is lost or published twice.
func TestCapture_StandbyWinsBeforeStartReplication(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	if _, err := loadgen.Run(ctx, e.pgURL, loadgen.Config{Writers: 1, Events: 50, Streams: 5, Seed: 21}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.SlotRetryInterval = 200 * time.Millisecond
	first, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inGap, release := make(chan struct{}), make(chan struct{})
	first.beforeStartReplication = func() {
		close(inGap)
		<-release
	}
	stopFirst, firstDone := e.runCapture(first)
	select {
	case <-inGap:
	case err := <-firstDone:
		t.Fatalf("first capture stopped: %v\n%s", err, e.logs.String())
	case <-time.After(time.Minute):
		t.Fatalf("first capture did not publish its snapshot within a minute:\n%s", e.logs.String())
	}
	if rec := e.metaSlotRecord(cfg.Stream); rec == nil || rec.State != slotStreaming {
		t.Fatalf("META slot record %+v in the gap, want state streaming", rec)
	}
	if s := e.slotState(); s.Active {
		t.Fatalf("slot active for PID %d in the gap", s.ActivePID)
	}
	stopSecond, secondDone := e.run(cfg)
	second := e.last
	waitOr(t, time.Minute, "the second capture streaming", func() bool { return second.Ready() == nil }, e.logs.String)
	close(release)
	waitOr(t, time.Minute, "the first capture waiting as the standby", func() bool {
		err := first.Ready()
		return err != nil && strings.Contains(err.Error(), "slot active for PID")
	}, e.logs.String)
	if !strings.Contains(e.logs.String(), "another capture started streaming from the slot first") {
		t.Errorf("the first capture did not say it lost the slot:\n%s", e.logs.String())
	}
	if _, err := loadgen.Run(ctx, e.pgURL, loadgen.Config{Writers: 1, Events: 30, Streams: 3, Seed: 22}); err != nil {
		t.Fatal(err)
	}
	e.waitAllCaptured(cfg.Stream, time.Minute)
	select {
	case err := <-firstDone:
		t.Fatalf("first capture stopped while it should wait: %v\n%s", err, e.logs.String())
	default:
	}
	if err := stopSecond(); err != nil {
		t.Fatalf("second capture: %v", err)
	}
	<-secondDone
	waitOr(t, time.Minute, "the first capture taking over", func() bool { return first.Ready() == nil }, e.logs.String)
	if _, err := loadgen.Run(ctx, e.pgURL, loadgen.Config{Writers: 1, Events: 30, Streams: 3, Seed: 23}); err != nil {
		t.Fatal(err)
	}
	fl := e.waitAllCaptured(cfg.Stream, time.Minute)
	if err := stopFirst(); err != nil {
		t.Fatalf("first capture: %v", err)
	}
	wantExactlyOnce(t, e, fl)
}

// wantExactlyOnce checks that the feed holds every source event once and
// exactly one snapshot-done heartbeat.
func wantExactlyOnce(t *testing.T, e *env, fl *feedLog) {
	t.Helper()
	src := e.sourceIDs()
	for id := range src {
		if n := fl.ids[id]; n != 1 {
			t.Errorf("event %s is in the stream %d times", id, n)
		}
	}
	if len(fl.ids) != len(src) {
		t.Errorf("stream has %d distinct events, source %d", len(fl.ids), len(src))
	}
	done := 0
	for _, hb := range fl.heartbeats {
		if hb.SnapshotDone {
			done++
		}
	}
	if done != 1 {
		t.Errorf("%d snapshot-done heartbeats, want 1", done)
	}
}

// TestCaptureProcess_StandbyDuringInitialSnapshot: a second capture process
// started while the first publishes its initial snapshot of 100,000 rows
// waits (it used to stop with ErrSnapshotIncomplete and advise
// `setup --reset-slot`, which would have dropped the slot under the first);
// `setup --reset-slot` refuses meanwhile. The second takes over streaming
// when the first is killed, without a snapshot of its own; every row is in
// the stream exactly once.
func TestCaptureProcess_StandbyDuringInitialSnapshot(t *testing.T) {
	t.Parallel() // separate processes
	bin := testrig.BuildBinary(t, "./cmd/capture")
	e := newEnv(t, nil)
	ctx := context.Background()
	const rows = 100000
	e.exec(fmt.Sprintf("INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data) "+
		"SELECT gen_random_uuid(), 'bulk-' || g, 'Bulk', jsonb_build_object('n', g) FROM generate_series(1, %d) g", rows))

	httpFirst, httpSecond := freeAddr(t), freeAddr(t)
	first := startCaptureProc(t, bin, e.procArgs("--confirm-on", "jetstream", "--http", httpFirst)...)
	var second *captureProc
	output := func() string {
		out := "first capture:\n" + first.out.String()
		if second != nil {
			out += "\nsecond capture:\n" + second.out.String()
		}
		return out
	}
	// Hold the first capture inside its snapshot (SIGSTOP keeps its
	// connections, and so its exported snapshot, open) so the second
	// certainly starts during it, however fast the machine.
	waitOr(t, time.Minute, "the first capture publishing its snapshot", func() bool {
		rec := e.metaSlotRecord("TIDEMARK")
		return rec != nil && rec.State == slotSnapshot
	}, output)
	if err := first.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = first.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	if s := e.slotState(); s.Active {
		t.Fatalf("slot active for PID %d during the snapshot; this test assumes PostgreSQL releases it after CREATE_REPLICATION_SLOT", s.ActivePID)
	}
	// At debug level the second logs every retry, the sign that it judged
	// the slot again.
	second = startCaptureProc(t, bin, e.procArgs("--confirm-on", "jetstream", "--http", httpSecond, "--log-level", "debug")...)
	const waitMsg = "another capture is publishing the initial snapshot"
	running := func(p *captureProc, name string) {
		t.Helper()
		select {
		case <-p.done:
			t.Fatalf("the %s capture exited; output:\n%s", name, output())
		default:
		}
	}
	waitOr(t, time.Minute, "the second capture waiting for the snapshot", func() bool {
		running(second, "second")
		return strings.Contains(second.out.String(), waitMsg)
	}, output)
	if code, body := httpGet(t, "http://"+httpSecond+"/readyz"); code != 503 || !strings.Contains(body, waitMsg) {
		t.Errorf("waiting capture /readyz = %d %q", code, body)
	}
	waitOr(t, time.Minute, "the second capture retrying three more times", func() bool {
		running(second, "second")
		return strings.Count(second.out.String(), waitMsg) >= 4
	}, output)
	if n := strings.Count(second.out.String(), `level=INFO msg="`+waitMsg); n != 1 {
		t.Errorf("the second capture logged the wait at INFO %d times, want once; output:\n%s", n, output())
	}
	cfg := Defaults()
	cfg.PGURL, cfg.NATSURL, cfg.Slot = e.pgURL, e.nats.URL, e.slot
	_, err := Setup(ctx, cfg, SetupOptions{ResetSlot: true})
	if !errors.Is(err, ErrSnapshotInProgress) || !strings.Contains(err.Error(), "still publishing its initial snapshot") {
		t.Errorf("setup --reset-slot during the snapshot: err = %v, want ErrSnapshotInProgress", err)
	}
	if !e.slotState().Exists {
		t.Fatal("the slot is gone")
	}
	if err := first.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false

	// The first finishes its snapshot and streams; the second waits on.
	waitOr(t, 3*time.Minute, "the first capture streaming", func() bool {
		running(first, "first")
		running(second, "second")
		code, _ := httpGet(t, "http://"+httpFirst+"/readyz")
		return code == 200
	}, output)
	pid := e.slotState().ActivePID
	waitOr(t, time.Minute, "the second capture waiting for the active slot", func() bool {
		running(second, "second")
		return strings.Contains(second.out.String(), fmt.Sprintf("slot active for PID %d", pid))
	}, output)

	first.kill()
	waitOr(t, time.Minute, "the second capture taking over the slot", func() bool {
		s := e.slotState()
		return s.Active && s.ActivePID != pid
	}, output)
	waitOr(t, time.Minute, "the second capture ready", func() bool {
		code, _ := httpGet(t, "http://"+httpSecond+"/readyz")
		return code == 200
	}, output)
	e.exec("INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data) SELECT gen_random_uuid(), 'after-' || g, 'After', '{}' FROM generate_series(1, 100) g")
	fl := e.waitAllCaptured("TIDEMARK", 3*time.Minute)
	if len(e.sourceIDs()) != rows+100 {
		t.Fatalf("source has %d rows, want %d", len(e.sourceIDs()), rows+100)
	}
	wantExactlyOnce(t, e, fl)
	if out := second.out.String(); strings.Contains(out, "replication slot created") || strings.Contains(out, "initial snapshot published") {
		t.Errorf("the second capture took a snapshot of its own; output:\n%s", output())
	}
	_ = second.cmd.Process.Signal(syscall.SIGTERM)
	if code := second.wait(t, time.Minute); code != 0 {
		t.Fatalf("second capture exited %d; output:\n%s", code, output())
	}
}
