package eventcore

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SchemaSQL is EventCore's schema; applying it is idempotent.
//
//go:embed schema.sql
var SchemaSQL string

// Names of the schema objects, for code (such as a restorer) that must find
// or disable them.
const (
	// Table is the event log.
	Table = "eventcore_events"
	// VersionTrigger assigns stream versions and checks expectations.
	VersionTrigger = "eventcore_version_trigger"
	// PreventUpdateTrigger refuses UPDATE (SQLSTATE P0002).
	PreventUpdateTrigger = "eventcore_prevent_update_trigger"
	// PreventDeleteTrigger refuses DELETE (SQLSTATE P0002).
	PreventDeleteTrigger = "eventcore_prevent_delete_trigger"
	// ExpectedVersionsSetting is the transaction-local setting holding the
	// JSON object of expected stream versions.
	ExpectedVersionsSetting = "eventcore.expected_versions"
	// VersionConflictCode is the SQLSTATE of a version conflict.
	VersionConflictCode = "P0001"
	// ImmutableCode is the SQLSTATE raised on UPDATE or DELETE.
	ImmutableCode = "P0002"
)

// Triggers lists the triggers on the event table.
var Triggers = []string{VersionTrigger, PreventUpdateTrigger, PreventDeleteTrigger}

// Execer is anything that runs SQL: *pgx.Conn, *pgxpool.Pool, pgx.Tx.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Apply creates EventCore's tables, indexes, functions and triggers.
func Apply(ctx context.Context, conn Execer) error {
	if _, err := conn.Exec(ctx, SchemaSQL); err != nil {
		return fmt.Errorf("apply eventcore schema: %w", err)
	}
	return nil
}

// ApplyURL connects to the database at url and applies the schema: the
// one step every test, the demo and the chaos suite take to prepare a
// source or a restore target.
func ApplyURL(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("apply eventcore schema: connect: %w", err)
	}
	defer conn.Close(context.Background())
	return Apply(ctx, conn)
}
