package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/monitor"
)

// newMonitorCmd is `archiver monitor`: the integrity monitor, a process of
// its own beside the archivers (it never writes, so it takes no lease and
// its source load and failures cannot touch the writer).
func newMonitorCmd(g *globalOptions) *cobra.Command {
	var o monitor.Options
	var interval time.Duration
	var httpAddr string
	var once, feedCheck bool
	cmd := &cobra.Command{
		Use:   "monitor --source PGURL [--slot NAME]",
		Short: "Sample archived events against the source and the slot against the watermark, continuously",
		Long: `monitor runs a round every --interval: it downloads one random live segment and
checks it against its catalog entry, compares up to --sample of its events, chosen
at random, with their source rows (one primary-key lookup each: same value in
every column, the row still there) and with their feed copies in JetStream
while the stream still holds them (--feed: same values and commit time, an
external value by size and SHA-256, the stream's next version on the feed is
the next one; an event the stream should hold but lacks is reported), and checks
that the replication slot's confirmed position has not passed the archive's
durable watermark. Findings a
known gap accepts (archiver catalog known-gap) are counted apart. Metrics on
--http (/metrics, /livez, /readyz); --once runs one round, prints it as JSON and
exits 3 when it found a violation.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.SourceURL == "" {
				return cli.Usage(errors.New("--source is required"), "pass a read-only source database URL")
			}
			if interval <= 0 {
				return cli.Usage(fmt.Errorf("--interval must be positive"), "e.g. --interval 1m")
			}
			ctx := cmd.Context()
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			st, err := g.openStore(ctx)
			if err != nil {
				return err
			}
			if o.Keyring, err = g.keyring(); err != nil {
				return err
			}
			o.Store, o.Logger = st, log
			if feedCheck {
				nc, js, err := g.connect("tidemark-monitor", log)
				if err != nil {
					return err
				}
				defer nc.Close()
				o.Feed = &monitor.FeedOptions{JS: js, Stream: g.stream, Subjects: feed.Subjects{Prefix: g.prefix}}
			}
			if once {
				r, err := monitor.RunOnce(ctx, o)
				if err != nil {
					return storeFailure(err, "check --store and --source")
				}
				if err := json.NewEncoder(cmd.OutOrStdout()).Encode(r); err != nil {
					return err
				}
				if r.Violations() > 0 {
					return cli.WithCode(cli.ExitVerify, fmt.Errorf("monitor found %d violations", r.Violations()), "read the findings; each names its check, object, stream and event")
				}
				return nil
			}
			m := &monitor.Monitor{Options: o, Interval: interval}
			grp, gctx := errgroup.WithContext(ctx)
			ops := &cli.Ops{Addr: httpAddr, Logger: log, Ready: func() error {
				if !m.Ready() {
					return errors.New("no round has completed yet")
				}
				return nil
			}}
			grp.Go(func() error { return ops.Run(gctx) })
			grp.Go(func() error { return m.Run(gctx) })
			return grp.Wait()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.SourceURL, "source", "", "source database URL (a read-only role: SELECT on the table and pg_replication_slots); required")
	f.StringVar(&o.Slot, "slot", "tidemark", "capture's replication slot, checked against the watermark (empty: skip)")
	f.IntVar(&o.Sample, "sample", monitor.DefaultSample, "archived events compared with the source per round (one primary-key lookup each)")
	f.IntVar(&o.Segments, "segments", 1, "random live segments sampled per round (--sample events from each)")
	f.BoolVar(&feedCheck, "feed", true, "compare sampled events with their copies in the JetStream stream (--nats-url, --stream, --subject-prefix)")
	f.DurationVar(&interval, "interval", time.Minute, "time between rounds")
	f.StringVar(&httpAddr, "http", "127.0.0.1:9467", "operations HTTP address (/livez, /readyz, /metrics); empty disables")
	f.BoolVar(&once, "once", false, "run one round, print it as JSON, exit 3 on a violation")
	return cmd
}
