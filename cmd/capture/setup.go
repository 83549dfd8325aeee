package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/cdc"
)

func newSetupCmd(o *options) *cobra.Command {
	var opts cdc.SetupOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Check the source and create the publication, stream and META bucket",
		Long: `setup checks the source (wal_level = logical, a free replication slot and WAL
sender, the role's REPLICATION privilege, SELECT on each table, each table
exists and has a primary key) and says exactly what to change when a check
fails. It then creates or updates the publication, the JetStream stream and
the META bucket. capture run does the same at start-up.

The slot itself is created by capture run, because its exported snapshot can
only be read while the creating connection stays open.

--reset-slot drops the slot (it must not be in use, and no capture may still
be publishing its initial snapshot) so the next run creates a new one and
snapshots the tables again. Use it after an interrupted first snapshot, or to
continue after an invalidated slot; events committed while no slot exists are
not captured.`,
		Example: "  capture setup --dry-run --pg postgres://tidemark@db/app\n  capture setup --reset-slot",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := o.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg, err := o.config(log)
			if err != nil {
				return err
			}
			rep, err := cdc.Setup(cmd.Context(), cfg, opts)
			if rep != nil {
				printSetup(cmd, rep, opts.DryRun, asJSON)
			}
			return cliError(err)
		},
	}
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "print the SQL and stream configuration without applying them")
	cmd.Flags().BoolVar(&opts.ResetSlot, "reset-slot", false, "drop the replication slot so the next run snapshots again")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func printSetup(cmd *cobra.Command, rep *cdc.SetupReport, dryRun, asJSON bool) {
	w := cmd.OutOrStdout()
	if asJSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintln(w, string(b))
		return
	}
	verb := "applied"
	if dryRun {
		verb = "would apply"
	}
	if rep.SystemID != "" {
		fmt.Fprintf(w, "source system identifier: %s\n", rep.SystemID)
	}
	for _, a := range rep.Actions {
		fmt.Fprintf(w, "%s: %s\n", verb, a)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
