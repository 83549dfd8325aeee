package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/testing/demo"
)

func main() { os.Exit(cli.Execute(newRootCmd())) }

func newRootCmd() *cobra.Command {
	var opts demo.Options
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole Tidemark pipeline on local servers and verify two point-in-time restores",
		Args:  cobra.NoArgs,
		PersistentPreRunE: func(c *cobra.Command, _ []string) error {
			return cli.ApplyConfig(c, "DEMO_", nil)
		},
		RunE: func(c *cobra.Command, _ []string) error {
			logger, err := cli.NewLogger(os.Stderr, "info", "text")
			if err != nil {
				return err
			}
			opts.Logger = logger
			if opts.Dir == "" {
				if opts.Dir, err = os.MkdirTemp("", "tidemark-demo-"); err != nil {
					return err
				}
				if !keep {
					defer os.RemoveAll(opts.Dir)
				}
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			defer cancel()
			sum, err := demo.Run(ctx, opts)
			if sum != nil {
				sum.Print(c.OutOrStdout())
			}
			if err != nil {
				return err
			}
			if !sum.OK() {
				return cli.WithCode(cli.ExitVerify, fmt.Errorf("a restore did not match the source"), "see the restore lines above and the logs in "+opts.Dir)
			}
			fmt.Fprintln(c.OutOrStdout(), "\nall restores verified against the source: OK")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Store, "store", "file", "object store: file (a local directory) or s3 (the rig's S3 server); env DEMO_STORE")
	f.StringVar(&opts.Dir, "dir", "", "working directory (default: a temporary directory, removed afterwards)")
	f.BoolVar(&keep, "keep", false, "keep the working directory (logs, archive) after the run")
	f.DurationVar(&opts.Phase, "phase", 25*time.Second, "length of each of the two load phases")
	f.DurationVar(&opts.Pause, "pause", 6*time.Second, "idle pause between the load phases")
	f.IntVar(&opts.Rate, "rate", 3000, "target events per second")
	return cmd
}
