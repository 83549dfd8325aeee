package cdc

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
)

// sessionParams fix the text output of values so snapshot rows (read with
// SQL) and streamed rows (formatted by the walsender) are byte-identical.
var sessionParams = map[string]string{
	"DateStyle":          "ISO, MDY",
	"TimeZone":           "UTC",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"application_name":   "tidemark-capture",
}

// RedactURL returns a connection string safe to log: the password of a URL
// or of a keyword/value string is replaced by "xxxxx".
func RedactURL(s string) string {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "(unparseable URL)"
		}
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return kvPasswordRE.ReplaceAllString(s, "${1}xxxxx")
}

var kvPasswordRE = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

func pgConnConfig(rawURL string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse postgres URL %s: %v", RedactURL(rawURL), redactErr(err, rawURL))
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	return cfg, nil
}

// redactErr strips the connection string from pgx parse errors, which may
// quote it.
func redactErr(err error, raw string) string {
	return strings.ReplaceAll(err.Error(), raw, RedactURL(raw))
}

// connectReplication opens a logical replication connection.
func connectReplication(ctx context.Context, rawURL string) (*pgconn.PgConn, error) {
	cfg, err := pgConnConfig(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["replication"] = "database"
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open replication connection to %s: %w", describePG(cfg), err)
	}
	return conn, nil
}

// connectPool opens the pool for catalog queries, heartbeats and status.
func connectPool(ctx context.Context, rawURL string) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse postgres URL %s: %v", RedactURL(rawURL), redactErr(err, rawURL))
	}
	for k, v := range sessionParams {
		pcfg.ConnConfig.RuntimeParams[k] = v
	}
	pcfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres %s: %w", describePG(&pcfg.ConnConfig.Config), err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := pool.Ping(cctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres %s: %w", describePG(&pcfg.ConnConfig.Config), err)
	}
	return pool, nil
}

// connectSnapshot opens a plain connection for reading the snapshot.
func connectSnapshot(ctx context.Context, rawURL string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse postgres URL %s: %v", RedactURL(rawURL), redactErr(err, rawURL))
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres %s: %w", describePG(&cfg.Config), err)
	}
	return conn, nil
}

// describePG names a server without secrets: user@host:port/db.
func describePG(c *pgconn.Config) string {
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// connectNATS connects to NATS, reconnecting forever once connected.
func connectNATS(urls, creds string) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("tidemark-capture"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.Timeout(5 * time.Second),
	}
	if creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		return nil, fatal(fmt.Errorf("connect to NATS at %s: %w", redactNATS(urls), err),
			"check --nats-url (or NATS_URL) and that the NATS server is running and reachable")
	}
	return nc, nil
}

func redactNATS(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		parts[i] = RedactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}
