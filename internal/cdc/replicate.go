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

// errSlotBusy means another capture holds the slot, or is creating it and
// publishing its initial snapshot.
var errSlotBusy = errors.New("slot busy")

// replicate runs streaming sessions until ctx ends or a fatal error:
// rewinds, failed publishes and lost connections restart streaming from
// the slot's confirmed position.
func (c *Capture) replicate(ctx context.Context) error {
	failures := 0
	recheck := false
	for {
		var conn *pgconn.PgConn
		var start event.Position
		var err error
		if recheck {
			err = c.recheckSource(ctx)
		}
		if err == nil {
			conn, start, err = c.openStream(ctx)
		}
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
		recheck = !errors.Is(err, errRewind) && !errors.Is(err, errPublishExhausted)
		switch {
		case errors.Is(err, errRewind):
			metricRewinds.Inc()
			c.log.Warn("rewinding: restarting streaming from the slot's confirmed position")
			wait = 0
		case errors.Is(err, errSourceShuttingDown):
			c.log.Warn("the source is shutting down: released the replication connection so its shutdown can finish; reconnecting to the primary")
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
// holds the slot or is creating it and publishing its initial snapshot.
func (c *Capture) openStream(ctx context.Context) (*pgconn.PgConn, event.Position, error) {
	announced := ""
	for {
		conn, start, err := c.tryOpenStream(ctx)
		var busy *slotBusyError
		if !errors.As(err, &busy) {
			return conn, start, err
		}
		why := busy.Error()
		c.setNotReady(why)
		if why != announced {
			attrs := []any{"slot", c.cfg.Slot}
			switch {
			case busy.snapshot != "":
				attrs = append(attrs, "snapshot", busy.snapshot)
			case !busy.creating:
				attrs = append(attrs, "pid", busy.pid)
			}
			c.log.Info(why+", retrying", attrs...)
			announced = why
		} else {
			c.log.Debug(why + ", retrying")
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(c.cfg.SlotRetryInterval):
		}
	}
}

// slotBusyError says another process holds the slot, or another capture
// is creating it or publishing its initial snapshot (the slot is inactive
// then: PostgreSQL releases it when CREATE_REPLICATION_SLOT returns).
type slotBusyError struct {
	pid      int    // the process holding the slot (0 if unknown)
	creating bool   // another capture is creating the slot
	snapshot string // another capture publishes the initial snapshot exported under this name
}

func (e *slotBusyError) Error() string {
	switch {
	case e.snapshot != "":
		return fmt.Sprintf("another capture is publishing the initial snapshot (exported snapshot %s)", e.snapshot)
	case e.creating:
		return "another capture is creating the slot"
	}
	return fmt.Sprintf("slot active for PID %d", e.pid)
}

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
		err := c.mayCreateSlot(ctx, rec)
		if errors.Is(err, errResync) {
			plan, err := c.planResync(ctx, rec)
			if err != nil {
				return nil, 0, err
			}
			c.log.Warn("replication slot missing after a failover: resyncing into the same archive", "slot", c.cfg.Slot,
				"from", plan.From, "base", plan.Base.String(), "fork_lsn", plan.ForkLSN.String(), "timeline", plan.Timeline)
			if err := c.advanceWAL(ctx, plan.Base+resyncRoom); err != nil {
				return nil, 0, err
			}
			return c.createSlotAndSnapshot(ctx, rec, plan)
		}
		if err != nil {
			return nil, 0, err
		}
		return c.createSlotAndSnapshot(ctx, rec, nil)
	}
	// A slot held by another process is waited for before it is judged.
	// An inactive slot is not necessarily free: PostgreSQL releases the
	// slot when CREATE_REPLICATION_SLOT returns, so while its creator
	// publishes the initial snapshot it is inactive. checkSlot tells that
	// apart from an abandoned snapshot (and returns *slotBusyError then).
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
	if err := c.checkStreamingConn(ctx, conn); err != nil {
		closeConn(conn)
		return nil, 0, err
	}
	if err := c.startReplication(ctx, conn, slot.ConfirmedFlushLSN); err != nil {
		closeConn(conn)
		return nil, 0, err
	}
	if err := c.sourceStreaming(ctx); err != nil {
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
// slot starts at the current WAL position and would leave a gap. While
// another capture is creating the slot it returns *slotBusyError.
func (c *Capture) mayCreateSlot(ctx context.Context, rec *slotRecord) error {
	if rec != nil && rec.State == slotCreating {
		busy, err := creationInProgress(ctx, c.pool, rec)
		if err != nil {
			return err
		}
		if busy != nil {
			return busy
		}
		if rec.Resync != nil {
			if c.cfg.NoResync {
				return fatal(fmt.Errorf("%w: replication slot %q is missing and a resync after a failover was started but not finished", ErrSlotMissing, c.cfg.Slot),
					"run capture without --resync-after-failover=false to finish the resync, or start a new archive epoch (docs/operations.md \"Slot lost\")")
			}
			return errResync
		}
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
	if c.mayResync(rec) {
		return errResync
	}
	if from := c.failedOverFrom; from != nil && c.source != nil && from.SystemID == c.source.SystemID {
		return fatal(fmt.Errorf("%w: the source failed over to a promoted standby of the same cluster (system %s, timeline %d on %s → timeline %d on %s), "+
			"which has no replication slot %q: PostgreSQL before 17 does not carry logical slots to standbys; "+
			"a new slot would start at the current WAL position and leave a gap", ErrSlotMissing,
			c.source.SystemID, from.Timeline, from.Server, c.source.Timeline, c.source.Server, c.cfg.Slot),
			"see docs/operations.md \"Source lost\": run capture with --resync-after-failover (the default) to resync into the same archive; "+
				"on PostgreSQL 17 and later, failover slots (sync_replication_slots) avoid this; or start a new archive epoch")
	}
	return fatal(fmt.Errorf("%w: replication slot %q does not exist on the source, but capture has streamed from it into stream %s before; "+
		"a new slot would start at the current WAL position and leave a gap", ErrSlotMissing, c.cfg.Slot, c.cfg.Stream),
		"if the source failed over, point --pg at the server that has the slot; to accept the gap and snapshot the tables again, run `capture setup --reset-slot` and start capture")
}

// checkSlot verifies an existing, inactive slot can be streamed from. A
// slot whose initial snapshot another capture is still publishing gives
// *slotBusyError; one whose snapshot was abandoned, ErrSnapshotIncomplete.
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
	}
	// The initial snapshot is not known to be complete. While the capture
	// that created the slot is still at it, wait, as for a slot active for
	// another process: it hands over to streaming itself.
	busy, err := creationInProgress(ctx, c.pool, rec)
	if err != nil {
		return err
	}
	if busy != nil {
		return busy
	}
	// The record may have moved on since it was read: a creator that hands
	// over to streaming says so in META and then ends its export with
	// START_REPLICATION. Judge the current record.
	cur, err := getSlotRecord(ctx, c.kv, c.cfg.Slot)
	if err != nil {
		return err
	}
	if cur != nil && cur.revision != rec.revision {
		return c.checkSlot(ctx, slot, cur)
	}
	// It stopped. A resync is started again: its slot is dropped (the
	// exported snapshot is gone with its creator) and the next attempt
	// re-reads the rows; the archiver skips what it already holds.
	if rec.Resync != nil {
		c.log.Warn("an earlier resync stopped before it finished; dropping its slot to start the resync again", "slot", c.cfg.Slot)
		if err := putSlotRecord(ctx, c.kv, slotRecord{Slot: c.cfg.Slot, SystemID: c.sysid, State: slotCreating, Resync: rec.Resync}); err != nil {
			return err
		}
		if err := dropSlotWait(ctx, c.cfg.PGURL, c.cfg.Slot); err != nil {
			return err
		}
		return errors.New("restarting an interrupted resync")
	}
	// It stopped; if the archive holds the snapshot-done heartbeat, the
	// snapshot was complete and only META's last update is missing.
	if rec.State == slotSnapshot && rec.ConsistentPoint > 0 {
		w, ok, err := getWatermark(ctx, c.kv)
		if err != nil {
			return err
		}
		if ok && w.LSN >= rec.ConsistentPoint {
			rec.State, rec.Snapshot, rec.Creator = slotStreaming, "", nil
			return putSlotRecord(ctx, c.kv, *rec)
		}
	}
	return fatal(fmt.Errorf("%w: slot %s was created (consistent point %s) but the initial snapshot was not completely published "+
		"(the capture that created it stopped during the snapshot: META says %q and the exported snapshot can no longer be imported)",
		ErrSnapshotIncomplete, c.cfg.Slot, rec.ConsistentPoint, rec.State),
		"run `capture setup --reset-slot` to drop the slot, then start capture again to take a new snapshot")
}

// createSlotAndSnapshot creates the slot with an exported snapshot,
// publishes the existing rows and the snapshot-done heartbeat, and starts
// streaming at the slot's consistent point. prev is the slot record read
// before deciding to create the slot: the creation is claimed only if the
// record is unchanged, so two captures never both create and snapshot.
//
// Until it starts streaming, the slot is inactive and META says what the
// capture does: "creating" with the identity of its replication connection,
// then "snapshot" with the exported snapshot's name. Other captures wait
// while that connection lives or that snapshot can be imported
// (creationInProgress).
func (c *Capture) createSlotAndSnapshot(ctx context.Context, prev *slotRecord, plan *resyncPlan) (*pgconn.PgConn, event.Position, error) {
	conn, err := connectReplication(ctx, c.cfg.PGURL)
	if err != nil {
		return nil, 0, err
	}
	if err := c.checkStreamingConn(ctx, conn); err != nil {
		closeConn(conn)
		return nil, 0, err
	}
	creator, err := backendOf(ctx, c.pool, conn.PID())
	if err != nil {
		closeConn(conn)
		return nil, 0, err
	}
	rec := slotRecord{Slot: c.cfg.Slot, SystemID: c.sysid, State: slotCreating, Creator: &creator, Resync: plan}
	var rev uint64
	if prev != nil {
		rev = prev.revision
	}
	if err := putSlotRecordIf(ctx, c.kv, rec, rev); err != nil {
		closeConn(conn)
		if errors.Is(err, errSlotRecordChanged) {
			return nil, 0, &slotBusyError{creating: true} // another capture claimed the creation a moment ago
		}
		return nil, 0, err
	}
	version, err := serverVersionNum(ctx, c.pool)
	if err != nil {
		closeConn(conn)
		return nil, 0, err
	}
	res, err := pglogrepl.ParseCreateReplicationSlot(conn.Exec(ctx, createSlotCommand(c.cfg.Slot, version)))
	if err != nil {
		closeConn(conn)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == sqlstateDuplicateObject {
			return nil, 0, &slotBusyError{creating: true} // someone else created it a moment ago
		}
		return nil, 0, fmt.Errorf("create replication slot %s: %w", c.cfg.Slot, err)
	}
	cp, err := event.ParsePosition(res.ConsistentPoint)
	if err != nil {
		return nil, 0, c.abandonSlot(conn, &rec, fmt.Errorf("create replication slot %s: consistent point: %w", c.cfg.Slot, err))
	}
	c.log.Info("replication slot created", "slot", c.cfg.Slot, "consistent_point", cp.String(), "snapshot", res.SnapshotName,
		"failover", version >= failoverSlotsVersion)
	rec.State, rec.ConsistentPoint, rec.Snapshot = slotSnapshot, cp, res.SnapshotName
	if err := putSlotRecord(ctx, c.kv, rec); err != nil {
		return nil, 0, c.abandonSlot(conn, &rec, err)
	}
	if plan != nil {
		err = c.resyncSnapshot(ctx, res.SnapshotName, cp, plan)
	} else {
		err = c.snapshot(ctx, res.SnapshotName, cp)
	}
	if err != nil {
		var fe *FatalError
		if errors.As(err, &fe) {
			closeConn(conn) // the slot stays, recorded as an unfinished resync: a fixed setting lets the next start finish it
			return nil, 0, err
		}
		return nil, 0, c.abandonSlot(conn, &rec, err)
	}
	// The snapshot and its snapshot-done heartbeat are acknowledged: from
	// here the slot is the source of truth.
	rec.State, rec.Snapshot, rec.Creator, rec.Resync = slotStreaming, "", nil, nil
	if err := putSlotRecord(ctx, c.kv, rec); err != nil {
		closeConn(conn)
		return nil, 0, err
	}
	if c.beforeStartReplication != nil {
		c.beforeStartReplication()
	}
	// A standby may take the slot before this START_REPLICATION (META
	// already says "streaming"). It then streams from the slot's confirmed
	// position, the consistent point, exactly as this capture would have;
	// this one gets *slotBusyError and waits as the standby.
	if err := c.startReplication(ctx, conn, cp); err != nil {
		closeConn(conn)
		if errors.Is(err, errSlotBusy) {
			c.log.Info("initial snapshot published, but another capture started streaming from the slot first; this one waits as the standby", "slot", c.cfg.Slot)
		}
		return nil, 0, err
	}
	if err := c.sourceStreaming(ctx); err != nil {
		closeConn(conn)
		return nil, 0, err
	}
	return conn, cp, nil
}

// abandonSlot drops a slot whose snapshot failed, so the next attempt
// starts over, and closes conn, the connection that created the slot; if
// that is impossible the error becomes fatal. rec is the slot record
// written so far.
func (c *Capture) abandonSlot(conn *pgconn.PgConn, rec *slotRecord, cause error) error {
	// Other captures wait while conn is alive and META says "creating"
	// with conn as its creator; once the slot is gone and conn closed, they
	// may create the slot themselves. Saying "creating" before dropping
	// keeps them from ever seeing a missing slot under a "snapshot" record.
	defer closeConn(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.log.Error("initial snapshot failed; dropping the new slot to start over", "slot", c.cfg.Slot, "err", cause)
	derr := putSlotRecord(ctx, c.kv, slotRecord{Slot: c.cfg.Slot, SystemID: c.sysid, State: slotCreating, Creator: rec.Creator, Resync: rec.Resync})
	if derr == nil {
		derr = dropSlotWait(ctx, c.cfg.PGURL, c.cfg.Slot)
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
