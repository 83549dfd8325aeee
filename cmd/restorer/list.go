package main

import (
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/restore"
)

func (a *app) listCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list --store URL",
		Short: "Show the restorable window, watermark age, sizes and gaps of an archive",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			arc, err := a.openArchive(cmd.Context())
			if err != nil {
				return err
			}
			l, err := restore.List(cmd.Context(), arc, time.Now())
			if err != nil {
				return err
			}
			a.emit("list", l, func(w io.Writer) { printListing(w, l) })
			return nil
		},
	}
}
