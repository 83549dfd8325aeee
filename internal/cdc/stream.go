package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tidemark/tidemark/internal/event"
)

// heartbeatPrefix is the pg_logical_emit_message prefix of heartbeats.
const heartbeatPrefix = "tidemark.heartbeat"

// errRewind asks the replication loop to restart from the slot.
var errRewind = errors.New("rewind requested")

// errSourceShuttingDown ends a streaming session when the source shuts
// down (see signalSourceDown); the loop reconnects like after a lost
// connection.
var errSourceShuttingDown = errors.New("the source is shutting down; released the replication connection so its shutdown can finish")

// session is one START_REPLICATION run: it decodes pgoutput, assembles
// transactions, publishes them as chain items and confirms the slot.
type session struct {
	c    *Capture
	conn *pgconn.PgConn
	pub  *publisher
	em   *emitter

	start event.Position // where streaming started (the slot's confirmed position)
	prev  event.Position // the last item emitted
	rels  map[uint32]*relation
	cur   *txn

	lastStatus time.Time
	sent       event.Position // the last position confirmed to the slot
	// walSent is when the walsender sent the WAL message being handled
	// (its XLogData send time).
	walSent time.Time
}

// stream runs a session on conn, which is already streaming from start.
// On ctx cancellation it drains publishes, sends a final status update and
// returns ctx's error.
func (c *Capture) stream(ctx context.Context, conn *pgconn.PgConn, start event.Position) error {
	s := &session{c: c, conn: conn, start: start, prev: start, rels: map[uint32]*relation{}}
	s.pub = newPublisher(c.js, c.nc.MaxPayload, c.cfg, func() error { return s.sendStatus() })
	if err := c.batchPublishing(ctx, s.pub); err != nil {
		return err
	}
	s.em = c.newEmitter(s.pub)
	c.log.Info("streaming started", "slot", c.cfg.Slot, "from", start.String())
	c.kickHeartbeat()
	err := s.loop(ctx)
	if s.cur != nil {
		s.cur.close()
	}
	if ctx.Err() != nil {
		s.shutdown()
		return ctx.Err()
	}
	return err
}

func (s *session) loop(ctx context.Context) error {
	every := s.c.cfg.StatusInterval
	if err := s.sendStatus(); err != nil {
		return err
	}
	var rd recvDeadline
	defer rd.stop()
	for {
		if err := s.pub.Poll(); err != nil {
			return err
		}
		if time.Since(s.lastStatus) >= every {
			if err := s.sendStatus(); err != nil {
				return err
			}
		}
		select {
		case <-s.c.rewind:
			return errRewind
		case <-s.c.sourceDown:
			return errSourceShuttingDown
		default:
		}
		s.pub.SettleIdle(ctx)
		deadline := s.lastStatus.Add(every)
		if due := s.pub.settleDue(); !due.IsZero() && due.Before(deadline) {
			deadline = due
		}
		msg, err := s.conn.ReceiveMessage(rd.until(ctx, deadline))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receive replication message: %w", err)
		}
		if err := s.handle(ctx, msg); err != nil {
			return err
		}
	}
}

// recvDeadline is the context the replication loop receives with. One
// serves many messages: a context with a deadline (and its timer) per
// message was a tenth of capture's CPU. It is replaced once its deadline
// has passed, or when an earlier wake-up is needed (a batch to settle);
// waking early only costs a turn of the loop.
type recvDeadline struct {
	ctx    context.Context
	cancel context.CancelFunc
	at     time.Time
}

// until returns a context of parent that ends no later than deadline.
func (d *recvDeadline) until(parent context.Context, deadline time.Time) context.Context {
	if d.ctx == nil || !time.Now().Before(d.at) || deadline.Before(d.at) {
		d.stop()
		d.ctx, d.cancel = context.WithDeadline(parent, deadline)
		d.at = deadline
	}
	return d.ctx
}

func (d *recvDeadline) stop() {
	if d.cancel != nil {
		d.cancel()
	}
}

func (s *session) handle(ctx context.Context, msg pgproto3.BackendMessage) error {
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		if len(m.Data) == 0 {
			return nil
		}
		switch m.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			k, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
			if err != nil {
				return fmt.Errorf("parse keepalive: %w", err)
			}
			if k.ReplyRequested {
				return s.sendStatus()
			}
		case pglogrepl.XLogDataByteID:
			x, err := pglogrepl.ParseXLogData(m.Data[1:])
			if err != nil {
				return fmt.Errorf("parse xlogdata: %w", err)
			}
			s.walSent = x.ServerTime
			return s.handleWAL(ctx, x.WALData)
		}
	case *pgproto3.ErrorResponse:
		return fmt.Errorf("replication: %w", pgconn.ErrorResponseToPgError(m))
	case *pgproto3.CopyDone:
		return errors.New("replication: server ended the stream")
	}
	return nil
}

func (s *session) handleWAL(ctx context.Context, data []byte) error {
	msg, err := ParseMessage(data)
	if err != nil {
		return err
	}
	switch m := msg.(type) {
	case *Begin:
		if s.cur != nil {
			s.cur.close()
		}
		s.cur = newTxn(m.XID, m.FinalLSN, m.CommitTime, s.c.cfg)
	case *Relation:
		t, err := tableForRelation(ctx, s.c.pool, m)
		if err != nil {
			return err
		}
		s.rels[m.ID] = newRelation(m, t)
	case *Insert:
		rel, err := s.inTxn(m.RelationID)
		if err != nil {
			return err
		}
		return s.cur.addRow(rel, m.Raw)
	case *Update:
		rel, err := s.inTxn(m.RelationID)
		if err != nil {
			return err
		}
		old := rowJSON(rel, m.New, rel.keyCols)
		if m.OldKind != 0 {
			old = rowJSON(rel, m.Old, nil)
		}
		s.cur.addTamper(rel, "update", old, rowJSON(rel, m.New, nil), s.c.cfg.MaxTamperDetails)
	case *Delete:
		rel, err := s.inTxn(m.RelationID)
		if err != nil {
			return err
		}
		s.cur.addTamper(rel, "delete", rowJSON(rel, m.Old, nil), nil, s.c.cfg.MaxTamperDetails)
	case *Truncate:
		for _, id := range m.RelationIDs {
			rel, err := s.inTxn(id)
			if err != nil {
				return err
			}
			s.cur.addTamper(rel, "truncate", nil, nil, s.c.cfg.MaxTamperDetails)
		}
	case *Commit:
		return s.commit(ctx, m)
	case *LogicalMessage:
		return s.logicalMessage(ctx, m)
	}
	return nil
}

// inTxn returns the relation of a change, which must be inside a transaction.
func (s *session) inTxn(id uint32) (*relation, error) {
	if s.cur == nil {
		return nil, fmt.Errorf("pgoutput: change to relation %d outside a transaction", id)
	}
	rel, ok := s.rels[id]
	if !ok {
		return nil, fmt.Errorf("pgoutput: change to relation %d before its Relation message", id)
	}
	return rel, nil
}

func (s *session) commit(ctx context.Context, m *Commit) error {
	t := s.cur
	if t == nil {
		return errors.New("pgoutput: commit outside a transaction")
	}
	s.cur = nil
	defer t.close()
	if m.EndLSN <= s.prev {
		s.c.log.Warn("skipping transaction at or before the last emitted position", "end_lsn", m.EndLSN.String(), "prev", s.prev.String())
		return nil
	}
	n, err := s.em.publishTxn(ctx, t, m.EndLSN, s.prev, s.c.sysid)
	if err != nil {
		return err
	}
	if n > 0 {
		s.prev = m.EndLSN
		if !s.walSent.IsZero() {
			metricSourceDelay.Observe(s.walSent.Sub(t.commitTime).Seconds())
		}
	}
	return nil
}

// logicalMessage turns a heartbeat written by any capture into a chain item.
func (s *session) logicalMessage(ctx context.Context, m *LogicalMessage) error {
	if m.Transactional || m.Prefix != heartbeatPrefix || m.LSN <= s.prev {
		return nil
	}
	var body struct {
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal(m.Content, &body); err != nil || body.Time.IsZero() {
		body.Time = time.Now()
	}
	hb := event.Heartbeat{LSN: m.LSN, PrevLSN: s.prev, Time: body.Time.UTC().Truncate(time.Microsecond)}
	if err := s.em.publishHeartbeat(ctx, hb); err != nil {
		return err
	}
	s.prev = m.LSN
	return nil
}

// sendStatus confirms the slot up to what is durably handled: write, flush
// and apply are all set explicitly (pglogrepl would copy write into a zero
// flush position). The position never moves backwards.
func (s *session) sendStatus() error {
	acked, ok := s.pub.Acked()
	if !ok {
		acked = s.start
	}
	pos := max(s.c.confirmable(acked), s.sent)
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(pos),
		WALFlushPosition: pglogrepl.LSN(pos),
		WALApplyPosition: pglogrepl.LSN(pos),
		ClientTime:       time.Now(),
	})
	if err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	s.lastStatus = time.Now()
	if pos > s.sent {
		s.sent = pos
		metricConfirmedLSN.Set(float64(pos))
	}
	return nil
}

// shutdown drains in-flight publishes and sends a final status update.
func (s *session) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), s.c.cfg.DrainTimeout)
	defer cancel()
	if err := s.pub.Drain(ctx); err != nil {
		s.c.log.Warn("shutdown: publishes not drained", "pending", s.pub.Pending(), "err", err)
	}
	if err := s.sendStatus(); err != nil {
		s.c.log.Warn("shutdown: final status update failed", "err", err)
	}
	s.c.log.Info("streaming stopped", "confirmed", s.sent.String(), "last_emitted", s.prev.String())
}

// publishHeartbeat publishes a heartbeat as a chain item.
func (em *emitter) publishHeartbeat(ctx context.Context, hb event.Heartbeat) error {
	msg := em.subjects.EncodeHeartbeat(em.systemID, hb)
	em.pub.beginItem(hb.LSN)
	return em.pub.Publish(ctx, msg, &mark{pos: hb.LSN, srcTime: hb.Time, heartbeat: true}, false)
}
