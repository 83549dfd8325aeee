package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/objstore/s3"
	"github.com/tidemark/tidemark/internal/testing/bench"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func newAgeCmd() *cobra.Command {
	var days, events int
	var storeKind, dir string
	var asJSON, keep bool
	cmd := &cobra.Command{
		Use:   "age [--days 30] [--store file|s3] [--json]",
		Short: "Time-compressed soak: what an archive costs after days of flushes, merges and GC",
		Long: `age drives the real catalog writer, merger and garbage collector on a simulated
clock: one flush segment per simulated second (EventCore events), merges every
10 simulated seconds with the default levels (1m, 1h, 24h), GC every 5 simulated
minutes with the default grace (10m). At days 1, 7 and 30 (those within --days)
it prints objects in the store, catalog and checkpoint bytes, the p99 append
latency, catalog load time, the objects a restore to the watermark plans, and
verify time. The file store lives under --dir (default a directory in /dev/shm
when it exists: the soak measures object counts and bytes, not disk syncs);
--store s3 uses the rig's S3 server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log, err := cli.NewLogger(cmd.ErrOrStderr(), "info", "text")
			if err != nil {
				return err
			}
			if dir == "" {
				parent := ""
				if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
					parent = "/dev/shm"
				}
				if dir, err = os.MkdirTemp(parent, "tidemark-age-"); err != nil {
					return fmt.Errorf("create working directory: %w", err)
				}
				if !keep {
					defer os.RemoveAll(dir)
				}
			}
			store, stop, err := ageStore(ctx, storeKind, dir)
			if err != nil {
				return err
			}
			defer stop()
			var marks []int
			for _, d := range []int{1, 7, 30} {
				if d <= days {
					marks = append(marks, d)
				}
			}
			if len(marks) == 0 || marks[len(marks)-1] != days {
				marks = append(marks, days)
			}
			rep, err := bench.Age(ctx, bench.AgeConfig{Store: store, Days: days, Marks: marks, EventsPerFlush: events,
				TempDir: filepath.Join(dir, "tmp"), Progress: func(msg string, args ...any) { log.Info(msg, args...) }})
			if rep != nil {
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					if err := enc.Encode(rep); err != nil {
						return err
					}
				} else {
					bench.PrintAge(cmd.OutOrStdout(), rep)
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&days, "days", 30, "simulated days to run")
	f.IntVar(&events, "events-per-flush", 2, "events in each simulated second's flush")
	f.StringVar(&storeKind, "store", "file", "file or s3 (the rig's S3 server)")
	f.StringVar(&dir, "dir", "", "working directory (default a temporary one, in /dev/shm when it exists)")
	f.BoolVar(&keep, "keep", false, "keep the working directory")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// ageStore opens the soak's store: a directory, or a bucket on a fresh S3
// server started by the rig.
func ageStore(ctx context.Context, kind, dir string) (objstore.Store, func(), error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, nil, err
	}
	switch kind {
	case "file":
		st, err := file.Open(filepath.Join(dir, "bucket"))
		return st, func() {}, err
	case "s3":
		srv, err := testrig.StartS3Process(ctx, filepath.Join(dir, "s3"))
		if err != nil {
			return nil, nil, err
		}
		stop := func() { _ = srv.Stop() }
		if err := srv.CreateBucket(ctx, "age"); err != nil {
			stop()
			return nil, nil, err
		}
		st, err := s3.Open(ctx, srv.StoreURL("age", "archive"), s3.Options{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
		if err != nil {
			stop()
			return nil, nil, err
		}
		return st, stop, nil
	}
	return nil, nil, cli.Usage(fmt.Errorf("unknown --store %q", kind), "use --store file or s3")
}
