package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/testing/oracle"
)

// CheckOptions tune Finish.
type CheckOptions struct {
	// SettleTimeout bounds waiting for the archive to cover the last
	// commit (default 2 minutes).
	SettleTimeout time.Duration
	// ExpectHoles requires the hole detector to have fired: some archiver
	// counted a hole and some capture rewound.
	ExpectHoles bool
	// ExpectExtra is how many archived events the source may lack.
	ExpectExtra int
	// ExpectTamper requires capture's tamper counter to be positive.
	ExpectTamper bool
	// Instants is how many instants besides "latest" are restored and
	// compared (default 2: a commit time exactly, and 1µs before one; plus
	// one after each fault mark).
	Instants int
	// NoRestores skips the restore checks (for scenarios that restore
	// themselves).
	NoRestores bool
	// RestoreStoreURL is the archive URL the restores read (default: the
	// rig's store, directly).
	RestoreStoreURL string
	// RetryRestores reruns a failed restore into the same target (which
	// resumes it) up to this many times.
	RetryRestores int
	// RestoreArgs are extra restorer flags.
	RestoreArgs []string
	// VerifyStoreURL is the archive the final verify reads (default: the
	// rig's store).
	VerifyStoreURL string
	// ExpectVerify, when set, is a message verify --against must report as
	// a failure (the source was tampered with), instead of staying quiet.
	ExpectVerify string
	// Cutoff, when set, limits the checks to source commits at or before
	// it (events committed while no slot existed are not capturable).
	Cutoff time.Time
	// ExpectDiverged requires verify to report diverged history (a
	// WARNING naming it, and nothing worse) instead of staying quiet.
	ExpectDiverged bool
}

// Finish waits for the workloads, lets the archive catch up, and checks
// every invariant; it returns nil or a *Violation naming every broken one.
func (e *Env) Finish(o CheckOptions) error {
	if o.SettleTimeout == 0 {
		o.SettleTimeout = 2 * time.Minute
	}
	if o.Instants == 0 {
		o.Instants = 2
	}
	if o.RestoreStoreURL == "" {
		o.RestoreStoreURL = e.H.StoreURL
	}
	for _, l := range e.loads {
		l.Wait()
	}
	var vs []*Violation
	if err := e.settleUntil(o.SettleTimeout, o.Cutoff); err != nil {
		var v *Violation
		if !errors.As(err, &v) {
			return err
		}
		vs = append(vs, v)
	}
	if e.slot != nil {
		v, summary := e.slot.verdict()
		e.Note("%s", summary)
		if v != nil {
			vs = append(vs, v)
		}
	}
	if err := e.countEvents(); err != nil {
		return err
	}
	a, err := readArchive(e.Ctx, e.Store)
	if err != nil {
		vs = append(vs, violation("I1", "cannot read the archive: %v", err))
	} else {
		e.Note("segments=%d", a.segments)
		vs = append(vs, checkArchive(e.Ctx, a, e.H.SourceURL, o.ExpectExtra, o.Cutoff)...)
	}
	if !o.NoRestores {
		rv, err := e.checkRestores(o)
		if err != nil {
			return err
		}
		vs = append(vs, rv...)
	}
	dv, err := e.checkDetectors(o)
	if err != nil {
		return err
	}
	vs = append(vs, dv...)
	return joinViolations(vs)
}

// joinViolations merges violations into one (nil when none).
func joinViolations(vs []*Violation) error {
	vs = slices.DeleteFunc(vs, func(v *Violation) bool { return v == nil })
	if len(vs) == 0 {
		return nil
	}
	var invs, details []string
	for _, v := range vs {
		for _, inv := range strings.Split(v.Invariant, ",") {
			if !slices.Contains(invs, inv) {
				invs = append(invs, inv)
			}
		}
		details = append(details, v.Error())
	}
	slices.Sort(invs)
	return &Violation{Invariant: strings.Join(invs, ","), Detail: strings.Join(details, "; "), joined: true}
}

// countEvents records the source's event count for the result line.
func (e *Env) countEvents() error {
	conn, err := pgx.Connect(e.Ctx, e.H.SourceURL)
	if err != nil {
		return fmt.Errorf("connect source: %w", err)
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(e.Ctx, "SELECT count(*) FROM eventcore_events").Scan(&e.events)
}

// Settle waits until the archive's watermark covers the source's last
// commit; a timeout is an I1 violation (committed events never archived).
func (e *Env) Settle(timeout time.Duration) error { return e.settleUntil(timeout, time.Time{}) }

// settleUntil is Settle for the commits at or before cutoff (all when zero).
func (e *Env) settleUntil(timeout time.Duration, cutoff time.Time) error {
	last, err := lastCommit(e.Ctx, e.H.SourceURL, cutoff)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	var wm catalog.Watermark
	var lastErr error
	for {
		cat, err := catalog.Load(e.Ctx, e.Store)
		if err == nil {
			wm = cat.Watermark()
			if wm.LSN > 0 && !wm.CommitTime.Before(last) {
				return nil
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			return violation("I1", "the archive's watermark (%s at %s) did not reach the last commit (%s) within %s (last error: %v)",
				wm.LSN, wm.CommitTime.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano), timeout, lastErr)
		}
		if err := e.Sleep(250 * time.Millisecond); err != nil {
			return err
		}
	}
}

// lastCommit returns the source's latest commit time at or before cutoff
// (any when zero; zero when none).
func lastCommit(ctx context.Context, url string, cutoff time.Time) (time.Time, error) {
	if cutoff.IsZero() {
		cutoff = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return time.Time{}, fmt.Errorf("connect source: %w", err)
	}
	defer conn.Close(context.Background())
	var t *time.Time
	if err := conn.QueryRow(ctx, "SELECT max(pg_xact_commit_timestamp(xmin)) FROM eventcore_events WHERE pg_xact_commit_timestamp(xmin) <= $1", cutoff).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("read last commit: %w", err)
	}
	if t == nil {
		return time.Time{}, nil
	}
	return *t, nil
}

// instants picks the restore targets: latest, a commit time exactly, 1µs
// before another, and the first commit after each fault mark.
func (e *Env) instants(n int, cutoff time.Time) ([]string, error) {
	times, err := oracle.CommitTimes(e.Ctx, e.H.SourceURL, table)
	if err != nil {
		return nil, err
	}
	if !cutoff.IsZero() {
		times = slices.DeleteFunc(times, func(t time.Time) bool { return t.After(cutoff) })
	}
	out := []string{"latest"}
	if len(times) == 0 {
		return out, nil
	}
	for i := range n {
		t := times[e.Rand.IntN(len(times))]
		if i%2 == 1 {
			t = t.Add(-time.Microsecond)
		}
		out = append(out, formatT(t))
	}
	e.mu.Lock()
	marks := slices.Clone(e.marks)
	e.mu.Unlock()
	for _, m := range marks[:min(len(marks), 2)] {
		if i, _ := slices.BinarySearchFunc(times, m, func(a, b time.Time) int { return a.Compare(b) }); i < len(times) {
			out = append(out, formatT(times[i]))
		}
	}
	return out, nil
}

// checkRestores restores the sampled instants and compares each with the
// oracle: I2 (no duplicates), I3 (equal), I4 (whole transactions).
func (e *Env) checkRestores(o CheckOptions) ([]*Violation, error) {
	cutoff := o.Cutoff
	// Only the restorable window is checked here: a watermark that never
	// reached the last commit is already an I1 violation.
	if cat, err := catalog.Load(e.Ctx, e.Store); err == nil {
		if wm := cat.Watermark().CommitTime; cutoff.IsZero() || wm.Before(cutoff) {
			cutoff = wm
		}
	}
	tos, err := e.instants(o.Instants, cutoff)
	if err != nil {
		return nil, err
	}
	var vs []*Violation
	retries := 0
	defer func() {
		if retries > 0 {
			e.Note("restore_reruns=%d", retries)
		}
	}()
	for i, to := range tos {
		target, err := e.newTarget(e.Ctx)
		if err != nil {
			return nil, err
		}
		args := append([]string{"restore", "--store", o.RestoreStoreURL, "--target", target, "--to", to}, o.RestoreArgs...)
		var out *restoreOutput
		for attempt := 0; ; attempt++ {
			if out, err = e.runRestorer(e.Ctx, fmt.Sprintf("restore-%d", i), args...); err != nil {
				return nil, err
			}
			if out.ExitCode == 0 || attempt >= o.RetryRestores {
				break
			}
			e.Logf("restore-%d: attempt %d exited %d (%s), rerun", i, attempt+1, out.ExitCode, oneLine(errText(out)))
			retries++
			// A failed restore must leave whole transactions only.
			if partial, err := partialTransactions(e.Ctx, e.H.SourceURL, target); err != nil || partial > 0 {
				vs = append(vs, violation("I4", "after a failed restore --to %s the target holds %d partial transactions (%v)", to, partial, err))
			}
		}
		if out.ExitCode != 0 {
			vs = append(vs, violation("I3", "restore --to %s exited %d: %s (see %s)", to, out.ExitCode, errText(out), out.LogPath))
			continue
		}
		vs = append(vs, compareRestore(e.Ctx, e.H.SourceURL, target, to, out.Target)...)
	}
	return vs, nil
}

func errText(out *restoreOutput) string {
	if out.Err != nil {
		return out.Err.Message
	}
	return strings.TrimSpace(out.Stdout)
}

// compareRestore checks one restored target against the oracle at t.
func compareRestore(ctx context.Context, sourceURL, targetURL, to string, t time.Time) []*Violation {
	var vs []*Violation
	dups, err := duplicateIDs(ctx, targetURL)
	if err != nil {
		return []*Violation{violation("I3", "restore --to %s: %v", to, err)}
	}
	if dups > 0 {
		vs = append(vs, violation("I2", "restore --to %s holds %d duplicated event ids", to, dups))
	}
	d, err := oracleDiff(ctx, sourceURL, targetURL, t)
	if err != nil {
		return append(vs, violation("I3", "restore --to %s: compare: %v", to, err))
	}
	if !d.Empty() && (d.Missing > 0 || d.Mismatched > 0 || int64(d.Unexpected) > dups) {
		vs = append(vs, violation("I3", "restore --to %s (resolved %s) differs from the oracle: %s", to, formatT(t), oneLine(d.String())))
	}
	partial, err := partialTransactions(ctx, sourceURL, targetURL)
	if err != nil {
		return append(vs, violation("I4", "restore --to %s: %v", to, err))
	}
	if partial > 0 {
		vs = append(vs, violation("I4", "restore --to %s holds %d source transactions only in part", to, partial))
	}
	return vs
}

// oracleDiff compares a restored target with the source's rows committed
// at or before t.
func oracleDiff(ctx context.Context, sourceURL, targetURL string, t time.Time) (oracle.Diff, error) {
	return oracle.CompareTable(ctx, sourceURL, targetURL, table, t)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// duplicateIDs counts event ids the target holds more than once.
func duplicateIDs(ctx context.Context, targetURL string) (int64, error) {
	conn, err := pgx.Connect(ctx, targetURL)
	if err != nil {
		return 0, fmt.Errorf("connect target: %w", err)
	}
	defer conn.Close(context.Background())
	var n int64
	err = conn.QueryRow(ctx, "SELECT count(*) - count(DISTINCT event_id) FROM eventcore_events").Scan(&n)
	return n, err
}

// partialTransactions copies the target's event ids into a temporary table
// on the source and counts source transactions (xids) present in part.
func partialTransactions(ctx context.Context, sourceURL, targetURL string) (int64, error) {
	src, err := pgx.Connect(ctx, sourceURL)
	if err != nil {
		return 0, fmt.Errorf("connect source: %w", err)
	}
	defer src.Close(context.Background())
	dst, err := pgx.Connect(ctx, targetURL)
	if err != nil {
		return 0, fmt.Errorf("connect target: %w", err)
	}
	defer dst.Close(context.Background())
	if _, err := src.Exec(ctx, "CREATE TEMP TABLE chaos_restored (event_id uuid)"); err != nil {
		return 0, fmt.Errorf("create temp table: %w", err)
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := dst.PgConn().CopyTo(ctx, pw, "COPY (SELECT event_id FROM eventcore_events) TO STDOUT")
		pw.CloseWithError(err)
	}()
	if _, err := src.PgConn().CopyFrom(ctx, pr, "COPY chaos_restored FROM STDIN"); err != nil {
		pr.CloseWithError(err)
		return 0, fmt.Errorf("copy restored ids: %w", err)
	}
	var n int64
	err = src.QueryRow(ctx, `SELECT count(*) FROM (
		SELECT e.xmin::text, count(r.event_id) AS present, count(*) AS total
		FROM eventcore_events e LEFT JOIN (SELECT DISTINCT event_id FROM chaos_restored) r USING (event_id)
		GROUP BY e.xmin::text) s
		WHERE present > 0 AND present < total`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count partial transactions: %w", err)
	}
	return n, nil
}

// checkDetectors is I5's baseline: the verifier, the tamper counter and
// the hole gauge are quiet on a healthy archive (and the hole detector
// fired when the scenario lost messages on purpose).
func (e *Env) checkDetectors(o CheckOptions) ([]*Violation, error) {
	var vs []*Violation
	verifyURL := o.VerifyStoreURL
	if verifyURL == "" {
		verifyURL = e.H.StoreURL
	}
	out, err := e.verifyArchive(e.Ctx, "verify-final", verifyURL, true)
	if err != nil {
		return nil, err
	}
	switch {
	case out.Verify == nil:
		vs = append(vs, violation("I5", "verify printed no report (exit %d: %s)", out.ExitCode, errText(out)))
	case o.ExpectVerify != "":
		if out.Verify.Status != "FAILURE" || out.ExitCode != 3 || !strings.Contains(out.Verify.problems(), o.ExpectVerify) {
			vs = append(vs, violation("I5", "verify --against a tampered source said %s (exit %d), want a failure %q: %s",
				out.Verify.Status, out.ExitCode, o.ExpectVerify, out.Verify.problems()))
		}
	case o.ExpectDiverged:
		if out.Verify.Status != "WARNING" || !strings.Contains(out.Verify.problems(), "diverged history") {
			vs = append(vs, violation("I5", "verify after a failover with diverged history said %s (exit %d), want a WARNING naming it: %s",
				out.Verify.Status, out.ExitCode, out.Verify.problems()))
		}
	case out.Verify.Status != "OK" || out.ExitCode != 0:
		vs = append(vs, violation("I5", "verify of a healthy archive said %s (exit %d): %s", out.Verify.Status, out.ExitCode, out.Verify.problems()))
	}
	if out.Verify != nil {
		for _, n := range out.Verify.Notes {
			var count int
			if _, err := fmt.Sscanf(n, "unlisted: %d objects", &count); err != nil {
				continue
			}
			if strings.Contains(n, "replaced by merges") {
				e.Note("superseded=%d", count) // merge inputs awaiting gc
			} else {
				e.Note("debris=%d", count) // uploads cut off by a crash, recorded by the next term
			}
		}
	}
	if e.Capture != nil {
		if done, _ := e.Capture.Exited(); !done {
			m, err := e.Capture.Metrics(e.Ctx)
			if err == nil {
				tamper := sumMetric(m, "tidemark_capture_tamper_events_total")
				if o.ExpectTamper != (tamper > 0) {
					vs = append(vs, violation("I5", "capture's tamper counter is %v (tamper expected: %v)", tamper, o.ExpectTamper))
				}
				if s := m["tidemark_capture_publish_stalled"]; s != 0 {
					vs = append(vs, violation("I5", "capture still reports a publish stall after recovery"))
				}
				e.Note("rewinds=%v", sumMetric(m, "tidemark_capture_rewinds_total"))
			}
		}
	}
	holes := 0.0
	for _, a := range e.Live() {
		m, err := a.Metrics(e.Ctx)
		if err != nil {
			continue
		}
		holes += sumMetric(m, "tidemark_archiver_holes_total")
		if m["tidemark_archiver_chain_hole"] != 0 {
			vs = append(vs, violation("I5", "%s still reports a chain hole after recovery", a.Name))
		}
	}
	e.Note("holes=%v", holes)
	if o.ExpectHoles && holes == 0 && !e.logsMention("hole") {
		vs = append(vs, violation("I5", "messages were lost but no archiver detected a hole"))
	}
	return vs, nil
}

// sumMetric adds every sample of a metric family.
func sumMetric(m map[string]float64, name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}
