package cdc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark/tidemark/internal/loadgen"
	"github.com/tidemark/tidemark/internal/testrig"
)

// TestCapture_SurvivesNATSOutage stops the NATS server under load for a few
// seconds: publishes time out, are re-sent with the same ids and, once
// retries are exhausted, capture rewinds to the slot; when NATS is back
// every event is in the stream exactly once.
func TestCapture_SurvivesNATSOutage(t *testing.T) {
	e := newEnv(t, nil)
	node, err := testrig.StartNATSProcess(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Stop() })
	e.js = connectJS(t, node.URL)
	cfg := e.config()
	cfg.NATSURL = node.URL
	cfg.PublishTimeout = time.Second
	cfg.PublishRetries = 3
	cfg.StallTimeout = time.Second
	stop, _ := e.run(cfg)
	waitFor(t, 30*time.Second, "slot streaming", func() bool { return e.slotState().Active })
	errs0, rewinds0 := testutil.ToFloat64(metricPublishErrors), testutil.ToFloat64(metricRewinds)

	ctx := context.Background()
	loadDone := make(chan error, 1)
	go func() {
		_, err := loadgen.Run(ctx, e.pgURL, loadgen.Config{Writers: 2, Rate: 500, Duration: 7 * time.Second, Streams: 20, Seed: 10})
		loadDone <- err
	}()
	time.Sleep(1500 * time.Millisecond)
	if err := node.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	if err := <-loadDone; err != nil {
		t.Fatal(err)
	}
	fl := e.waitAllCaptured(cfg.Stream, 90*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for id, n := range fl.ids {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	errs, rewinds := testutil.ToFloat64(metricPublishErrors)-errs0, testutil.ToFloat64(metricRewinds)-rewinds0
	if errs == 0 {
		t.Error("no publish error counted during the outage")
	}
	if testutil.ToFloat64(metricStalled) != 0 {
		t.Error("publish_stalled still raised after recovery")
	}
	t.Logf("%d events; %v publish errors, %v rewinds during a 4 s NATS outage", len(fl.ids), errs, rewinds)
}

// TestCapture_EventLargerThanMaxPayload: an event NATS cannot carry is a
// fatal error that says what to change, not an endless retry or a skip.
func TestCapture_EventLargerThanMaxPayload(t *testing.T) {
	e := newEnv(t, nil)
	node, err := testrig.StartNATSProcess(context.Background(), t.TempDir(), testrig.WithNATSConfig("max_payload: 65536"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Stop() })
	cfg := e.config()
	cfg.NATSURL = node.URL
	_, done := e.run(cfg)
	waitFor(t, 30*time.Second, "slot streaming", func() bool { return e.slotState().Active })
	before := e.currentWAL()
	e.exec(`INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data)
		VALUES (gen_random_uuid(), 'big', 'Big', jsonb_build_object('x', repeat('y', 100000)))`)
	select {
	case err := <-done:
		var fe *FatalError
		if !errors.As(err, &fe) || !errors.Is(err, nats.ErrMaxPayload) || !strings.Contains(fe.Hint, "max_payload") {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("capture kept running")
	}
	if s := e.slotState(); s.ConfirmedFlushLSN > before {
		t.Fatalf("slot confirmed %s, past the unpublished event (WAL was at %s before it)", s.ConfirmedFlushLSN, before)
	}
}
