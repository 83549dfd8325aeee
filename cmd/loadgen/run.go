package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
)

type runFlags struct {
	pg          string
	cfg         loadgen.Config
	json        bool
	applySchema bool
}

func newRootCommand() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "loadgen",
		Short: "Write an EventCore-style workload into a PostgreSQL event store",
		Long: `loadgen writes events the way EventCore does: each command is one transaction
appending 1-10 events to 1-3 streams under optimistic concurrency
(eventcore.expected_versions), retried on version conflicts.

It stops after --events events or --duration, whichever comes first, or on
SIGINT/SIGTERM, and prints a summary (JSON with --json).`,
		Example: `  loadgen --pg postgres://postgres@127.0.0.1:5432/app --apply-schema --events 100000 --writers 8
  loadgen --pg $PG --rate 500 --duration 5m --json
  loadgen hard huge --pg $PG --rows 1000000`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWorkload(cmd.Context(), cmd.OutOrStdout(), f)
		},
	}
	cmd.CompletionOptions.DisableDefaultCmd = true
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	fl := cmd.Flags()
	fl.StringVar(&f.pg, "pg", "", "PostgreSQL URL of the eventcore store (required)")
	fl.IntVar(&f.cfg.Writers, "writers", 4, "concurrent writers (connections)")
	fl.Float64Var(&f.cfg.Rate, "rate", 0, "total events per second (0 = flat out)")
	fl.Int64Var(&f.cfg.Events, "events", 0, "stop after this many events (0 = no limit)")
	fl.DurationVar(&f.cfg.Duration, "duration", 0, "stop after this long (0 = no limit)")
	fl.IntVar(&f.cfg.Streams, "streams", 1000, "number of distinct streams")
	fl.Uint64Var(&f.cfg.Seed, "seed", 1, "seed for streams, types and payloads")
	fl.StringVar(&f.cfg.StreamPrefix, "stream-prefix", "loadgen", "prefix of every stream id")
	fl.BoolVar(&f.json, "json", false, "print the summary as JSON")
	fl.BoolVar(&f.applySchema, "apply-schema", false, "create the eventcore schema first (idempotent)")
	cmd.AddCommand(newHardCommand())
	return cmd
}

func runWorkload(ctx context.Context, out io.Writer, f runFlags) error {
	if f.pg == "" {
		return usageError{errors.New("--pg is required")}
	}
	if f.cfg.Events == 0 && f.cfg.Duration == 0 {
		return usageError{errors.New("give --events or --duration (or both)")}
	}
	if f.applySchema {
		if err := applySchema(ctx, f.pg); err != nil {
			return err
		}
	}
	stats, err := loadgen.Run(ctx, f.pg, f.cfg)
	interrupted := err != nil && ctx.Err() != nil
	if err != nil && !interrupted {
		return err
	}
	return printSummary(out, stats, interrupted, f.json)
}

func applySchema(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return eventcore.Apply(ctx, conn)
}

type summary struct {
	Events          int64   `json:"events"`
	Transactions    int64   `json:"transactions"`
	Conflicts       int64   `json:"conflicts"`
	DurationSeconds float64 `json:"duration_seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
	Interrupted     bool    `json:"interrupted"`
}

func printSummary(out io.Writer, s loadgen.Stats, interrupted, asJSON bool) error {
	sum := summary{
		Events:          s.Events,
		Transactions:    s.Transactions,
		Conflicts:       s.Conflicts,
		DurationSeconds: s.Duration.Seconds(),
		EventsPerSecond: s.EventsPerSecond(),
		Interrupted:     interrupted,
	}
	if asJSON {
		enc := json.NewEncoder(out)
		return enc.Encode(sum)
	}
	note := ""
	if interrupted {
		note = " (interrupted)"
	}
	_, err := fmt.Fprintf(out, "wrote %d events in %d transactions (%d conflicts retried) in %s: %.0f events/s%s\n",
		sum.Events, sum.Transactions, sum.Conflicts, s.Duration.Round(time.Millisecond), sum.EventsPerSecond, note)
	return err
}
