package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/tidemark/tidemark/internal/cdc"
	"github.com/tidemark/tidemark/internal/cli"
)

func newRunCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Capture continuously (the default command)",
		Long: `run checks the source, creates or updates the publication, the stream and the
META bucket, creates the slot on first start (publishing the existing rows as a
snapshot), then streams until SIGTERM or SIGINT: it stops reading, waits for
in-flight publishes, sends a final status update and exits 0.

A second capture pointed at the same slot waits ("slot active for PID N,
retrying", or "another capture is publishing the initial snapshot" while the
first one publishes it) and takes over when the first one stops.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCapture(cmd.Context(), cmd, o) },
	}
}

func runCapture(ctx context.Context, cmd *cobra.Command, o *options) error {
	log, err := o.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	cfg, err := o.config(log)
	if err != nil {
		return err
	}
	c, err := cdc.New(cfg)
	if err != nil {
		return cli.Usage(err, "capture --help")
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error {
		// A signal cancels ctx; capture then drains and returns nil.
		stop := context.AfterFunc(ctx, cancel)
		defer stop()
		err := c.Run(gctx)
		cancel()
		return err
	})
	g.Go(func() error {
		ops := &cli.Ops{Addr: o.http, Ready: c.Ready, Logger: log}
		return ops.Run(gctx)
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return cliError(err)
}
