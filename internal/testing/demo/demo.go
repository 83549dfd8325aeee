package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/harness"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/oracle"
)

// Options configure a demo run.
type Options struct {
	// Dir holds the servers' data and the programs' logs.
	Dir string
	// Store is "file" (default) or "s3".
	Store string
	// Phase is how long each of the two load phases lasts.
	Phase time.Duration
	// Pause is the idle gap between the phases.
	Pause time.Duration
	// Rate is the target events per second.
	Rate int
	// Logger reports progress.
	Logger *slog.Logger
}

// RestoreResult is one verified point-in-time restore.
type RestoreResult struct {
	Name     string
	To       string
	Target   time.Time
	Events   int64
	Duration time.Duration
	Diff     oracle.Diff
}

// Summary is what the demo measured.
type Summary struct {
	EventsWritten  int64
	SourceEvents   int64
	EventsCaptured float64
	CaptureLag     float64
	Archive        ArchiveStats
	Failover       time.Duration
	Restores       []RestoreResult
}

// OK reports whether every restore matched the source.
func (s *Summary) OK() bool {
	for _, r := range s.Restores {
		if !r.Diff.Empty() {
			return false
		}
	}
	return len(s.Restores) > 0
}

const table = "public.eventcore_events"

// Run performs the demo and returns its summary; a non-nil summary with
// OK() false means a restore did not match the source.
func Run(ctx context.Context, opts Options) (*Summary, error) {
	log := opts.Logger
	log.Info("starting servers", "dir", opts.Dir, "store", opts.Store)
	h, err := harness.Start(ctx, harness.Options{Dir: opts.Dir, Store: opts.Store})
	if err != nil {
		return nil, err
	}
	defer func() {
		log.Info("stopping everything")
		h.Close()
	}()
	capture, err := h.Capture(ctx, "capture", "--heartbeat-interval", "1s")
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, capture); err != nil {
		return nil, err
	}
	archivers := make([]*harness.Proc, 2)
	for i, name := range []string{"archiver-a", "archiver-b"} {
		if archivers[i], err = h.Archiver(ctx, name, "--lease-ttl", "5s"); err != nil {
			return nil, err
		}
		if err := waitReady(ctx, archivers[i]); err != nil {
			return nil, err
		}
	}
	log.Info("pipeline running", "capture_pid", capture.PID(), "archiver_a_pid", archivers[0].PID(), "archiver_b_pid", archivers[1].PID())

	sum := &Summary{}
	cfg := loadgen.Config{Writers: 4, Rate: float64(opts.Rate), Duration: opts.Phase, Streams: 2000, Seed: 1}
	log.Info("load phase 1", "rate", opts.Rate, "duration", opts.Phase)
	st, err := loadgen.Run(ctx, h.SourceURL, cfg)
	if err != nil {
		return nil, fmt.Errorf("load phase 1: %w", err)
	}
	sum.EventsWritten += st.Events
	log.Info("idle pause", "duration", opts.Pause, "events_so_far", sum.EventsWritten)
	if err := sleep(ctx, opts.Pause); err != nil {
		return nil, err
	}

	cfg.Seed = 2
	log.Info("load phase 2; the active archiver will be killed midway", "duration", opts.Phase)
	phase2 := make(chan error, 1)
	go func() {
		st, err := loadgen.Run(ctx, h.SourceURL, cfg)
		sum.EventsWritten += st.Events
		phase2 <- err
	}()
	if err := sleep(ctx, opts.Phase/2); err != nil {
		return nil, err
	}
	if sum.Failover, err = killLeader(ctx, log, archivers); err != nil {
		return nil, err
	}
	if err := <-phase2; err != nil {
		return nil, fmt.Errorf("load phase 2: %w", err)
	}

	store, err := h.OpenStore(ctx)
	if err != nil {
		return nil, err
	}
	lastCommit, err := lastCommitTime(ctx, h.SourceURL)
	if err != nil {
		return nil, err
	}
	log.Info("waiting for the archive to cover the last commit", "last_commit", lastCommit.Format(time.RFC3339Nano))
	if err := waitWatermark(ctx, store, lastCommit, time.Minute); err != nil {
		return nil, err
	}
	if sum.SourceEvents, err = countRows(ctx, h.SourceURL); err != nil {
		return nil, err
	}
	if m, err := capture.Metrics(ctx); err == nil {
		sum.EventsCaptured = m["tidemark_capture_events_published_total"]
		sum.CaptureLag = m["tidemark_capture_lag_seconds"]
	}
	if sum.Archive, err = MeasureArchive(ctx, store, nil); err != nil {
		return nil, err
	}

	times, err := oracle.CommitTimes(ctx, h.SourceURL, table)
	if err != nil {
		return nil, err
	}
	if len(times) == 0 {
		return nil, errors.New("the workload committed nothing")
	}
	mid := times[len(times)/2]
	for _, r := range []struct {
		name, to string
		at       time.Time
	}{
		{"middle", mid.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), mid},
		{"latest", "latest", time.Now()},
	} {
		res, err := restoreAndVerify(ctx, log, h, r.name, r.to, r.at)
		if err != nil {
			return sum, err
		}
		sum.Restores = append(sum.Restores, res)
	}
	return sum, nil
}

func restoreAndVerify(ctx context.Context, log *slog.Logger, h *harness.Harness, name, to string, at time.Time) (RestoreResult, error) {
	res := RestoreResult{Name: name, To: to, Target: at}
	target, err := h.PG.CreateDatabase(ctx)
	if err != nil {
		return res, err
	}
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		return res, err
	}
	defer conn.Close(ctx)
	if err := eventcore.Apply(ctx, conn); err != nil {
		return res, fmt.Errorf("apply schema to restore target: %w", err)
	}
	log.Info("restoring", "restore", name, "to", to)
	start := time.Now()
	if _, err := h.Restorer(ctx, "restorer-"+name, "restore", "--store", h.StoreURL, "--target", target, "--to", to, "--json"); err != nil {
		return res, err
	}
	res.Duration = time.Since(start)
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM eventcore_events").Scan(&res.Events); err != nil {
		return res, err
	}
	if res.Diff, err = oracle.CompareTable(ctx, h.SourceURL, target, table, at); err != nil {
		return res, err
	}
	log.Info("restore verified", "restore", name, "events", res.Events, "ok", res.Diff.Empty())
	return res, nil
}

// killLeader kill -9s whichever archiver leads and returns how long the
// other took to take over.
func killLeader(ctx context.Context, log *slog.Logger, archivers []*harness.Proc) (time.Duration, error) {
	leader := -1
	for i, a := range archivers {
		if v, err := a.Metric(ctx, "tidemark_archiver_is_leader"); err == nil && v == 1 {
			leader = i
		}
	}
	if leader < 0 {
		return 0, errors.New("no archiver reports tidemark_archiver_is_leader 1")
	}
	standby := archivers[1-leader]
	log.Info("kill -9 the active archiver", "name", archivers[leader].Name, "pid", archivers[leader].PID())
	start := time.Now()
	if err := archivers[leader].Signal(syscall.SIGKILL); err != nil {
		return 0, err
	}
	for {
		if v, err := standby.Metric(ctx, "tidemark_archiver_is_leader"); err == nil && v == 1 {
			d := time.Since(start)
			log.Info("standby took over", "name", standby.Name, "after", d.Round(time.Millisecond))
			return d, nil
		}
		if time.Since(start) > time.Minute {
			return 0, fmt.Errorf("standby %s did not take over within a minute:\n%s", standby.Name, standby.LogTail(20))
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

func waitReady(ctx context.Context, p *harness.Proc) error {
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return p.WaitReady(rctx)
}

func lastCommitTime(ctx context.Context, url string) (time.Time, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close(ctx)
	var t time.Time
	err = conn.QueryRow(ctx, "SELECT max(pg_xact_commit_timestamp(xmin)) FROM eventcore_events").Scan(&t)
	return t, err
}

func waitWatermark(ctx context.Context, s objstore.Store, until time.Time, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		cat, err := catalog.Load(ctx, s)
		if err == nil && !cat.Watermark().CommitTime.Before(until) {
			return nil
		}
		if time.Now().After(deadline) {
			wm := catalog.Watermark{}
			if cat != nil {
				wm = cat.Watermark()
			}
			return fmt.Errorf("archive watermark %s did not reach %s within %s (last error: %v)", wm.CommitTime.Format(time.RFC3339Nano), until.Format(time.RFC3339Nano), timeout, err)
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
}

func countRows(ctx context.Context, url string) (int64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, "SELECT count(*) FROM eventcore_events").Scan(&n)
	return n, err
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// Print writes the human summary.
func (s *Summary) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nTidemark demo summary")
	fmt.Fprintf(tw, "events committed in the source\t%d (the generator counted %d; commits in flight when its deadline struck are not counted by it)\n", s.SourceEvents, s.EventsWritten)
	fmt.Fprintf(tw, "events captured (published to JetStream)\t%.0f\n", s.EventsCaptured)
	fmt.Fprintf(tw, "capture lag at the end\t%.3f s\n", s.CaptureLag)
	fmt.Fprintf(tw, "archive RPO (commit → durable segment)\tp50 %s, p99 %s, max %s (the tail includes the fail-over)\n", s.Archive.RPOP50.Round(time.Millisecond), s.Archive.RPOP99.Round(time.Millisecond), s.Archive.RPOMax.Round(time.Millisecond))
	fmt.Fprintf(tw, "segments written\t%d (%d events, %d raw bytes → %d stored, ratio %.1f×)\n", s.Archive.Segments, s.Archive.Events, s.Archive.RawBytes, s.Archive.StoredBytes, s.Archive.CompressionRatio())
	fmt.Fprintf(tw, "archiver fail-over (kill -9 → standby leads)\t%s\n", s.Failover.Round(time.Millisecond))
	for _, r := range s.Restores {
		verdict := "OK"
		if !r.Diff.Empty() {
			verdict = "FAILED: " + r.Diff.String()
		}
		rate := float64(r.Events) / r.Duration.Seconds()
		fmt.Fprintf(tw, "restore to %s (%s)\t%d events in %s (%.0f events/s), verification %s\n", r.Name, r.To, r.Events, r.Duration.Round(time.Millisecond), rate, verdict)
	}
	tw.Flush()
}
