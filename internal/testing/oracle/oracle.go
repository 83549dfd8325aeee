package oracle

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Row is one eventcore_events row, with text columns in PostgreSQL's text
// output form so comparisons are byte for byte.
type Row struct {
	EventID       string
	StreamID      string
	StreamVersion int64
	EventType     string
	// EventData and Metadata are the jsonb columns' ::text forms.
	EventData string
	Metadata  string
	// CreatedAt is created_at::text with TimeZone UTC and DateStyle ISO.
	CreatedAt string
	// CommitTime is the row's transaction commit time (zero for target
	// rows, which are compared without it).
	CommitTime time.Time
}

// rowColumns selects a Row's columns; the table is appended by callers.
const rowColumns = `event_id::text, stream_id, stream_version, event_type,
	event_data::text, metadata::text, created_at::text`

// Expected returns the rows of table in the source database whose
// transaction committed at or before t, ordered by commit time, then xid,
// then event id. Rows without a commit timestamp (written before
// track_commit_timestamp was on) are not included.
func Expected(ctx context.Context, sourceURL, table string, t time.Time) ([]Row, error) {
	conn, err := connect(ctx, sourceURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT `+rowColumns+`, pg_xact_commit_timestamp(xmin) AS commit_time
		FROM `+quoteTable(table)+`
		WHERE pg_xact_commit_timestamp(xmin) <= $1
		ORDER BY commit_time, xmin::text::bigint, event_id::text COLLATE "C"`, t)
	if err != nil {
		return nil, fmt.Errorf("query expected rows of %s: %w", table, err)
	}
	var out []Row
	var r Row
	_, err = pgx.ForEachRow(rows, []any{&r.EventID, &r.StreamID, &r.StreamVersion, &r.EventType,
		&r.EventData, &r.Metadata, &r.CreatedAt, &r.CommitTime}, func() error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read expected rows of %s: %w", table, err)
	}
	return out, nil
}

// CommitTimes returns the distinct commit times of the transactions that
// wrote table's rows in the source, ascending: useful instants to restore
// to.
func CommitTimes(ctx context.Context, sourceURL, table string) ([]time.Time, error) {
	conn, err := connect(ctx, sourceURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT DISTINCT pg_xact_commit_timestamp(xmin) AS t FROM `+quoteTable(table)+`
		WHERE pg_xact_commit_timestamp(xmin) IS NOT NULL ORDER BY t`)
	if err != nil {
		return nil, fmt.Errorf("query commit times of %s: %w", table, err)
	}
	times, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, fmt.Errorf("read commit times of %s: %w", table, err)
	}
	return times, nil
}

// connect opens a connection whose text output of timestamps does not
// depend on server or client defaults.
func connect(ctx context.Context, url string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse postgres url: %w", err)
	}
	cfg.RuntimeParams["timezone"] = "UTC"
	cfg.RuntimeParams["datestyle"] = "ISO, MDY"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect postgres %s:%d/%s: %w", cfg.Host, cfg.Port, cfg.Database, err)
	}
	return conn, nil
}

// quoteTable quotes a table name, optionally schema-qualified.
func quoteTable(table string) string {
	return pgx.Identifier(strings.Split(table, ".")).Sanitize()
}
