package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/cli"
)

func main() { os.Exit(cli.Execute(newRootCmd())) }

// envPrefix prefixes every flag's environment variable.
const envPrefix = "TIDEMARK_ARCHIVER_"

// envAliases maps standard variable names to flags.
var envAliases = map[string]string{"NATS_URL": "nats-url", "NATS_CREDS": "nats-creds"}

func newRootCmd() *cobra.Command {
	g := &globalOptions{}
	r := &runOptions{}
	root := &cobra.Command{
		Use:   "archiver",
		Short: "Archive the Tidemark feed from JetStream into object storage",
		Long: `archiver consumes capture's feed from JetStream and writes it to object storage as
segments plus a hash-chained catalog. Several archivers may run: one writes
(it holds the lease in the bucket), the others stand by and take over within
seconds. Without a subcommand it runs (same as "archiver run").

Flags can also come from the environment (TIDEMARK_ARCHIVER_<FLAG_NAME>, plus
NATS_URL and NATS_CREDS) and from a YAML file (--config); flags win.`,
		Args: cobra.NoArgs,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return cli.ApplyConfig(cmd, envPrefix, envAliases)
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return runArchiver(cmd.Context(), cmd, g, r) },
	}
	cli.AddConfigFlag(root)
	g.register(root)
	r.register(root)
	root.AddCommand(newRunCmd(g), newStatusCmd(g), newCatalogCmd(g), newGCCmd(g), newCopyCmd(g), newKeygenCmd(), newMonitorCmd(g))
	return root
}
