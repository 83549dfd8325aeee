package restore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/event"
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
  finished       boolean NOT NULL DEFAULT false,
  last_end_lsn   pg_lsn,
  last_index     integer,
  archive_origin text NOT NULL DEFAULT ''
)`

// stateColumns are the columns added after the first version of the state
// table; migrateState adds them to a table an older restorer created.
const stateColumns = `ALTER TABLE %s
  ADD COLUMN IF NOT EXISTS last_end_lsn pg_lsn,
  ADD COLUMN IF NOT EXISTS last_index integer,
  ADD COLUMN IF NOT EXISTS archive_origin text NOT NULL DEFAULT ''`

// restoreState is one row of the state table.
type restoreState struct {
	ArchiveID     string
	Origin        string // Archive.origin; "" in rows of older restorers
	TargetTime    time.Time
	Filter        string
	SegmentKey    string   // the segment of the last restored row ("" = start)
	SegmentOffset int      // that segment's selected events restored (the next row's index among them)
	Last          chainPos // the last restored event; unset in rows of older restorers
	Events        int64    // rows written so far
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
	// A state table an older restorer created lacks the position columns
	// until this restorer writes to it.
	var migrated bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute
		WHERE attrelid = $1::regclass AND attname = 'last_end_lsn' AND NOT attisdropped)`, t.stateIdent()).Scan(&migrated); err != nil {
		return nil, fmt.Errorf("read %s: %w", StateTable, err)
	}
	cols := `'', '', 0`
	if migrated {
		cols = `archive_origin, coalesce(last_end_lsn::text, ''), coalesce(last_index, 0)`
	}
	s := &restoreState{}
	var last string
	err := conn.QueryRow(ctx, `SELECT archive_id, target_time, filter, segment_key, segment_offset, events, finished, `+cols+`
		FROM `+t.stateIdent()+` WHERE table_name = $1`, t.qualified()).
		Scan(&s.ArchiveID, &s.TargetTime, &s.Filter, &s.SegmentKey, &s.SegmentOffset, &s.Events, &s.Finished,
			&s.Origin, &last, &s.Last.Index)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", StateTable, err)
	}
	if last != "" {
		if s.Last.End, err = event.ParsePosition(last); err != nil {
			return nil, fmt.Errorf("read %s: last_end_lsn: %w", StateTable, err)
		}
	}
	s.TargetTime = s.TargetTime.UTC()
	return s, nil
}

// sameArchive reports whether the state row was written by a restore of
// the archive a: by its origin (stable across merges), or for rows of older
// restorers by the archive id.
func (s *restoreState) sameArchive(id, origin string) bool {
	if s.Origin != "" {
		return s.Origin == origin
	}
	return s.ArchiveID == id
}

// migrateState adds the columns of this version to an older state table.
func migrateState(ctx context.Context, tx execer, t *targetTable) error {
	if _, err := tx.Exec(ctx, fmt.Sprintf(stateColumns, t.stateIdent())); err != nil {
		return fmt.Errorf("upgrade %s: %w", StateTable, err)
	}
	return nil
}

// startState creates the state table if needed and (re)writes the table's
// row for a fresh restore.
func startState(ctx context.Context, tx execer, t *targetTable, s *restoreState) error {
	if _, err := tx.Exec(ctx, fmt.Sprintf(stateDDL, t.stateIdent())); err != nil {
		return fmt.Errorf("create %s: %w", StateTable, err)
	}
	if err := migrateState(ctx, tx, t); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO `+t.stateIdent()+` AS s (table_name, archive_id, target_time, filter, archive_origin)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (table_name) DO UPDATE SET archive_id = $2, target_time = $3, filter = $4, archive_origin = $5,
		  segment_key = '', segment_offset = 0, last_end_lsn = NULL, last_index = NULL,
		  events = 0, started_at = now(), updated_at = now(), finished = false`,
		t.qualified(), s.ArchiveID, s.TargetTime, s.Filter, s.Origin)
	if err != nil {
		return fmt.Errorf("write %s: %w", StateTable, err)
	}
	return nil
}

// advanceState records a committed batch: its last event's chain position
// (and, for older restorers, its segment and offset) and the rows added. It
// runs in the batch's transaction.
func advanceState(ctx context.Context, tx execer, t *targetTable, last item, added int64) error {
	tag, err := tx.Exec(ctx, `UPDATE `+t.stateIdent()+` SET segment_key = $2, segment_offset = $3,
		last_end_lsn = $4::text::pg_lsn, last_index = $5,
		events = events + $6, updated_at = now() WHERE table_name = $1 AND NOT finished`,
		t.qualified(), last.key, last.offset, last.e.EndLSN.String(), last.e.Index, added)
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
