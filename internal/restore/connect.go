package restore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// connect opens a connection to a target or source database with session
// settings that make text values round-trip exactly.
func connect(ctx context.Context, rawURL, role string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, failf(ErrUsage, "use postgres://user@host:port/db?sslmode=…",
			"invalid %s URL %s: %v", role, RedactURL(rawURL), redactErr(err, rawURL))
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
		return nil, classifyPGErr(fmt.Errorf("connect to %s database %s: %w", role, RedactURL(rawURL), err))
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

// RedactURL hides the password in a connection or store URL.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		if i := strings.Index(raw, "password="); i >= 0 {
			return raw[:i] + "password=xxxxx"
		}
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	for k := range q {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "password") || strings.Contains(lk, "secret") || strings.Contains(lk, "token") || lk == "sslkey" {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// redactErr removes the raw URL (and its password) from an error message.
func redactErr(err error, raw string) string {
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return strings.ReplaceAll(msg, raw, RedactURL(raw))
}
