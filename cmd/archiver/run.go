package main

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/merge"
	"github.com/tidemark/tidemark/internal/segment"
)

// runOptions are the flags of `archiver run`.
type runOptions struct {
	http             string
	holder           string
	maxAckPending    int
	ackWait          time.Duration
	fetchBatch       int
	reorderBuffer    int
	holeGrace        time.Duration
	segmentMaxBytes  int64
	flushInterval    time.Duration
	bucketWidth      time.Duration
	leaseTTL         time.Duration
	compression      string
	compressionLevel int
	idleWatermark    time.Duration
	mergeLevels      string
	mergeInterval    time.Duration
	mergeSettle      time.Duration
	mergeMaxBytes    int64
	tempDir          string
}

func (r *runOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&r.http, "http", "127.0.0.1:9465", "operations HTTP address (/livez, /readyz, /metrics); empty disables")
	f.StringVar(&r.holder, "holder", "", "lease holder id (default <hostname>-<pid>-<random>)")
	f.IntVar(&r.maxAckPending, "max-ack-pending", archive.DefaultMaxAckPending, "messages delivered but not yet acknowledged, at most")
	f.DurationVar(&r.ackWait, "ack-wait", archive.DefaultAckWait, "redelivery timeout of unacknowledged messages")
	f.IntVar(&r.fetchBatch, "fetch-batch", archive.DefaultFetchBatch, "messages the client buffers and one pull request asks for")
	f.IntVar(&r.reorderBuffer, "reorder-buffer", archive.DefaultReorderBuffer, "events held while the chain has a hole")
	f.DurationVar(&r.holeGrace, "hole-grace", archive.DefaultHoleGrace, "how long a hole may last before capture is asked to rewind")
	f.Int64Var(&r.segmentMaxBytes, "segment-max-bytes", archive.DefaultSegmentMaxBytes, "raw size at which a segment is flushed")
	f.DurationVar(&r.flushInterval, "flush-interval", archive.DefaultFlushInterval, "age at which open segments are flushed (the archive's RPO)")
	f.DurationVar(&r.bucketWidth, "bucket-width", archive.DefaultBucketWidth, "commit-time bucket width of segment keys")
	f.DurationVar(&r.leaseTTL, "lease-ttl", archive.DefaultLeaseTTL, "writer lease lifetime; a standby takes over after it expires")
	f.StringVar(&r.compression, "compression", "zstd", "segment compression: zstd, gzip or none")
	f.IntVar(&r.compressionLevel, "compression-level", 0, "compression level of flushed segments (zstd 1-22, gzip 1-9; 0 = zstd's fastest while merging is on, else the default)")
	f.DurationVar(&r.idleWatermark, "idle-watermark-interval", 0, "least time between watermark-only catalog entries while idle (default 10 × --flush-interval)")
	f.StringVar(&r.mergeLevels, "merge-levels", merge.FormatLevels(merge.DefaultLevels), "bucket spans of merge levels 1, 2, …, or off")
	f.DurationVar(&r.mergeInterval, "merge-interval", archive.DefaultMergeInterval, "how often the writer looks for segments to merge")
	f.DurationVar(&r.mergeSettle, "merge-settle", merge.DefaultSettle, "how long past a bucket's end (by commit time) a merge waits for late segments")
	f.Int64Var(&r.mergeMaxBytes, "merge-max-bytes", merge.DefaultMaxRawBytes, "raw size cap of one merged segment")
	f.StringVar(&r.tempDir, "temp-dir", "", "directory for temporary files: the merger's, and large values fetched from the values object store with the segments holding them (default the system's)")
}

// config turns the flags into an archive.Config.
func (r *runOptions) config(g *globalOptions) (archive.Config, error) {
	comp, err := segment.ParseCompression(r.compression)
	if err != nil {
		return archive.Config{}, cli.Usage(err, "use --compression zstd, gzip or none")
	}
	levels, err := merge.ParseLevels(r.mergeLevels)
	if err != nil {
		return archive.Config{}, cli.Usage(err, `use --merge-levels "1m,1h,24h" or off`)
	}
	cfg := archive.Config{
		Stream: g.stream, Subjects: feed.Subjects{Prefix: g.prefix}, Consumer: g.consumer, Holder: r.holder,
		MaxAckPending: r.maxAckPending, AckWait: r.ackWait, FetchBatch: r.fetchBatch,
		ReorderBuffer: r.reorderBuffer, HoleGrace: r.holeGrace, SegmentMaxBytes: r.segmentMaxBytes,
		FlushInterval: r.flushInterval, BucketWidth: r.bucketWidth, LeaseTTL: r.leaseTTL,
		Compression: comp, CompressionLevel: r.compressionLevel, IdleWatermarkInterval: r.idleWatermark,
		Merge:         merge.Policy{Levels: levels, Settle: r.mergeSettle, MaxRawBytes: r.mergeMaxBytes},
		MergeInterval: r.mergeInterval, TempDir: r.tempDir,
	}
	if err := cfg.Validate(); err != nil {
		return cfg, cli.Usage(err, "archiver run --help")
	}
	return cfg, nil
}

func newRunCmd(g *globalOptions) *cobra.Command {
	r := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Archive the feed (lead, or stand by while another archiver leads)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runArchiver(cmd.Context(), cmd, g, r) },
	}
	r.register(cmd)
	return cmd
}

func runArchiver(ctx context.Context, cmd *cobra.Command, g *globalOptions, r *runOptions) error {
	log, err := g.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	cfg, err := r.config(g)
	if err != nil {
		return err
	}
	keyring, err := g.keyring()
	if err != nil {
		return err
	}
	hook, err := envCrashHook(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	store, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	nc, js, err := g.connect("tidemark-archiver", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	arch, err := archive.New(cfg, archive.Deps{JetStream: js, Store: store, Keyring: keyring, Logger: log, Hook: hook})
	if err != nil {
		return cli.Usage(err, "archiver run --help")
	}
	grp, gctx := errgroup.WithContext(ctx)
	grp.Go(func() error {
		err := arch.Run(gctx)
		if errors.Is(err, archive.ErrConflictingObject) {
			return cli.WithCode(cli.ExitFailure, err, "another writer or source uses this bucket: inspect the object named above; the archiver never overwrites it")
		}
		if err == nil && ctx.Err() == nil {
			return errors.New("archiver stopped")
		}
		return err
	})
	ops := &cli.Ops{Addr: r.http, Ready: arch.Ready, Logger: log}
	grp.Go(func() error { return ops.Run(gctx) })
	err = grp.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}
