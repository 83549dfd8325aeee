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
	var against, table string
	var parallel int
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "verify --store URL [--against PGURL]",
		Short: "Check every segment, the catalog chain, event structure and stream continuity; optionally completeness against the source",
		Long: `Check the archive: every segment's checksum and (if encrypted) that it decrypts; the
catalog's hash chain; every event's structure; per-stream version continuity
across the archive and no event id twice; chain gaps. With --against, also
completeness against the live source: every source event committed at or before
the watermark is in the archive, and nothing else is.

Prints OK, WARNING or FAILURE; exits 0 for OK and WARNING, 3 for FAILURE.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runVerify(cmd.Context(), restore.VerifyOptions{AgainstURL: against, Table: table, Parallel: parallel}, interval)
		},
	}
	cmd.Flags().StringVar(&against, "against", "", "live source database URL to check completeness against")
	cmd.Flags().StringVar(&table, "table", "", "archived table to compare (schema.name); default: the archive's only table")
	cmd.Flags().IntVar(&parallel, "parallel", restore.DefaultParallel, "segments downloaded and checked at once")
	cmd.Flags().DurationVar(&interval, "progress-interval", 30*time.Second, "without a terminal, log a status line this often")
	return cmd
}

func (a *app) runVerify(ctx context.Context, opts restore.VerifyOptions, interval time.Duration) error {
	if interval <= 0 {
		return cli.Usage(fmt.Errorf("--progress-interval must be positive"), "e.g. --progress-interval 30s")
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
	a.emit("verify", rep, func(w io.Writer) { printReport(w, rep) })
	if rep.Status == restore.StatusFailure {
		return cli.WithCode(cli.ExitVerify, fmt.Errorf("archive verification found %d problems", len(rep.Problems)),
			"restore to an instant before the first damaged segment, or recover the named objects")
	}
	return nil
}
