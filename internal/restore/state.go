package restore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// StateTable is the restore-state table the restorer keeps next to the
// restored table (same schema): one row per restored table recording the
// archive, the target time, the filter, how far the load got and whether it
// finished. Each batch updates it in the batch's own transaction.
const StateTable = "tidemark_restore_state"

const stateDDL = `CREATE TABLE IF NOT EXISTS %s (
  table_name     text PRIMARY KEY,
  archive_id     text NOT NULL,
  target_time    timestamptz NOT NULL,
  filter         text NOT NULL DEFAULT '',
  segment_key    text NOT NULL DEFAULT '',
  segment_offset bigint NOT NULL DEFAULT 0,
  events         bigint NOT NULL DEFAULT 0,
  started_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  finished       boolean NOT NULL DEFAULT false
)`

// restoreState is one row of the state table.
type restoreState struct {
	ArchiveID     string
	TargetTime    time.Time
	Filter        string
	SegmentKey    string // the segment the next row comes from ("" = start)
	SegmentOffset int    // index of the next row among that segment's selected events
	Events        int64  // rows written so far
	Finished      bool
}

// readState returns the state row for the table, or nil when there is no
// state table or no row. It never writes.
func readState(ctx context.Context, conn *pgx.Conn, t *targetTable) (*restoreState, error) {
	var reg *string
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1)::text`, t.stateIdent()).Scan(&reg); err != nil {
		return nil, fmt.Errorf("look up %s: %w", StateTable, err)
	}
	if reg == nil {
		return nil, nil
	}
	s := &restoreState{}
	err := conn.QueryRow(ctx, `SELECT archive_id, target_time, filter, segment_key, segment_offset, events, finished
		FROM `+t.stateIdent()+` WHERE table_name = $1`, t.qualified()).
		Scan(&s.ArchiveID, &s.TargetTime, &s.Filter, &s.SegmentKey, &s.SegmentOffset, &s.Events, &s.Finished)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", StateTable, err)
	}
	s.TargetTime = s.TargetTime.UTC()
	return s, nil
}

// startState creates the state table if needed and (re)writes the table's
// row for a fresh restore.
func startState(ctx context.Context, tx execer, t *targetTable, s *restoreState) error {
	if _, err := tx.Exec(ctx, fmt.Sprintf(stateDDL, t.stateIdent())); err != nil {
		return fmt.Errorf("create %s: %w", StateTable, err)
	}
	_, err := tx.Exec(ctx, `INSERT INTO `+t.stateIdent()+` AS s (table_name, archive_id, target_time, filter)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (table_name) DO UPDATE SET archive_id = $2, target_time = $3, filter = $4,
		  segment_key = '', segment_offset = 0, events = 0, started_at = now(), updated_at = now(), finished = false`,
		t.qualified(), s.ArchiveID, s.TargetTime, s.Filter)
	if err != nil {
		return fmt.Errorf("write %s: %w", StateTable, err)
	}
	return nil
}

// advanceState records a committed batch: the position of the next row and
// the rows added. It runs in the batch's transaction.
func advanceState(ctx context.Context, tx execer, t *targetTable, key string, offset int, added int64) error {
	tag, err := tx.Exec(ctx, `UPDATE `+t.stateIdent()+` SET segment_key = $2, segment_offset = $3,
		events = events + $4, updated_at = now() WHERE table_name = $1 AND NOT finished`,
		t.qualified(), key, offset, added)
	if err != nil {
		return fmt.Errorf("update %s: %w", StateTable, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("update %s: the state row for %s is gone or finished (another restore running?)", StateTable, t.qualified())
	}
	return nil
}

// finishState marks the restore finished.
func finishState(ctx context.Context, tx execer, t *targetTable) error {
	if _, err := tx.Exec(ctx, `UPDATE `+t.stateIdent()+` SET finished = true, updated_at = now() WHERE table_name = $1`, t.qualified()); err != nil {
		return fmt.Errorf("finish %s: %w", StateTable, err)
	}
	return nil
}
