package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/feed"
)

// SetupOptions adjust Setup.
type SetupOptions struct {
	// DryRun reports what would be applied without changing anything.
	DryRun bool
	// ResetSlot drops the replication slot (it must be inactive, and no
	// capture may still be publishing its initial snapshot) so the next run
	// creates a new one and snapshots again. Events committed while no slot
	// exists are not captured.
	ResetSlot bool
}

// SetupReport says what Setup found and did (or would do, in a dry run).
type SetupReport struct {
	// SystemID is the source's system identifier.
	SystemID string `json:"system_id"`
	// Actions are the statements and configuration applied (or planned).
	Actions []string `json:"actions"`
	// Notes are facts worth knowing that need no action.
	Notes []string `json:"notes"`
}

// Setup checks the source and creates or updates the publication, the
// JetStream stream and the META bucket. The replication slot itself is
// created by Run, because its exported snapshot is only usable while the
// creating connection stays open. A failed check returns *CheckError.
func Setup(ctx context.Context, cfg Config, opts SetupOptions) (*SetupReport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pool, err := connectPool(ctx, cfg.PGURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	rep := &SetupReport{}
	slot, err := readSlot(ctx, pool, cfg.Slot)
	if err != nil {
		return nil, err
	}
	problems, err := checkSource(ctx, pool, cfg, !slot.Exists || opts.ResetSlot)
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return rep, &CheckError{Problems: problems}
	}
	if rep.SystemID, err = identify(ctx, cfg.PGURL); err != nil {
		return rep, err
	}
	nc, err := connectNATS(cfg.NATSURL, cfg.NATSCreds)
	if err != nil {
		return rep, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return rep, fmt.Errorf("open jetstream: %w", err)
	}
	if err := setupPublication(ctx, pool, cfg, opts.DryRun, rep); err != nil {
		return rep, err
	}
	kv, err := setupNATS(ctx, js, cfg, opts.DryRun, rep)
	if err != nil {
		return rep, err
	}
	if opts.ResetSlot {
		return rep, resetSlot(ctx, pool, kv, cfg, slot, rep.SystemID, opts.DryRun, rep)
	}
	if slot.Exists {
		rep.Notes = append(rep.Notes, fmt.Sprintf("slot %s exists: confirmed_flush_lsn %s, restart_lsn %s, wal_status %s",
			cfg.Slot, slot.ConfirmedFlushLSN, slot.RestartLSN, slot.WALStatus))
	} else {
		rep.Notes = append(rep.Notes, fmt.Sprintf("slot %s does not exist: `capture run` creates it with "+
			"CREATE_REPLICATION_SLOT %s LOGICAL pgoutput EXPORT_SNAPSHOT and publishes the existing rows first", cfg.Slot, cfg.Slot))
	}
	return rep, nil
}

// identify returns the source's system identifier via IDENTIFY_SYSTEM,
// which also proves a replication connection can be opened.
func identify(ctx context.Context, pgURL string) (string, error) {
	conn, err := connectReplication(ctx, pgURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	res, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return "", fmt.Errorf("identify system: %w", err)
	}
	return res.SystemID, nil
}

// setupPublication creates the publication or brings its tables and
// operations in line with cfg.
func setupPublication(ctx context.Context, pool *pgxpool.Pool, cfg Config, dryRun bool, rep *SetupReport) error {
	want := make([]string, len(cfg.Tables))
	for i, t := range cfg.Tables {
		s, n, _ := splitTable(t)
		want[i] = quoteIdent(s) + "." + quoteIdent(n)
	}
	slices.Sort(want)
	var exists, allOps bool
	err := pool.QueryRow(ctx, `SELECT count(*) > 0, COALESCE(bool_and(pubinsert AND pubupdate AND pubdelete AND pubtruncate), false)
  FROM pg_publication WHERE pubname = $1`, cfg.Publication).Scan(&exists, &allOps)
	if err != nil {
		return fmt.Errorf("read publication %s: %w", cfg.Publication, err)
	}
	var stmts []string
	pub := quoteIdent(cfg.Publication)
	if !exists {
		stmts = append(stmts, fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s", pub, strings.Join(want, ", ")))
	} else {
		rows, err := pool.Query(ctx, `SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1`, cfg.Publication)
		if err != nil {
			return fmt.Errorf("read publication %s: %w", cfg.Publication, err)
		}
		var have []string
		for rows.Next() {
			var s, n string
			if err := rows.Scan(&s, &n); err != nil {
				rows.Close()
				return fmt.Errorf("read publication %s: %w", cfg.Publication, err)
			}
			have = append(have, quoteIdent(s)+"."+quoteIdent(n))
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read publication %s: %w", cfg.Publication, err)
		}
		slices.Sort(have)
		if !slices.Equal(have, want) {
			stmts = append(stmts, fmt.Sprintf("ALTER PUBLICATION %s SET TABLE %s", pub, strings.Join(want, ", ")))
		}
		if !allOps {
			stmts = append(stmts, fmt.Sprintf("ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate')", pub))
		}
	}
	for _, s := range stmts {
		rep.Actions = append(rep.Actions, s+";")
		if dryRun {
			continue
		}
		if _, err := pool.Exec(ctx, s); err != nil {
			return fatal(fmt.Errorf("%s: %w", s, err),
				"the role needs CREATE on the database and ownership of the tables (or run the statement as a superuser)")
		}
	}
	if len(stmts) == 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("publication %s is up to date", cfg.Publication))
	}
	return nil
}

// StreamConfig returns the JetStream stream capture publishes to.
func StreamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "Tidemark feed: events, heartbeats and tamper reports captured from PostgreSQL",
		Subjects:    []string{feed.Subjects{Prefix: cfg.SubjectPrefix}.All()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Discard:     jetstream.DiscardNew,
		Duplicates:  cfg.DuplicateWindow,
		MaxBytes:    cfg.MaxBytes,
		MaxAge:      cfg.MaxAge,
		MaxMsgs:     -1,
		// Fast-ingest batches (nats-server 2.14+; older servers ignore it
		// and capture publishes message by message).
		AllowBatchPublish: cfg.PublishMode != PublishSingle,
	}
}

// setupNATS creates or updates the stream and opens (creating if needed)
// the META bucket. In a dry run it returns a nil bucket.
func setupNATS(ctx context.Context, js jetstream.JetStream, cfg Config, dryRun bool, rep *SetupReport) (jetstream.KeyValue, error) {
	sc := StreamConfig(cfg)
	b, _ := json.Marshal(sc)
	rep.Actions = append(rep.Actions, "create or update JetStream stream "+string(b))
	bucket := feed.MetaBucket(cfg.Stream)
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		rep.Actions = append(rep.Actions, fmt.Sprintf("create JetStream key-value bucket %s (file storage, %d replicas)", bucket, cfg.Replicas))
		kv = nil
	} else if err != nil {
		return nil, fmt.Errorf("open META bucket %s: %w", bucket, err)
	}
	oc := ValuesStoreConfig(cfg)
	rep.Actions = append(rep.Actions, fmt.Sprintf("create or update JetStream object store %s (file storage, %d replicas, max age %s)", oc.Bucket, oc.Replicas, oc.TTL))
	if dryRun {
		return kv, nil
	}
	if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
		return nil, fatal(fmt.Errorf("create or update stream %s: %w", cfg.Stream, err),
			"check that JetStream is enabled and has room for the stream (--max-bytes, --replicas)")
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, oc); err != nil {
		return nil, fatal(fmt.Errorf("create or update object store %s: %w", oc.Bucket, err),
			"check that JetStream is enabled and has room for it (--replicas)")
	}
	if kv == nil {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: bucket, Description: "Tidemark capture/archiver coordination", Storage: jetstream.FileStorage,
			Replicas: cfg.Replicas, History: 1,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, bucket)
		}
		if err != nil {
			return nil, fmt.Errorf("create META bucket %s: %w", bucket, err)
		}
	}
	return kv, nil
}

// resetSlot drops the slot so the next run starts afresh with a snapshot.
// It refuses while the slot is active, and while a capture is creating it
// and publishing its initial snapshot (the slot is inactive then).
func resetSlot(ctx context.Context, pool *pgxpool.Pool, kv jetstream.KeyValue, cfg Config, slot slotState, sysid string, dryRun bool, rep *SetupReport) error {
	if slot.Active {
		return fatal(fmt.Errorf("slot %s is active for PID %d", cfg.Slot, slot.ActivePID), "stop the running capture first")
	}
	if kv != nil {
		rec, err := getSlotRecord(ctx, kv, cfg.Slot)
		if err != nil {
			return err
		}
		busy, err := creationInProgress(ctx, pool, rec)
		if err != nil {
			return err
		}
		if busy != nil {
			return fatal(fmt.Errorf("%w: slot %s is not in use, but a capture is still publishing its initial snapshot (%s); "+
				"dropping the slot now would discard that capture's work", ErrSnapshotInProgress, cfg.Slot, busy),
				"wait until that capture logs \"initial snapshot published\" and streams; --reset-slot is for a snapshot whose capture stopped")
		}
	}
	if slot.Exists {
		rep.Actions = append(rep.Actions, fmt.Sprintf("SELECT pg_drop_replication_slot('%s');", cfg.Slot))
	}
	rep.Actions = append(rep.Actions, fmt.Sprintf("mark META %s as %q so the next run creates the slot and snapshots again", slotKey(cfg.Slot), slotCreating))
	if dryRun {
		return nil
	}
	if slot.Exists {
		if _, err := pool.Exec(ctx, "SELECT pg_drop_replication_slot($1)", cfg.Slot); err != nil {
			return fmt.Errorf("drop slot %s: %w", cfg.Slot, err)
		}
	}
	if kv == nil {
		return errors.New("reset slot: META bucket missing")
	}
	return putSlotRecord(ctx, kv, slotRecord{Slot: cfg.Slot, SystemID: sysid, State: slotCreating})
}

// natsConnected reports whether nc is connected.
func natsConnected(nc *nats.Conn) bool { return nc != nil && nc.IsConnected() }
