package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/restore"
)

func (a *app) verifyCmd() *cobra.Command {
	var against, table, primary string
	var parallel int
	var sample float64
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "verify --store URL [--against PGURL]",
		Short: "Check every segment, the catalog chain, event structure and stream continuity; optionally completeness against the source",
		Long: `Check the archive: every segment's checksum and (if encrypted) that it decrypts; the
catalog's hash chain; every event's structure; per-stream version continuity
across the archive and no event id twice; chain gaps. With --against, also
completeness against the live source: every source event committed at or before
the watermark is in the archive, and nothing else is.

Every segment object is read once, --parallel at a time, each read retried when
cut short in transit. With --sample SHARE (0 < SHARE < 1) only that share of the
segments, chosen at random, is read, and the checks across segments are skipped.

Prints OK, WARNING or FAILURE; exits 0 for OK only, 4 for WARNING, 3 for FAILURE
(docs/exit-codes.md), so a scheduler that alerts on the exit code hears of both.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sample < 0 || sample > 1 {
				return cli.Usage(fmt.Errorf("--sample %v is outside 0…1", sample), "e.g. --sample 0.1 reads a tenth of the segments; 0 or 1 reads all")
			}
			return a.runVerify(cmd.Context(), restore.VerifyOptions{AgainstURL: against, Table: table, Parallel: parallel, Sample: sample}, interval, primary)
		},
	}
	cmd.Flags().StringVar(&against, "against", "", "live source database URL to check completeness against")
	cmd.Flags().StringVar(&table, "table", "", "archived table to compare (schema.name); default: the archive's only table")
	cmd.Flags().StringVar(&primary, "primary", "", "the archive --store is a copy of (archiver copy): also check that the copy's chain head is the primary's")
	cmd.Flags().IntVar(&parallel, "parallel", restore.DefaultParallel, "segments downloaded and checked at once")
	cmd.Flags().Float64Var(&sample, "sample", 0, "read only this share (0…1) of the segments, chosen at random; 0 reads all")
	cmd.Flags().DurationVar(&interval, "progress-interval", 30*time.Second, "without a terminal, log a status line this often")
	return cmd
}

func (a *app) runVerify(ctx context.Context, opts restore.VerifyOptions, interval time.Duration, primary string) error {
	if interval <= 0 {
		return cli.Usage(fmt.Errorf("--progress-interval must be positive"), "e.g. --progress-interval 30s")
	}
	policy, primaryURL, err := a.applyStores(nil)
	if err != nil {
		return err
	}
	if primary == "" && primaryURL != a.storeURL {
		primary = primaryURL
	}
	st, kr, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	opts.Keyring = kr
	opts.Progress = &restore.Progress{}
	stop := a.showProgress(ctx, opts.Progress, interval)
	rep, err := restore.Verify(ctx, st, opts)
	stop()
	if err != nil {
		return err
	}
	if primary != "" {
		pst, err := a.openOther(ctx, "--primary", primary)
		if err != nil {
			return err
		}
		if rep.Copy, err = restore.CompareCopy(ctx, st, pst, rep); err != nil {
			return err
		}
	}
	if policy != nil && policy.Lock.Mode != "" {
		if rep.Locks, err = restore.CheckLocks(ctx, st, policy, rep); err != nil {
			return err
		}
	}
	a.emit("verify", rep, func(w io.Writer) { printReport(w, rep) })
	if rep.Status == restore.StatusFailure {
		return cli.WithCode(cli.ExitVerify, fmt.Errorf("archive verification found %d problems", len(rep.Problems)),
			"restore to an instant before the first damaged segment, or recover the named objects")
	}
	if rep.Status == restore.StatusWarning {
		return cli.WithCode(cli.ExitWarning, fmt.Errorf("archive verification found %d warnings", len(rep.Problems)),
			"read the warnings above: each names its object or stream; record an accepted one with `archiver catalog known-gap`")
	}
	return nil
}
