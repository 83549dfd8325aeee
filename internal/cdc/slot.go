package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// slotState is a row of pg_replication_slots.
type slotState struct {
	Exists            bool
	Plugin            string
	Database          string
	Active            bool
	ActivePID         int
	ConfirmedFlushLSN event.Position
	RestartLSN        event.Position
	WALStatus         string
	RetainedBytes     int64
}

const slotStateSQL = `
SELECT plugin, database, active, COALESCE(active_pid, 0),
       COALESCE(confirmed_flush_lsn::text, '0/0'), COALESCE(restart_lsn::text, '0/0'),
       COALESCE(wal_status, ''),
       COALESCE((pg_current_wal_lsn() - restart_lsn)::int8, 0)
  FROM pg_replication_slots WHERE slot_name = $1`

func readSlot(ctx context.Context, q querier, name string) (slotState, error) {
	var s slotState
	var plugin, db *string
	var confirmed, restart string
	err := q.QueryRow(ctx, slotStateSQL, name).Scan(&plugin, &db, &s.Active, &s.ActivePID, &confirmed, &restart, &s.WALStatus, &s.RetainedBytes)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read slot %s: %w", name, err)
	}
	s.Exists = true
	if plugin != nil {
		s.Plugin = *plugin
	}
	if db != nil {
		s.Database = *db
	}
	if s.ConfirmedFlushLSN, err = event.ParsePosition(confirmed); err != nil {
		return s, fmt.Errorf("read slot %s: %w", name, err)
	}
	if s.RestartLSN, err = event.ParsePosition(restart); err != nil {
		return s, fmt.Errorf("read slot %s: %w", name, err)
	}
	return s, nil
}

// Slot record states in META (key "slot.<name>").
const (
	slotCreating  = "creating"  // about to create the slot (or reset): creating it is allowed once Creator has gone
	slotSnapshot  = "snapshot"  // slot created, initial snapshot being published from Snapshot
	slotStreaming = "streaming" // snapshot published; the slot is the source of truth
)

// KeySystemID is the META key holding the source's system identifier.
const KeySystemID = "system_id"

// slotRecord is capture's note in META about its slot.
type slotRecord struct {
	Slot            string         `json:"slot"`
	SystemID        string         `json:"system_id"`
	State           string         `json:"state"`
	ConsistentPoint event.Position `json:"consistent_point"`
	// Snapshot names the snapshot CREATE_REPLICATION_SLOT exported (state
	// snapshot). It can be imported exactly while the capture that created
	// the slot holds it, i.e. while that capture can still publish it.
	Snapshot string `json:"snapshot,omitempty"`
	// Creator is the replication connection of the capture creating the
	// slot (states creating and snapshot).
	Creator *backendID `json:"creator,omitempty"`
	// Resync is set while the slot is (re)created for a resync after a
	// failover (states creating and snapshot): an interrupted resync is
	// started again, never replaced by an initial snapshot.
	Resync  *resyncPlan `json:"resync,omitempty"`
	Updated time.Time   `json:"updated"`

	revision uint64 // the META revision read (0: no record)
}

// backendID identifies one PostgreSQL backend: a PID alone may be reused.
type backendID struct {
	PID   uint32    `json:"pid"`
	Start time.Time `json:"start"`
}

func slotKey(name string) string { return "slot." + name }

func getSlotRecord(ctx context.Context, kv jetstream.KeyValue, name string) (*slotRecord, error) {
	e, err := kv.Get(ctx, slotKey(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read META %s: %w", slotKey(name), err)
	}
	var r slotRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("decode META %s: %w", slotKey(name), err)
	}
	r.revision = e.Revision()
	return &r, nil
}

func putSlotRecord(ctx context.Context, kv jetstream.KeyValue, r slotRecord) error {
	r.Updated = time.Now().UTC()
	b, _ := json.Marshal(r)
	if _, err := kv.Put(ctx, slotKey(r.Slot), b); err != nil {
		return fmt.Errorf("write META %s: %w", slotKey(r.Slot), err)
	}
	return nil
}

// errSlotRecordChanged: the slot record changed since it was read.
var errSlotRecordChanged = errors.New("slot record changed since it was read")

// putSlotRecordIf writes r only if the record is still at revision rev
// (0: still absent), so two captures cannot both claim the slot's creation.
func putSlotRecordIf(ctx context.Context, kv jetstream.KeyValue, r slotRecord, rev uint64) error {
	r.Updated = time.Now().UTC()
	b, _ := json.Marshal(r)
	var err error
	if rev == 0 {
		_, err = kv.Create(ctx, slotKey(r.Slot), b)
	} else {
		_, err = kv.Update(ctx, slotKey(r.Slot), b, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return errSlotRecordChanged
	}
	if err != nil {
		return fmt.Errorf("write META %s: %w", slotKey(r.Slot), err)
	}
	return nil
}

// backendOf returns the identity of the backend with the given PID.
func backendOf(ctx context.Context, q querier, pid uint32) (backendID, error) {
	id := backendID{PID: pid}
	if err := q.QueryRow(ctx, "SELECT backend_start FROM pg_stat_activity WHERE pid = $1", int64(pid)).Scan(&id.Start); err != nil {
		return id, fmt.Errorf("read backend %d from pg_stat_activity: %w", pid, err)
	}
	return id, nil
}

// backendAlive reports whether the backend still runs.
func backendAlive(ctx context.Context, q querier, id backendID) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2)",
		int64(id.PID), id.Start).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("read backend %d from pg_stat_activity: %w", id.PID, err)
	}
	return ok, nil
}

// SQLSTATEs of SET TRANSACTION SNAPSHOT for a snapshot that can no longer
// be imported: the exporting transaction ended (its walsender ran another
// command or its connection closed) and took the snapshot file with it.
const (
	sqlstateInvalidParameterValue = "22023" // PostgreSQL ≤ 15: invalid snapshot identifier (no such file)
	sqlstateUndefinedObject       = "42704" // PostgreSQL ≥ 16: snapshot "…" does not exist
	sqlstateNotInPrerequisite     = "55000" // could not import the requested snapshot: the source process is not running anymore
)

// snapshotImportable reports whether the exported snapshot can still be
// imported (SET TRANSACTION SNAPSHOT in a REPEATABLE READ transaction),
// which is true exactly while the capture that exported it holds it.
func snapshotImportable(ctx context.Context, pool *pgxpool.Pool, name string) (bool, error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return false, fmt.Errorf("check exported snapshot %s: %w", name, err)
	}
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(name, "'", "''")+"'", pgx.QueryExecModeSimpleProtocol)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &pgErr) && (pgErr.Code == sqlstateInvalidParameterValue ||
		pgErr.Code == sqlstateUndefinedObject || pgErr.Code == sqlstateNotInPrerequisite):
		return false, nil
	default:
		return false, fmt.Errorf("check exported snapshot %s: %w", name, err)
	}
}

// creationInProgress returns a *slotBusyError when the slot record says
// another capture is creating the slot or publishing its initial snapshot
// and that capture is still at it: its creating connection is alive
// (state creating), or its exported snapshot can still be imported (state
// snapshot). Otherwise nil: no creation, or one that was abandoned.
func creationInProgress(ctx context.Context, pool *pgxpool.Pool, rec *slotRecord) (*slotBusyError, error) {
	switch {
	case rec == nil:
		return nil, nil
	case rec.State == slotSnapshot && rec.Snapshot != "":
		ok, err := snapshotImportable(ctx, pool, rec.Snapshot)
		if err != nil || !ok {
			return nil, err
		}
		return &slotBusyError{snapshot: rec.Snapshot}, nil
	case rec.State == slotCreating && rec.Creator != nil:
		ok, err := backendAlive(ctx, pool, *rec.Creator)
		if err != nil || !ok {
			return nil, err
		}
		return &slotBusyError{creating: true}, nil
	}
	return nil, nil
}

// getWatermark reads the archive's watermark from META (zero, false when absent).
func getWatermark(ctx context.Context, kv jetstream.KeyValue) (feed.Watermark, bool, error) {
	e, err := kv.Get(ctx, feed.KeyWatermark)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return feed.Watermark{}, false, nil
	}
	if err != nil {
		return feed.Watermark{}, false, fmt.Errorf("read META %s: %w", feed.KeyWatermark, err)
	}
	var w feed.Watermark
	if err := json.Unmarshal(e.Value(), &w); err != nil {
		return feed.Watermark{}, false, fmt.Errorf("decode META %s: %w", feed.KeyWatermark, err)
	}
	return w, true, nil
}

// checkSystemID compares the source's system identifier with the one
// stored in META, storing it on first use.
func checkSystemID(ctx context.Context, kv jetstream.KeyValue, sysid string) error {
	e, err := kv.Get(ctx, KeySystemID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		if _, err := kv.Create(ctx, KeySystemID, []byte(sysid)); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("write META %s: %w", KeySystemID, err)
		}
		return checkSystemID(ctx, kv, sysid)
	}
	if err != nil {
		return fmt.Errorf("read META %s: %w", KeySystemID, err)
	}
	if got := strings.TrimSpace(string(e.Value())); got != sysid {
		metricSourceChecks.WithLabelValues(foundOtherCluster).Inc()
		return fatal(fmt.Errorf("%w: this stream was captured from system %s, the source is system %s", ErrSystemIDChanged, got, sysid),
			"point capture at the original server (or a physical replica promoted from it, which keeps the system id); "+
				"capturing a different cluster into this stream needs a new stream and archive")
	}
	return nil
}

// streamHasHistory reports whether the stream ever held a message.
func streamHasHistory(ctx context.Context, js jetstream.JetStream, stream string) (bool, error) {
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("read stream %s: %w", stream, err)
	}
	return info.State.LastSeq > 0, nil
}
