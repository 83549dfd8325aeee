package chaos

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func init() {
	register(
		Scenario{
			Name: "source-switchover",
			Injects: "a streaming standby (pg_basebackup, asynchronous) promoted under load after the primary stopped cleanly (fast shutdown); " +
				"capture and the workload reach the new primary through a multi-host URL (target_session_attrs=read-write)",
			Checks: "I1-I6 against the new primary (its oracle and commit times); one archive: a done resync entry in the catalog, capture's resync counted; " +
				"I3: the default restores plus 30 instants (commit times exactly and 1 µs before, 1 s bucket edges) before, across and after the switchover " +
				"restored with --output equal the new primary's oracle",
			Budget: 6 * time.Minute,
			Run:    sourceSwitchover,
		},
		Scenario{
			Name: "source-crash-failover",
			Injects: "under load, the asynchronous standby stops receiving WAL for 1-2 s (it is stopped), the primary is killed with `-m immediate` " +
				"while writes continue, the standby is started and promoted, and the application keeps writing on it",
			Checks: "I1-I6 against the new primary: every transaction it holds archived exactly once; the archived transactions it lacks marked diverged " +
				"(none of them on the new primary, verify WARNING), left out of the default restores and included by --include-diverged; " +
				"I3: the default restores plus 30 instants (--output) equal the new primary's oracle; a finished resync",
			Budget: 6 * time.Minute,
			Run:    sourceCrashFailover,
		},
	)
}

func sourceCrashFailover(e *Env) error {
	var standby *testrig.Postgres
	if err := e.Boot(Setup{BeforeStart: func(e *Env) (err error) {
		standby, err = e.failoverRig()
		return err
	}}); err != nil {
		return err
	}
	e.StartLoad(12*time.Second, 0)
	if err := e.Sleep(e.Between(3*time.Second, 5*time.Second)); err != nil {
		return err
	}
	// The standby falls behind: what the primary commits now, capture
	// publishes and the archiver archives, but the standby never receives.
	if err := standby.Stop(); err != nil {
		return fmt.Errorf("stop the standby: %w", err)
	}
	if err := e.Sleep(e.Between(time.Second, 2*time.Second)); err != nil {
		return err
	}
	e.Mark()
	if err := e.H.PG.StopImmediate(); err != nil {
		return fmt.Errorf("kill the primary: %w", err)
	}
	if err := standby.Start(); err != nil {
		return fmt.Errorf("start the standby: %w", err)
	}
	if err := e.promote(standby); err != nil {
		return err
	}
	e.Mark()
	e.StartLoad(8*time.Second, 0)
	vs := asViolations(e.Finish(CheckOptions{Instants: 4, ExpectDiverged: true}))
	iv, err := e.CheckInstants(30, []time.Duration{time.Second})
	if err != nil {
		return err
	}
	vs = append(vs, iv...)
	vs = append(vs, e.checkResynced(1)...)
	dv, err := e.checkIncludeDiverged()
	if err != nil {
		return err
	}
	return joinViolations(append(vs, dv...))
}

// checkIncludeDiverged restores to the watermark with and without
// --include-diverged (--output) and requires the first to hold exactly the
// diverged events more, and some to be diverged.
func (e *Env) checkIncludeDiverged() ([]*Violation, error) {
	cat, err := catalog.Load(e.Ctx, e.Store)
	if err != nil {
		return nil, err
	}
	diverged := 0
	for _, r := range cat.Resyncs() {
		if r.Phase == "done" {
			diverged += r.DivergedEvents
		}
	}
	e.Note("diverged=%d", diverged)
	if diverged == 0 {
		return []*Violation{violation("I5", "the standby missed 1-2 s of a loaded primary, yet no archived event is marked diverged")}, nil
	}
	to := formatT(cat.Watermark().CommitTime)
	lines := map[bool]int{}
	for _, include := range []bool{false, true} {
		file := filepath.Join(e.Dir, fmt.Sprintf("diverged-%v.jsonl", include))
		args := []string{"restore", "--store", e.H.StoreURL, "--output", file, "--to", to}
		if include {
			args = append(args, "--include-diverged")
		}
		out, err := e.runRestorer(e.Ctx, fmt.Sprintf("restore-diverged-%v", include), args...)
		if err != nil {
			return nil, err
		}
		if out.ExitCode != 0 {
			return []*Violation{violation("I3", "restore --output (include diverged %v) exited %d: %s", include, out.ExitCode, errText(out))}, nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		lines[include] = bytes.Count(b, []byte("\n"))
	}
	if lines[true]-lines[false] != diverged {
		return []*Violation{violation("I3", "--include-diverged restored %d events, the default %d: want exactly the %d diverged more",
			lines[true], lines[false], diverged)}, nil
	}
	return nil, nil
}

// failoverRig adds a streaming standby of the rig's PostgreSQL and points
// the rig's source URL (capture, workload, oracle) at both servers, with
// target_session_attrs=read-write, so everything follows the primary.
func (e *Env) failoverRig() (*testrig.Postgres, error) {
	standby, err := testrig.StartStandbyProcess(e.Ctx, filepath.Join(e.Dir, "standby"), e.H.PG)
	if err != nil {
		return nil, fmt.Errorf("start standby: %w", err)
	}
	old := e.H.PG
	e.Defer(func() { _ = standby.Stop(); _ = old.Stop() })
	e.H.SourceURL = testrig.MultiHostURL("source", e.H.PG, standby)
	return standby, nil
}

// promote makes the standby the rig's primary: promoted, and from then on
// the server the rig creates restore targets on and stops at the end.
func (e *Env) promote(standby *testrig.Postgres) error {
	tli, err := standby.Promote(e.Ctx)
	if err != nil {
		return err
	}
	e.H.PG = standby
	e.Note("timeline=%d", tli)
	return nil
}

func sourceSwitchover(e *Env) error {
	var standby *testrig.Postgres
	if err := e.Boot(Setup{BeforeStart: func(e *Env) (err error) {
		standby, err = e.failoverRig()
		return err
	}}); err != nil {
		return err
	}
	e.StartLoad(8*time.Second, 0)
	if err := e.Sleep(e.Between(4*time.Second, 6*time.Second)); err != nil {
		return err
	}
	e.Mark()
	if err := e.H.PG.Stop(); err != nil {
		return fmt.Errorf("stop the primary: %w", err)
	}
	if err := e.promote(standby); err != nil {
		return err
	}
	e.Mark()
	// The first workload failed with the old primary; the application
	// goes on writing on the new one.
	e.StartLoad(8*time.Second, 0)
	vs := asViolations(e.Finish(CheckOptions{Instants: 4}))
	iv, err := e.CheckInstants(30, []time.Duration{time.Second})
	if err != nil {
		return err
	}
	vs = append(vs, iv...)
	vs = append(vs, e.checkResynced(1)...)
	return joinViolations(vs)
}

// checkResynced requires want done resync entries in the catalog and
// capture to have counted its resyncs.
func (e *Env) checkResynced(want int) []*Violation {
	cat, err := catalog.Load(e.Ctx, e.Store)
	if err != nil {
		return []*Violation{violation("I1", "load catalog: %v", err)}
	}
	done := 0
	for _, r := range cat.Resyncs() {
		if r.Phase == "done" {
			done++
			e.Note("resync=%s appended=%d held=%d rows=%d", r.ID, r.Appended, r.Held, r.Rows)
		}
	}
	var vs []*Violation
	if done != want {
		vs = append(vs, violation("I1", "the catalog records %d finished resyncs, want %d", done, want))
	}
	if _, open := cat.OpenResync(); open {
		vs = append(vs, violation("I1", "the catalog has a resync begun and never done"))
	}
	if e.Capture != nil {
		if n, err := e.Capture.Metric(e.Ctx, "tidemark_capture_resyncs_total"); err != nil || n != float64(want) {
			vs = append(vs, violation("I5", "capture's tidemark_capture_resyncs_total = %v (%v), want %d", n, err, want))
		}
	}
	return vs
}
