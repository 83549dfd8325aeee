package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// txn is one source transaction being assembled: its inserted rows are
// spooled (memory, then disk) until the commit, and changes that an
// append-only table must never see are kept as tamper records.
type txn struct {
	xid        uint32
	commitLSN  event.Position
	commitTime time.Time
	snapshot   bool // commit time unknown: snapshot time used

	rels    []*relation
	relIdx  map[*relation]uint32
	rows    *spool
	tampers []tamperRec
	tamperN map[[2]string]int // (table, op) → count, including those beyond the detail limit
}

// tamperRec is one UPDATE, DELETE or TRUNCATE seen in the transaction.
type tamperRec struct {
	rel      *relation
	op       string
	old, new json.RawMessage
}

func newTxn(xid uint32, commitLSN event.Position, commitTime time.Time, cfg Config) *txn {
	return &txn{
		xid: xid, commitLSN: commitLSN, commitTime: commitTime.UTC().Truncate(time.Microsecond),
		relIdx: map[*relation]uint32{}, rows: newSpool(cfg.MaxTxnMemory, cfg.ExternalValueBytes, cfg.SpillDir),
	}
}

// addRow spools an inserted row (its encoded pgoutput tuple).
func (t *txn) addRow(rel *relation, raw []byte) error {
	i, ok := t.relIdx[rel]
	if !ok {
		i = uint32(len(t.rels))
		t.rels = append(t.rels, rel)
		t.relIdx[rel] = i
	}
	return t.rows.Append(i, raw)
}

// addTamper records a change to a captured table; details beyond limit
// are only counted.
func (t *txn) addTamper(rel *relation, op string, old, new json.RawMessage, limit int) {
	if t.tamperN == nil {
		t.tamperN = map[[2]string]int{}
	}
	t.tamperN[[2]string{rel.qualified, op}]++
	if len(t.tampers) < limit {
		t.tampers = append(t.tampers, tamperRec{rel: rel, op: op, old: old, new: new})
	}
}

func (t *txn) close() { _ = t.rows.Close() }

// emitter turns committed transactions and heartbeats into feed messages.
type emitter struct {
	subjects feed.Subjects
	systemID string
	tables   *tableRegistry
	pub      *publisher
	log      *slog.Logger
	// values is the object store of external values (feed.ValuesBucket),
	// stream its stream; extBytes is Config.ExternalValueBytes and
	// maxPayload the server's max_payload (0 if unknown).
	values     valueStore
	stream     string
	extBytes   int64
	maxPayload func() int64
}

// publishTxn publishes a committed transaction's events (and tamper
// reports) as the chain item at endLSN following prev. msgSystemID is the
// system id used in Nats-Msg-Id (it differs for snapshot rows). It returns
// the number of events published.
func (em *emitter) publishTxn(ctx context.Context, t *txn, endLSN, prev event.Position, msgSystemID string) (int, error) {
	em.pub.beginItem(endLSN)
	if err := em.publishTampers(ctx, t); err != nil {
		return 0, err
	}
	n := t.rows.Records()
	if n == 0 {
		return 0, nil
	}
	if sp := t.rows.Spilled(); sp > 0 {
		metricSpilledBytes.Add(float64(sp))
		em.log.Info("large transaction spilled to disk", "xid", t.xid, "events", n, "spilled_bytes", sp)
	}
	for _, rel := range t.rels {
		if err := em.tables.ensure(ctx, rel.enc); err != nil {
			return 0, err
		}
	}
	r, err := t.rows.Reader()
	if err != nil {
		return 0, err
	}
	ev := event.Event{CommitLSN: t.commitLSN, EndLSN: endLSN, PrevLSN: prev, CommitTime: t.commitTime,
		XID: t.xid, Count: n, Snapshot: t.snapshot}
	prefix := feed.NewTxnPrefix(em.systemID, &ev)
	for i := 0; i < n; i++ {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("transaction %d: spool ended after %d of %d rows", t.xid, i, n)
		}
		if err != nil {
			return 0, err
		}
		if int(row.rel) >= len(t.rels) {
			return 0, fmt.Errorf("transaction %d: spooled row names relation %d of %d", t.xid, row.rel, len(t.rels))
		}
		rel := t.rels[row.rel]
		var (
			tup   Tuple
			large largeValues
		)
		if row.large != nil {
			tup, large, err = decodeLargeTuple(row.large, em.threshold())
		} else {
			tup, err = DecodeTuple(row.raw)
		}
		if err != nil {
			return 0, fmt.Errorf("transaction %d row %d: %w", t.xid, i, err)
		}
		if len(tup.Values) != len(rel.table.Columns) {
			return 0, fmt.Errorf("transaction %d row %d: %d values for %d columns of %s",
				t.xid, i, len(tup.Values), len(rel.table.Columns), rel.qualified)
		}
		ev.Table, ev.Index = rel.qualified, i
		msg, err := em.encodeEvent(ctx, prefix, msgSystemID, rel, &ev, tup.Values, large)
		if err != nil {
			return 0, err
		}
		var m *mark
		if i == n-1 {
			m = &mark{pos: endLSN, srcTime: t.commitTime, commitTime: t.commitTime, events: n}
		}
		if err := em.pub.Publish(ctx, msg, m, true); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// publishTampers reports the transaction's tamper records on the tamper
// subject (never the events subject) and in the log.
func (em *emitter) publishTampers(ctx context.Context, t *txn) error {
	for k, n := range t.tamperN {
		metricTamper.WithLabelValues(k[0], k[1]).Add(float64(n))
		em.log.Error("tamper detected on captured table", "table", k[0], "op", k[1], "rows", n,
			"xid", t.xid, "commit_lsn", t.commitLSN.String())
	}
	for i, tr := range t.tampers {
		tp := feed.Tamper{Op: tr.op, Table: tr.rel.qualified, XID: t.xid, CommitLSN: t.commitLSN,
			CommitTime: t.commitTime.Format(feed.TimeLayout), Old: tr.old, New: tr.new}
		em.log.Error("tampered row", "table", tp.Table, "op", tp.Op, "identity", string(tr.old), "xid", t.xid)
		msg := em.encodeTamper(tr.rel, tp, t.commitLSN, i)
		if err := em.pub.Publish(ctx, msg, nil, false); err != nil {
			return err
		}
	}
	return nil
}

// encodeTamper builds the i-th tamper report of the transaction at
// commitLSN. A report too large for a message (a row with large values)
// leaves out the new row, then the old one: the report itself, its count
// and its log line are what matter, and capture must not stop for it.
func (em *emitter) encodeTamper(rel *relation, tp feed.Tamper, commitLSN event.Position, i int) *nats.Msg {
	encode := func() *nats.Msg {
		msg := em.subjects.EncodeTamper(em.systemID, rel.table.Schema, rel.table.Name, tp)
		msg.Header.Set(feed.HeaderMsgID, em.systemID+"-tamper-"+strconv.FormatUint(uint64(commitLSN), 16)+"-"+strconv.Itoa(i))
		return msg
	}
	msg := encode()
	limit := int64(0)
	if em.maxPayload != nil {
		limit = em.maxPayload()
	}
	for _, drop := range []*json.RawMessage{&tp.New, &tp.Old} {
		if limit <= 0 || int64(msgSize(msg)) <= limit {
			break
		}
		em.log.Warn("tamper report too large for a message; leaving out a row", "table", tp.Table, "op", tp.Op,
			"bytes", msgSize(msg), "max_payload", limit)
		*drop = nil
		msg = encode()
	}
	return msg
}

// rowJSON renders the sent columns of a tuple as a JSON object (columns
// that are NULL in a key-only tuple, or unchanged TOAST, are left out).
func rowJSON(rel *relation, tup Tuple, only []int) json.RawMessage {
	var t event.Table
	t.Schema, t.Name = rel.table.Schema, rel.table.Name
	var vals [][]byte
	use := func(i int) {
		if i >= len(tup.Values) || i >= len(rel.table.Columns) || tup.Values[i] == nil ||
			tup.Unchanged != nil && tup.Unchanged[i] {
			return
		}
		t.Columns = append(t.Columns, rel.table.Columns[i])
		vals = append(vals, tup.Values[i])
	}
	if only != nil {
		for _, i := range only {
			use(i)
		}
	} else {
		for i := range tup.Values {
			use(i)
		}
	}
	return json.RawMessage(feed.AppendRow(nil, &t, vals))
}
