package cdc

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
)

// TestCapture_IdleSourceAdvances: on an idle database heartbeats keep
// coming and, in archive mode, the slot's confirmed position follows the
// watermark the (test) archiver publishes, never passing it.
func TestCapture_IdleSourceAdvances(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config()
	cfg.ConfirmOn = ConfirmArchive
	cfg.HeartbeatInterval = 200 * time.Millisecond
	stop, _ := e.run(cfg)
	waitFor(t, 30*time.Second, "capture ready", func() bool { return e.last.Ready() == nil })
	created := e.slotState().ConfirmedFlushLSN
	hb0 := testutil.ToFloat64(metricHeartbeats)

	// No watermark yet: capture must not confirm anything, not even once
	// JetStream has acknowledged a heartbeat past the slot's position.
	if r := e.waitStatusAfterHeartbeat(20 * time.Second); r.flush > created {
		t.Fatalf("capture reported flush position %s without a watermark (slot created at %s)", r.flush, created)
	}
	if s := e.slotState(); s.ConfirmedFlushLSN != created {
		t.Fatalf("confirmed %s without a watermark (created at %s)", s.ConfirmedFlushLSN, created)
	}
	f := startFollower(t, e.js, cfg.Stream)
	var first, second = e.slotState().ConfirmedFlushLSN, e.slotState().ConfirmedFlushLSN
	waitFor(t, 20*time.Second, "confirmed position to advance", func() bool {
		first = e.slotState().ConfirmedFlushLSN
		return first > created
	})
	if w := f.publishedLSN(); first > w {
		t.Fatalf("confirmed %s beyond the watermark %s", first, w)
	}
	waitFor(t, 20*time.Second, "confirmed position to advance again", func() bool {
		second = e.slotState().ConfirmedFlushLSN
		return second > first
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	fl := e.readFeed(cfg.Stream)
	if len(fl.events) != 0 {
		t.Errorf("%d events on an idle source", len(fl.events))
	}
	if len(fl.heartbeats) < 4 {
		t.Fatalf("%d heartbeats", len(fl.heartbeats))
	}
	for i := 1; i < len(fl.heartbeats); i++ {
		a, b := fl.heartbeats[i-1], fl.heartbeats[i]
		if b.PrevLSN != a.LSN || b.LSN <= a.LSN || b.Time.Before(a.Time) {
			t.Errorf("heartbeat %d does not chain: %+v after %+v", i, b, a)
		}
	}
	if d := testutil.ToFloat64(metricHeartbeats) - hb0; d < 2 {
		t.Errorf("heartbeats metric grew by %v", d)
	}
}

// TestCapture_ConfirmsNoFurtherThanWatermark writes the watermark by hand
// and checks the confirmed position stops there while events flow.
func TestCapture_ConfirmsNoFurtherThanWatermark(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config()
	cfg.ConfirmOn = ConfirmArchive
	stop, _ := e.run(cfg)
	e.waitStreaming()
	ctx := context.Background()
	if _, err := loadgen.Run(ctx, e.pgURL, loadgen.Config{Writers: 1, Events: 50, Streams: 5, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	fl := e.waitAllCaptured(cfg.Stream, 30*time.Second)
	mid := fl.events[len(fl.events)/2].EndLSN
	kv, err := e.js.KeyValue(ctx, feed.MetaBucket(cfg.Stream))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(feed.Watermark{LSN: mid})
	if _, err := kv.Put(ctx, feed.KeyWatermark, b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "confirmed position at the watermark", func() bool { return e.slotState().ConfirmedFlushLSN == mid })
	// Everything is acknowledged, so a capture that confirmed past the
	// watermark would do so in the next status update after a heartbeat.
	if r := e.waitStatusAfterHeartbeat(20 * time.Second); r.flush != mid {
		t.Fatalf("capture reported flush position %s, watermark %s", r.flush, mid)
	}
	if got := e.slotState().ConfirmedFlushLSN; got != mid {
		t.Fatalf("confirmed %s, watermark %s", got, mid)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := e.slotState().ConfirmedFlushLSN; got != mid {
		t.Fatalf("after shutdown confirmed %s, watermark %s", got, mid)
	}
}

// TestCapture_Rewind: a rewind request makes capture replay from the
// slot's confirmed position with the same message ids (JetStream drops
// the duplicates).
func TestCapture_Rewind(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config()
	cfg.ConfirmOn = ConfirmArchive // no watermark: the slot stays at its start
	stop, _ := e.run(cfg)
	e.waitStreaming()
	ctx := context.Background()
	// Watch every publish (core NATS sees duplicates JetStream drops).
	seen := map[string]int{}
	msgs := make(chan *nats.Msg, 10000)
	sub, err := e.nc.ChanSubscribe("tidemark.events.>", msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if _, err := loadgen.Run(ctx, e.pgURL, loadgen.Config{Writers: 1, Events: 40, Streams: 4, Seed: 6}); err != nil {
		t.Fatal(err)
	}
	fl := e.waitAllCaptured(cfg.Stream, 30*time.Second)
	before := testutil.ToFloat64(metricRewinds)
	kv, err := e.js.KeyValue(ctx, feed.MetaBucket(cfg.Stream))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(feed.RewindRequest{After: 0, Missing: fl.events[0].PrevLSN, At: time.Now()})
	if _, err := kv.Put(ctx, feed.KeyRewind, b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "every event published twice", func() bool {
		for {
			select {
			case m := <-msgs:
				seen[m.Header.Get(feed.HeaderMsgID)]++
				continue
			default:
			}
			break
		}
		for _, m := range fl.eventMsgs {
			if seen[m.Header.Get(feed.HeaderMsgID)] < 2 {
				return false
			}
		}
		return true
	})
	if d := testutil.ToFloat64(metricRewinds) - before; d < 1 {
		t.Errorf("rewinds metric grew by %v", d)
	}
	after := e.readFeed(cfg.Stream)
	for id, n := range after.ids {
		if n != 1 {
			t.Errorf("event %s stored %d times after the rewind", id, n)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.logs.String(), "rewind requested") {
		t.Error("rewind not logged")
	}
}

// standbyReply is the last standby status update the slot's walsender
// received: when capture sent it and the flush position it reported (0
// when none).
type standbyReply struct {
	at    time.Time
	flush event.Position
}

// lastReply reads the slot's walsender's last standby status update from
// pg_stat_replication (the Unix epoch when no walsender holds the slot).
func (e *env) lastReply() standbyReply {
	e.t.Helper()
	var r standbyReply
	var flush string
	e.queryRow(fmt.Sprintf(`SELECT COALESCE(r.reply_time, 'epoch'), COALESCE(r.flush_lsn::text, '0/0') FROM (SELECT) one
LEFT JOIN (pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid) ON s.slot_name = '%s'`, e.slot), &r.at, &flush)
	var err error
	if r.flush, err = event.ParsePosition(flush); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// waitStatusAfterHeartbeat waits until JetStream has acknowledged a
// heartbeat of the capture running in this process and the capture has
// then sent a standby status update, and returns that update. The
// heartbeat lies past everything published before it, so the update shows
// what capture confirms once that is acknowledged.
func (e *env) waitStatusAfterHeartbeat(timeout time.Duration) standbyReply {
	e.t.Helper()
	hb := testutil.ToFloat64(metricHeartbeats)
	waitFor(e.t, timeout, "a heartbeat acknowledged", func() bool { return testutil.ToFloat64(metricHeartbeats) > hb })
	acked := time.Now()
	var r standbyReply
	waitFor(e.t, timeout, "a standby status update after the acknowledged heartbeat", func() bool {
		r = e.lastReply()
		return r.at.After(acked)
	})
	return r
}
