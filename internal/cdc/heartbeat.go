package cdc

import (
	"context"
	"time"
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
