package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/cdc"
)

func newStatusCmd(o *options) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the slot's position, retained WAL and the feed's lag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := o.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg, err := o.config(log)
			if err != nil {
				return err
			}
			st, err := cdc.GetStatus(cmd.Context(), cfg)
			if err != nil {
				return cliError(err)
			}
			if asJSON {
				b, _ := json.MarshalIndent(st, "", "  ")
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return nil
			}
			printStatus(cmd, st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printStatus(cmd *cobra.Command, st *cdc.Status) {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "slot\t%s\n", st.Slot)
	if !st.Exists {
		fmt.Fprintf(w, "exists\tno (capture run creates it)\n")
		return
	}
	active := "no"
	if st.Active {
		active = fmt.Sprintf("yes (PID %d)", st.ActivePID)
	}
	fmt.Fprintf(w, "active\t%s\n", active)
	fmt.Fprintf(w, "confirmed_flush_lsn\t%s\n", st.ConfirmedFlushLSN)
	fmt.Fprintf(w, "restart_lsn\t%s\n", st.RestartLSN)
	fmt.Fprintf(w, "wal_status\t%s\n", st.WALStatus)
	fmt.Fprintf(w, "retained_wal\t%d bytes\n", st.RetainedWALBytes)
	fmt.Fprintf(w, "lag\t%d bytes behind pg_current_wal_lsn() %s\n", st.LagBytes, st.CurrentWALLSN)
	if st.LastEventCommitTime != nil {
		fmt.Fprintf(w, "last_event_commit_time\t%s\n", st.LastEventCommitTime.Format(time.RFC3339Nano))
	}
	if st.LagSeconds != nil {
		fmt.Fprintf(w, "lag_seconds\t%.1f (since the newest event or heartbeat)\n", *st.LagSeconds)
	}
	if st.Watermark != nil {
		fmt.Fprintf(w, "archive_watermark\t%s (commit time %s)\n", st.Watermark.LSN, st.Watermark.CommitTime.Format(time.RFC3339))
	}
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "warning\t%s\n", warn)
	}
}
