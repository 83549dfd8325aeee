package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/harness"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/oracle"
)

// TestRestorer_LargeValuesOnStockNATS runs capture and the archiver as
// processes against a nats-server with its default limits (max_payload
// 1 MiB) and the S3 server, appends events whose jsonb event_data is 1.5 MiB and 20 MiB
// (text form) amid an ordinary workload, and restores the archive: every
// row, the large ones included, equal to the source byte for byte.
func TestRestorer_LargeValuesOnStockNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	h, err := harness.Start(ctx, harness.Options{Dir: t.TempDir(), Store: "s3", NATS: "stock"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	capture, err := h.Capture(ctx, "capture", "--heartbeat-interval", "500ms")
	if err != nil {
		t.Fatal(err)
	}
	archiver, err := h.Archiver(ctx, "archiver")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*harness.Proc{capture, archiver} {
		rctx, rcancel := context.WithTimeout(ctx, time.Minute)
		err := p.WaitReady(rctx)
		rcancel()
		if err != nil {
			t.Fatalf("%v\n%s", err, p.LogTail(30))
		}
	}
	load := make(chan error, 1)
	go func() {
		_, err := loadgen.Run(ctx, h.SourceURL, loadgen.Config{Writers: 2, Rate: 500, Duration: 4 * time.Second, Streams: 50, Seed: 5})
		load <- err
	}()
	sizes := map[string]int{"large-1.5MiB": 3 << 19, "large-20MiB": 20 << 20}
	for sid, size := range sizes {
		insertLargeEvent(ctx, t, h.SourceURL, sid, size)
	}
	if err := <-load; err != nil {
		t.Fatal(err)
	}
	times, err := oracle.CommitTimes(ctx, h.SourceURL, eventcore.Table)
	if err != nil || len(times) < 10 {
		t.Fatalf("commit times: %v (%d)", err, len(times))
	}
	last := times[len(times)-1]
	st, err := h.OpenStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for {
		c, err := catalog.Load(ctx, st)
		if err == nil && !c.Watermark().CommitTime.Before(last) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the archive did not reach %s\ncapture:\n%s\narchiver:\n%s", restore.FormatTime(last), capture.LogTail(20), archiver.LogTail(20))
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The large values went through the values object store, not the
	// messages: both programs counted them.
	if n, err := capture.Metric(ctx, "tidemark_capture_external_values_total"); err != nil || n < 2 {
		t.Fatalf("capture put %v external values (%v), want at least 2", n, err)
	}
	if n, err := archiver.Metric(ctx, "tidemark_archiver_external_values_total"); err != nil || n < 2 {
		t.Fatalf("archiver fetched %v external values (%v), want at least 2", n, err)
	}
	target, err := h.PG.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	err = eventcore.Apply(ctx, conn)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range h.Env() { // the S3 server's credentials, for the restorer run here
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	r := runCmd(t, "restore", "--store", h.StoreURL, "--target", target, "--to", "latest", "--json")
	if r.code != 0 {
		t.Fatalf("restore: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	d, err := oracle.CompareTable(ctx, h.SourceURL, target, eventcore.Table, last)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Empty() {
		t.Fatalf("restore differs from the source: %s", d)
	}
	for sid, size := range sizes {
		var n int
		if err := pgxQueryRow(ctx, target, `SELECT length(event_data::text) FROM eventcore_events WHERE stream_id = $1`, sid, &n); err != nil || n < size {
			t.Fatalf("%s restored with %d bytes of event_data (%v), want at least %d", sid, n, err, size)
		}
	}
	t.Logf("%d commits restored equal to the source, large values included", len(times))
}

// insertLargeEvent appends one event to stream sid whose event_data is a
// jsonb array of md5 strings of at least size bytes as text.
func insertLargeEvent(ctx context.Context, t *testing.T, url, sid string, size int) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Each element is `"<32 hex>", ` in jsonb's text form: 36 bytes.
	if _, err := conn.Exec(ctx, `INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data)
		SELECT gen_random_uuid(), $1, 'Large', jsonb_agg(md5(i::text)) FROM generate_series(1, $2::int) i`, sid, size/36+1); err != nil {
		t.Fatal(err)
	}
}

func pgxQueryRow(ctx context.Context, url, sql string, arg any, dest ...any) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql, arg).Scan(dest...)
}
