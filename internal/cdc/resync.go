package cdc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// errResync: the slot is missing after a failover to a promoted standby of
// the same cluster, and capture resyncs instead of stopping.
var errResync = errors.New("resync needed")

// ErrResyncRefused: a resync cannot be done safely — the new primary does
// not track commit timestamps, or its WAL position is too far below the
// feed's.
var ErrResyncRefused = errors.New("resync refused")

// resyncPlan is what a resync needs to know before it creates the slot; it
// is kept in META's slot record so a resync interrupted by a crash is
// started again, never replaced by an initial snapshot.
type resyncPlan struct {
	// Base is at or above every chain position the feed holds: the
	// resync's items get positions above it.
	Base event.Position `json:"base"`
	// Prev is the archive's durable watermark when the resync was planned:
	// the begin heartbeat's chain link (the archiver is at or past it).
	Prev event.Position `json:"prev"`
	// From is the earliest commit time re-read.
	From         time.Time      `json:"from"`
	Timeline     int32          `json:"timeline"`
	PrevTimeline int32          `json:"prev_timeline"`
	ForkLSN      event.Position `json:"fork_lsn"`
}

// resyncRoom is how many chain positions a resync reserves between its
// base and the new slot's consistent point: one per re-read transaction.
const resyncRoom = 1 << 24

// maxResyncAdvance bounds the WAL capture writes on the new primary to
// lift its position above the feed's (see advanceWAL).
const maxResyncAdvance = 1 << 30

// mayResync reports whether the missing slot is to be replaced by a resync.
func (c *Capture) mayResync(rec *slotRecord) bool {
	if c.cfg.NoResync || c.source == nil {
		return false
	}
	if rec != nil && rec.Resync != nil {
		return true // an interrupted resync starts again
	}
	from := c.failedOverFrom
	return from != nil && from.SystemID == c.source.SystemID && from.Timeline < c.source.Timeline
}

// planResync decides the resync's base, link and time window. A base past
// the fork point means the feed (and maybe the archive) holds transactions
// the new primary lacks: reported here, marked by the archiver.
func (c *Capture) planResync(ctx context.Context, rec *slotRecord) (*resyncPlan, error) {
	w, hasWM, err := getWatermark(ctx, c.kv)
	if err != nil {
		return nil, err
	}
	last, err := c.lastPublished(ctx)
	if err != nil {
		return nil, err
	}
	p := &resyncPlan{Base: max(w.LSN, last), Prev: w.LSN, Timeline: c.source.Timeline}
	if rec != nil && rec.Resync != nil {
		// Started again: keep the window and the fork of the first plan.
		p.From, p.PrevTimeline, p.ForkLSN = rec.Resync.From, rec.Resync.PrevTimeline, rec.Resync.ForkLSN
		p.Base = max(p.Base, rec.Resync.Base)
	} else {
		if hasWM {
			p.From = w.CommitTime.Add(-c.cfg.ResyncOverlap).UTC()
		}
		if from := c.failedOverFrom; from != nil {
			p.PrevTimeline = from.Timeline
			if fork, ok := forkOf(c.source.History, from.Timeline); ok {
				p.ForkLSN = fork
			}
		}
	}
	if p.ForkLSN > 0 && p.Base > p.ForkLSN {
		metricPastFork.Set(float64(p.Base - p.ForkLSN))
		c.log.Error("the feed holds positions past the fork point: the old primary's capture published transactions the new primary "+
			"does not have (diverged history); the archiver marks those it archived as diverged and restores leave them out",
			"fork_lsn", p.ForkLSN.String(), "base", p.Base.String(), "past_fork_bytes", uint64(p.Base-p.ForkLSN),
			"timeline", p.Timeline, "prev_timeline", p.PrevTimeline)
	}
	return p, nil
}

// lastPublished returns the highest chain position among the stream's
// last messages (0 for an empty stream): the newest transaction or
// heartbeat capture published, whichever server it came from.
func (c *Capture) lastPublished(ctx context.Context) (event.Position, error) {
	// The stream's tail is in chain order except for re-sends after a
	// rewind, which JetStream drops inside its duplicate window; the last
	// thousand messages hold the highest position with a wide margin.
	return c.highestPosition(ctx, 1000)
}

// highestPosition returns the highest chain position among the stream's
// last scan messages (0 for an empty stream).
func (c *Capture) highestPosition(ctx context.Context, scan uint64) (event.Position, error) {
	s, err := c.js.Stream(ctx, c.cfg.Stream)
	if err != nil {
		return 0, fmt.Errorf("read stream %s: %w", c.cfg.Stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("read stream %s: %w", c.cfg.Stream, err)
	}
	var best event.Position
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && info.State.LastSeq-seq < scan; seq-- {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read stream %s message %d: %w", c.cfg.Stream, seq, err)
		}
		if pos, ok := chainPosition(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}); ok {
			best = max(best, pos)
		}
	}
	return best, nil
}

// chainPosition returns the chain position a feed message carries: a
// heartbeat's LSN or an event's end LSN (tamper reports have none).
func chainPosition(m *nats.Msg) (event.Position, bool) {
	switch {
	case feed.IsTamper(m):
		return 0, false
	case feed.IsHeartbeat(m):
		hb, err := feed.DecodeHeartbeat(m)
		return hb.LSN, err == nil
	}
	env, err := feed.DecodeEnvelope(m) // either feed version
	return env.EndLSN, err == nil
}

// advanceWAL writes WAL on the new primary (non-transactional logical
// messages of 1 MiB, which capture's role may write) until its insert
// position passes target, so the new slot's consistent point lies above
// every position the feed holds plus the resync's room.
func (c *Capture) advanceWAL(ctx context.Context, target event.Position) error {
	var written int64
	for {
		var cur string
		if err := c.pool.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&cur); err != nil {
			return fmt.Errorf("resync: read WAL position: %w", err)
		}
		pos, err := event.ParsePosition(cur)
		if err != nil {
			return fmt.Errorf("resync: WAL position: %w", err)
		}
		if pos > target {
			if written > 0 {
				c.log.Info("resync: advanced the new primary's WAL above the feed's positions", "bytes", written, "position", pos.String())
			}
			return nil
		}
		if written >= maxResyncAdvance {
			return fatal(fmt.Errorf("%w: the new primary's WAL position %s is still below %s after writing %d bytes", ErrResyncRefused, pos, target, written),
				"the feed's positions are far above the new primary's; start a new archive epoch as in docs/operations.md \"Slot lost\"")
		}
		if _, err := c.pool.Exec(ctx, "SELECT pg_logical_emit_message(false, 'tidemark.advance', repeat('x', 1048576))"); err != nil {
			return fmt.Errorf("resync: write WAL: %w", err)
		}
		written += 1 << 20
	}
}

// resyncSQL selects a table's rows committed at or after $1, with their
// commit time and xmin, in commit order (as snapshotSQL does for all rows).
func resyncSQL(t event.Table) string {
	q := snapshotSQL(t, true)
	from := fmt.Sprintf(" FROM %s.%s", quoteIdent(t.Schema), quoteIdent(t.Name))
	return strings.Replace(q, from, from+" WHERE pg_xact_commit_timestamp(xmin) >= $1", 1)
}

// resyncSnapshot publishes the resync: the begin heartbeat at Base+1, the
// rows committed at or after From in the slot's exported snapshot as
// transactions at Base+2, Base+3 …, one per source xid in commit order with
// their real commit times, and the done heartbeat at the consistent point
// cp. It returns once JetStream acknowledged everything.
func (c *Capture) resyncSnapshot(ctx context.Context, snapName string, cp event.Position, p *resyncPlan) error {
	if cp <= p.Base+2 {
		return fmt.Errorf("resync: the new slot's consistent point %s is not above the feed's position %s", cp, p.Base)
	}
	es, err := openExportedSnapshot(ctx, c.cfg.PGURL, snapName)
	if err != nil {
		return err
	}
	defer es.close()
	tx, snapTime := es.tx, es.time
	if !es.commitTimes {
		return fatal(fmt.Errorf("%w: track_commit_timestamp is off on the new primary: a resync needs every row's commit time", ErrResyncRefused),
			"set track_commit_timestamp = on on every instance of the cluster (restart required), or start a new archive epoch")
	}
	mark := event.Resync{Phase: event.ResyncBegin, ID: fmt.Sprintf("%d-%s", p.Timeline, strings.ReplaceAll(cp.String(), "/", "-")),
		From: p.From, SnapshotTime: snapTime, Timeline: p.Timeline, PrevTimeline: p.PrevTimeline, ForkLSN: p.ForkLSN,
		Base: p.Base, SlotLSN: cp}
	cursors := make([]*snapCursor, 0, len(c.cfg.Tables))
	for i, qt := range c.cfg.Tables {
		schema, name, _ := splitTable(qt)
		t, err := loadTable(ctx, tx, schema, name)
		if err != nil {
			return err
		}
		cur := &snapCursor{name: "tidemark_resync_" + strconv.Itoa(i), rel: newRelation(nil, t)}
		if _, err := tx.Exec(ctx, "DECLARE "+cur.name+" NO SCROLL CURSOR FOR "+resyncSQL(t), p.From); err != nil {
			return fmt.Errorf("resync %s: %w", t.QualifiedName(), err)
		}
		cursors = append(cursors, cur)
	}
	pub := newPublisher(c.js, c.nc.MaxPayload, c.cfg, func() error { return nil })
	if err := c.batchPublishing(ctx, pub); err != nil {
		return err
	}
	em := c.newEmitter(pub)
	begin := mark
	if err := em.publishHeartbeat(ctx, event.Heartbeat{LSN: p.Base + 1, PrevLSN: p.Prev, Time: snapTime, Resync: &begin}); err != nil {
		return err
	}
	s := &snapshotWriter{c: c, em: em, msgSysID: c.sysid + ".resync." + strconv.FormatUint(uint64(cp), 16), snapTime: snapTime, pos: p.Base + 1}
	for {
		cur, row, err := nextSnapshotRow(ctx, tx, cursors)
		if err != nil {
			return err
		}
		if row == nil {
			break
		}
		if err := s.add(ctx, cur.rel, row); err != nil {
			return err
		}
		if s.pos+2 >= cp {
			return fmt.Errorf("resync: %d transactions reach the new slot's consistent point %s", s.pos-p.Base-1, cp)
		}
	}
	if err := s.flush(ctx); err != nil {
		return err
	}
	done := mark
	done.Phase, done.Rows, done.Transactions = event.ResyncDone, s.rows, int(s.pos-p.Base-1)
	if err := em.publishHeartbeat(ctx, event.Heartbeat{LSN: cp, PrevLSN: s.pos, Time: snapTime, SnapshotDone: true, Resync: &done}); err != nil {
		return err
	}
	if err := pub.Drain(ctx); err != nil {
		return fmt.Errorf("resync: wait for acknowledgements: %w", err)
	}
	metricResyncs.Inc()
	metricResyncRows.Add(float64(s.rows))
	c.log.Warn("resync published: rows committed since the window's start re-read from the new primary", "resync", mark.ID,
		"from", p.From, "rows", s.rows, "transactions", done.Transactions, "base", p.Base.String(), "consistent_point", cp.String())
	return nil
}
