package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/cli"
)

func main() { os.Exit(cli.Execute(newRootCmd())) }

// envPrefix prefixes every flag's environment variable.
const envPrefix = "TIDEMARK_CAPTURE_"

// envAliases maps standard variable names to flags.
var envAliases = map[string]string{"NATS_URL": "nats-url", "NATS_CREDS": "nats-creds"}

func newRootCmd() *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:   "capture",
		Short: "Capture PostgreSQL event tables into NATS JetStream",
		Long: `capture reads a logical replication slot (pgoutput) on the source database and
publishes one JetStream message per inserted row, whole transactions in commit
order, plus heartbeats. A new slot's existing rows are snapshotted first.
The slot is confirmed only up to the archive's durable watermark (or, with
--confirm-on=jetstream, up to what JetStream acknowledged), so Postgres keeps
the WAL of everything not yet safe. Without a subcommand it runs (same as
"capture run").

Flags can also come from the environment (TIDEMARK_CAPTURE_<FLAG_NAME>, plus
NATS_URL and NATS_CREDS; the standard PG* variables fill what --pg omits) and
from a YAML file (--config); flags win.`,
		Args: cobra.NoArgs,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return cli.ApplyConfig(cmd, envPrefix, envAliases)
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return runCapture(cmd.Context(), cmd, o) },
	}
	cli.AddConfigFlag(root)
	o.register(root)
	root.AddCommand(newRunCmd(o), newSetupCmd(o), newStatusCmd(o))
	return root
}
