package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/testing/loadgen"
)

var hardCases = []string{"huge", "rolledback", "savepoint", "long", "weird", "big"}

func newHardCommand() *cobra.Command {
	var (
		pg       string
		rows     int
		rollback bool
		later    int
	)
	cmd := &cobra.Command{
		Use:   "hard CASE...",
		Short: "Write hard cases: " + strings.Join(hardCases, ", "),
		Long: `hard writes the cases a backup must get right:
  huge        one transaction of --rows events (committed, or rolled back with --rollback)
  rolledback  a transaction of 3 events that is rolled back
  savepoint   a committed transaction with a rolled-back savepoint inside
  long        a transaction that stays open while --later others commit, then commits
  weird       one event in each of several awkward stream ids
  big         one event with ~1 MB of event_data`,
		Example:       "  loadgen hard huge --pg $PG --rows 2000000\n  loadgen hard rolledback savepoint long weird big --pg $PG",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pg == "" {
				return usageError{errors.New("--pg is required")}
			}
			for _, c := range args {
				if err := runHardCase(cmd.Context(), pg, c, rows, rollback, later); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote hard case %s\n", c)
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	cmd.Flags().StringVar(&pg, "pg", "", "PostgreSQL URL of the eventcore store (required)")
	cmd.Flags().IntVar(&rows, "rows", 1_000_000, "rows of the huge transaction")
	cmd.Flags().BoolVar(&rollback, "rollback", false, "roll the huge transaction back instead of committing")
	cmd.Flags().IntVar(&later, "later", 3, "transactions committed while the long one is open")
	return cmd
}

func runHardCase(ctx context.Context, pg, name string, rows int, rollback bool, later int) error {
	switch name {
	case "huge":
		return loadgen.HugeTransaction(ctx, pg, rows, !rollback)
	case "rolledback":
		return loadgen.RolledBack(ctx, pg)
	case "savepoint":
		return loadgen.SavepointRolledBack(ctx, pg)
	case "long":
		return loadgen.LongRunning(ctx, pg, later)
	case "weird":
		return loadgen.WeirdStreamIDs(ctx, pg)
	case "big":
		return loadgen.BigPayload(ctx, pg)
	}
	return usageError{fmt.Errorf("unknown hard case %q (want one of %s)", name, strings.Join(hardCases, ", "))}
}
