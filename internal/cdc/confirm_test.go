package cdc

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/testkit"
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
	testkit.WaitFor(t, 30*time.Second, "capture ready", func() bool { return e.last.Ready() == nil })
	created := e.slotState().ConfirmedFlushLSN
	hb0 := testutil.ToFloat64(metricHeartbeats)

	// No watermark yet: capture must not confirm anything.
	time.Sleep(time.Second)
	if s := e.slotState(); s.ConfirmedFlushLSN != created {
		t.Fatalf("confirmed %s without a watermark (created at %s)", s.ConfirmedFlushLSN, created)
	}
	f := startFollower(t, e.js, cfg.Stream)
	var first, second = e.slotState().ConfirmedFlushLSN, e.slotState().ConfirmedFlushLSN
	testkit.WaitFor(t, 20*time.Second, "confirmed position to advance", func() bool {
		first = e.slotState().ConfirmedFlushLSN
		return first > created
	})
	if w := f.publishedLSN(); first > w {
		t.Fatalf("confirmed %s beyond the watermark %s", first, w)
	}
	testkit.WaitFor(t, 20*time.Second, "confirmed position to advance again", func() bool {
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
	testkit.WaitFor(t, 10*time.Second, "confirmed position at the watermark", func() bool { return e.slotState().ConfirmedFlushLSN == mid })
	time.Sleep(500 * time.Millisecond)
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
	testkit.WaitFor(t, 20*time.Second, "every event published twice", func() bool {
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
