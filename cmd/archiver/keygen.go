package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/segment"
)

func newKeygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new encryption identity (stdout) and its key id (stderr)",
		Long: `keygen prints a new age X25519 identity (AGE-SECRET-KEY-1…) on stdout and its
key id on stderr. Save stdout to a key file for --encryption-key-file (or put it
in TIDEMARK_ENCRYPTION_KEYS). To rotate, put the new identity on the first line
and keep the old ones below it: the first encrypts, all decrypt.`,
		Example: "  archiver keygen > tidemark.key && chmod 600 tidemark.key",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			identity, err := segment.GenerateKey()
			if err != nil {
				return fmt.Errorf("generate key: %w", err)
			}
			kr, err := segment.ParseKeyring(identity)
			if err != nil {
				return fmt.Errorf("parse generated key: %w", err)
			}
			fmt.Fprint(cmd.OutOrStdout(), identity)
			fmt.Fprintf(cmd.ErrOrStderr(), "key id: %s\n", kr.ActiveID())
			return nil
		},
	}
}
