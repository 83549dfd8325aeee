package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/consumer"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
)

// TestCursor_LiveExternalValues: an event whose event_data (600 KiB,
// above capture's 256 KiB --external-value-bytes) travels outside its
// message on a stock nats-server reaches a cursor following the live feed
// with the value put back, byte for byte as the source's text.
func TestCursor_LiveExternalValues(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, capture, _ := startPipeline(t, ctx, loadgen.Config{Writers: 1, Events: 50, Streams: 5, Seed: 1})
	st, err := h.OpenStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitArchived(t, ctx, st, h.SourceURL)
	nc, err := nats.Connect(h.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cur, err := consumer.Open(ctx, consumer.Config{StoreURL: h.StoreURL, NATS: nc, PollInterval: 100 * time.Millisecond}, consumer.FromBeginning())
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	for range sourceCount(t, ctx, h.SourceURL) {
		if _, err := cur.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}

	conn, err := pgx.Connect(ctx, h.SourceURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var want string
	if err := conn.QueryRow(ctx, `INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data)
		VALUES (gen_random_uuid(), 'big-1', 'Big', jsonb_build_object('x', repeat('é"', 200000)))
		RETURNING event_data::text`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	e, err := cur.Next(ctx)
	if err != nil {
		t.Fatalf("%v\ncapture:\n%s", err, capture.LogTail(20))
	}
	got, ok := e.Value("event_data")
	if e.StreamID != "big-1" || !ok || got != want {
		t.Fatalf("event %s (live %v): event_data %d bytes, the source's %d (equal: %v)", e.StreamID, e.Live, len(got), len(want), got == want)
	}
	if !e.Live {
		t.Fatal("the large event came from the archive, not the live feed")
	}
}
