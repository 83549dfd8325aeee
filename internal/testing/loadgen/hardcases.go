package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The hard cases below write into the eventcore store at a URL; each uses
// stream ids with its own recognisable prefix and a random tag so repeated
// calls never collide.

// uuidV7SQL makes a UUIDv7 in SQL: the current Unix milliseconds over the
// first 48 bits of a random UUID, with the version and variant bits set.
const uuidV7SQL = `encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
	placing substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
	from 1 for 6), 52, 1), 53, 1), 'hex')::uuid`

// HugeTransaction inserts rows events in a single transaction (one INSERT …
// SELECT over generate_series, spread over 1000 streams "huge-<tag>-N"),
// then commits it or, with commit false, rolls it back.
func HugeTransaction(ctx context.Context, url string, rows int, commit bool) error {
	if rows <= 0 {
		return fmt.Errorf("huge transaction: invalid rows %d", rows)
	}
	prefix := "huge-" + tag() + "-"
	return withTx(ctx, url, commit, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data, metadata)
			SELECT `+uuidV7SQL+`,
			       $1 || (g % 1000),
			       'BulkImported',
			       jsonb_build_object('row', g, 'batch', $1::text,
			           'amount', jsonb_build_object('value', g * 7 % 100000, 'currency', 'EUR'),
			           'note', repeat(md5(g::text), 8)),
			       jsonb_build_object('correlation_id', $1::text, 'user_id', 'user-' || (g % 97), 'source', 'loadgen')
			FROM generate_series(1, $2::int) AS g`, prefix, rows)
		if err != nil {
			return fmt.Errorf("insert %d rows: %w", rows, err)
		}
		return nil
	})
}

// RolledBack inserts a few events in a transaction and rolls it back: none
// of them may ever appear in a backup.
func RolledBack(ctx context.Context, url string) error {
	stream := "rolledback-" + tag()
	return withTx(ctx, url, false, func(tx pgx.Tx) error {
		return insertSimple(ctx, tx, stream, "ShouldNeverExist", 3)
	})
}

// SavepointRolledBack commits a transaction with one event before and one
// after a savepoint that is rolled back with two events inside it: exactly
// the two outer events are committed, in stream "savepoint-<tag>".
func SavepointRolledBack(ctx context.Context, url string) error {
	stream := "savepoint-" + tag()
	return withTx(ctx, url, true, func(tx pgx.Tx) error {
		if err := insertSimple(ctx, tx, stream, "BeforeSavepoint", 1); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SAVEPOINT loadgen_sp"); err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		if err := insertSimple(ctx, tx, stream, "InsideRolledBackSavepoint", 2); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT loadgen_sp"); err != nil {
			return fmt.Errorf("rollback to savepoint: %w", err)
		}
		return insertSimple(ctx, tx, stream, "AfterSavepoint", 1)
	})
}

// LongRunning begins a transaction and inserts an event (stream
// "long-<tag>"), then commits later single-event transactions on another
// connection while it stays open, and only then commits: the long
// transaction has the lowest xid but the last commit.
func LongRunning(ctx context.Context, url string, later int) error {
	stream := "long-" + tag()
	other, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect postgres: %w", err)
	}
	defer other.Close(context.WithoutCancel(ctx))
	return withTx(ctx, url, true, func(tx pgx.Tx) error {
		if err := insertSimple(ctx, tx, stream, "LongStarted", 1); err != nil {
			return err
		}
		for i := range later {
			if err := pgx.BeginFunc(ctx, other, func(otx pgx.Tx) error {
				return insertSimple(ctx, otx, fmt.Sprintf("%s-later-%d", stream, i), "CommittedMeanwhile", 1)
			}); err != nil {
				return err
			}
		}
		return insertSimple(ctx, tx, stream, "LongFinished", 1)
	})
}

// WeirdStreamIDList lists the awkward stream ids WeirdStreamIDs writes (each
// suffixed with a tag): dots, spaces, slashes, NATS wildcards, quotes,
// control and non-ASCII characters.
var WeirdStreamIDList = []string{
	"with.dots.in.it", "with spaces  twice", "with/slashes/", "star*", "gt>", "a.*.>",
	"ünïcödé-流れ", "emoji-🚀", `quote"s'and\backslash`, "tab\tnewline\n", "%2F-encoded", "",
}

// WeirdStreamIDs commits one event in each of the awkward stream ids of
// WeirdStreamIDList, one transaction each.
func WeirdStreamIDs(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	t := tag()
	for _, s := range WeirdStreamIDList {
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			return insertSimple(ctx, tx, s+"#"+t, "WeirdStreamWritten", 1)
		}); err != nil {
			return fmt.Errorf("stream %q: %w", s, err)
		}
	}
	return nil
}

// BigPayloadBytes is the approximate size of BigPayload's event_data.
const BigPayloadBytes = 1 << 20

// BigPayload commits one event (stream "big-<tag>") whose event_data is
// about 1 MB of nested JSON.
func BigPayload(ctx context.Context, url string) error {
	items := make([]map[string]any, 0, 1024)
	chunk := strings.Repeat("0123456789abcdef", 60)
	for i := 0; len(items)*len(chunk) < BigPayloadBytes; i++ {
		items = append(items, map[string]any{"i": i, "blob": chunk, "nested": map[string]any{"even": i%2 == 0}})
	}
	data, err := json.Marshal(map[string]any{"kind": "big", "items": items})
	if err != nil {
		return fmt.Errorf("encode big payload: %w", err)
	}
	stream := "big-" + tag()
	return withTx(ctx, url, true, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data, metadata)
			VALUES ($1, $2, 'BigPayloadWritten', $3::jsonb, '{"source":"loadgen"}')`,
			uuid.Must(uuid.NewV7()), stream, string(data))
		if err != nil {
			return fmt.Errorf("insert big payload: %w", err)
		}
		return nil
	})
}

// withTx runs fn in a transaction on a new connection and commits it, or
// rolls it back when commit is false.
func withTx(ctx context.Context, url string, commit bool, fn func(pgx.Tx) error) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx); err != nil {
		return err
	}
	if !commit {
		if err := tx.Rollback(ctx); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		return nil
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// insertSimple inserts n small events into stream, one statement.
func insertSimple(ctx context.Context, tx pgx.Tx, stream, eventType string, n int) error {
	_, err := tx.Exec(ctx, `INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data, metadata)
		SELECT `+uuidV7SQL+`, $1, $2, jsonb_build_object('n', g, 'at', clock_timestamp()), '{"source":"loadgen"}'
		FROM generate_series(1, $3::int) AS g`, stream, eventType, n)
	if err != nil {
		return fmt.Errorf("insert into %q: %w", stream, err)
	}
	return nil
}

// tag returns a short unique tag for stream ids.
func tag() string {
	return uuid.NewString()[:8]
}
