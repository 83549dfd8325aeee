package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/redact"
	"github.com/tidemark/tidemark/internal/restore"
)

// thawRecord is the "thaw" record of `restore --dry-run` and `thaw`.
type thawRecord struct {
	Objects []restore.ColdObject `json:"objects"`
	// Issued counts restore requests this run made (thaw only).
	Issued int `json:"issued"`
	// Pending counts objects still thawing.
	Pending int `json:"pending"`
	// Command thaws them.
	Command string `json:"command,omitempty"`
}

func printThaw(w io.Writer, r thawRecord) {
	if len(r.Objects) == 0 {
		fmt.Fprintln(w, "Thaw: no planned segment is in a cold storage class")
		return
	}
	var wait time.Duration
	for _, o := range r.Objects {
		wait = max(wait, o.ExpectedWait)
	}
	fmt.Fprintf(w, "Thaw: %d planned segments are cold (expected wait up to %s at the Standard tier):\n", len(r.Objects), wait)
	for _, o := range r.Objects {
		fmt.Fprintf(w, "  %s  %s  %s  thaw %s\n", o.Key, o.Class, o.Store, o.State)
	}
	if r.Command != "" {
		fmt.Fprintf(w, "Thaw them with: %s\n", r.Command)
	}
}

func (a *app) thawCmd() *cobra.Command {
	var to, tz, table, tier string
	var days int
	var wait bool
	var poll time.Duration
	var fallbacks []string
	cmd := &cobra.Command{
		Use:   "thaw --store URL --to T [--wait]",
		Short: "Issue restore requests for the cold (GLACIER, DEEP_ARCHIVE) segments a restore to T needs",
		Long: `thaw plans a restore to T as restore does (the same --store, --fallback-store,
--to and --table) and issues an S3 restore request for each planned segment
that no store can serve without one, then, with --wait, polls until all are
readable, printing progress. A segment readable in any store (not cold, or
already thawed) is left alone. Run the restore afterwards.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runThaw(cmd.Context(), to, tz, table, fallbacks, restore.ThawOptions{Days: days, Tier: tier}, wait, poll)
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "the instant the restore will target")
	f.StringVar(&tz, "tz", "UTC", "time zone for --to values without an offset")
	f.StringVar(&table, "table", "", "archived table (schema.name); default: the archive's only table")
	f.StringSliceVar(&fallbacks, "fallback-store", nil, "copies of the archive, as for restore")
	f.IntVar(&days, "days", 7, "how long the thawed copies stay readable")
	f.StringVar(&tier, "tier", "Standard", "retrieval tier: Standard, Bulk or Expedited")
	f.BoolVar(&wait, "wait", false, "wait until every object is readable")
	f.DurationVar(&poll, "poll", time.Minute, "with --wait, how often to look")
	return cmd
}

func (a *app) runThaw(ctx context.Context, to, tz, table string, fallbacks []string, opts restore.ThawOptions, wait bool, poll time.Duration) error {
	if poll <= 0 {
		return cli.Usage(fmt.Errorf("--poll must be positive"), "e.g. --poll 1m")
	}
	spec, err := parseTo(to, tz)
	if err != nil {
		return err
	}
	arc, err := a.openWithFallbacks(ctx, fallbacks)
	if err != nil {
		return err
	}
	plan, err := arc.Plan(spec.Resolve(arc.Window().Watermark), table)
	if err != nil {
		return err
	}
	cold, err := restore.ColdObjects(ctx, arc, plan.Segments)
	if err != nil {
		return err
	}
	issued, err := restore.Thaw(ctx, cold, opts)
	if err != nil {
		return err
	}
	for {
		if cold, err = restore.ColdObjects(ctx, arc, plan.Segments); err != nil {
			return err
		}
		rec := thawRecord{Objects: cold, Issued: issued, Pending: len(cold)}
		a.emit("thaw", rec, func(w io.Writer) {
			fmt.Fprintf(w, "%s thaw: %d restore requests issued, %d of %d cold segments still thawing\n",
				time.Now().UTC().Format(time.RFC3339), issued, len(cold), len(plan.Segments))
		})
		if len(cold) == 0 || !wait {
			return nil
		}
		issued = 0
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// openWithFallbacks opens --store and the fallback stores (with --stores,
// the chosen store and then the file's others).
func (a *app) openWithFallbacks(ctx context.Context, fallbacks []string) (*restore.Archive, error) {
	fallbacks = append([]string(nil), fallbacks...)
	if _, _, err := a.applyStores(&fallbacks); err != nil {
		return nil, err
	}
	arc, err := a.openArchive(ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range fallbacks {
		fb, err := a.openOther(ctx, "--fallback-store", u)
		if err != nil {
			return nil, err
		}
		arc.WithFallbacks(fb)
	}
	return arc, nil
}

// thawCommand is the command that thaws what a restore to t needs, with
// the stores this run read (URLs without secrets).
func (a *app) thawCommand(fallbacks []string, t time.Time) string {
	var b strings.Builder
	b.WriteString("restorer thaw")
	if a.storesFile != "" {
		fmt.Fprintf(&b, " --stores %s", a.storesFile)
		if a.from != "" {
			fmt.Fprintf(&b, " --from %s", a.from)
		}
	} else {
		fmt.Fprintf(&b, " --store '%s'", redact.URL(a.storeURL))
	}
	for _, u := range fallbacks {
		fmt.Fprintf(&b, " --fallback-store '%s'", redact.URL(u))
	}
	fmt.Fprintf(&b, " --to %s --wait", t.UTC().Format(time.RFC3339Nano))
	return b.String()
}
