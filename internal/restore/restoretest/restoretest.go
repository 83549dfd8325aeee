package restoretest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/segment"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
)

// SystemID is the source system id written into the segments.
const SystemID = "7300000000000000042"

// Fixture is a source database written by a concurrent workload and an
// archive of it in a local directory.
type Fixture struct {
	// SourceURL is the source database.
	SourceURL string
	// Dir is the archive's file store root.
	Dir string
	// Table is the source table's definition.
	Table event.Table
	// Txns are the source transactions in commit order (as archived, with
	// chain positions set).
	Txns [][]*event.Event
	// Times are the distinct commit times, ascending.
	Times []time.Time
	// First and Last are the earliest and latest commit times.
	First, Last time.Time
}

// Build creates a database on the cluster reachable at adminURL's server
// (via create, which returns a fresh database URL), applies EventCore's
// schema, writes about events events with loadgen plus the hard cases
// (awkward stream ids, a 1 MB payload, a 3000-row transaction), and
// archives the result into a new temporary directory (the caller removes
// Dir).
func Build(ctx context.Context, create func(context.Context) (string, error), events int64) (*Fixture, error) {
	url, err := create(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	if err := eventcore.Apply(ctx, conn); err != nil {
		return nil, err
	}
	if err := loadgen.WeirdStreamIDs(ctx, url); err != nil {
		return nil, err
	}
	if _, err := loadgen.Run(ctx, url, loadgen.Config{Writers: 4, Events: events, Streams: 60, Seed: 7}); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	if err := loadgen.BigPayload(ctx, url); err != nil {
		return nil, err
	}
	if err := loadgen.HugeTransaction(ctx, url, 3000, true); err != nil {
		return nil, err
	}
	if _, err := loadgen.Run(ctx, url, loadgen.Config{Writers: 3, Events: events / 3, Streams: 60, Seed: 8}); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	f := &Fixture{SourceURL: url}
	if f.Table, err = ReadTableDef(ctx, conn, "public", eventcore.Table); err != nil {
		return nil, err
	}
	if f.Txns, err = ReadTransactions(ctx, conn, f.Table); err != nil {
		return nil, err
	}
	for _, tx := range f.Txns {
		ct := tx[0].CommitTime
		if len(f.Times) == 0 || !f.Times[len(f.Times)-1].Equal(ct) {
			f.Times = append(f.Times, ct)
		}
	}
	f.First, f.Last = f.Times[0], f.Times[len(f.Times)-1]
	if f.Dir, err = os.MkdirTemp("", "tidemark-restore-archive-"); err != nil {
		return nil, err
	}
	st, err := file.Open(f.Dir)
	if err != nil {
		return nil, err
	}
	if err := WriteArchive(ctx, st, f.Table, f.Txns, Options{SegmentEvents: 700, Seed: 3}); err != nil {
		return nil, err
	}
	return f, nil
}

// ReadTableDef reads a table's definition the way capture records it.
func ReadTableDef(ctx context.Context, conn *pgx.Conn, schema, name string) (event.Table, error) {
	t := event.Table{Schema: schema, Name: name}
	rows, err := conn.Query(ctx, `
		SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid, a.attnotnull,
		       coalesce(a.attnum = ANY (i.indkey::int2[]), false)
		  FROM pg_attribute a
		  LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
		 WHERE a.attrelid = ($1 || '.' || $2)::regclass AND a.attnum > 0 AND NOT a.attisdropped
		 ORDER BY a.attnum`, schema, name)
	if err != nil {
		return t, err
	}
	t.Columns, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (event.Column, error) {
		var c event.Column
		err := r.Scan(&c.Name, &c.Type, &c.OID, &c.NotNull, &c.Key)
		return c, err
	})
	return t, err
}

// ReadTransactions reads every row of t with its commit time and xid, as
// text values in column order (TimeZone UTC, DateStyle ISO), grouped into
// transactions ordered by commit time then xid.
func ReadTransactions(ctx context.Context, conn *pgx.Conn, t event.Table) ([][]*event.Event, error) {
	if _, err := conn.Exec(ctx, `SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'`); err != nil {
		return nil, err
	}
	sel := ""
	for _, c := range t.Columns {
		sel += pgx.Identifier{c.Name}.Sanitize() + "::text, "
	}
	n := len(t.Columns)
	// Within a transaction, heap order (ctid) need not be insertion order
	// (free space is reused); per-stream version order is what WAL order
	// guarantees for an event store.
	within := "ctid"
	if t.ColumnIndex("stream_version") >= 0 {
		within = "src.stream_version, ctid" // the column, not the ::text output of the same name
	}
	rows, err := conn.Query(ctx, fmt.Sprintf(`SELECT %spg_xact_commit_timestamp(xmin), xmin::text::bigint
		FROM %s AS src ORDER BY %d, %d, %s`, sel, pgx.Identifier{t.Schema, t.Name}.Sanitize(), n+1, n+2, within))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var txns [][]*event.Event
	var lastXID int64 = -1
	for rows.Next() {
		vals := make([]*string, n)
		dest := make([]any, 0, n+2)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		var ct time.Time
		var xid int64
		dest = append(dest, &ct, &xid)
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		e := &event.Event{Table: t.QualifiedName(), CommitTime: ct.UTC(), XID: uint32(xid), Values: make([][]byte, n)}
		for i, v := range vals {
			if v != nil {
				e.Values[i] = []byte(*v)
			}
		}
		if xid != lastXID {
			txns = append(txns, nil)
			lastXID = xid
		}
		txns[len(txns)-1] = append(txns[len(txns)-1], e)
	}
	return txns, rows.Err()
}

// Options shape an archive written by WriteArchive.
type Options struct {
	// SegmentEvents is the target number of events per segment (whole
	// transactions; default 700).
	SegmentEvents int
	// Keyring encrypts the segments when set.
	Keyring *segment.Keyring
	// Seed drives which neighbouring transactions are swapped.
	Seed uint64
}

// WriteArchive writes txns as segments (whole transactions) and catalog
// entries, then a final watermark at the latest commit time. Neighbouring
// transactions that share no stream are sometimes swapped in chain order,
// so commit times are not monotonic in chain order, as with concurrent
// commits. It sets the events' chain positions.
func WriteArchive(ctx context.Context, st objstore.Store, t event.Table, txns [][]*event.Event, o Options) error {
	if o.SegmentEvents <= 0 {
		o.SegmentEvents = 700
	}
	rng := rand.New(rand.NewPCG(o.Seed, 1))
	order := make([][]*event.Event, len(txns))
	copy(order, txns)
	sid := t.ColumnIndex("stream_id")
	for i := 1; i < len(order); i++ {
		if rng.IntN(8) == 0 && !shareStream(order[i-1], order[i], sid) {
			order[i-1], order[i] = order[i], order[i-1]
		}
	}
	pos := event.Position(0x1_0000_0000)
	for _, tx := range order {
		prev := pos
		pos += 0x100
		for i, e := range tx {
			e.CommitLSN, e.EndLSN, e.PrevLSN = pos-8, pos, prev
			e.Index, e.Count = i, len(tx)
		}
	}
	c, err := catalog.Load(ctx, st)
	if err != nil {
		return err
	}
	lease, err := catalog.AcquireLease(ctx, st, "restoretest", time.Minute)
	if err != nil {
		return err
	}
	defer lease.Release(context.WithoutCancel(ctx))
	w := catalog.NewWriter(st, c, "restoretest", lease.Epoch())
	var maxTime time.Time
	for start := 0; start < len(order); {
		end, n := start, 0
		for end < len(order) && (n == 0 || n+len(order[end]) <= o.SegmentEvents) {
			n += len(order[end])
			end++
		}
		ref, err := PutSegment(ctx, st, t, order[start:end], o.Keyring)
		if err != nil {
			return err
		}
		if ref.MaxCommitTime.After(maxTime) {
			maxTime = ref.MaxCommitTime
		}
		last := order[end-1][0]
		if _, err := w.Append(ctx, ref, catalog.Watermark{LSN: last.EndLSN, CommitTime: last.CommitTime}); err != nil {
			return err
		}
		start = end
	}
	_, err = w.Append(ctx, nil, catalog.Watermark{LSN: pos + 0x100, CommitTime: maxTime})
	return err
}

func shareStream(a, b []*event.Event, col int) bool {
	if col < 0 {
		return true
	}
	seen := map[string]bool{}
	for _, e := range a {
		seen[string(e.Value(col))] = true
	}
	for _, e := range b {
		if seen[string(e.Value(col))] {
			return true
		}
	}
	return false
}

// PutSegment writes one zstd segment of txns and returns its catalog reference.
func PutSegment(ctx context.Context, st objstore.Store, t event.Table, txns [][]*event.Event, kr *segment.Keyring) (*catalog.SegmentRef, error) {
	var buf bytes.Buffer
	w, err := segment.NewWriter(&buf, segment.WriterOptions{Compression: segment.Zstd, Keyring: kr, SystemID: SystemID, Table: t})
	if err != nil {
		return nil, err
	}
	for _, tx := range txns {
		for _, e := range tx {
			if err := w.Append(e); err != nil {
				return nil, err
			}
		}
	}
	tr, err := w.Close()
	if err != nil {
		return nil, err
	}
	key := segment.Key(tr.MinCommitTime.Truncate(time.Minute), tr.FirstEndLSN, tr.LastEndLSN, t.ID())
	if err := st.Put(ctx, key, bytes.NewReader(buf.Bytes()), int64(buf.Len()), objstore.PutOptions{IfAbsent: true}); err != nil {
		return nil, err
	}
	keyID := ""
	if kr != nil {
		keyID = kr.ActiveID()
	}
	return &catalog.SegmentRef{Key: key, Size: tr.StoredBytes, SHA256: tr.SHA256, Events: tr.Events,
		Transactions: tr.Transactions, Table: t.QualifiedName(), TableID: t.ID(), KeyID: keyID,
		Compression: "zstd", FirstEndLSN: tr.FirstEndLSN, LastEndLSN: tr.LastEndLSN,
		PrevLSN: tr.PrevLSN, MinCommitTime: tr.MinCommitTime, MaxCommitTime: tr.MaxCommitTime, RawBytes: tr.RawBytes}, nil
}

// Clone returns deep copies of txns' events, for writing another archive
// from a shared fixture's transactions: WriteArchive sets the positions of
// the events it is given, and the fixture's must stay those of its own
// archive.
func Clone(txns [][]*event.Event) [][]*event.Event {
	out := make([][]*event.Event, len(txns))
	for i, tx := range txns {
		out[i] = make([]*event.Event, len(tx))
		for j, e := range tx {
			c := *e
			c.Values = slices.Clone(e.Values)
			out[i][j] = &c
		}
	}
	return out
}
