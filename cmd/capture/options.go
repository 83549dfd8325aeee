package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/cdc"
	"github.com/tidemark/tidemark/internal/cli"
)

// options are capture's flags; all are persistent so every subcommand (and
// the bare command) sees the same configuration.
type options struct {
	pg, natsURL, natsCreds string
	stream, prefix         string
	slot, publication      string
	tables                 []string
	confirmOn              string
	publishMode            string
	heartbeat, statusEvery time.Duration
	maxPending             int
	publishTimeout         time.Duration
	publishRetries         int
	stallTimeout           time.Duration
	maxTxnMemory           string
	externalValueBytes     string
	spillDir               string
	replicas               int
	dupWindow, maxAge      time.Duration
	maxBytes               string
	resync                 bool
	resyncOverlap          time.Duration
	http                   string
	logLevel, logFormat    string
}

func (o *options) register(cmd *cobra.Command) {
	d := cdc.Defaults()
	f := cmd.PersistentFlags()
	f.StringVar(&o.pg, "pg", "", "source Postgres URL (postgres://user@host:port/db); PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE fill omitted parts")
	f.StringVar(&o.natsURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	f.StringVar(&o.natsCreds, "nats-creds", "", "NATS credentials file")
	f.StringVar(&o.stream, "stream", d.Stream, "JetStream stream to publish to (created or updated)")
	f.StringVar(&o.prefix, "subject-prefix", d.SubjectPrefix, "feed subject prefix")
	f.StringVar(&o.slot, "slot", d.Slot, "logical replication slot name")
	f.StringVar(&o.publication, "publication", d.Publication, "publication name (created or updated)")
	f.StringSliceVar(&o.tables, "tables", d.Tables, "captured tables as schema.name (repeat or comma-separate)")
	f.StringVar(&o.confirmOn, "confirm-on", string(d.ConfirmOn), "confirm the slot up to: archive (the archive's durable watermark) or jetstream (JetStream acknowledgement; feed-only deployments)")
	f.StringVar(&o.publishMode, "publish-mode", string(d.PublishMode), "batch (JetStream fast-ingest batches, nats-server 2.14+; falls back to single on older servers) or single (one acknowledgement per message)")
	f.DurationVar(&o.heartbeat, "heartbeat-interval", d.HeartbeatInterval, "how often a heartbeat is written to the source")
	f.DurationVar(&o.statusEvery, "status-interval", d.StatusInterval, "how often the slot is confirmed (standby status update)")
	f.IntVar(&o.maxPending, "max-pending", d.MaxPending, "messages published but not yet acknowledged, at most")
	f.DurationVar(&o.publishTimeout, "publish-timeout", d.PublishTimeout, "wait for one JetStream acknowledgement before re-sending")
	f.IntVar(&o.publishRetries, "publish-retries", d.PublishRetries, "re-sends of one message before rewinding to the slot")
	f.DurationVar(&o.stallTimeout, "stall-timeout", d.StallTimeout, "raise tidemark_capture_publish_stalled when the oldest publish waits this long")
	f.StringVar(&o.maxTxnMemory, "max-txn-memory", "64MiB", "memory for one transaction's rows before spilling to disk (e.g. 64MiB)")
	f.StringVar(&o.externalValueBytes, "external-value-bytes", "256KiB", "column values larger than this travel outside the event message, in the <stream>_VALUES object store (at most the NATS server's max_payload/4)")
	f.StringVar(&o.spillDir, "spill-dir", "", "directory for spill files (default: the system temporary directory)")
	f.IntVar(&o.replicas, "replicas", d.Replicas, "stream and META bucket replicas")
	f.DurationVar(&o.dupWindow, "duplicate-window", d.DuplicateWindow, "stream deduplication window")
	f.StringVar(&o.maxBytes, "max-bytes", "-1", "stream size limit (e.g. 10GiB; -1 = unlimited); a full stream pushes back (DiscardNew)")
	f.DurationVar(&o.maxAge, "max-age", 0, "stream message age limit (0 = unlimited)")
	f.BoolVar(&o.resync, "resync-after-failover", true, "when the slot is missing on a promoted standby of the same cluster, create a new slot and re-read the rows the archive may lack (false: exit with 'slot missing')")
	f.DurationVar(&o.resyncOverlap, "resync-overlap", d.ResyncOverlap, "a resync re-reads rows committed from this long before the archive's watermark time")
	f.StringVar(&o.http, "http", "127.0.0.1:9464", "operations HTTP address for /livez, /readyz, /metrics (empty disables)")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
}

func (o *options) logger(w io.Writer) (*slog.Logger, error) {
	return cli.NewLogger(w, o.logLevel, o.logFormat)
}

// config turns the flags into a cdc.Config.
func (o *options) config(log *slog.Logger) (cdc.Config, error) {
	mem, err := parseSize(o.maxTxnMemory)
	if err != nil || mem <= 0 {
		return cdc.Config{}, cli.Usage(fmt.Errorf("--max-txn-memory %q: want a positive size like 64MiB", o.maxTxnMemory), "capture --help")
	}
	extBytes, err := parseSize(o.externalValueBytes)
	if err != nil || extBytes <= 0 {
		return cdc.Config{}, cli.Usage(fmt.Errorf("--external-value-bytes %q: want a positive size like 256KiB", o.externalValueBytes), "capture --help")
	}
	maxBytes, err := parseSize(o.maxBytes)
	if err != nil {
		return cdc.Config{}, cli.Usage(fmt.Errorf("--max-bytes %q: want a size like 10GiB or -1", o.maxBytes), "capture --help")
	}
	if maxBytes == 0 {
		maxBytes = -1
	}
	cfg := cdc.Config{
		PGURL: o.pg, NATSURL: o.natsURL, NATSCreds: o.natsCreds,
		Stream: o.stream, SubjectPrefix: o.prefix, Slot: o.slot, Publication: o.publication, Tables: o.tables,
		ConfirmOn: cdc.ConfirmMode(o.confirmOn), PublishMode: cdc.PublishMode(o.publishMode), HeartbeatInterval: o.heartbeat, StatusInterval: o.statusEvery,
		MaxPending: o.maxPending, PublishTimeout: o.publishTimeout, PublishRetries: o.publishRetries,
		StallTimeout: o.stallTimeout, MaxTxnMemory: mem, ExternalValueBytes: extBytes, SpillDir: o.spillDir, Replicas: o.replicas,
		DuplicateWindow: o.dupWindow, MaxBytes: maxBytes, MaxAge: o.maxAge, Logger: log,
		NoResync: !o.resync, ResyncOverlap: o.resyncOverlap,
	}
	return cfg, nil
}

// parseSize parses "123", "64MiB", "10GB", "-1".
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if n < 0 && mult != 1 {
		return 0, errors.New("negative size")
	}
	return n * mult, nil
}

// cliError maps capture's errors to exit codes and hints.
func cliError(err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000") || errors.Is(err, nats.ErrAuthorization) {
		return cli.WithCode(cli.ExitCredentials, err, "check the credentials: PGPASSWORD (or the password in --pg), pg_hba.conf, --nats-creds / NATS_URL")
	}
	var fe *cdc.FatalError
	if errors.As(err, &fe) {
		return cli.WithCode(cli.ExitFailure, err, fe.Hint)
	}
	var ce *cdc.CheckError
	if errors.As(err, &ce) {
		return cli.WithCode(cli.ExitFailure, err, "make the changes above, then check again with `capture setup --dry-run`")
	}
	return err
}
