package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// runToError runs capture and returns its error, failing if it keeps running.
func (e *env) runToError(cfg Config) error {
	e.t.Helper()
	_, done := e.run(cfg)
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		e.t.Fatal("capture kept running, want a fatal error")
		return nil
	}
}

// runUntilStreaming runs capture until the slot streams, then stops it.
func (e *env) runUntilStreaming(cfg Config) {
	e.t.Helper()
	stop, _ := e.run(cfg)
	e.waitStreaming()
	if err := stop(); err != nil {
		e.t.Fatal(err)
	}
}

func wantFatal(t *testing.T, err, sentinel error, hintPart string) {
	t.Helper()
	var fe *FatalError
	if !errors.Is(err, sentinel) || !errors.As(err, &fe) {
		t.Fatalf("err = %v, want a *FatalError wrapping %v", err, sentinel)
	}
	if !strings.Contains(fe.Hint, hintPart) {
		t.Fatalf("hint %q does not mention %q", fe.Hint, hintPart)
	}
}

func TestCapture_SlotMissingIsFatal(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config()
	e.runUntilStreaming(cfg)
	e.dropSlot()
	err := e.runToError(cfg)
	wantFatal(t, err, ErrSlotMissing, "--reset-slot")
	if e.slotState().Exists {
		t.Fatal("capture created a new slot")
	}
}

func TestCapture_SlotInvalidatedIsFatal(t *testing.T) {
	pg := testrig.StartPostgres(t, testrig.WithConf("max_slot_wal_keep_size", "1MB"), testrig.WithConf("wal_keep_size", "0"))
	e := newEnv(t, pg)
	cfg := e.config()
	e.runUntilStreaming(cfg)
	// With capture stopped, push WAL past max_slot_wal_keep_size.
	for i := 0; i < 6 && e.slotState().WALStatus != "lost"; i++ {
		e.exec("INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data) SELECT gen_random_uuid(), 'fill-' || g, 'Fill', '{}' FROM generate_series(1, 2000) g")
		e.exec("SELECT pg_switch_wal()")
		e.exec("CHECKPOINT")
	}
	if s := e.slotState(); s.WALStatus != "lost" {
		t.Fatalf("could not invalidate the slot: exists=%v wal_status %q restart_lsn %s", s.Exists, s.WALStatus, s.RestartLSN)
	}
	err := e.runToError(cfg)
	wantFatal(t, err, ErrSlotLost, "max_slot_wal_keep_size")
}

func TestCapture_SystemIDChangedIsFatal(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config()
	e.runUntilStreaming(cfg)
	// The same stream, a different cluster.
	other := testrig.StartPostgres(t)
	url := other.NewEventCoreDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	cfg.PGURL = url
	err = e.runToError(cfg)
	wantFatal(t, err, ErrSystemIDChanged, "original server")
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&n); err != nil || n != 0 {
		t.Fatalf("other cluster has %d slots (%v), want none", n, err)
	}
}

// TestCapture_SnapshotInterrupted: a slot whose initial snapshot was never
// completely published is refused with advice; `setup --reset-slot` then
// lets capture start over.
func TestCapture_SnapshotInterrupted(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config()
	ctx := context.Background()
	if _, err := loadgen.Run(ctx, e.pgURL, loadgen.Config{Writers: 1, Events: 20, Streams: 2, Seed: 8}); err != nil {
		t.Fatal(err)
	}
	// Play a capture that died after creating the slot.
	if _, err := Setup(ctx, cfg, SetupOptions{}); err != nil {
		t.Fatal(err)
	}
	conn, err := connectReplication(ctx, e.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	res, err := createSlotForTest(ctx, conn, e.slot)
	if err != nil {
		t.Fatal(err)
	}
	closeConn(conn)
	kv, err := e.js.KeyValue(ctx, feed.MetaBucket(cfg.Stream))
	if err != nil {
		t.Fatal(err)
	}
	if err := putSlotRecord(ctx, kv, slotRecord{Slot: e.slot, State: slotSnapshot, ConsistentPoint: res}); err != nil {
		t.Fatal(err)
	}
	err = e.runToError(cfg)
	wantFatal(t, err, ErrSnapshotIncomplete, "--reset-slot")

	rep, err := Setup(ctx, cfg, SetupOptions{ResetSlot: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(rep.Actions, "\n"), "pg_drop_replication_slot") {
		t.Errorf("reset actions %v", rep.Actions)
	}
	stop, _ := e.run(cfg)
	fl := e.waitAllCaptured(cfg.Stream, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(fl.ids) != 20 {
		t.Fatalf("%d events after the reset, want 20", len(fl.ids))
	}
	b, _ := json.Marshal(fl.heartbeats)
	if !strings.Contains(string(b), `"SnapshotDone":true`) {
		t.Error("no snapshot-done heartbeat after the reset")
	}
}

// TestCaptureProcess_Takeover: a second capture on an active slot waits,
// then takes over within seconds of the first being killed.
func TestCaptureProcess_Takeover(t *testing.T) {
	t.Parallel() // a separate process: no shared in-process metrics
	bin := testrig.BuildBinary(t, "./cmd/capture")
	e := newEnv(t, nil)
	firstHTTP := testkit.FreeAddrT(t)
	first := startCaptureProc(t, bin, e.procArgs("--confirm-on", "jetstream", "--http", firstHTTP)...)
	// The slot is active already while CREATE_REPLICATION_SLOT runs, and
	// inactive again while the initial snapshot is published: only a ready
	// capture streams and holds the slot for good.
	testkit.WaitForLog(t, time.Minute, "first capture streaming", func() bool {
		code, _ := httpGet(t, "http://"+firstHTTP+"/readyz")
		return code == 200
	}, first.Output)
	pid := e.slotState().ActivePID
	if pid == 0 {
		t.Fatalf("the first capture is ready but the slot is not active; its output:\n%s", first.Output())
	}
	// The second is configured from the environment only: PG*, NATS_URL
	// and TIDEMARK_CAPTURE_*.
	u, err := url.Parse(e.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := testkit.FreeAddrT(t)
	second := startCaptureProcEnv(t, bin, []string{
		"PGHOST=" + u.Hostname(), "PGPORT=" + u.Port(), "PGUSER=postgres", "PGDATABASE=" + strings.TrimPrefix(u.Path, "/"),
		"PGSSLMODE=disable", "NATS_URL=" + e.nats.URL, "TIDEMARK_CAPTURE_SLOT=" + e.slot,
		"TIDEMARK_CAPTURE_CONFIRM_ON=jetstream", "TIDEMARK_CAPTURE_HTTP=" + httpAddr,
		"TIDEMARK_CAPTURE_HEARTBEAT_INTERVAL=300ms",
	})
	output := func() string {
		return "first capture:\n" + first.Output() + "\nsecond capture:\n" + second.Output()
	}
	testkit.WaitForLog(t, time.Minute, "second capture waiting", func() bool {
		return strings.Contains(second.Output(), "slot active for PID")
	}, output)
	if s := e.slotState(); s.ActivePID != pid {
		t.Fatalf("slot moved to PID %d while the first capture (PID %d) runs; output:\n%s", s.ActivePID, pid, output())
	}
	if code, body := httpGet(t, "http://"+httpAddr+"/readyz"); code != 503 || !strings.Contains(body, "slot active for PID") {
		t.Errorf("waiting capture /readyz = %d %q", code, body)
	}
	if code, _ := httpGet(t, "http://"+httpAddr+"/livez"); code != 200 {
		t.Errorf("waiting capture /livez = %d", code)
	}
	first.Kill()
	killed := time.Now()
	for {
		if s := e.slotState(); s.Active && s.ActivePID != pid {
			break
		}
		// Seconds when the machine is quiet; the bound leaves room for a
		// loaded CI machine running every package at once (the takeover
		// time itself is what the chaos suite's capture-standby-takeover
		// measures).
		if time.Since(killed) > time.Minute {
			t.Fatalf("the second capture did not take over within a minute of the first being killed (slot %+v); its output:\n%s",
				e.slotState(), second.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(killed)
	ctx := context.Background()
	if _, err := loadgen.Run(ctx, e.pgURL, loadgen.Config{Writers: 1, Events: 30, Streams: 3, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	e.waitAllCaptured("TIDEMARK", 30*time.Second)
	testkit.WaitFor(t, 10*time.Second, "/readyz ready", func() bool { code, _ := httpGet(t, "http://"+httpAddr+"/readyz"); return code == 200 })
	var metrics string
	n := len(e.sourceIDs())
	testkit.WaitFor(t, 10*time.Second, fmt.Sprintf("/metrics to count %d events published", n), func() bool {
		_, metrics = httpGet(t, "http://"+httpAddr+"/metrics")
		return strings.Contains(metrics, fmt.Sprintf("tidemark_capture_events_published_total %d\n", n))
	})
	for _, m := range []string{"tidemark_capture_confirmed_lsn",
		"tidemark_capture_publish_latency_seconds_bucket", "tidemark_capture_heartbeats_total", "tidemark_capture_lag_seconds",
		"tidemark_capture_last_event_commit_timestamp_seconds", "tidemark_capture_slot_retained_wal_bytes", "tidemark_capture_publish_stalled 0"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	out, err := exec.Command(bin, "status", "--json", "--pg", e.pgURL, "--nats-url", e.nats.URL, "--slot", e.slot).Output()
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var st Status
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if !st.Active || st.Slot != e.slot || st.ConfirmedFlushLSN == 0 || st.WALStatus != "reserved" || st.LastEventCommitTime == nil || st.LagSeconds == nil {
		t.Errorf("status %s", out)
	}
	_ = second.Signal(syscall.SIGTERM)
	if code := second.ExitCode(t, 30*time.Second); code != 0 {
		t.Fatalf("second capture exited %d:\n%s", code, second.Output())
	}
	t.Logf("took over %s after the kill", took.Round(time.Millisecond))
}

// createSlotForTest creates the slot as capture would and returns its
// consistent point.
func createSlotForTest(ctx context.Context, conn *pgconn.PgConn, slot string) (event.Position, error) {
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT",
	})
	if err != nil {
		return 0, err
	}
	return event.ParsePosition(res.ConsistentPoint)
}

// startCaptureProcEnv is startCaptureProc with env added to the
// environment.
func startCaptureProcEnv(t *testing.T, bin string, env []string, args ...string) *testkit.Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return testkit.StartT(t, "capture", cmd)
}

func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
