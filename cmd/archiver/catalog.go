package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/catalog"
)

func newCatalogCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "Maintain the archive's catalog",
		Args:  cobra.NoArgs,
	}
	var dryRun, asJSON bool
	rebuild := &cobra.Command{
		Use:   "rebuild",
		Short: "Rebuild the catalog from the segments' trailers",
		Long: `rebuild reads every segment in the store, verifies it, and writes a new catalog
from their trailers alone. Stop every archiver first. With --dry-run it only
reports what it would write.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			store, err := g.openStore(ctx)
			if err != nil {
				return err
			}
			keyring, err := g.keyring()
			if err != nil {
				return err
			}
			res, err := catalog.Rebuild(ctx, store, keyring, dryRun)
			if err != nil {
				return storeFailure(fmt.Errorf("rebuild catalog: %w", err), "check --store and the encryption keys")
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			printRebuild(cmd.OutOrStdout(), res)
			return nil
		},
	}
	rebuild.Flags().BoolVar(&dryRun, "dry-run", false, "report without writing")
	rebuild.Flags().BoolVar(&asJSON, "json", false, "print the full result as JSON")
	cmd.AddCommand(rebuild, newKnownGapCmd(g))
	return cmd
}

func printRebuild(w io.Writer, r *catalog.RebuildResult) {
	verb := "rebuilt"
	if r.DryRun {
		verb = "would rebuild"
	}
	wm := r.Watermark()
	fmt.Fprintf(w, "%s the catalog from %d segments (watermark %s at %s)\n", verb, len(r.Segments), wm.LSN, fmtTime(wm.CommitTime))
	if !r.DryRun {
		fmt.Fprintf(w, "wrote %d entries with epoch %d\n", r.Entries, r.Epoch)
	}
	if r.MovedTo != "" {
		fmt.Fprintf(w, "old catalog moved to %s\n", r.MovedTo)
	}
	for _, f := range r.Skipped {
		fmt.Fprintf(w, "skipped %s: %s\n", f.Object, f.Message)
	}
	if len(r.Debris) > 0 {
		fmt.Fprintf(w, "%d intact copies left out are recorded as debris (verify accepts them while unchanged)\n", len(r.Debris))
	}
}
