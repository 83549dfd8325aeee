package bench

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func TestLoad_BacklogAndRecvLogical(t *testing.T) {
	ctx := context.Background()
	pg := testrig.StartPostgres(t)
	url := pg.NewEventCoreDatabase(t)
	conn := testrig.Connect(t, url)
	if err := CreatePublication(ctx, url, "bench_pub"); err != nil {
		t.Fatal(err)
	}
	if err := CreateSlots(ctx, url, "bench_slot"); err != nil {
		t.Fatal(err)
	}
	res, err := Load(ctx, url, LoadConfig{Events: 2003, Streams: 50, Sessions: 3, TxnsPerStatement: 7, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 2003 || res.Transactions < 2003/10 || res.EndLSN == "" {
		t.Fatalf("load result %+v", res)
	}
	var rows, gaps, streams, txns int64
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT stream_id), count(DISTINCT xmin::text) FROM eventcore_events`).Scan(&rows, &streams, &txns); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT stream_id FROM eventcore_events GROUP BY stream_id
		HAVING max(stream_version) <> count(*) OR min(stream_version) <> 1) s`).Scan(&gaps); err != nil {
		t.Fatal(err)
	}
	if rows != 2003 || gaps != 0 || streams < 1 || streams > 50 || txns != res.Transactions {
		t.Fatalf("rows %d (want 2003), streams %d (want 1..50), streams with version gaps %d, transactions %d (want %d)",
			rows, streams, gaps, txns, res.Transactions)
	}
	raw, err := RawJSONBytes(ctx, url, "bench")
	if err != nil || raw < 2003*500 {
		t.Fatalf("raw json bytes %d, %v", raw, err)
	}
	rl, err := RecvLogical(ctx, RecvLogicalOptions{BinDir: testrig.DefaultPGBinDir, PGURL: url, Slot: "bench_slot",
		Publication: "bench_pub", EndLSN: res.EndLSN, LogPath: filepath.Join(t.TempDir(), "recv.log")})
	d := rl.Wall
	if err != nil || d <= 0 || rl.MaxRSS <= 0 {
		t.Fatalf("recvlogical: %+v, %v", rl, err)
	}
	var confirmed string
	if err := conn.QueryRow(ctx, `SELECT COALESCE(confirmed_flush_lsn >= $1::pg_lsn, false)::text FROM pg_replication_slots WHERE slot_name = 'bench_slot'`, res.EndLSN).Scan(&confirmed); err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded %d events in %d txns in %s; recvlogical drained in %s; confirmed past end: %s", res.Events, res.Transactions, res.Duration, d, confirmed)
}
