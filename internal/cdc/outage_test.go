package cdc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
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
	e.waitStreaming()
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
// fatal error that says what to change, not an endless retry or a skip:
// the slot still delivers the event when capture has stopped.
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
	// Streaming, not just active: an insert committed while the new slot
	// still looks for its consistent point lands in the initial snapshot.
	testkit.WaitFor(t, 30*time.Second, "capture streaming", func() bool { return e.last.Ready() == nil })
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
	// Heartbeats written before the insert are published and rightly
	// confirmed (this runs with --confirm-on jetstream), so the WAL position
	// before the insert is no bound. The bound is the event's commit
	// record: decoding skips a transaction whose commit starts before the
	// slot's confirmed position, so the slot must still deliver it.
	testkit.WaitFor(t, 30*time.Second, "slot released", func() bool { return !e.slotState().Active })
	s := e.slotState()
	pending := e.slotPending(cfg.Publication)
	i := slices.IndexFunc(pending, func(p pendingTxn) bool { return slices.Contains(p.streams, "big") })
	if i < 0 {
		t.Fatalf("slot confirmed %s, past the unpublished event: the slot no longer delivers it (it delivers %v); capture log:\n%s",
			s.ConfirmedFlushLSN, pending, e.logs.String())
	}
	if big := pending[i]; s.ConfirmedFlushLSN > big.commitLSN {
		t.Fatalf("slot confirmed %s, past the commit record of the unpublished event at %s", s.ConfirmedFlushLSN, big.commitLSN)
	}
}

// pendingTxn is a transaction a slot would deliver.
type pendingTxn struct {
	commitLSN event.Position // where its commit record starts
	streams   []string       // the stream_id of each inserted row
}

func (p pendingTxn) String() string { return fmt.Sprintf("%s%v", p.commitLSN, p.streams) }

// slotPending returns the transactions the inactive slot would deliver
// from its confirmed position, without consuming them. Decoding in
// PostgreSQL decides what is skipped, so this is what a restarted capture
// would receive.
func (e *env) slotPending(publication string) []pendingTxn {
	e.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
		'proto_version', '1', 'publication_names', $2)`, e.slot, publication)
	if err != nil {
		e.t.Fatalf("peek slot %s: %v", e.slot, err)
	}
	var data []byte
	var txns []pendingTxn
	var cur pendingTxn
	streamCol := map[uint32]int{} // relation id → stream_id column
	_, err = pgx.ForEachRow(rows, []any{&data}, func() error {
		msg, err := ParseMessage(data)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *Begin:
			cur = pendingTxn{}
		case *Relation:
			streamCol[m.ID] = slices.IndexFunc(m.Columns, func(c RelationColumn) bool { return c.Name == "stream_id" })
		case *Insert:
			if i, ok := streamCol[m.RelationID]; ok && i >= 0 && i < len(m.New.Values) {
				cur.streams = append(cur.streams, string(m.New.Values[i]))
			}
		case *Commit:
			cur.commitLSN = m.CommitLSN
			txns = append(txns, cur)
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("peek slot %s: %v", e.slot, err)
	}
	return txns
}
