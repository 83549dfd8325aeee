package restore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidemark/tidemark/internal/redact"
)

// connect opens a connection to a target or source database with session
// settings that make text values round-trip exactly.
func connect(ctx context.Context, rawURL, role string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, failf(ErrUsage, "use postgres://user@host:port/db?sslmode=…",
			"invalid %s URL %s: %v", role, redact.URL(rawURL), redact.Error(err, rawURL))
	}
	for k, v := range map[string]string{
		"application_name":  "tidemark-restorer",
		"DateStyle":         "ISO, MDY",
		"IntervalStyle":     "postgres",
		"client_encoding":   "UTF8",
		"statement_timeout": "0",
	} {
		if _, set := cfg.RuntimeParams[k]; !set {
			cfg.RuntimeParams[k] = v
		}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, classifyPGErr(fmt.Errorf("connect to %s database %s: %w", role, redact.URL(rawURL), err))
	}
	return conn, nil
}

// classifyPGErr maps authentication failures to ErrCredentials and a
// missing database to ErrTarget.
func classifyPGErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01", "28000":
			return withHint(ErrCredentials, err, "check the user and password in the connection URL (or PGPASSWORD / ~/.pgpass)")
		case "3D000":
			return withHint(ErrTarget, err, "create the database first (createdb), then run the application's migrations or pass --create-table")
		case "42501":
			return withHint(ErrPrivilege, err, "grant the role the privileges named above, or connect as the table's owner")
		}
	}
	return err
}
