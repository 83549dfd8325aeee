package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/lifecycle"
)

// gcOptions are the flags of `archiver gc`.
type gcOptions struct {
	grace    time.Duration
	interval time.Duration
	dryRun   bool
	asJSON   bool
	stores   string
	name     string
}

func newGCCmd(g *globalOptions) *cobra.Command {
	o := &gcOptions{}
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete objects the archive no longer needs (superseded segments, folded catalog entries)",
		Long: `gc deletes, once they have not been needed for --grace: segment objects that
merges replaced, debris the watermark has passed, and catalog entries and
checkpoints folded by a newer checkpoint. It never deletes a live segment or
anything a restore plans from the current catalog; a restore that finds an
object gone re-plans. gc needs delete permission on the store (the writing
archiver does not) and takes no lease: run it beside the archivers, once
(default) or every --interval.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runGC(cmd.Context(), cmd, g, o) },
	}
	f := cmd.Flags()
	f.DurationVar(&o.grace, "grace", catalog.DefaultGCGrace, "how long an object is kept after it stopped being needed")
	f.DurationVar(&o.interval, "interval", 0, "run every interval until stopped (0 = once)")
	f.BoolVar(&o.dryRun, "dry-run", false, "list what would be deleted, delete nothing")
	f.BoolVar(&o.asJSON, "json", false, "print each run's result as JSON")
	f.StringVar(&o.stores, "stores", "", "policy file: collect the store --name names, with its gc_grace (unless --grace is given)")
	f.StringVar(&o.name, "name", "", "with --stores, the store to collect")
	return cmd
}

func runGC(ctx context.Context, cmd *cobra.Command, g *globalOptions, o *gcOptions) error {
	if err := o.applyStores(cmd, g); err != nil {
		return err
	}
	if o.grace < time.Second {
		return cli.Usage(fmt.Errorf("--grace %s is shorter than a second", o.grace), "use --grace 10m (the default) or at least 1s; a short grace only makes restores and loads re-plan more often")
	}
	log, err := g.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	store, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	for {
		res, err := catalog.Collect(ctx, store, catalog.GCOptions{Grace: o.grace, DryRun: o.dryRun})
		if err != nil {
			err = cli.WithCode(cli.ExitFailure, fmt.Errorf("gc: %w", err), "check --store and that this role may delete objects")
			if o.interval == 0 {
				return err
			}
			log.Warn("gc failed; retrying at the next interval", "err", err)
		} else if err := printGC(cmd.OutOrStdout(), res, o); err != nil {
			return err
		}
		if o.interval == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.interval):
		}
	}
}

func printGC(w io.Writer, r *catalog.GCResult, o *gcOptions) error {
	if o.asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	verb := "deleted"
	if o.dryRun {
		verb = "would delete"
		for _, k := range r.Deleted {
			fmt.Fprintln(w, k)
		}
	}
	fmt.Fprintf(w, "%s %d superseded segments (%d bytes), %d debris objects, %d entries and %d checkpoints; %d objects kept within the %s grace\n",
		verb, r.Segments, r.SegmentBytes, r.Debris, r.Entries, r.Checkpoints, r.KeptInGrace, o.grace)
	return nil
}

// applyStores takes the store and its grace from --stores and --name.
func (o *gcOptions) applyStores(cmd *cobra.Command, g *globalOptions) error {
	if o.stores == "" {
		if o.name != "" {
			return cli.Usage(errors.New("--name needs --stores"), "pass --stores FILE --name STORE")
		}
		return nil
	}
	layout, err := lifecycle.Load(o.stores)
	if err != nil {
		return cli.Usage(err, "fix the policy file (docs/operations.md, multi-store layout)")
	}
	if o.name == "" {
		return cli.Usage(errors.New("--stores needs --name"), "name the store to collect")
	}
	st, err := layout.Lookup(o.name)
	if err != nil {
		return cli.Usage(err, "pass --name with a store name from the file")
	}
	g.store = st.URL
	if !cmd.Flags().Changed("grace") && st.GCGrace > 0 {
		o.grace = time.Duration(st.GCGrace)
	}
	return nil
}
