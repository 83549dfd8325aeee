package cdc

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/event"
)

// snapshotBatch is how many rows one FETCH reads from each table.
const snapshotBatch = 1000

// snapshot publishes the rows visible in the slot's exported snapshot as
// transactions with synthetic positions 1, 2, 3 …, one per source xid in
// commit order, then the heartbeat at the consistent point cp that closes
// the snapshot. It returns once JetStream acknowledged everything.
func (c *Capture) snapshot(ctx context.Context, snapName string, cp event.Position) error {
	es, err := openExportedSnapshot(ctx, c.cfg.PGURL, snapName)
	if err != nil {
		return err
	}
	defer es.close()
	tx, snapTime, tsOn := es.tx, es.time, es.commitTimes
	if !tsOn {
		c.log.Warn("track_commit_timestamp is off: snapshot rows get the snapshot time as commit time and are flagged as snapshot rows")
	}
	cursors := make([]*snapCursor, 0, len(c.cfg.Tables))
	for i, qt := range c.cfg.Tables {
		schema, name, _ := splitTable(qt)
		t, err := loadTable(ctx, tx, schema, name)
		if err != nil {
			return err
		}
		cur := &snapCursor{name: "tidemark_snap_" + strconv.Itoa(i), rel: newRelation(nil, t)}
		if _, err := tx.Exec(ctx, "DECLARE "+cur.name+" NO SCROLL CURSOR FOR "+snapshotSQL(t, tsOn)); err != nil {
			return fmt.Errorf("snapshot %s: %w", t.QualifiedName(), err)
		}
		cursors = append(cursors, cur)
	}
	pub := newPublisher(c.js, c.nc.MaxPayload, c.cfg, func() error { return nil })
	if err := c.batchPublishing(ctx, pub); err != nil {
		return err
	}
	em := c.newEmitter(pub)
	s := &snapshotWriter{c: c, em: em, msgSysID: snapshotSystemID(c.sysid, cp), snapTime: snapTime}
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
	}
	if err := s.flush(ctx); err != nil {
		return err
	}
	if s.pos >= cp {
		return fmt.Errorf("snapshot: %d transactions reach the consistent point %s", s.pos, cp)
	}
	hb := event.Heartbeat{LSN: cp, PrevLSN: s.pos, Time: snapTime, SnapshotDone: true}
	if err := em.publishHeartbeat(ctx, hb); err != nil {
		return err
	}
	if err := pub.Drain(ctx); err != nil {
		return fmt.Errorf("snapshot: wait for acknowledgements: %w", err)
	}
	c.log.Info("initial snapshot published", "rows", s.rows, "transactions", uint64(s.pos), "consistent_point", cp.String())
	return nil
}

// snapshotSQL selects a table's rows with their commit time (µs since the
// Unix epoch, NULL when unknown) and xmin, in commit order.
func snapshotSQL(t event.Table, tsOn bool) string {
	ts := "NULL::timestamptz"
	if tsOn {
		ts = "pg_xact_commit_timestamp(xmin)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SELECT (extract(epoch FROM %s) * 1000000)::int8, xmin::text::int8", ts)
	var keys []string
	for _, col := range t.Columns {
		b.WriteString(", ")
		b.WriteString(quoteIdent(col.Name))
		if col.Key {
			keys = append(keys, quoteIdent(col.Name))
		}
	}
	fmt.Fprintf(&b, " FROM %s.%s ORDER BY %s NULLS FIRST, xmin::text::int8", quoteIdent(t.Schema), quoteIdent(t.Name), ts)
	for _, k := range keys {
		b.WriteString(", ")
		b.WriteString(k)
	}
	return b.String()
}

// snapRow is one snapshot row: its commit key and text values.
type snapRow struct {
	hasTS  bool
	ts     int64
	xmin   int64
	values [][]byte
}

func (r *snapRow) before(o *snapRow) bool {
	if r.hasTS != o.hasTS {
		return !r.hasTS
	}
	if r.ts != o.ts {
		return r.ts < o.ts
	}
	return r.xmin < o.xmin
}

func (r *snapRow) sameTxn(o *snapRow) bool {
	return r.hasTS == o.hasTS && r.ts == o.ts && r.xmin == o.xmin
}

// snapCursor reads one table's snapshot in batches.
type snapCursor struct {
	name string
	rel  *relation
	buf  []snapRow
	i    int
	done bool
}

func (sc *snapCursor) peek(ctx context.Context, tx pgx.Tx) (*snapRow, error) {
	if sc.i < len(sc.buf) {
		return &sc.buf[sc.i], nil
	}
	if sc.done {
		return nil, nil
	}
	// The simple protocol returns every value in text format, exactly as
	// the type's output function (and so pgoutput) renders it.
	rows, err := tx.Query(ctx, "FETCH "+strconv.Itoa(snapshotBatch)+" FROM "+sc.name, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: fetch: %w", sc.rel.qualified, err)
	}
	sc.buf, sc.i = sc.buf[:0], 0
	for rows.Next() {
		raw := rows.RawValues()
		var r snapRow
		if raw[0] != nil {
			r.hasTS = true
			if r.ts, err = strconv.ParseInt(string(raw[0]), 10, 64); err != nil {
				rows.Close()
				return nil, fmt.Errorf("snapshot %s: commit time %q: %w", sc.rel.qualified, raw[0], err)
			}
		}
		if r.xmin, err = strconv.ParseInt(string(raw[1]), 10, 64); err != nil {
			rows.Close()
			return nil, fmt.Errorf("snapshot %s: xmin %q: %w", sc.rel.qualified, raw[1], err)
		}
		r.values = make([][]byte, len(raw)-2)
		for j, v := range raw[2:] {
			if v != nil {
				r.values[j] = append([]byte{}, v...)
			}
		}
		sc.buf = append(sc.buf, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("snapshot %s: fetch: %w", sc.rel.qualified, err)
	}
	if len(sc.buf) < snapshotBatch {
		sc.done = true
	}
	if len(sc.buf) == 0 {
		return nil, nil
	}
	return &sc.buf[0], nil
}

// nextSnapshotRow merges the tables' cursors in commit order.
func nextSnapshotRow(ctx context.Context, tx pgx.Tx, cursors []*snapCursor) (*snapCursor, *snapRow, error) {
	var best *snapCursor
	var bestRow *snapRow
	for _, sc := range cursors {
		r, err := sc.peek(ctx, tx)
		if err != nil {
			return nil, nil, err
		}
		if r != nil && (bestRow == nil || r.before(bestRow)) {
			best, bestRow = sc, r
		}
	}
	if best == nil {
		return nil, nil, nil
	}
	best.i++
	return best, bestRow, nil
}

// snapshotWriter groups snapshot rows into transactions and publishes them.
type snapshotWriter struct {
	c        *Capture
	em       *emitter
	msgSysID string
	snapTime time.Time
	cur      *txn
	key      snapRow
	pos      event.Position
	rows     int
	tuple    []byte
}

func (s *snapshotWriter) add(ctx context.Context, rel *relation, r *snapRow) error {
	if s.cur == nil || !s.key.sameTxn(r) {
		if err := s.flush(ctx); err != nil {
			return err
		}
		ct := s.snapTime
		if r.hasTS {
			ct = time.UnixMicro(r.ts).UTC()
		}
		s.cur = newTxn(uint32(r.xmin), 0, ct, s.c.cfg)
		s.cur.snapshot = !r.hasTS
		s.key = snapRow{hasTS: r.hasTS, ts: r.ts, xmin: r.xmin}
	}
	s.tuple = encodeTuple(s.tuple[:0], r.values)
	s.rows++
	err := s.cur.addRow(rel, s.tuple)
	if cap(s.tuple) > 1<<20 {
		s.tuple = nil // do not keep a large row's buffer for the rest of the snapshot
	}
	return err
}

func (s *snapshotWriter) flush(ctx context.Context) error {
	if s.cur == nil {
		return nil
	}
	t := s.cur
	s.cur = nil
	defer t.close()
	s.pos++
	t.commitLSN = s.pos
	_, err := s.em.publishTxn(ctx, t, s.pos, s.pos-1, s.msgSysID)
	return err
}

// encodeTuple appends values in pgoutput's TupleData encoding (text
// columns, 'n' for NULL), the form transactions are spooled in.
func encodeTuple(dst []byte, values [][]byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(values)))
	for _, v := range values {
		if v == nil {
			dst = append(dst, colNull)
			continue
		}
		dst = append(dst, colText)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

// exportedSnapshot is a read-only repeatable-read transaction in a slot's
// exported snapshot, on a connection of its own: the initial snapshot and
// a resync read the table in it.
type exportedSnapshot struct {
	conn        *pgx.Conn
	tx          pgx.Tx
	time        time.Time // the source's clock when it was opened, UTC, microseconds
	commitTimes bool      // track_commit_timestamp is on
}

func openExportedSnapshot(ctx context.Context, pgURL, snapName string) (*exportedSnapshot, error) {
	conn, err := connectSnapshot(ctx, pgURL)
	if err != nil {
		return nil, err
	}
	es := &exportedSnapshot{conn: conn}
	if es.tx, err = conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("begin snapshot transaction: %w", err)
	}
	if _, err := es.tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(snapName, "'", "''")+"'"); err != nil {
		es.close()
		return nil, fmt.Errorf("import snapshot %s: %w", snapName, err)
	}
	if err := es.tx.QueryRow(ctx, "SELECT clock_timestamp(), current_setting('track_commit_timestamp') = 'on'").Scan(&es.time, &es.commitTimes); err != nil {
		es.close()
		return nil, fmt.Errorf("read snapshot time: %w", err)
	}
	es.time = es.time.UTC().Truncate(time.Microsecond)
	return es, nil
}

func (es *exportedSnapshot) close() {
	_ = es.tx.Rollback(context.Background())
	es.conn.Close(context.Background())
}
