package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/drill"
	"github.com/tidemark/tidemark/internal/restore"
)

func (a *app) drillCmd() *cobra.Command {
	var o drill.Options
	var interval time.Duration
	var httpAddr string
	var everyStore bool
	cmd := &cobra.Command{
		Use:   "drill --store URL --scratch PGURL [--source PGURL]",
		Short: "Prove the archive restores: freshness, verify, full, partial and point-in-time restores into scratch databases, with a measured RTO",
		Long: `drill runs, each step timed and checked:

  freshness  the watermark is at most --max-age old;
  verify     the archive verifies (every segment, or a --verify-sample share);
  full       a restore to the watermark into a scratch database matches the
             oracle; its wall time is the RTO (with events/s, bytes and a
             projection per GiB of archive);
  partial    a restore of --streams random streams matches the oracle;
  pitr       restores to --instants random instants match the oracle.

Scratch databases are created on the --scratch server (a maintenance database
URL, e.g. postgres://drill@restore-host/postgres) named with --prefix, and
dropped afterwards; the drill refuses a --scratch URL that is the source
database. The oracle is the live --source by commit time when reachable, else
the archive's own per-stream counts and digests (built by the full verify).

Prints a summary (--json: one "drill" record per run); exits 0 when every step
passed, 4 for warnings only, 3 naming the first failing step. With --interval
it runs until stopped, a drill per interval, serving /metrics, /livez and
/readyz on --http.

With --stores FILE --every-store it drills every store of the policy file in
turn — the primary and each copy, each read on its own (no fallback) — one
"drill" record per store; the run fails when any store's drill fails, naming
the store and step.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			o.Logger = a.log
			if everyStore {
				names, err := a.storeNames()
				if err != nil {
					return err
				}
				return a.drillStores(ctx, o, names, interval, httpAddr)
			}
			st, kr, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			o.Store, o.Keyring = st, kr
			if interval > 0 {
				return a.drillLoop(ctx, o, interval, httpAddr)
			}
			return a.drillOnce(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ScratchURL, "scratch", "", "maintenance database URL on the server where the drill creates and drops its scratch databases (required)")
	f.StringVar(&o.Prefix, "prefix", drill.DefaultPrefix, "name prefix of the scratch databases; only databases this run created are dropped")
	f.StringVar(&o.SourceURL, "source", "", "live source database URL: restores are compared with its rows by commit time")
	f.StringVar(&o.Table, "table", "", "archived table (schema.name); default: the archive's only table")
	f.DurationVar(&o.MaxAge, "max-age", drill.DefaultMaxAge, "oldest watermark the freshness step accepts")
	f.Float64Var(&o.VerifySample, "verify-sample", 0, "share (0…1) of the segments the verify step reads; 0 reads all (and builds the archive oracle)")
	f.IntVar(&o.Streams, "streams", drill.DefaultStreams, "random streams the partial step restores (negative: skip)")
	f.IntVar(&o.Instants, "instants", drill.DefaultInstants, "random instants the pitr step restores to (negative: skip)")
	f.DurationVar(&o.RTOObjective, "rto-objective", 0, "fail the drill when the RTO exceeds this (0: no objective)")
	f.IntVar(&o.Parallel, "parallel", restore.DefaultParallel, "segments downloaded at once")
	f.Uint64Var(&o.Seed, "seed", 0, "seed of the random choices, to repeat a drill (0: random)")
	f.DurationVar(&interval, "interval", 0, "run a drill every interval until stopped, serving metrics (0: once)")
	f.StringVar(&httpAddr, "http", "127.0.0.1:9466", "operations HTTP address with --interval (/livez, /readyz, /metrics)")
	f.BoolVar(&everyStore, "every-store", false, "with --stores: drill every store of the policy file (the primary and each copy) in turn")
	return cmd
}

// drillStores drills each named store of --stores in turn: once, or every
// interval (then only the last store's report feeds /readyz; every
// report feeds the metrics).
func (a *app) drillStores(ctx context.Context, o drill.Options, names []string, interval time.Duration, addr string) error {
	if interval > 0 {
		return a.drillLoopWith(ctx, o.RTOObjective, interval, addr, func(ctx context.Context, observe func(*drill.Report, error)) {
			for _, name := range names {
				so, err := a.storeOptions(ctx, o, name)
				if err != nil {
					a.log.Error("drill could not open store", "store", name, "err", err)
					continue
				}
				rep, err := drill.Run(ctx, so)
				observe(rep, err)
			}
		})
	}
	var failed, warned []string
	for _, name := range names {
		so, err := a.storeOptions(ctx, o, name)
		if err != nil {
			return err
		}
		rep, err := drill.Run(ctx, so)
		if err != nil {
			return drillError(fmt.Errorf("store %s: %w", name, err))
		}
		rep.StoreName = name
		a.emit("drill", rep, func(w io.Writer) { printDrill(w, rep) })
		switch rep.Status {
		case drill.StatusFailure:
			failed = append(failed, fmt.Sprintf("%s at step %s", name, rep.FailedStep))
		case drill.StatusWarning:
			warned = append(warned, name)
		}
	}
	switch {
	case len(failed) > 0:
		return cli.WithCode(cli.ExitVerify, fmt.Errorf("drill failed for store %s", strings.Join(failed, ", store ")),
			"run `restorer verify --stores FILE --from STORE` for that store's problems")
	case len(warned) > 0:
		return cli.WithCode(cli.ExitWarning, fmt.Errorf("drill passed with warnings for store %s", strings.Join(warned, ", ")), "read the steps marked WARNING")
	}
	return nil
}

// storeOptions returns o reading the policy file's store name alone.
func (a *app) storeOptions(ctx context.Context, o drill.Options, name string) (drill.Options, error) {
	a.from, a.storeURL = name, ""
	st, kr, err := a.openStore(ctx)
	if err != nil {
		return o, err
	}
	o.Store, o.Keyring = st, kr
	return o, nil
}

// drillOnce runs one drill and maps its result to the exit code.
func (a *app) drillOnce(ctx context.Context, o drill.Options) error {
	rep, err := drill.Run(ctx, o)
	if err != nil {
		return drillError(err)
	}
	a.emit("drill", rep, func(w io.Writer) { printDrill(w, rep) })
	switch rep.Status {
	case drill.StatusFailure:
		return cli.WithCode(cli.ExitVerify, fmt.Errorf("drill failed at step %s: %s", rep.FailedStep, stepDetail(rep, rep.FailedStep)),
			"the step's detail names what failed; run `restorer verify --store URL` for the archive's problems")
	case drill.StatusWarning:
		return cli.WithCode(cli.ExitWarning, errors.New("drill passed with warnings"), "read the steps marked WARNING")
	}
	return nil
}

// drillLoop runs a drill per interval until ctx ends, serving metrics.
// /readyz is ready once the first drill has finished.
func (a *app) drillLoop(ctx context.Context, o drill.Options, interval time.Duration, addr string) error {
	return a.drillLoopWith(ctx, o.RTOObjective, interval, addr, func(ctx context.Context, observe func(*drill.Report, error)) {
		rep, err := drill.Run(ctx, o)
		observe(rep, err)
	})
}

// drillLoopWith runs round (one drill, or one per store) every interval
// until ctx ends, serving metrics; /readyz is ready once the first round
// has finished.
func (a *app) drillLoopWith(ctx context.Context, objective, interval time.Duration, addr string,
	round func(ctx context.Context, observe func(*drill.Report, error))) error {
	var done atomic.Bool
	g, ctx := errgroup.WithContext(ctx)
	ops := &cli.Ops{Addr: addr, Logger: a.log, Ready: func() error {
		if !done.Load() {
			return errors.New("the first drill has not finished")
		}
		return nil
	}}
	g.Go(func() error { return ops.Run(ctx) })
	g.Go(func() error {
		for {
			round(ctx, func(rep *drill.Report, err error) {
				if ctx.Err() != nil {
					return
				}
				drill.Observe(rep, err, objective)
				if err != nil {
					a.log.Error("drill could not run", "err", err)
				} else {
					a.emit("drill", rep, func(w io.Writer) { printDrill(w, rep) })
				}
			})
			if ctx.Err() != nil {
				return nil
			}
			done.Store(true)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(interval):
			}
		}
	})
	return g.Wait()
}

func drillError(err error) error {
	if errors.Is(err, drill.ErrUsage) {
		return cli.Usage(err, "restorer drill --help")
	}
	return err // classified by run (no archive, credentials, …)
}

func stepDetail(rep *drill.Report, name string) string {
	for _, s := range rep.Steps {
		if s.Name == name {
			return s.Detail
		}
	}
	return ""
}

func printDrill(w io.Writer, r *drill.Report) {
	fmt.Fprintf(w, "Archive:     %s\n", r.Store)
	fmt.Fprintf(w, "Window:      %s\n", r.Window)
	fmt.Fprintf(w, "Oracle:      %s\n", r.Oracle)
	for _, s := range r.Steps {
		fmt.Fprintf(w, "%-8s %-9s %10s  %s\n", s.Status, s.Name, s.Duration.Round(time.Millisecond), oneLine(s.Detail))
	}
	if r.RTO != nil {
		fmt.Fprintf(w, "RTO:         %s (%d events, %d bytes, %.0f events/s; %.1f s per GiB of archive, %d bytes stored)",
			r.RTO.Duration.Round(time.Millisecond), r.RTO.Events, r.RTO.Bytes, r.RTO.EventsPerSecond, r.RTO.SecondsPerGiB, r.RTO.ArchiveBytes)
		if r.RTO.Objective > 0 {
			fmt.Fprintf(w, ", objective %s: %s", r.RTO.Objective, map[bool]string{true: "met", false: "NOT MET"}[r.RTO.Met])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Result:      %s", r.Status)
	if r.FailedStep != "" {
		fmt.Fprintf(w, " (failed step: %s)", r.FailedStep)
	}
	fmt.Fprintf(w, " in %s\n", r.Duration.Round(time.Millisecond))
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
