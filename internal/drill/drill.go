package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/redact"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/segment"
)

// Step names, in the order a drill runs them.
const (
	StepFreshness = "freshness"
	StepVerify    = "verify"
	StepFull      = "full"
	StepPartial   = "partial"
	StepPITR      = "pitr"
)

// Statuses of a step and of a drill.
const (
	StatusOK      = "OK"
	StatusWarning = "WARNING"
	StatusFailure = "FAILURE"
	StatusSkipped = "SKIPPED"
)

// Defaults for Options.
const (
	DefaultMaxAge   = 15 * time.Minute
	DefaultStreams  = 3
	DefaultInstants = 2
	DefaultPrefix   = "tidemark_drill_"
)

// Options configures Run.
type Options struct {
	// Store is the archive; Keyring decrypts it (nil: plaintext).
	Store   objstore.Store
	Keyring *segment.Keyring
	// ScratchURL connects to a maintenance database (postgres) on the
	// server where the drill may create and drop databases.
	ScratchURL string
	// Prefix leads the name of every database the drill creates
	// (default DefaultPrefix); it drops only databases it created.
	Prefix string
	// SourceURL, when set, is the live source: restores are compared with
	// its rows by commit time. Unset or unreachable, the archive's own
	// counts and digests are the oracle.
	SourceURL string
	// Table is the archived table ("" = the archive's only one).
	Table string
	// MaxAge is the oldest watermark the freshness step accepts
	// (default DefaultMaxAge).
	MaxAge time.Duration
	// VerifySample, between 0 and 1, reads only that share of the
	// segments in the verify step; 0 reads all of them.
	VerifySample float64
	// Streams and Instants are how many random streams the partial step
	// restores and how many random instants the PITR step restores to
	// (defaults DefaultStreams, DefaultInstants; negative skips the step).
	Streams, Instants int
	// RTOObjective, when set, fails the drill when the RTO exceeds it.
	RTOObjective time.Duration
	// Parallel is the download parallelism of verify and restores.
	Parallel int
	// Seed makes the random choices repeatable (0: random).
	Seed uint64
	// Logger receives progress lines (nil: none).
	Logger *slog.Logger
}

// Report is one drill's outcome. Its JSON form is the `drill` record of
// `restorer drill --json` (docs/restore.md): fields are only ever added.
type Report struct {
	// Status is OK, WARNING or FAILURE.
	Status string `json:"status"`
	// StoreName is the policy file's name of the store drilled (with
	// --stores --every-store; omitted otherwise).
	StoreName string `json:"store_name,omitempty"`
	// FailedStep names the first step that failed ("" when none did).
	FailedStep string `json:"failed_step,omitempty"`
	// Store and Source (redacted) say what was drilled.
	Store  string `json:"store"`
	Source string `json:"source,omitempty"`
	// Oracle is what restores were compared with: "source", "archive",
	// or "none" (a sampled verify without a reachable source: only each
	// restore's own post-load verification).
	Oracle string `json:"oracle"`
	// Started and Duration time the whole drill.
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	// Window is the archive's restorable window.
	Window restore.Window `json:"window"`
	// Steps are the steps run, in order.
	Steps []Step `json:"steps"`
	// RTO measures the full restore (nil when it did not complete).
	RTO *RTO `json:"rto,omitempty"`
}

// Step is one timed, checked step of a drill.
type Step struct {
	// Name is freshness, verify, full, partial or pitr.
	Name string `json:"name"`
	// Status is OK, WARNING, FAILURE or SKIPPED.
	Status string `json:"status"`
	// Duration is the step's wall time.
	Duration time.Duration `json:"duration_ns"`
	// Detail says what was checked and found.
	Detail string `json:"detail"`
	// Restores lists the step's restores (full, partial, pitr).
	Restores []RestoreCheck `json:"restores,omitempty"`
}

// RestoreCheck is one restore into a scratch database and its comparison.
type RestoreCheck struct {
	// Database is the scratch database (dropped afterwards).
	Database string `json:"database"`
	// Target is the instant restored to; Streams the streams selected.
	Target  time.Time `json:"target_time"`
	Streams []string  `json:"streams,omitempty"`
	// Restored is what the scratch database holds; Expected what the
	// oracle says it must (zero with oracle "none").
	Restored Sum `json:"restored"`
	Expected Sum `json:"expected"`
	// Events, Bytes and Duration are the restore's own figures.
	Events   int64         `json:"events"`
	Bytes    int64         `json:"bytes"`
	Duration time.Duration `json:"duration_ns"`
	// OK is true when the restore verified and matched the oracle.
	OK bool `json:"ok"`
}

// RTO is the measured recovery time of the full restore.
type RTO struct {
	// Duration is the wall time from creating the scratch database to a
	// restore to latest that passed its verification and the comparison.
	Duration time.Duration `json:"rto_ns"`
	// Events and Bytes are what the full restore loaded and downloaded.
	Events int64 `json:"events"`
	Bytes  int64 `json:"bytes"`
	// EventsPerSecond and BytesPerSecond are over Duration.
	EventsPerSecond float64 `json:"events_per_second"`
	BytesPerSecond  float64 `json:"bytes_per_second"`
	// ArchiveBytes is the stored size of the live segments;
	// SecondsPerGiB projects the RTO for an archive of any size at the
	// measured rate (an archive of N GiB: about N × SecondsPerGiB).
	ArchiveBytes  int64   `json:"archive_bytes"`
	SecondsPerGiB float64 `json:"seconds_per_gib"`
	// Objective is Options.RTOObjective (0: none); Met compares.
	Objective time.Duration `json:"objective_ns,omitempty"`
	Met       bool          `json:"met"`
}

// Run performs one drill. It returns an error only when it cannot run at
// all (bad options, the archive unreadable); everything a drill finds —
// including a restore that fails — is in the Report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	d := &drill{opts: opts, rep: &Report{Status: StatusOK, Store: opts.Store.String(), Started: time.Now().UTC(), Steps: []Step{}},
		rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))}
	if opts.SourceURL != "" {
		d.rep.Source = redact.URL(opts.SourceURL)
	}
	d.sc = &scratch{adminURL: opts.ScratchURL, prefix: opts.Prefix, run: strconv.FormatInt(time.Now().Unix(), 36) + strconv.Itoa(int(d.rng.IntN(1000)))}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := d.sc.dropAll(dctx); err != nil && opts.Logger != nil {
			opts.Logger.Warn("drill: dropping scratch databases", "err", err)
		}
	}()
	a, err := restore.Open(ctx, opts.Store, opts.Keyring)
	if err != nil {
		return nil, err
	}
	d.archive = a
	d.rep.Window = a.Window()
	d.connectSource(ctx)
	defer d.closeSource()
	for _, s := range []struct {
		name string
		fn   func(context.Context, *Step) error
	}{
		{StepFreshness, d.freshness}, {StepVerify, d.verify}, {StepFull, d.full}, {StepPartial, d.partial}, {StepPITR, d.pitr},
	} {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d.step(ctx, s.name, s.fn)
	}
	d.rep.Duration = time.Since(d.rep.Started)
	return d.rep, nil
}

func (o *Options) normalize() error {
	switch {
	case o.Store == nil:
		return fmt.Errorf("%w: no archive store", ErrUsage)
	case o.ScratchURL == "":
		return fmt.Errorf("%w: no scratch server (--scratch postgres://…/postgres): the drill restores into databases it creates there", ErrUsage)
	case o.VerifySample < 0 || o.VerifySample > 1:
		return fmt.Errorf("%w: verify sample %v outside 0…1", ErrUsage, o.VerifySample)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Streams == 0 {
		o.Streams = DefaultStreams
	}
	if o.Instants == 0 {
		o.Instants = DefaultInstants
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64()
	}
	return checkScratch(o.ScratchURL, o.SourceURL, o.Prefix)
}

// drill is one Run's state.
type drill struct {
	opts    Options
	rep     *Report
	rng     *rand.Rand
	sc      *scratch
	archive *restore.Archive
	source  *pgx.Conn // nil when not set or unreachable
	oracle  *archiveOracle
	table   pgx.Identifier // the target table's name in scratch databases and the source
	streams []string       // streams seen in the full restore, for the partial step
}

// step runs fn as the named step, timing it and folding its outcome into
// the report. fn sets Status and Detail; an error is a FAILURE.
func (d *drill) step(ctx context.Context, name string, fn func(context.Context, *Step) error) {
	s := Step{Name: name, Status: StatusOK}
	start := time.Now()
	if err := fn(ctx, &s); err != nil {
		s.Status, s.Detail = StatusFailure, err.Error()
	}
	s.Duration = time.Since(start)
	switch s.Status {
	case StatusFailure:
		d.rep.Status = StatusFailure
		if d.rep.FailedStep == "" {
			d.rep.FailedStep = name
		}
	case StatusWarning:
		if d.rep.Status == StatusOK {
			d.rep.Status = StatusWarning
		}
	}
	if d.opts.Logger != nil {
		d.opts.Logger.Info("drill step", "step", name, "status", s.Status, "took", s.Duration.Round(time.Millisecond), "detail", s.Detail)
	}
	d.rep.Steps = append(d.rep.Steps, s)
}

// connectSource connects to the source when one is given; unreachable, the
// archive is the oracle and the report says why.
func (d *drill) connectSource(ctx context.Context) {
	if d.opts.SourceURL == "" {
		return
	}
	conn, err := pgx.Connect(ctx, d.opts.SourceURL)
	if err != nil {
		if d.opts.Logger != nil {
			d.opts.Logger.Warn("drill: source unreachable; comparing with the archive", "err", redact.Error(err, d.opts.SourceURL))
		}
		return
	}
	d.source = conn
}

func (d *drill) closeSource() {
	if d.source != nil {
		d.source.Close(context.Background())
	}
}

// freshness checks the watermark's age.
func (d *drill) freshness(_ context.Context, s *Step) error {
	w := d.rep.Window
	if w.Empty {
		s.Status, s.Detail = StatusFailure, "the archive holds no event yet"
		return nil
	}
	age := time.Since(w.Watermark)
	s.Detail = fmt.Sprintf("watermark %s is %s old (at most %s)", restore.FormatTime(w.Watermark), age.Round(time.Second), d.opts.MaxAge)
	if age > d.opts.MaxAge {
		s.Status = StatusFailure
	}
	return nil
}

// verify runs restorer verify's single pass (or a sampled share) and, on a
// full pass, builds the archive oracle from the events as they go by.
func (d *drill) verify(ctx context.Context, s *Step) error {
	o := newArchiveOracle()
	full := d.opts.VerifySample == 0 || d.opts.VerifySample >= 1
	vopts := restore.VerifyOptions{Keyring: d.opts.Keyring, Parallel: d.opts.Parallel, Sample: d.opts.VerifySample, Table: d.opts.Table}
	if full {
		vopts.Visit = o.add
	}
	rep, err := restore.Verify(ctx, d.opts.Store, vopts)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if full && o.ok {
		o.seal()
		d.oracle = o
	}
	what := "every segment"
	if rep.Sampled {
		what = fmt.Sprintf("a %.0f%% sample of the segments", d.opts.VerifySample*100)
	}
	s.Detail = fmt.Sprintf("%s read: %s, %d segments, %d events, %d problems (%d known)", what, rep.Status, rep.Segments, rep.Events, len(rep.Problems)-rep.Known, rep.Known)
	for _, p := range rep.Problems {
		if p.Severity != restore.SeverityKnown {
			s.Detail += fmt.Sprintf("; first: %s %s %s", p.Check, p.Object+p.Stream, p.Message)
			break
		}
	}
	switch rep.Status {
	case restore.StatusFailure:
		s.Status = StatusFailure
	case restore.StatusWarning:
		s.Status = StatusWarning
	}
	return nil
}

// oracleName says what restores are compared with.
func (d *drill) oracleName() string {
	switch {
	case d.source != nil:
		return "source"
	case d.oracle != nil:
		return "archive"
	}
	return "none"
}

// expected is the oracle's Sum for a restore to t of streams (nil: all).
func (d *drill) expected(ctx context.Context, t time.Time, streams []string) (Sum, bool, error) {
	switch {
	case d.source != nil:
		sum, err := sourceAt(ctx, d.source, d.table, t, streams)
		if err != nil {
			return Sum{}, false, fmt.Errorf("read the source: %s", redact.Error(err, d.opts.SourceURL))
		}
		return sum, true, nil
	case d.oracle != nil && streams == nil:
		return d.oracle.At(t), true, nil
	case d.oracle != nil:
		// a partial restore is to the watermark: every archived event of the streams
		return d.oracle.Streams(streams), true, nil
	}
	return Sum{}, false, nil
}

// restoreInto restores to t (streams: nil for all) into a new scratch
// database, compares it with the oracle and drops the database unless keep.
func (d *drill) restoreInto(ctx context.Context, step string, t time.Time, streams []string, keep bool) (RestoreCheck, string, error) {
	rc := RestoreCheck{Target: t, Streams: streams}
	start := time.Now()
	name, target, err := d.sc.create(ctx, step)
	if err != nil {
		return rc, "", err
	}
	rc.Database = name
	if !keep {
		defer func() { _ = d.sc.drop(context.WithoutCancel(ctx), name) }()
	}
	plan, err := d.archive.Plan(t, d.opts.Table)
	if err != nil {
		return rc, name, fmt.Errorf("plan the restore to %s: %w", restore.FormatTime(t), err)
	}
	if d.table == nil {
		schema, tbl := splitName(plan.Table)
		d.table = pgx.Identifier{schema, tbl}
	}
	res, err := restore.Restore(ctx, plan, restore.Options{TargetURL: target, CreateTable: true, Parallel: d.opts.Parallel,
		Filter: restore.Filter{Streams: streams}})
	if res != nil {
		rc.Events, rc.Bytes = res.Events, res.Bytes
	}
	if err != nil {
		return rc, name, fmt.Errorf("restore to %s: %w", restore.FormatTime(t), err)
	}
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		return rc, name, fmt.Errorf("connect to the scratch database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if rc.Restored, err = digestSQL(ctx, conn, d.table, ""); err != nil {
		return rc, name, fmt.Errorf("read the scratch database %s: %w", name, err)
	}
	want, have, err := d.expected(ctx, t, streams)
	if err != nil {
		return rc, name, err
	}
	rc.Duration = time.Since(start)
	if have {
		rc.Expected = want
		if rc.Restored != want {
			return rc, name, fmt.Errorf("restore to %s holds %s; the %s says %s", restore.FormatTime(t), rc.Restored, d.oracleName(), want)
		}
	}
	rc.OK = true
	return rc, name, nil
}

// full restores everything to the watermark and measures the RTO.
func (d *drill) full(ctx context.Context, s *Step) error {
	d.rep.Oracle = d.oracleName()
	t := d.rep.Window.Watermark
	rc, name, err := d.restoreInto(ctx, StepFull, t, nil, true)
	s.Restores = append(s.Restores, rc)
	if name != "" {
		defer func() { _ = d.sc.drop(context.WithoutCancel(ctx), name) }()
	}
	if err != nil {
		return err
	}
	var archiveBytes int64
	for _, seg := range d.archive.Catalog.Segments() {
		archiveBytes += seg.Size
	}
	r := &RTO{Duration: rc.Duration, Events: rc.Events, Bytes: rc.Bytes, ArchiveBytes: archiveBytes, Objective: d.opts.RTOObjective, Met: true}
	if sec := rc.Duration.Seconds(); sec > 0 {
		r.EventsPerSecond = float64(rc.Events) / sec
		r.BytesPerSecond = float64(rc.Bytes) / sec
	}
	if r.BytesPerSecond > 0 {
		r.SecondsPerGiB = float64(1<<30) / r.BytesPerSecond
	}
	if r.Objective > 0 && r.Duration > r.Objective {
		r.Met = false
		s.Status = StatusFailure
	}
	d.rep.RTO = r
	s.Detail = fmt.Sprintf("restored %d events (%d bytes) to %s in %s (%.0f events/s), matching the %s; RTO %s",
		rc.Events, rc.Bytes, restore.FormatTime(t), rc.Duration.Round(time.Millisecond), r.EventsPerSecond, d.oracleName(), rc.Duration.Round(time.Millisecond))
	if !r.Met {
		s.Detail += fmt.Sprintf(", above the objective %s", r.Objective)
	}
	// streams for the partial step, chosen at random from what was restored
	if d.opts.Streams > 0 {
		if d.streams, err = d.pickStreams(ctx, name, d.opts.Streams); err != nil {
			return err
		}
	}
	return nil
}

// pickStreams chooses n random distinct streams from the full restore.
func (d *drill) pickStreams(ctx context.Context, db string, n int) ([]string, error) {
	_, target, err := d.sc.urlOf(db)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT s FROM (SELECT DISTINCT stream_id::text AS s FROM `+d.table.Sanitize()+`) d ORDER BY md5(s || $1) LIMIT $2`,
		strconv.FormatUint(d.rng.Uint64(), 10), n)
	if err != nil {
		return nil, fmt.Errorf("choose streams: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// partial restores a few random streams to the watermark.
func (d *drill) partial(ctx context.Context, s *Step) error {
	if d.opts.Streams < 0 || len(d.streams) == 0 {
		s.Status, s.Detail = StatusSkipped, "no streams to choose from (the full restore did not complete, or --streams is negative)"
		return nil
	}
	rc, _, err := d.restoreInto(ctx, StepPartial, d.rep.Window.Watermark, d.streams, false)
	s.Restores = append(s.Restores, rc)
	if err != nil {
		return err
	}
	s.Detail = fmt.Sprintf("restored %d streams (%d events) in %s, matching the %s", len(d.streams), rc.Events, rc.Duration.Round(time.Millisecond), d.oracleName())
	return nil
}

// pitr restores to random instants within the window.
func (d *drill) pitr(ctx context.Context, s *Step) error {
	w := d.rep.Window
	if d.opts.Instants < 0 || w.Empty {
		s.Status, s.Detail = StatusSkipped, "no instants to restore to"
		return nil
	}
	span := w.Watermark.Sub(w.First)
	var errs []error
	for i := 0; i < d.opts.Instants; i++ {
		t := w.First
		if span > 0 {
			t = w.First.Add(time.Duration(d.rng.Int64N(int64(span)))).Truncate(time.Microsecond)
		}
		rc, _, err := d.restoreInto(ctx, StepPITR, t, nil, false)
		s.Restores = append(s.Restores, rc)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.Detail = fmt.Sprintf("%d restores to random instants, each matching the %s", d.opts.Instants, d.oracleName())
	return nil
}

func splitName(q string) (string, string) {
	for i := 0; i < len(q); i++ {
		if q[i] == '.' {
			return q[:i], q[i+1:]
		}
	}
	return "public", q
}
