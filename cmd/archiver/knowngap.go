package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/cli"
)

// newKnownGapCmd is `archiver catalog known-gap`: it records damage an
// operator accepted as a hash-chained catalog entry.
func newKnownGapCmd(g *globalOptions) *cobra.Command {
	var objects, streams []string
	var reason, operator string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "known-gap --reason TEXT [--object KEY]... [--stream ID]...",
		Short: "Record an accepted known gap or damaged range in the catalog",
		Long: `known-gap appends one entry to the catalog's hash chain recording damage you have
looked at and accepted: segment objects that are missing or corrupt beyond
repair (--object, the key restorer verify names) and streams whose versions
have holes because of them (--stream, as verify names them), with a reason.
From then on restorer verify, restorer drill and the monitor report the
findings about those objects and streams as KNOWN instead of failing on them.
It does not make a damaged object readable: a restore that needs it still fails.

It takes the writer's lease like a standby archiver and releases it at once.
Stop the archivers first (they resume from the catalog when started again).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if reason == "" {
				return cli.Usage(errors.New("--reason is required"), `e.g. --reason "INC-2231: segment lost with the old bucket"`)
			}
			if len(objects) == 0 && len(streams) == 0 {
				return cli.Usage(errors.New("name at least one --object or --stream"), "copy them from `restorer verify` output")
			}
			if operator == "" {
				operator = os.Getenv("USER")
			}
			ctx := cmd.Context()
			store, err := g.openStore(ctx)
			if err != nil {
				return err
			}
			holder := "tidemark-known-gap/" + hostname() + "/" + strconv.Itoa(os.Getpid())
			e, err := catalog.RecordKnownGap(ctx, store, holder, catalog.KnownGap{Objects: objects, Streams: streams, Reason: reason, Operator: operator})
			var held *catalog.ErrLeaseHeld
			switch {
			case errors.As(err, &held):
				return cli.WithCode(cli.ExitUsage, err, "stop the archivers first (they resume from the catalog when started again), then run this again")
			case errors.Is(err, catalog.ErrInvalidEntry):
				return cli.Usage(err, "check --object (a segment key under segments/), --stream and --reason")
			case err != nil:
				return storeFailure(fmt.Errorf("record known gap: %w", err), "check --store")
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(e)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "recorded known gap as catalog entry %d (epoch %d): %d objects, %d streams\n",
				e.Seq, e.Epoch, len(objects), len(streams))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&objects, "object", nil, "segment object key whose damage is accepted (repeatable)")
	f.StringArrayVar(&streams, "stream", nil, "stream id whose version holes are accepted (repeatable)")
	f.StringVar(&reason, "reason", "", "why the damage is accepted (a ticket, what was lost); required")
	f.StringVar(&operator, "operator", "", "who accepts it (default: $USER)")
	f.BoolVar(&asJSON, "json", false, "print the entry written as JSON")
	return cmd
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown-host"
	}
	return h
}
