package cdc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// TestCapture_TamperDetected: with EventCore's triggers disabled by a
// superuser, an UPDATE, a DELETE and a TRUNCATE are reported on the tamper
// subject, logged at ERROR with the row identity and counted, and never
// become events.
func TestCapture_TamperDetected(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config()
	stop, _ := e.run(cfg)
	e.waitStreaming()
	ctx := context.Background()
	if _, err := loadgen.Run(ctx, e.pgURL, loadgen.Config{Writers: 1, Events: 10, Streams: 2, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	fl := e.waitAllCaptured(cfg.Stream, 30*time.Second)
	var victim, deleted string
	e.queryRow("SELECT min(event_id::text), max(event_id::text) FROM eventcore_events", &victim, &deleted)
	const table = "public.eventcore_events"
	upd0 := testutil.ToFloat64(metricTamper.WithLabelValues(table, "update"))
	del0 := testutil.ToFloat64(metricTamper.WithLabelValues(table, "delete"))
	trn0 := testutil.ToFloat64(metricTamper.WithLabelValues(table, "truncate"))

	e.exec("ALTER TABLE eventcore_events DISABLE TRIGGER USER")
	e.exec("UPDATE eventcore_events SET event_type = 'Tampered' WHERE event_id = $1", victim)
	e.exec("DELETE FROM eventcore_events WHERE event_id = $1", deleted)
	e.exec("TRUNCATE eventcore_events")
	testkit.WaitFor(t, 20*time.Second, "three tamper reports", func() bool { return len(e.readFeed(cfg.Stream).tampers) >= 3 })
	after := e.readFeed(cfg.Stream)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(after.events) != len(fl.events) {
		t.Errorf("tampering produced %d events", len(after.events)-len(fl.events))
	}
	ops := map[string]bool{}
	for i, tp := range after.tampers {
		ops[tp.Op] = true
		if !strings.HasPrefix(after.tamperSubj[i], "tidemark.tamper.public.eventcore_events.") {
			t.Errorf("tamper on subject %q", after.tamperSubj[i])
		}
		switch tp.Op {
		case "update":
			if !strings.Contains(string(tp.Old), victim) || !strings.Contains(string(tp.New), "Tampered") {
				t.Errorf("update report old=%s new=%s", tp.Old, tp.New)
			}
		case "delete":
			if !strings.Contains(string(tp.Old), deleted) {
				t.Errorf("delete report old=%s", tp.Old)
			}
		}
		if tp.Table != table || tp.CommitLSN == 0 || tp.XID == 0 {
			t.Errorf("tamper report %+v", tp)
		}
	}
	if !ops["update"] || !ops["delete"] || !ops["truncate"] {
		t.Fatalf("tamper ops %v", ops)
	}
	for op, before := range map[string]float64{"update": upd0, "delete": del0, "truncate": trn0} {
		if d := testutil.ToFloat64(metricTamper.WithLabelValues(table, op)) - before; d != 1 {
			t.Errorf("tamper metric %s grew by %v", op, d)
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "level=ERROR msg=\"tampered row\"") || !strings.Contains(logs, victim) {
		t.Errorf("tampering not logged at ERROR with the row identity")
	}
}
