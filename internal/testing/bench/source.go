package bench

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// CreatePublication creates the publication on eventcore_events that
// capture and pg_recvlogical read.
func CreatePublication(ctx context.Context, pgURL, publication string) error {
	return execSQL(ctx, pgURL, "CREATE PUBLICATION "+pgx.Identifier{publication}.Sanitize()+" FOR TABLE public.eventcore_events")
}

// CreateSlots creates pgoutput slots; created before a backlog is written,
// every slot starts at the same position with the whole backlog to drain.
func CreateSlots(ctx context.Context, pgURL string, slots ...string) error {
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return fmt.Errorf("connect source: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, s := range slots {
		if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", s); err != nil {
			return fmt.Errorf("create slot %s: %w", s, err)
		}
	}
	return nil
}

// DropSlot drops a replication slot (it must be inactive).
func DropSlot(ctx context.Context, pgURL, slot string) error {
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return fmt.Errorf("connect source: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot); err != nil {
		return fmt.Errorf("drop slot %s: %w", slot, err)
	}
	return nil
}

// RawJSONBytes returns the bytes of every row of eventcore_events whose
// stream id starts with prefix, as a JSON object per row (row_to_json):
// the events' size before Tidemark touches them.
func RawJSONBytes(ctx context.Context, pgURL, prefix string) (int64, error) {
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return 0, fmt.Errorf("connect source: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int64
	err = conn.QueryRow(ctx, `SELECT COALESCE(sum(octet_length(row_to_json(e)::text)), 0)::int8
		FROM eventcore_events e WHERE starts_with(stream_id, $1)`, prefix+"-").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("measure raw json bytes: %w", err)
	}
	return n, nil
}
