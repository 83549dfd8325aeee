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
	"github.com/tidemark/tidemark/internal/testing/bench"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// envPrefix prefixes every flag's environment variable (BENCH_EVENTS).
const envPrefix = "BENCH_"

// options are bench's flags.
type options struct {
	events       int
	streams      int
	rate         float64
	steady       time.Duration
	store        string
	dir          string
	keep         bool
	skipMicro    bool
	doc          string
	logLevel     string
	docRequested bool
}

func newRootCmd() *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure capture, archiver and restorer against same-run baselines",
		Long: `bench loads an EventCore-style backlog into a fresh rig (PostgreSQL 15, NATS
JetStream, object store), then measures capture, the archiver and the restorer on it
next to pg_recvlogical and plain COPY on the same data, and a steady workload for
latency and RPO. It prints a table of ratios and, for runs of at least 1,000,000
events (or with --doc), records it in docs/benchmarks.md.

Every flag can be set from the environment as BENCH_<FLAG> (BENCH_EVENTS=200000).`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.ApplyConfig(cmd, envPrefix, nil); err != nil {
				return err
			}
			o.docRequested = cmd.Flags().Changed("doc")
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	cli.AddConfigFlag(cmd)
	cmd.AddCommand(newProfileCmd(), newAgeCmd())
	f := cmd.Flags()
	f.IntVar(&o.events, "events", 1_000_000, "events in the backlog")
	f.IntVar(&o.streams, "streams", 10_000, "streams the events spread over")
	f.Float64Var(&o.rate, "rate", 5000, "events per second of the steady workload (latency, RPO)")
	f.DurationVar(&o.steady, "steady", 30*time.Second, "duration of the steady workload")
	f.StringVar(&o.store, "store", "file", "archive store: file (a directory) or s3 (versitygw)")
	f.StringVar(&o.dir, "dir", "", "working directory (default: a temporary directory, removed afterwards)")
	f.BoolVar(&o.keep, "keep", false, "keep the working directory (logs, data) after the run")
	f.BoolVar(&o.skipMicro, "skip-micro", false, "skip the machine-limit micro-benchmarks (JetStream publish, zstd)")
	f.StringVar(&o.doc, "doc", "docs/benchmarks.md", "file to record the results in (relative to the module root; empty: none)")
	f.StringVar(&o.logLevel, "log-level", "info", "progress log level: debug, info, warn, error")
	return cmd
}

func run(ctx context.Context, stdout, stderr io.Writer, o *options) error {
	log, err := cli.NewLogger(stderr, o.logLevel, "text")
	if err != nil {
		return err
	}
	if o.store != "file" && o.store != "s3" {
		return cli.Usage(fmt.Errorf("unknown store %q", o.store), "use --store file or --store s3")
	}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "tidemark-bench-"); err != nil {
			return fmt.Errorf("create working directory: %w", err)
		}
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	}
	log.Info("bench starting", "events", o.events, "streams", o.streams, "steady_rate", o.rate,
		"steady", o.steady.String(), "store", o.store, "dir", dir)
	res, err := bench.Run(ctx, bench.Config{
		Dir: dir, Events: o.events, Streams: o.streams, SteadyRate: o.rate, SteadyDuration: o.steady,
		Store: o.store, SkipMicro: o.skipMicro,
		Progress: func(msg string, args ...any) { log.Info(msg, args...) },
	})
	if err != nil {
		if res != nil {
			fmt.Fprintln(stdout, "partial results:")
			fmt.Fprint(stdout, bench.Table(res.Rows()))
		}
		return cli.WithCode(cli.ExitFailure, err, "rerun with --keep --dir DIR and read the logs in DIR")
	}
	m := readMachine()
	command := commandLine()
	fmt.Fprintf(stdout, "\nTidemark benchmark — %s — %s\n%s\n\n", res.Finished.UTC().Format(time.RFC3339), m, command)
	fmt.Fprint(stdout, bench.Table(res.Rows()))
	fmt.Fprint(stdout, "\nCPU used per phase, in cores (CPU seconds ÷ wall seconds); other = the rest of the machine:\n\n")
	fmt.Fprint(stdout, bench.CPUTable(res.CPU))
	if o.doc == "" || (o.events < 1_000_000 && !o.docRequested) {
		return nil
	}
	path := o.doc
	if !filepath.IsAbs(path) {
		root := testrig.ModuleRoot()
		if root == "" {
			return errors.New("module root not found: pass an absolute --doc path")
		}
		path = filepath.Join(root, path)
	}
	if err := writeDoc(path, res, m, command); err != nil {
		return err
	}
	log.Info("results recorded", "file", path)
	return nil
}
