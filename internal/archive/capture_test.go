package archive

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/archive/archivetest"
	"github.com/tidemark/tidemark/internal/cdc"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// TestArchiver_Run_WithCapture archives what the real capture publishes
// from a real PostgreSQL source: the snapshot of rows written before the
// slot existed and the stream after it. The archive must hold every source
// event once, the watermark must pass the source's WAL position through
// heartbeats, and the slot must never be confirmed past the watermark.
func TestArchiver_Run_WithCapture(t *testing.T) {
	ctx := context.Background()
	pg := testrig.StartPostgres(t)
	pgURL := pg.NewEventCoreDatabase(t)
	conn := testrig.Connect(t, pgURL)
	if _, err := loadgen.Run(ctx, pgURL, loadgen.Config{Writers: 2, Events: 300, Streams: 20, Seed: 1}); err != nil {
		t.Fatalf("load before the snapshot: %v", err)
	}

	ns := testrig.StartNATS(t)
	ccfg := cdc.Defaults()
	ccfg.PGURL, ccfg.NATSURL, ccfg.Slot = pgURL, ns.URL, "tm_archive_e2e"
	ccfg.HeartbeatInterval, ccfg.StatusInterval = 300*time.Millisecond, 100*time.Millisecond
	ccfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	capture, err := cdc.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	cctx, stopCapture := context.WithCancel(ctx)
	captured := make(chan error, 1)
	go func() { captured <- capture.Run(cctx) }()
	defer func() {
		stopCapture()
		<-captured
		_, _ = conn.Exec(ctx, "SELECT pg_drop_replication_slot('tm_archive_e2e')")
	}()

	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store := fileStore(t)
	start(t, &archivetest.Feed{JS: js, Conn: nc, Stream: testStream}, store, nil, testConfig("a1"))

	if _, err := loadgen.Run(ctx, pgURL, loadgen.Config{Writers: 3, Events: 1500, Streams: 50, Seed: 2}); err != nil {
		t.Fatalf("load while capturing: %v", err)
	}
	var walText string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&walText); err != nil {
		t.Fatal(err)
	}
	wal, err := event.ParsePosition(walText)
	if err != nil {
		t.Fatal(err)
	}
	wm := archivetest.WaitWatermark(t, store, wal, 60*time.Second)

	rows, err := conn.Query(ctx, "SELECT event_id::text FROM eventcore_events")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1800 {
		t.Fatalf("source has %d events, want 1800", len(ids))
	}
	arch := archivetest.Load(t, store, nil)
	arch.Check(t, ids)

	var confirmedText string
	if err := conn.QueryRow(ctx, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'tm_archive_e2e'").Scan(&confirmedText); err != nil {
		t.Fatal(err)
	}
	confirmed, err := event.ParsePosition(confirmedText)
	if err != nil {
		t.Fatal(err)
	}
	if latest := archivetest.WaitWatermark(t, store, wm.LSN, time.Second); confirmed > latest.LSN {
		t.Fatalf("slot confirmed at %s, past the archive's watermark %s", confirmed, latest.LSN)
	}
	t.Logf("%d events in %d segments; watermark %s; slot confirmed %s", arch.Events, len(arch.Segments), wm.LSN, confirmed)
}
