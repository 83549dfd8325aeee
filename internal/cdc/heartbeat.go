package cdc

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// heartbeatSQL writes a non-transactional logical message that arrives on
// the slot in WAL order: every transaction committed before it has been
// sent when it arrives.
const heartbeatSQL = `SELECT pg_logical_emit_message(false, '` + heartbeatPrefix + `',
  json_build_object('time', clock_timestamp(), 'slot', $1::text)::text)`

// emitHeartbeats writes a heartbeat every HeartbeatInterval while
// streaming, and at once when asked (kickHeartbeat).
func (c *Capture) emitHeartbeats(ctx context.Context) error {
	t := time.NewTicker(c.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-c.heartbeatCh:
		}
		if !c.streaming.Load() {
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.pool.Exec(hctx, heartbeatSQL, c.cfg.Slot)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Warn("write heartbeat failed", "err", err)
			if sourceShuttingDown(err) {
				c.signalSourceDown()
			}
		}
	}
}

// kickHeartbeat asks for a heartbeat now (after streaming starts).
func (c *Capture) kickHeartbeat() {
	select {
	case c.heartbeatCh <- struct{}{}:
	default:
	}
}

// SQLSTATEs of a server that is shutting down.
const (
	sqlstateAdminShutdown    = "57P01" // terminating connection due to administrator command
	sqlstateCrashShutdown    = "57P02"
	sqlstateCannotConnectNow = "57P03" // the database system is shutting down
)

// sourceShuttingDown reports whether err says the source is shutting down.
func sourceShuttingDown(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case sqlstateAdminShutdown, sqlstateCrashShutdown, sqlstateCannotConnectNow:
		return true
	}
	return false
}

// signalSourceDown asks the replication loop to let go of its connection.
// A fast shutdown (a switchover's first step) waits for every walsender to
// see its client confirm the last WAL, and capture never confirms past the
// archive's watermark: without this, the old primary would wait for
// capture until it is killed (the operator's timeout, CloudNativePG's
// switchoverDelay). Letting go is safe: the slot keeps its confirmed
// position, and capture reconnects to whichever server is the primary.
func (c *Capture) signalSourceDown() {
	select {
	case c.sourceDown <- struct{}{}:
	default:
	}
}
