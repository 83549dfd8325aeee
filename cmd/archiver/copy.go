package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/copier"
	"github.com/tidemark/tidemark/internal/lifecycle"
	"github.com/tidemark/tidemark/internal/objstore/storeurl"
	"github.com/tidemark/tidemark/internal/redact"
)

// copyOptions are the flags of `archiver copy`.
type copyOptions struct {
	to       []string
	interval time.Duration
	once     bool
	asJSON   bool
	http     string
	tempDir  string
	stores   string
	repair   bool
}

func newCopyCmd(g *globalOptions) *cobra.Command {
	o := &copyOptions{}
	cmd := &cobra.Command{
		Use:   "copy",
		Short: "Keep complete copies of the archive in other stores (regions, providers, directories)",
		Long: `copy follows the archive at --store (the primary) and copies every catalog
entry, in order, to each --to store, after the segment objects the entry
adds, checking each object's size and SHA-256 against the catalog on the
way. Each copy is a complete archive on its own: restorer list, verify and
restore work on it without the primary. The copier only reads the primary;
each copy advances on its own, so an unreachable destination holds back
only itself, and continues from its own catalog when it returns.

A copy writes its own checkpoints and keeps superseded objects until its
own gc (archiver gc --store COPY --grace …) deletes them. If a copy falls
behind the primary's gc (it was unreachable longer than the primary's gc
grace), it starts again from the primary's newest checkpoint: nothing
restorable is lost.

With --stores FILE (a policy file, docs/operations.md) the first store is
the primary and every other store a copy, each uploaded in its storage
class and with its retention lock; --to adds further plain copies.

Runs every --interval until stopped, or once with --once (exit 1 if a copy
failed). Needs read access to the primary and read, write and (for gc and
the restart above) delete access to each copy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCopy(cmd.Context(), cmd, g, o) },
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.to, "to", nil, "a destination store URL (s3://bucket/prefix?…, file:///path or a directory); repeat or comma-separate for several")
	f.DurationVar(&o.interval, "interval", 10*time.Second, "how often each copy looks for new entries")
	f.BoolVar(&o.once, "once", false, "bring every copy up to date once and exit")
	f.BoolVar(&o.asJSON, "json", false, "with --once or --repair, print the result as JSON")
	f.StringVar(&o.http, "http", "127.0.0.1:9466", "operations HTTP address (/livez, /readyz, /metrics); empty disables")
	f.StringVar(&o.tempDir, "temp-dir", "", "directory for objects in transit (default: the system's)")
	f.BoolVar(&o.repair, "repair", false, "read every live segment of each copy and copy again from the primary each one missing or damaged there, then exit")
	f.StringVar(&o.stores, "stores", "", "policy file: the primary first, then the copies with their storage classes and locks")
	return cmd
}

func runCopy(ctx context.Context, cmd *cobra.Command, g *globalOptions, o *copyOptions) error {
	var targets []copyTarget
	if o.stores != "" {
		layout, err := lifecycle.Load(o.stores)
		if err != nil {
			return cli.Usage(err, "fix the policy file (docs/operations.md, multi-store layout)")
		}
		if cmd.Flags().Changed("store") && g.store != layout.Stores[0].URL {
			return cli.Usage(errors.New("--store differs from the policy's first store (the primary)"), "leave out --store with --stores")
		}
		g.store = layout.Stores[0].URL
		for i := range layout.Stores[1:] {
			s := &layout.Stores[i+1]
			targets = append(targets, copyTarget{url: s.URL, policy: s})
		}
	}
	for _, u := range o.to {
		targets = append(targets, copyTarget{url: u})
	}
	if len(targets) == 0 {
		return cli.Usage(errors.New("no destination: --to or --stores is required"), "pass --to s3://other-bucket/prefix?region=… (repeat for several copies)")
	}
	if o.interval < time.Second {
		return cli.Usage(fmt.Errorf("--interval %s is shorter than a second", o.interval), "use --interval 10s (the default) or longer")
	}
	log, err := g.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	primary, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{primary.String(): true}
	var copies []*copier.Copy
	for _, t := range targets {
		dest, err := storeurl.Open(ctx, t.url)
		if err != nil {
			return cli.Usage(fmt.Errorf("open the copy %s: %w", redact.URL(t.url), err), `use "s3://bucket/prefix?endpoint=…&region=…", "file:///path" or a directory`)
		}
		if seen[dest.String()] {
			return cli.Usage(fmt.Errorf("the copy %s is the primary or another copy", dest), "give each copy its own bucket, prefix or directory")
		}
		seen[dest.String()] = true
		opts := copier.Options{Logger: log, TempDir: o.tempDir, Policy: t.policy}
		if t.policy != nil {
			opts.Name = t.policy.Name
		}
		copies = append(copies, copier.New(primary, dest, opts))
	}
	if o.repair {
		return repairCopies(ctx, cmd.OutOrStdout(), copies, o.asJSON)
	}
	if o.once {
		sts, err := copier.SyncAll(ctx, copies)
		if perr := printCopy(cmd.OutOrStdout(), sts, o.asJSON); perr != nil {
			return perr
		}
		if err != nil {
			return cli.WithCode(cli.ExitFailure, fmt.Errorf("copy: %w", err), "check the destination's reachability and credentials; the next run continues where this one stopped")
		}
		return nil
	}
	grp, gctx := errgroup.WithContext(ctx)
	ops := &cli.Ops{Addr: o.http, Ready: func() error { return copier.Ready(copies) }, Logger: log}
	grp.Go(func() error { return ops.Run(gctx) })
	grp.Go(func() error { return copier.Run(gctx, copies, o.interval) })
	return grp.Wait()
}

// repairCopies runs Repair on every copy, one after the other, and prints
// what each repaired.
func repairCopies(ctx context.Context, w io.Writer, copies []*copier.Copy, asJSON bool) error {
	type repaired struct {
		Copy     string   `json:"copy"`
		Repaired []string `json:"repaired"`
		Error    string   `json:"error,omitempty"`
	}
	var out []repaired
	var errs []error
	for _, c := range copies {
		keys, err := c.Repair(ctx)
		r := repaired{Copy: c.Name, Repaired: append([]string{}, keys...)}
		if err != nil {
			r.Error = err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
		}
		out = append(out, r)
	}
	if asJSON {
		if err := json.NewEncoder(w).Encode(out); err != nil {
			return err
		}
	} else {
		for _, r := range out {
			fmt.Fprintf(w, "%s: %d segments repaired %v\n", r.Copy, len(r.Repaired), r.Repaired)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cli.WithCode(cli.ExitFailure, fmt.Errorf("repair: %w", err), "a copy under a retention lock cannot be repaired in place; otherwise check the copy's credentials and run again")
	}
	return nil
}

// copyTarget is one destination and its policy (nil: none).
type copyTarget struct {
	url    string
	policy *lifecycle.Store
}

func printCopy(w io.Writer, sts []copier.Status, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(sts)
	}
	for _, s := range sts {
		state := "up to date"
		if s.Error != "" {
			state = "FAILED: " + s.Error
		}
		fmt.Fprintf(w, "%s: entry %d of %d, %d entries and %d objects (%d bytes) copied; %s\n",
			s.Copy, s.CopySeq, s.PrimarySeq, s.Entries, s.Objects, s.Bytes, state)
	}
	return nil
}
