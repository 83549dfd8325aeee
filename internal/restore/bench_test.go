package restore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
)

// syntheticTxns makes n EventCore-shaped events (about 500-byte payloads,
// 1000 streams) in transactions of 1–5 events, one commit per millisecond.
func syntheticTxns(t event.Table, n int) [][]*event.Event {
	rng := rand.New(rand.NewPCG(1, 2))
	versions := map[string]int{}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var txns [][]*event.Event
	pad := bytes.Repeat([]byte("x"), 420)
	for i := 0; i < n; {
		k := min(1+rng.IntN(5), n-i)
		ct := start.Add(time.Duration(len(txns)) * time.Millisecond)
		var tx []*event.Event
		for j := 0; j < k; j++ {
			s := fmt.Sprintf("stream-%d", rng.IntN(1000))
			versions[s]++
			data := fmt.Sprintf(`{"amount": %d, "note": "%s", "seq": %d}`, rng.IntN(100000), pad, i)
			tx = append(tx, &event.Event{Table: t.QualifiedName(), CommitTime: ct, XID: uint32(len(txns) + 1000), Values: [][]byte{
				[]byte(uuid.Must(uuid.NewV7()).String()), []byte(s), []byte(fmt.Sprint(versions[s])), []byte("FundsDeposited"),
				[]byte(data), []byte(`{"source": "bench"}`), []byte(ct.Format("2006-01-02 15:04:05.999999-07")),
			}})
			i++
		}
		txns = append(txns, tx)
	}
	return txns
}

// BenchmarkRestore_VersusCopy restores a synthetic archive of 200k events
// into an EventCore table and, as the baseline, COPYs the same rows into
// another one; it reports both rates and their ratio.
func BenchmarkRestore_VersusCopy(b *testing.B) {
	const n = 200_000
	ctx := context.Background()
	src := newEventCoreDB(b)
	conn, err := pgx.Connect(ctx, src)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	def, err := readDef(ctx, conn)
	if err != nil {
		b.Fatal(err)
	}
	txns := syntheticTxns(def, n)
	dir := b.TempDir()
	st, err := file.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	if err := writeArchive(ctx, st, def, txns, archiveOptions{segmentEvents: 20000, seed: 1}); err != nil {
		b.Fatal(err)
	}
	a := openArchive(b, dir, nil)
	var rows [][]byte
	var cols []int
	for i := range def.Columns {
		cols = append(cols, i)
	}
	for _, tx := range txns {
		for _, e := range tx {
			rows = append(rows, appendCopyText(nil, e.Values, cols))
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		target := newEventCoreDB(b)
		p, err := a.Plan(a.Window().Watermark, "")
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		res, err := Restore(ctx, p, Options{TargetURL: target})
		if err != nil {
			b.Fatal(err)
		}
		restoreDur := time.Since(t0)
		base := newEventCoreDB(b)
		t0 = time.Now()
		if err := plainCopy(ctx, base, rows); err != nil {
			b.Fatal(err)
		}
		copyDur := time.Since(t0)
		b.ReportMetric(float64(res.Events)/restoreDur.Seconds(), "restore-events/s")
		b.ReportMetric(float64(len(rows))/copyDur.Seconds(), "copy-events/s")
		b.ReportMetric(copyDur.Seconds()/restoreDur.Seconds(), "ratio")
	}
}

func readDef(ctx context.Context, conn *pgx.Conn) (event.Table, error) {
	return restoretestReadDef(ctx, conn)
}

// plainCopy is the baseline: one COPY of the rows, triggers off, as a DBA would.
func plainCopy(ctx context.Context, url string, rows [][]byte) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(bytes.Join(rows, nil)), `COPY `+eventcore.Table+` FROM STDIN`)
		return err
	})
}

// BenchmarkRestore_OneMergedSegment restores a plan of one merged segment
// of 1,000,000 EventCore-shaped events (~500-byte payloads; flush segments
// of 100,000 merged into one) into PostgreSQL and reports the process's
// peak RSS during the restore (VmHWM, reset before it starts) and the
// largest live Go heap. It measures memory only; the restore's rate is
// BenchmarkRestore_VersusCopy's business.
func BenchmarkRestore_OneMergedSegment(b *testing.B) {
	const events = 1_000_000
	ctx := context.Background()
	def := eventCoreDef(b)
	dir := mergedArchive(b, def, events, 100_000, 420, nil)
	a := openArchive(b, dir, nil)
	p, err := a.Plan(a.Window().Watermark, "")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		target := newEventCoreDB(b)
		runtime.GC()
		debug.FreeOSMemory()
		rss := peakRSS(b)
		before := rss()
		h := sampleHeap()
		res, err := Restore(ctx, p, Options{TargetURL: target})
		live, inUse := h.end()
		if err != nil {
			b.Fatal(err)
		}
		if res.Events != p.MaxEvents {
			b.Fatalf("%d events restored, want %d", res.Events, p.MaxEvents)
		}
		b.ReportMetric(float64(rss())/mib, "peak-rss-MiB")
		b.ReportMetric(float64(before)/mib, "rss-before-MiB")
		b.ReportMetric(float64(live)/mib, "peak-live-heap-MiB")
		b.ReportMetric(float64(inUse)/mib, "peak-heap-in-use-MiB")
		b.ReportMetric(float64(p.RawBytes)/mib, "segment-raw-MiB")
	}
}
