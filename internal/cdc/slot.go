package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
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
	slotCreating  = "creating"  // about to create the slot (or reset): creating it is allowed
	slotSnapshot  = "snapshot"  // slot created, initial snapshot being published
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
	Updated         time.Time      `json:"updated"`
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
