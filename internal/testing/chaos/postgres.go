package chaos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/testing/loadgen"
)

func init() {
	register(
		Scenario{
			Name:    "pg-crash",
			Injects: "PostgreSQL stopped with `-m immediate` (SIGQUIT, crash recovery on restart) under load, restarted 2-4 s later",
			Checks:  "I1-I6",
			Run:     pgCrash,
		},
		Scenario{
			Name:    "slot-dropped",
			Injects: "capture stopped, its replication slot dropped, more events committed, capture started again",
			Checks:  "I1-I6 up to the drop; I5: capture refuses loudly (non-zero exit naming the missing slot) and never creates a new slot",
			Run:     func(e *Env) error { return slotLost(e, false) },
		},
		Scenario{
			Name:    "slot-invalidated",
			Injects: "capture stopped, max_slot_wal_keep_size lowered to 1MB and WAL pushed past it until the slot's wal_status is lost, capture started again",
			Checks:  "I1-I6 up to the loss; I5: capture refuses loudly (non-zero exit naming wal_status lost) and never replaces the slot",
			Run:     func(e *Env) error { return slotLost(e, true) },
		},
		Scenario{
			Name:    "capture-standby-takeover",
			Injects: "two captures on one slot (the second waits, \"slot active for PID N\"); kill -9 of the active one under load",
			Checks:  "I1-I6; I5: the standby streams within 30 s",
			Run:     captureStandby,
		},
		Scenario{
			Name:    "tamper-detected",
			Injects: "a superuser disables the table's triggers, updates one archived event and deletes another",
			Checks:  "I1-I6; I5: capture's tamper counter fires and verify --against names the archived event the source lost; the archive keeps the original events, and a restore differs from the tampered source by exactly those two rows",
			Run:     tamperDetected,
		},
		Scenario{
			Name:    "txn-huge",
			Injects: "a 2,000,000-row transaction committed and another rolled back, next to a light concurrent workload",
			Checks:  "I1-I6; the big transaction restored whole (I4), the rolled-back one never appears (I3)",
			Budget:  16 * time.Minute,
			Run:     hugeTransactions,
		},
	)
}

func pgCrash(e *Env) error {
	if err := e.Boot(Setup{}); err != nil {
		return err
	}
	e.StartLoad(20*time.Second, 0)
	if err := e.Sleep(e.Between(3*time.Second, 6*time.Second)); err != nil {
		return err
	}
	e.Mark()
	if err := e.H.PG.StopImmediate(); err != nil {
		return err
	}
	if err := e.Sleep(e.Between(2*time.Second, 4*time.Second)); err != nil {
		return err
	}
	if err := e.H.PG.Start(); err != nil {
		return err
	}
	// The first workload failed with the server; write more after it.
	e.StartLoad(8*time.Second, 0)
	return e.Finish(CheckOptions{})
}

// pgExec runs statements as the superuser on the source database.
func (e *Env) pgExec(sqls ...string) error {
	conn, err := pgx.Connect(e.Ctx, e.H.PG.URL("source"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, s := range sqls {
		if _, err := conn.Exec(e.Ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// slotState returns whether the slot exists and its wal_status.
func (e *Env) slotState(slot string) (bool, string, error) {
	conn, err := pgx.Connect(e.Ctx, e.H.PG.URL("source"))
	if err != nil {
		return false, "", err
	}
	defer conn.Close(context.Background())
	var status *string
	err = conn.QueryRow(e.Ctx, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, "", nil
	}
	if err != nil {
		return false, "", err
	}
	if status == nil {
		return true, "", nil
	}
	return true, *status, nil
}

// slotLost archives a healthy run, stops capture, loses the slot (dropped
// or invalidated), commits more, and requires capture to refuse.
func slotLost(e *Env, invalidate bool) error {
	if err := e.Boot(Setup{}); err != nil {
		return err
	}
	l := e.StartLoad(8*time.Second, 0)
	l.Wait()
	if err := e.Settle(2 * time.Minute); err != nil {
		return err
	}
	cutoff := time.Now()
	if err := e.Capture.Stop(30 * time.Second); err != nil {
		return fmt.Errorf("stop capture: %w", err)
	}
	e.Mark()
	want := "does not exist"
	if invalidate {
		want = "wal_status lost"
		if err := e.invalidateSlot(); err != nil {
			return err
		}
	} else if err := e.pgExec("SELECT pg_drop_replication_slot('tidemark')"); err != nil {
		return err
	}
	gap := e.StartLoad(3*time.Second, 0)
	gap.Wait()
	p, err := e.StartCaptureNoWait()
	if err != nil {
		return err
	}
	select {
	case <-p.Done():
	case <-time.After(60 * time.Second):
		return violation("I5", "capture kept running for 60 s on a lost slot instead of refusing:\n%s", p.LogTail(10))
	case <-e.Ctx.Done():
		return e.Ctx.Err()
	}
	_, exitErr := p.Exited()
	var vs []*Violation
	if exitErr == nil {
		vs = append(vs, violation("I5", "capture exited 0 on a lost slot"))
	}
	if !logContains(p.LogPath, want) {
		vs = append(vs, violation("I5", "capture's refusal does not say %q:\n%s", want, p.LogTail(5)))
	}
	exists, status, err := e.slotState("tidemark")
	if err != nil {
		return err
	}
	switch {
	case !invalidate && exists:
		vs = append(vs, violation("I5", "capture created a new slot after the old one was dropped (a silent gap)"))
	case invalidate && (!exists || status != "lost"):
		vs = append(vs, violation("I5", "the invalidated slot was replaced or revived (exists %v, wal_status %q)", exists, status))
	}
	e.Note("refusal_exit=%v", exitErr)
	e.Capture = nil // its metrics are gone; the detectors check the archive
	vs = append(vs, asViolations(e.Finish(CheckOptions{Cutoff: cutoff}))...)
	return joinViolations(vs)
}

// asViolations unpacks Finish's result for joining.
func asViolations(err error) []*Violation {
	if err == nil {
		return nil
	}
	var v *Violation
	if errors.As(err, &v) {
		return []*Violation{v}
	}
	return []*Violation{violation("I1", "checks could not run: %v", err)}
}

// invalidateSlot lowers max_slot_wal_keep_size and pushes WAL past it
// until the stopped slot's wal_status is lost.
func (e *Env) invalidateSlot() error {
	if err := e.pgExec("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'", "SELECT pg_reload_conf()"); err != nil {
		return err
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		if err := e.pgExec("CREATE TABLE IF NOT EXISTS chaos_filler (b text)",
			"INSERT INTO chaos_filler SELECT repeat('x', 1000) FROM generate_series(1, 2000)",
			"SELECT pg_switch_wal()", "CHECKPOINT"); err != nil {
			return err
		}
		_, status, err := e.slotState("tidemark")
		if err != nil {
			return err
		}
		if status == "lost" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the slot's wal_status is %q after 90 s of WAL past max_slot_wal_keep_size", status)
		}
	}
}

func captureStandby(e *Env) error {
	if err := e.Boot(Setup{}); err != nil {
		return err
	}
	active := e.Capture
	standby, err := e.StartCaptureNoWait()
	if err != nil {
		return err
	}
	if err := e.waitLog(standby.LogPath, 30*time.Second, "slot active for PID"); err != nil {
		return violation("I5", "the second capture did not wait for the slot: %v", err)
	}
	e.StartLoad(16*time.Second, 0)
	if err := e.Sleep(e.Between(3*time.Second, 6*time.Second)); err != nil {
		return err
	}
	e.Mark()
	active.Kill()
	if err := e.waitReady(standby, 30*time.Second); err != nil {
		return violation("I5", "the standby capture did not take over within 30 s: %v", err)
	}
	return e.Finish(CheckOptions{})
}

func tamperDetected(e *Env) error {
	if err := e.Boot(Setup{}); err != nil {
		return err
	}
	e.StartLoad(8*time.Second, 0)
	if err := e.Settle(2 * time.Minute); err != nil {
		return err
	}
	var updated, deleted string
	conn, err := pgx.Connect(e.Ctx, e.H.PG.URL("source"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(e.Ctx, `SELECT (array_agg(event_id::text ORDER BY event_id))[1], (array_agg(event_id::text ORDER BY event_id))[2]
		FROM eventcore_events`).Scan(&updated, &deleted)
	if err != nil {
		return err
	}
	e.Mark()
	for _, s := range []string{
		"ALTER TABLE eventcore_events DISABLE TRIGGER ALL",
		"UPDATE eventcore_events SET event_data = '{\"tampered\": true}' WHERE event_id = '" + updated + "'",
		"DELETE FROM eventcore_events WHERE event_id = '" + deleted + "'",
		"ALTER TABLE eventcore_events ENABLE TRIGGER ALL",
	} {
		if _, err := conn.Exec(e.Ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	e.StartLoad(4*time.Second, 0)
	if err := e.waitMetricAtLeast(e.Capture, "tidemark_capture_tamper_events_total", 2, 30*time.Second); err != nil {
		return violation("I5", "tampering went unreported: %v", err)
	}
	vs := asViolations(e.Finish(CheckOptions{ExpectExtra: 1, ExpectTamper: true, NoRestores: true, ExpectVerify: "not in the source"}))
	out, target, err := e.restoreTo(e.Ctx, "restore-tampered", e.H.StoreURL, "latest")
	if err != nil {
		return err
	}
	if out.ExitCode != 0 {
		return joinViolations(append(vs, violation("I3", "restore exited %d: %s", out.ExitCode, errText(out))))
	}
	d, err := compareTampered(e.Ctx, e.H.SourceURL, target, out.Target, updated, deleted)
	if err != nil {
		return err
	}
	if d != "" {
		vs = append(vs, violation("I3", "restore of a tampered source: %s", d))
	}
	return joinViolations(vs)
}

// compareTampered expects the restore to differ from the tampered source
// only by the original of the updated event and the deleted event.
func compareTampered(ctx context.Context, sourceURL, targetURL string, t time.Time, updated, deleted string) (string, error) {
	d, err := oracleDiff(ctx, sourceURL, targetURL, t)
	if err != nil {
		return "", err
	}
	ok := d.Missing == 0 && d.Mismatched == 1 && d.Unexpected == 1 &&
		d.MismatchedExamples[0].Expected.EventID == updated && d.UnexpectedExamples[0].EventID == deleted &&
		strings.Contains(d.MismatchedExamples[0].Expected.EventData, "tampered") &&
		!strings.Contains(d.MismatchedExamples[0].Actual.EventData, "tampered")
	if ok {
		return "", nil
	}
	return oneLine(d.String()), nil
}

func hugeTransactions(e *Env) error {
	if err := e.Boot(Setup{}); err != nil {
		return err
	}
	e.StartLoad(60*time.Second, 200)
	if err := e.Sleep(3 * time.Second); err != nil {
		return err
	}
	e.Mark()
	if err := loadgen.HugeTransaction(e.Ctx, e.H.SourceURL, 2_000_000, true); err != nil {
		return err
	}
	e.Mark()
	if err := loadgen.HugeTransaction(e.Ctx, e.H.SourceURL, 2_000_000, false); err != nil {
		return err
	}
	if err := loadgen.RolledBack(e.Ctx, e.H.SourceURL); err != nil {
		return err
	}
	return e.Finish(CheckOptions{SettleTimeout: 8 * time.Minute, Instants: 1})
}

// waitMetricAtLeast waits until p's metric family sums to at least want.
func (e *Env) waitMetricAtLeast(p interface {
	Metrics(context.Context) (map[string]float64, error)
}, metric string, want float64, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		m, err := p.Metrics(e.Ctx)
		if err == nil && sumMetric(m, metric) >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s stayed below %v for %s", metric, want, d)
		}
		if err := e.Sleep(250 * time.Millisecond); err != nil {
			return err
		}
	}
}
