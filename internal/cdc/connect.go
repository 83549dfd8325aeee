package cdc

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/redact"
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

func pgConnConfig(rawURL string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse postgres URL %s: %v", redact.URL(rawURL), redact.Error(err, rawURL))
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	return cfg, nil
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
		return nil, fmt.Errorf("parse postgres URL %s: %v", redact.URL(rawURL), redact.Error(err, rawURL))
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
		return nil, fmt.Errorf("parse postgres URL %s: %v", redact.URL(rawURL), redact.Error(err, rawURL))
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
		return nil, fatal(fmt.Errorf("connect to NATS at %s: %w", redact.URL(urls), err),
			"check --nats-url (or NATS_URL) and that the NATS server is running and reachable")
	}
	return nc, nil
}
