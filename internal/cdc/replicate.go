package cdc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidemark/tidemark/internal/event"
)

// SQLSTATEs capture reacts to.
const (
	sqlstateObjectInUse     = "55006" // replication slot is active for another PID
	sqlstateDuplicateObject = "42710" // replication slot already exists
)

// errSlotBusy means another capture holds the slot.
var errSlotBusy = errors.New("slot busy")

// replicate runs streaming sessions until ctx ends or a fatal error:
// rewinds, failed publishes and lost connections restart streaming from
// the slot's confirmed position.
func (c *Capture) replicate(ctx context.Context) error {
	failures := 0
	for {
		conn, start, err := c.openStream(ctx)
		if err == nil {
			failures = 0
			c.streaming.Store(true)
			c.readyErr.Store(nil)
			err = c.stream(ctx, conn, start)
			c.streaming.Store(false)
			closeConn(conn)
		}
		if ctx.Err() != nil {
			return nil
		}
		var fe *FatalError
		var ce *CheckError
		if errors.As(err, &fe) || errors.As(err, &ce) {
			return err
		}
		c.setNotReady("replication restarting: " + err.Error())
		wait := time.Second
		switch {
		case errors.Is(err, errRewind):
			metricRewinds.Inc()
			c.log.Warn("rewinding: restarting streaming from the slot's confirmed position")
			wait = 0
		case errors.Is(err, errPublishExhausted):
			metricRewinds.Inc()
			c.log.Error("publishing failed repeatedly; rewinding to the slot's confirmed position", "err", err)
		default:
			failures++
			wait = min(time.Duration(failures)*time.Second, 30*time.Second)
			c.log.Error("replication interrupted; resuming from the slot", "err", err, "retry_in", wait.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func closeConn(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// openStream returns a replication connection already streaming, and the
// position it streams from. It creates the slot (and publishes the initial
// snapshot) when the slot may be created, and waits while another capture
// holds the slot.
func (c *Capture) openStream(ctx context.Context) (*pgconn.PgConn, event.Position, error) {
	announced := 0
	for {
		conn, start, err := c.tryOpenStream(ctx)
		var busy *slotBusyError
		if !errors.As(err, &busy) {
			return conn, start, err
		}
		c.setNotReady(fmt.Sprintf("slot active for PID %d", busy.pid))
		if busy.pid != announced {
			c.log.Info(fmt.Sprintf("slot active for PID %d, retrying", busy.pid), "slot", c.cfg.Slot, "pid", busy.pid)
			announced = busy.pid
		} else {
			c.log.Debug(fmt.Sprintf("slot active for PID %d, retrying", busy.pid))
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(c.cfg.SlotRetryInterval):
		}
	}
}

// slotBusyError says another process holds the slot.
type slotBusyError struct{ pid int }

func (e *slotBusyError) Error() string { return fmt.Sprintf("slot active for PID %d", e.pid) }
func (e *slotBusyError) Unwrap() error { return errSlotBusy }

func (c *Capture) tryOpenStream(ctx context.Context) (*pgconn.PgConn, event.Position, error) {
	slot, err := readSlot(ctx, c.pool, c.cfg.Slot)
	if err != nil {
		return nil, 0, err
	}
	rec, err := getSlotRecord(ctx, c.kv, c.cfg.Slot)
	if err != nil {
		return nil, 0, err
	}
	if !slot.Exists {
		if err := c.mayCreateSlot(ctx, rec); err != nil {
			return nil, 0, err
		}
		return c.createSlotAndSnapshot(ctx)
	}
	// A slot held by another process is waited for before it is judged: its
	// holder may still be publishing the initial snapshot, which would look
	// incomplete from here.
	if slot.Active {
		return nil, 0, &slotBusyError{pid: slot.ActivePID}
	}
	if err := c.checkSlot(ctx, slot, rec); err != nil {
		return nil, 0, err
	}
	conn, err := connectReplication(ctx, c.cfg.PGURL)
	if err != nil {
		return nil, 0, err
	}
	if err := c.startReplication(ctx, conn, slot.ConfirmedFlushLSN); err != nil {
		closeConn(conn)
		return nil, 0, err
	}
	// Now that this connection holds the slot, its confirmed position
	// cannot move: stream from exactly there.
	slot, err = readSlot(ctx, c.pool, c.cfg.Slot)
	if err != nil {
		closeConn(conn)
		return nil, 0, err
	}
	return conn, slot.ConfirmedFlushLSN, nil
}

// startReplication issues START_REPLICATION; a slot held by another
// process is reported as *slotBusyError.
func (c *Capture) startReplication(ctx context.Context, conn *pgconn.PgConn, from event.Position) error {
	err := pglogrepl.StartReplication(ctx, conn, c.cfg.Slot, pglogrepl.LSN(from), pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{
			"proto_version '1'",
			"publication_names '" + c.cfg.Publication + "'",
			"messages 'true'",
		},
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == sqlstateObjectInUse {
		pid := 0
		if s, rerr := readSlot(ctx, c.pool, c.cfg.Slot); rerr == nil {
			pid = s.ActivePID
		}
		return &slotBusyError{pid: pid}
	}
	if err != nil {
		return fmt.Errorf("start replication on slot %s: %w", c.cfg.Slot, err)
	}
	return nil
}

// mayCreateSlot refuses to create a slot when one existed before: a new
// slot starts at the current WAL position and would leave a gap.
func (c *Capture) mayCreateSlot(ctx context.Context, rec *slotRecord) error {
	if rec != nil && rec.State == slotCreating {
		return nil
	}
	history := rec != nil
	if !history {
		var err error
		if history, err = streamHasHistory(ctx, c.js, c.cfg.Stream); err != nil {
			return err
		}
	}
	if !history {
		return nil
	}
	return fatal(fmt.Errorf("%w: replication slot %q does not exist on the source, but capture has streamed from it into stream %s before; "+
		"a new slot would start at the current WAL position and leave a gap", ErrSlotMissing, c.cfg.Slot, c.cfg.Stream),
		"if the source failed over, point --pg at the server that has the slot; to accept the gap and snapshot the tables again, run `capture setup --reset-slot` and start capture")
}

// checkSlot verifies an existing slot can be streamed from.
func (c *Capture) checkSlot(ctx context.Context, slot slotState, rec *slotRecord) error {
	if slot.Plugin != "pgoutput" {
		return fatal(fmt.Errorf("slot %s uses plugin %q, capture needs pgoutput", c.cfg.Slot, slot.Plugin),
			"choose another --slot, or drop this one if it is unused")
	}
	if slot.WALStatus == "lost" {
		return fatal(fmt.Errorf("%w: slot %s has wal_status lost: the server removed WAL it had not yet sent (max_slot_wal_keep_size); "+
			"events committed since %s may be missing", ErrSlotLost, c.cfg.Slot, slot.ConfirmedFlushLSN),
			"restore the missing range from a base backup if needed; to continue with a gap, run `capture setup --reset-slot` and start capture; "+
				"raise max_slot_wal_keep_size to prevent this")
	}
	var db string
	if err := c.pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		return fmt.Errorf("read current database: %w", err)
	}
	if slot.Database != db {
		return fatal(fmt.Errorf("slot %s belongs to database %q, capture is connected to %q", c.cfg.Slot, slot.Database, db),
			"point --pg at the slot's database or choose another --slot")
	}
	switch {
	case rec == nil:
		c.log.Warn("slot exists but META has no record of it; assuming its initial snapshot is complete", "slot", c.cfg.Slot)
		return putSlotRecord(ctx, c.kv, slotRecord{Slot: c.cfg.Slot, SystemID: c.sysid, State: slotStreaming, ConsistentPoint: slot.ConfirmedFlushLSN})
	case rec.State == slotStreaming:
		return nil
	case rec.State == slotSnapshot && rec.ConsistentPoint > 0:
		w, ok, err := getWatermark(ctx, c.kv)
		if err != nil {
			return err
		}
		if ok && w.LSN >= rec.ConsistentPoint {
			rec.State = slotStreaming
			return putSlotRecord(ctx, c.kv, *rec)
		}
	}
	return fatal(fmt.Errorf("%w: slot %s was created (consistent point %s) but the initial snapshot was not completely published "+
		"(a capture stopped during the snapshot)", ErrSnapshotIncomplete, c.cfg.Slot, rec.ConsistentPoint),
		"run `capture setup --reset-slot` to drop the slot, then start capture again to take a new snapshot")
}

// createSlotAndSnapshot creates the slot with an exported snapshot,
// publishes the existing rows and the snapshot-done heartbeat, and starts
// streaming at the slot's consistent point.
func (c *Capture) createSlotAndSnapshot(ctx context.Context) (*pgconn.PgConn, event.Position, error) {
	rec := slotRecord{Slot: c.cfg.Slot, SystemID: c.sysid, State: slotCreating}
	if err := putSlotRecord(ctx, c.kv, rec); err != nil {
		return nil, 0, err
	}
	conn, err := connectReplication(ctx, c.cfg.PGURL)
	if err != nil {
		return nil, 0, err
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, c.cfg.Slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT",
	})
	if err != nil {
		closeConn(conn)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == sqlstateDuplicateObject {
			return nil, 0, &slotBusyError{} // another capture created it a moment ago
		}
		return nil, 0, fmt.Errorf("create replication slot %s: %w", c.cfg.Slot, err)
	}
	cp, err := event.ParsePosition(res.ConsistentPoint)
	if err != nil {
		closeConn(conn)
		return nil, 0, fmt.Errorf("create replication slot %s: consistent point: %w", c.cfg.Slot, err)
	}
	c.log.Info("replication slot created", "slot", c.cfg.Slot, "consistent_point", cp.String(), "snapshot", res.SnapshotName)
	rec.State, rec.ConsistentPoint = slotSnapshot, cp
	if err := putSlotRecord(ctx, c.kv, rec); err != nil {
		closeConn(conn)
		return nil, 0, err
	}
	if err := c.snapshot(ctx, res.SnapshotName, cp); err != nil {
		closeConn(conn)
		return nil, 0, c.abandonSlot(err)
	}
	rec.State = slotStreaming
	if err := putSlotRecord(ctx, c.kv, rec); err != nil {
		closeConn(conn)
		return nil, 0, err
	}
	if err := c.startReplication(ctx, conn, cp); err != nil {
		closeConn(conn)
		return nil, 0, err
	}
	return conn, cp, nil
}

// abandonSlot drops a slot whose snapshot failed, so the next attempt
// starts over; if that is impossible the error becomes fatal.
func (c *Capture) abandonSlot(cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.log.Error("initial snapshot failed; dropping the new slot to start over", "slot", c.cfg.Slot, "err", cause)
	derr := dropSlotWait(ctx, c.cfg.PGURL, c.cfg.Slot)
	if derr == nil {
		derr = putSlotRecord(ctx, c.kv, slotRecord{Slot: c.cfg.Slot, SystemID: c.sysid, State: slotCreating})
	}
	if derr != nil {
		return fatal(fmt.Errorf("%w: snapshot failed (%v) and the slot could not be dropped: %v", ErrSnapshotIncomplete, cause, derr),
			"run `capture setup --reset-slot`, then start capture again")
	}
	return fmt.Errorf("initial snapshot: %w", cause)
}

// snapshotSystemID is the system id used in the Nats-Msg-Id of snapshot
// rows: it names the consistent point, so a later snapshot (after a slot
// reset) never collides with an earlier one in the duplicate window.
func snapshotSystemID(sysid string, cp event.Position) string {
	return sysid + ".snap." + strconv.FormatUint(uint64(cp), 16)
}

// dropSlotWait drops a slot over a replication connection, waiting for a
// walsender that still holds it to let go.
func dropSlotWait(ctx context.Context, pgURL, slot string) error {
	conn, err := connectReplication(ctx, pgURL)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	if err := pglogrepl.DropReplicationSlot(ctx, conn, slot, pglogrepl.DropReplicationSlotOptions{Wait: true}); err != nil {
		return fmt.Errorf("drop replication slot %s: %w", slot, err)
	}
	return nil
}
