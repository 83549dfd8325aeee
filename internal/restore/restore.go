package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Defaults for Options.
const (
	// DefaultParallel is how many segments download and decode at once.
	DefaultParallel = 4
	// DefaultBatchRows is how many rows one COPY transaction carries.
	DefaultBatchRows = 50_000
)

// Options configures Restore.
type Options struct {
	// TargetURL is the target database's connection URL. Exactly one of
	// TargetURL and Output is set.
	TargetURL string
	// TargetTable names the table to restore into, "schema.name" or "name"
	// (schema from the archive); "" uses the archived name.
	TargetTable string
	// CreateTable creates the table from the archived column definitions
	// (with its primary key) when it does not exist.
	CreateTable bool
	// IntoExisting inserts only the selected events missing from a
	// non-empty table, idempotently, leaving every other row alone.
	IntoExisting bool
	// Filter restricts the restore to some streams or event types.
	Filter Filter
	// IncludeDiverged also restores the archived transactions a resync
	// after a failover found diverged (committed by the old primary after
	// the new primary's timeline forked; see catalog.Diverged), for
	// forensics. By default they are left out.
	IncludeDiverged bool
	// Output, when set, receives the events as JSON lines instead of a database.
	Output io.Writer
	// Parallel is how many segments download concurrently (default
	// DefaultParallel); it also bounds the downloaded segments waiting in
	// temporary files. Memory does not depend on it nor on segment sizes.
	Parallel int
	// TempDir holds the downloaded segments while they are read ("" =
	// os.TempDir()); it needs room for Parallel+1 of the largest segments.
	TempDir string
	// BatchRows is the number of rows per committed COPY batch (default
	// DefaultBatchRows); a batch ends on a transaction boundary.
	BatchRows int
	// NoVerify skips the verification after the load.
	NoVerify bool
	// MaxSegmentBytes bounds one segment's stored size (default DefaultMaxSegmentBytes).
	MaxSegmentBytes int64
	// Progress, when set, is updated as the restore runs.
	Progress *Progress
	// AfterBatch, when set, is called after each committed batch with the
	// batch number (from 1) and the rows written so far in this run. A
	// non-nil error stops the restore (tests use it to interrupt).
	AfterBatch func(batch int, events int64) error
}

// Result describes a finished restore. Its JSON form is part of the
// restorer's --json contract (docs/restore.md): fields are only ever added.
type Result struct {
	// Table is the restored table (target name), or "" for a file.
	Table string `json:"table"`
	// Target is the instant restored to.
	Target time.Time `json:"target_time"`
	// Events is the number of events the target holds from this restore
	// (for IntoExisting: the selected events now present).
	Events int64 `json:"events"`
	// EventsThisRun is what this run wrote (less than Events when resumed;
	// for IntoExisting, the rows inserted).
	EventsThisRun int64 `json:"events_this_run"`
	// EventsAlreadyPresent counts selected events IntoExisting found in place.
	EventsAlreadyPresent int64 `json:"events_already_present,omitempty"`
	// Streams is the number of distinct streams restored (0 when unknown).
	Streams int64 `json:"streams"`
	// Segments is the number of segments downloaded.
	Segments int `json:"segments"`
	// Replans counts how often the restore planned again because planned
	// segment objects had been deleted (garbage collection after merges).
	Replans int `json:"replans,omitempty"`
	// FromFallback counts segments read from a fallback store
	// (Archive.Fallbacks) because the archive's store lacked them or held
	// them damaged.
	FromFallback int64 `json:"segments_from_fallback,omitempty"`
	// Bytes is the stored bytes downloaded.
	Bytes int64 `json:"bytes"`
	// Batches is the number of committed batches in this run.
	Batches int `json:"batches"`
	// Resumed is true when this run continued an interrupted restore.
	Resumed bool `json:"resumed"`
	// Empty is true when the target time precedes the archive's first event.
	Empty bool `json:"empty"`
	// CreatedTable is true when the table was created from the archive.
	CreatedTable bool `json:"created_table"`
	// TriggerBypass says how triggers were kept off restored rows:
	// "none", "session_replication_role" or "disable_trigger".
	TriggerBypass string `json:"trigger_bypass,omitempty"`
	// Duration is the wall time of the restore.
	Duration time.Duration `json:"duration_ns"`
	// EventsPerSecond is EventsThisRun over Duration.
	EventsPerSecond float64 `json:"events_per_second"`
	// Verification is the post-load check (Status "skipped" with NoVerify).
	Verification *Verification `json:"verification"`
	// Notes are remarks for the operator.
	Notes []string `json:"notes,omitempty"`
}

// Restore restores the plan's table to the plan's instant into a database
// (Options.TargetURL) or a JSON-lines stream (Options.Output). A failure of
// the post-load verification returns the Result together with an ErrVerify
// error.
func Restore(ctx context.Context, p *Plan, opts Options) (*Result, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	start := time.Now()
	var res *Result
	var err error
	if opts.Output != nil {
		res, err = restoreToFile(ctx, p, &opts)
	} else {
		res, err = restoreToDB(ctx, p, &opts)
	}
	if res != nil {
		res.Target = p.Target
		res.Duration = time.Since(start)
		if s := res.Duration.Seconds(); s > 0 {
			res.EventsPerSecond = float64(res.EventsThisRun) / s
		}
		if res.Empty {
			res.Notes = append(res.Notes, fmt.Sprintf("the target time %s is before the archive's first event (%s): nothing to restore",
				FormatTime(p.Target), firstOf(p.Window)))
		}
	}
	opts.Progress.setPhase("done")
	return res, err
}

func firstOf(w Window) string {
	if w.Empty {
		return "none yet"
	}
	return FormatTime(w.First)
}

func (o *Options) normalize() error {
	if o.Progress == nil {
		o.Progress = &Progress{}
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.BatchRows <= 0 {
		o.BatchRows = DefaultBatchRows
	}
	switch {
	case o.Output != nil && o.TargetURL != "":
		return failf(ErrUsage, "pass either --target or --output", "a restore goes to a database or to a file, not both")
	case o.Output == nil && o.TargetURL == "":
		return failf(ErrUsage, "pass --target PGURL (or --output FILE)", "no restore target")
	case o.Output != nil && (o.IntoExisting || o.CreateTable || o.TargetTable != ""):
		return failf(ErrUsage, "drop --into-existing, --create-table and --target-table with --output", "database options given for a file restore")
	}
	return nil
}

// isInterrupted reports whether err comes from cancellation.
func isInterrupted(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
