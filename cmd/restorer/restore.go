package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/restore"
)

// restoreFlags are restore's own flags.
type restoreFlags struct {
	target, to, tz, table, targetTable string
	createTable, intoExisting          bool
	streams, prefixes, types           []string
	output, format, tempDir            string
	dryRun, noVerify, includeDiverged  bool
	parallel, batchRows                int
	maxSegmentBytes                    int64
	progressInterval                   time.Duration
	fallbacks                          []string
}

func (a *app) restoreCmd() *cobra.Command {
	f := &restoreFlags{}
	cmd := &cobra.Command{
		Use:   "restore --store URL --target PGURL --to T",
		Short: "Restore the archived table as it was at instant T",
		Long: `Restore the archived table into a PostgreSQL database (or a JSON-lines file) holding
exactly the source transactions whose commit time is at or before T, whole,
with every column byte for byte.

T is RFC 3339 ("2026-11-25T10:15:30Z", "2026-11-25T11:15:30.25+01:00"),
"2026-11-25 10:15:30[.ffffff]" (UTC unless --tz), relative ("10m ago", "-90s"),
or "latest" (the archive's watermark). The resolved instant is printed in UTC
before any work starts.

The target table must exist and be empty (create it with the application's
migrations, triggers included) or be created with --create-table. A killed
restore is resumed by running the same command again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runRestore(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.target, "target", "", "target database URL (postgres://user@host:port/db)")
	fl.StringVar(&f.to, "to", "", `target instant T (RFC 3339, "YYYY-MM-DD HH:MM:SS[.ffffff]", "10m ago", "-90s", "latest")`)
	fl.StringVar(&f.tz, "tz", "UTC", `time zone for --to values without an offset (IANA name, e.g. "Europe/Berlin")`)
	fl.StringVar(&f.table, "table", "", "archived table to restore (schema.name); default: the archive's only table")
	fl.StringVar(&f.targetTable, "target-table", "", "restore into this table (schema.name or name) instead of the archived name")
	fl.BoolVar(&f.createTable, "create-table", false, "create the table from the archived column definitions if it does not exist")
	fl.BoolVar(&f.intoExisting, "into-existing", false, "insert only the selected events missing from a non-empty table (idempotent)")
	fl.StringArrayVar(&f.streams, "stream", nil, "restore only this stream id (repeatable)")
	fl.StringArrayVar(&f.prefixes, "stream-prefix", nil, "restore only streams whose id starts with this prefix (repeatable)")
	fl.StringArrayVar(&f.types, "event-type", nil, "restore only events of this type (repeatable)")
	fl.StringVar(&f.output, "output", "", `write the events to this file instead of a database ("-" for stdout)`)
	fl.StringVar(&f.format, "format", "jsonl", "file format for --output: jsonl")
	fl.BoolVar(&f.includeDiverged, "include-diverged", false, "also restore the archived transactions a resync after a failover found diverged (not on the new primary), for forensics")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan (segments, bytes, events, resolved T, window) and touch nothing")
	fl.BoolVar(&f.noVerify, "no-verify", false, "skip the verification after the load")
	fl.IntVar(&f.parallel, "parallel", restore.DefaultParallel, "segments downloaded ahead at once, into temporary files (memory does not depend on it)")
	fl.StringVar(&f.tempDir, "temp-dir", "", "directory for downloaded segments while they are read (default: the system's; needs room for --parallel + 1 segments)")
	fl.IntVar(&f.batchRows, "batch-rows", restore.DefaultBatchRows, "rows per committed COPY batch")
	fl.Int64Var(&f.maxSegmentBytes, "max-segment-bytes", restore.DefaultMaxSegmentBytes, "refuse segments larger than this (stored bytes)")
	fl.DurationVar(&f.progressInterval, "progress-interval", 30*time.Second, "without a terminal, log a status line this often")
	fl.StringSliceVar(&f.fallbacks, "fallback-store", nil, "a copy of the archive (archiver copy) to read a segment from when --store lacks it or holds it damaged; repeat for more, tried in order")
	return cmd
}

func (a *app) runRestore(ctx context.Context, f *restoreFlags) error {
	events := a.stdout
	if f.output == "-" {
		// the events own stdout; messages move to stderr
		a.stdout = a.stderr
	}
	spec, err := parseTo(f.to, f.tz)
	if err != nil {
		return err
	}
	if err := f.check(a); err != nil {
		return err
	}
	printTarget := func(t time.Time) {
		a.emit("target", struct {
			Input  string    `json:"input"`
			Target time.Time `json:"target_time"`
		}{f.to, t}, func(w io.Writer) {
			fmt.Fprintf(w, "Target time: %s (UTC)\n", restore.FormatTime(t))
		})
	}
	if !spec.Latest {
		printTarget(spec.Time) // before any work; "latest" needs the catalog first
	}
	arc, err := a.openWithFallbacks(ctx, f.fallbacks)
	if err != nil {
		return err
	}
	t := spec.Resolve(arc.Window().Watermark)
	if spec.Latest {
		printTarget(t)
	}
	plan, err := arc.Plan(t, f.table)
	if err != nil {
		return err
	}
	a.emit("plan", plan, func(w io.Writer) { printPlan(w, plan) })
	if f.dryRun {
		cold, err := restore.ColdObjects(ctx, arc, plan.Segments)
		if err != nil {
			return err
		}
		rec := thawRecord{Objects: cold, Pending: len(cold)}
		if len(cold) > 0 {
			rec.Command = a.thawCommand(f.fallbacks, t)
		}
		a.emit("thaw", rec, func(w io.Writer) { printThaw(w, rec) })
		return nil
	}
	opts := restore.Options{
		TargetURL: f.target, TargetTable: f.targetTable, CreateTable: f.createTable, IntoExisting: f.intoExisting,
		Filter:          restore.Filter{Streams: f.streams, StreamPrefixes: f.prefixes, EventTypes: f.types},
		IncludeDiverged: f.includeDiverged,
		Parallel:        f.parallel, TempDir: f.tempDir, BatchRows: f.batchRows, NoVerify: f.noVerify, MaxSegmentBytes: f.maxSegmentBytes,
		Progress: &restore.Progress{},
	}
	var out *outputFile
	if f.output != "" {
		opts.TargetURL = ""
		if out, err = openOutput(f.output, events); err != nil {
			return err
		}
		defer out.abort()
		opts.Output = out.w
	}
	stopProgress := a.showProgress(ctx, opts.Progress, f.progressInterval)
	res, err := restore.Restore(ctx, plan, opts)
	stopProgress()
	if err == nil && out != nil {
		err = out.commit()
	}
	if res != nil {
		a.emit("result", res, func(w io.Writer) { printResult(w, res) })
	}
	return err
}

// check rejects contradictory flags before anything is opened.
func (f *restoreFlags) check(a *app) error {
	switch {
	case f.output == "" && f.target == "" && !f.dryRun:
		return cli.Usage(errors.New("no restore target"), "pass --target PGURL (or --output FILE)")
	case f.output != "" && f.target != "":
		return cli.Usage(errors.New("--target and --output both set"), "restore to a database or to a file, not both")
	case f.output != "" && f.format != "jsonl":
		return cli.Usage(fmt.Errorf("unknown --format %q", f.format), "use --format jsonl")
	case f.output == "-" && a.jsonOut:
		return cli.Usage(errors.New("--output - and --json both write to stdout"), "write the events to a file")
	case f.parallel < 1 || f.batchRows < 1:
		return cli.Usage(errors.New("--parallel and --batch-rows must be at least 1"), "restorer restore --help")
	case f.progressInterval <= 0:
		return cli.Usage(errors.New("--progress-interval must be positive"), "e.g. --progress-interval 30s")
	}
	return nil
}

// parseTo parses --to in the --tz zone.
func parseTo(to, tz string) (restore.TimeSpec, error) {
	if to == "" {
		return restore.TimeSpec{}, cli.Usage(errors.New("--to is required"), "e.g. --to latest, --to '2026-11-25 10:15:30', --to '10m ago'")
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return restore.TimeSpec{}, cli.Usage(fmt.Errorf("unknown --tz %q", tz), `use an IANA zone name such as "UTC" or "Europe/Berlin"`)
	}
	spec, err := restore.ParseTime(to, time.Now(), loc)
	if err != nil {
		return restore.TimeSpec{}, cli.Usage(fmt.Errorf("cannot read --to %q as a time", to), "use "+restore.TimeFormatsHelp)
	}
	return spec, nil
}

// outputFile writes --output atomically: a temporary file renamed into
// place when the restore succeeded, removed otherwise.
type outputFile struct {
	w         io.Writer
	f         *os.File
	tmp, path string
	done      bool
}

func openOutput(path string, stdout io.Writer) (*outputFile, error) {
	if path == "-" {
		return &outputFile{w: stdout, done: true}, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return nil, cli.Usage(fmt.Errorf("create --output %s: %w", path, err), "choose a writable path")
	}
	return &outputFile{w: f, f: f, tmp: f.Name(), path: path}, nil
}

func (o *outputFile) commit() error {
	if o.done {
		return nil
	}
	o.done = true
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	if err := o.f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	if err := os.Rename(o.tmp, o.path); err != nil {
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	return nil
}

func (o *outputFile) abort() {
	if o.done {
		return
	}
	o.done = true
	o.f.Close()
	os.Remove(o.tmp)
}
