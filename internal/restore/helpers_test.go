package restore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/eventcore"
	"github.com/tidemark/tidemark/internal/loadgen"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/segment"
	"github.com/tidemark/tidemark/internal/testrig"
)

// The package's tests share one PostgreSQL cluster, started on first use
// and stopped by TestMain.
var (
	pgOnce sync.Once
	pgSrv  *testrig.Postgres
	pgErr  error
	pgDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if pgSrv != nil {
		if err := pgSrv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop postgres:", err)
		}
	}
	if pgDir != "" {
		os.RemoveAll(pgDir)
	}
	if fix != nil {
		os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}

// postgres returns the shared cluster, failing the test when it cannot start.
func postgres(tb testing.TB) *testrig.Postgres {
	tb.Helper()
	pgOnce.Do(func() {
		pgDir, pgErr = os.MkdirTemp("", "tidemark-restore-pg-")
		if pgErr == nil {
			pgSrv, pgErr = testrig.StartPostgresProcess(context.Background(), pgDir)
		}
	})
	if pgErr != nil {
		tb.Fatalf("start postgres: %v", pgErr)
	}
	return pgSrv
}

// newEventCoreDB returns a fresh database with EventCore's schema applied.
func newEventCoreDB(tb testing.TB) string {
	tb.Helper()
	url := postgres(tb).NewDatabase(tb)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := eventcore.Apply(ctx, conn); err != nil {
		tb.Fatal(err)
	}
	return url
}

// fixture is a source database under load and an archive built from it.
type fixture struct {
	sourceURL string
	dir       string // the file store's root
	table     event.Table
	txns      [][]*event.Event // chain order
	times     []time.Time      // distinct commit times, ascending
	first     time.Time
	last      time.Time
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

// sharedFixture builds, once per test binary, a source database written by
// a concurrent loadgen workload plus the hard cases, and a plaintext zstd
// archive of it. Tests must not modify it; copyArchive gives a private copy.
func sharedFixture(tb testing.TB) *fixture {
	tb.Helper()
	fixOnce.Do(func() {
		fix, fixErr = buildFixture(tb, 6000)
	})
	if fixErr != nil {
		tb.Fatalf("build fixture: %v", fixErr)
	}
	return fix
}

func buildFixture(tb testing.TB, events int64) (*fixture, error) {
	ctx := context.Background()
	pg := postgres(tb)
	url, err := pg.CreateDatabase(ctx)
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
	f := &fixture{sourceURL: url}
	if f.table, err = readTableDef(ctx, conn, "public", eventcore.Table); err != nil {
		return nil, err
	}
	if f.txns, err = readTransactions(ctx, conn, f.table); err != nil {
		return nil, err
	}
	f.dir, err = os.MkdirTemp("", "tidemark-restore-archive-")
	if err != nil {
		return nil, err
	}
	for _, tx := range f.txns {
		ct := tx[0].CommitTime
		if len(f.times) == 0 || !f.times[len(f.times)-1].Equal(ct) {
			f.times = append(f.times, ct)
		}
	}
	f.first, f.last = f.times[0], f.times[len(f.times)-1]
	st, err := file.Open(f.dir)
	if err != nil {
		return nil, err
	}
	if err := writeArchive(ctx, st, f.table, f.txns, archiveOptions{segmentEvents: 700, seed: 3}); err != nil {
		return nil, err
	}
	return f, nil
}

// readTableDef reads a table's definition the way capture records it.
func readTableDef(ctx context.Context, conn *pgx.Conn, schema, name string) (event.Table, error) {
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

// readTransactions reads every row with its commit time and xid, as text
// values in column order, grouped into transactions ordered by commit time
// then xid, with synthetic chain positions.
func readTransactions(ctx context.Context, conn *pgx.Conn, t event.Table) ([][]*event.Event, error) {
	if _, err := conn.Exec(ctx, `SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'`); err != nil {
		return nil, err
	}
	sel := ""
	for _, c := range t.Columns {
		sel += pgx.Identifier{c.Name}.Sanitize() + "::text, "
	}
	rows, err := conn.Query(ctx, `SELECT `+sel+`pg_xact_commit_timestamp(xmin), xmin::text::bigint
		FROM `+pgx.Identifier{t.Schema, t.Name}.Sanitize()+` ORDER BY 8, 9, ctid`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var txns [][]*event.Event
	var lastXID int64 = -1
	for rows.Next() {
		vals := make([]*string, len(t.Columns))
		dest := make([]any, 0, len(vals)+2)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		var ct time.Time
		var xid int64
		dest = append(dest, &ct, &xid)
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		e := &event.Event{Table: t.QualifiedName(), CommitTime: ct.UTC(), XID: uint32(xid), Values: make([][]byte, len(vals))}
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
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return txns, nil
}

// archiveOptions shape a synthetic archive.
type archiveOptions struct {
	segmentEvents int
	keyring       *segment.Keyring
	seed          uint64
}

// writeArchive writes txns as segments (whole transactions, about
// segmentEvents events each) plus a catalog, the way the archiver does.
// Neighbouring transactions are sometimes swapped so commit times are not
// monotonic in chain order, as with concurrent commits.
func writeArchive(ctx context.Context, st objstore.Store, t event.Table, txns [][]*event.Event, o archiveOptions) error {
	rng := rand.New(rand.NewPCG(o.seed, 1))
	order := make([][]*event.Event, len(txns))
	copy(order, txns)
	for i := 1; i < len(order); i++ {
		if rng.IntN(8) == 0 {
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
	w := catalog.NewWriter(st, c, "test", 1)
	var maxTime time.Time
	for start := 0; start < len(order); {
		end, n := start, 0
		for end < len(order) && (n == 0 || n+len(order[end]) <= o.segmentEvents) {
			n += len(order[end])
			end++
		}
		ref, err := putSegment(ctx, st, t, order[start:end], o.keyring)
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
	// A final heartbeat: everything up to the latest commit is archived.
	_, err = w.Append(ctx, nil, catalog.Watermark{LSN: pos + 0x100, CommitTime: maxTime})
	return err
}

// putSegment writes one segment object and returns its catalog reference.
func putSegment(ctx context.Context, st objstore.Store, t event.Table, txns [][]*event.Event, kr *segment.Keyring) (*catalog.SegmentRef, error) {
	buf := &bytesBuffer{}
	w, err := segment.NewWriter(buf, segment.WriterOptions{Compression: segment.Zstd, Keyring: kr, SystemID: "7300000000000000042", Table: t})
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
	if err := st.Put(ctx, key, buf.reader(), int64(len(buf.b)), objstore.PutOptions{IfAbsent: true}); err != nil {
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

// copyArchive copies the fixture's archive into a fresh directory a test may damage.
func copyArchive(tb testing.TB, src string) string {
	tb.Helper()
	dst := tb.TempDir()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dst
}

// openArchive opens the archive in dir.
func openArchive(tb testing.TB, dir string, kr *segment.Keyring) *Archive {
	tb.Helper()
	st, err := file.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	a, err := Open(context.Background(), st, kr)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}
