package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/feed"
)

func newStatusCmd(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the consumer backlog, the catalog's watermark and the archive's lag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			store, err := g.openStore(ctx)
			if err != nil {
				return err
			}
			deps := archive.Deps{Store: store}
			nc, js, natsErr := g.connect("tidemark-archiver-status", nil)
			if natsErr == nil {
				defer nc.Close()
				deps.JetStream = js
			}
			cfg := archive.Config{Stream: g.stream, Consumer: g.consumer, Subjects: feed.Subjects{Prefix: g.prefix}}
			rep, err := archive.Inspect(ctx, cfg, deps)
			if err != nil {
				return storeFailure(err, "check --store and --nats-url")
			}
			if natsErr != nil {
				rep.Errors = append(rep.Errors, natsErr.Error())
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printReport(cmd.OutOrStdout(), rep)
			}
			if len(rep.Errors) > 0 {
				return cli.WithCode(cli.ExitFailure, fmt.Errorf("status incomplete: %d part(s) could not be read", len(rep.Errors)),
					"check --store, --nats-url and the credentials")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printReport(w io.Writer, r *archive.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	if r.ConsumerFound {
		row("consumer", fmt.Sprintf("%s on %s", r.Consumer, r.Stream))
		row("pending", r.ConsumerPending)
		row("ack pending", r.ConsumerAckPending)
	} else {
		row("consumer", fmt.Sprintf("%s on %s (not found)", r.Consumer, r.Stream))
	}
	switch {
	case r.Leader == "":
		row("leader", "- (no archiver has led yet)")
	case r.LeaseLive:
		row("leader", fmt.Sprintf("%s (epoch %d, lease until %s)", r.Leader, r.LeaderEpoch, fmtTime(r.LeaseExpires)))
	default:
		row("leader", fmt.Sprintf("none: %s's lease (epoch %d) lapsed at %s", r.Leader, r.LeaderEpoch, fmtTime(r.LeaseExpires)))
	}
	row("watermark", fmt.Sprintf("%s at %s", r.Watermark.LSN, fmtTime(r.Watermark.CommitTime)))
	if r.MetaFound {
		row("published watermark", fmt.Sprintf("%s (catalog seq %d, updated %s)", r.MetaWatermark.LSN, r.MetaWatermark.CatalogSeq, fmtTime(r.MetaWatermark.UpdatedAt)))
	}
	row("lag", r.Lag.Round(time.Millisecond))
	row("catalog entries", r.CatalogEntries)
	row("segments", r.Segments)
	row("last segment", orNone(r.LastSegment))
	row("last archived commit", fmtTime(r.LastArchivedCommitTime))
	if r.LastWriter != "" {
		row("last writer", fmt.Sprintf("%s at %s", r.LastWriter, fmtTime(r.LastWritten)))
	}
	for _, e := range r.Errors {
		row("error", e)
	}
	tw.Flush()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
