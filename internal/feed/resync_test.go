package feed_test

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/testing/golden"
)

// resyncHeartbeat is a resync-done heartbeat (docs/feed.md, "Resync").
func resyncHeartbeat() event.Heartbeat {
	r := &event.Resync{Phase: event.ResyncDone, ID: "2-0-B000028", From: time.Date(2026, 11, 25, 10, 10, 30, 123456000, time.UTC),
		SnapshotTime: time.Date(2026, 11, 25, 10, 15, 31, 5000, time.UTC), Timeline: 2, PrevTimeline: 1, ForkLSN: 0x30000D8,
		Base: 0x30000A0, SlotLSN: 0xB000028, Rows: 1200, Transactions: 410}
	return event.Heartbeat{LSN: 0xB000028, PrevLSN: 0x30000A0 + 411, Time: r.SnapshotTime, SnapshotDone: true, Resync: r}
}

// TestResyncHeartbeat_Golden pins the heartbeat body's resync member and
// decodes it back whole.
func TestResyncHeartbeat_Golden(t *testing.T) {
	hb := resyncHeartbeat()
	m := feed.Subjects{Prefix: "tidemark"}.EncodeHeartbeat("7300000000000000001", hb)
	golden.Check(t, filepath.Join("testdata", "golden", "v2", "heartbeat-resync.msg"), golden.MarshalMsgs(goldenComment, m), *update)
	got, err := feed.DecodeHeartbeat(m)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, hb) {
		t.Fatalf("decoded %+v (resync %+v), want %+v", got, got.Resync, hb)
	}
}

// TestDecodeHeartbeat_RefusesBadResync: a resync mark that contradicts
// its heartbeat's position, or names an unknown phase, is refused.
func TestDecodeHeartbeat_RefusesBadResync(t *testing.T) {
	for name, mut := range map[string]func(hb *event.Heartbeat){
		"phase":      func(hb *event.Heartbeat) { hb.Resync.Phase = "middle" },
		"empty id":   func(hb *event.Heartbeat) { hb.Resync.ID = "" },
		"slot":       func(hb *event.Heartbeat) { hb.Resync.SlotLSN = hb.Resync.Base },
		"done pos":   func(hb *event.Heartbeat) { hb.LSN++ },
		"begin pos":  func(hb *event.Heartbeat) { hb.Resync.Phase = event.ResyncBegin },
		"neg counts": func(hb *event.Heartbeat) { hb.Resync.Rows = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			hb := resyncHeartbeat()
			r := *hb.Resync
			hb.Resync = &r
			mut(&hb)
			m := feed.Subjects{Prefix: "tidemark"}.EncodeHeartbeat("7", hb)
			if _, err := feed.DecodeHeartbeat(m); err == nil || !strings.Contains(err.Error(), "resync") {
				t.Fatalf("decode: %v, want a resync error", err)
			}
		})
	}
}

// FuzzDecodeHeartbeat: any body decodes or fails cleanly, and what decodes
// encodes to a body that decodes to the same heartbeat.
func FuzzDecodeHeartbeat(f *testing.F) {
	f.Add(feed.Subjects{Prefix: "tidemark"}.EncodeHeartbeat("7", resyncHeartbeat()).Data)
	f.Add([]byte(`{"lsn":"0/10","prev_lsn":"0/8","time":"2026-11-25T10:15:31.000005Z"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m := nats.NewMsg("tidemark.heartbeat")
		m.Header.Set(feed.HeaderKind, "heartbeat")
		m.Data = body
		hb, err := feed.DecodeHeartbeat(m)
		if err != nil {
			return
		}
		again, err := feed.DecodeHeartbeat(feed.Subjects{Prefix: "tidemark"}.EncodeHeartbeat("7", hb))
		if err != nil {
			t.Fatalf("re-encoded heartbeat does not decode: %v", err)
		}
		if again.LSN != hb.LSN || again.PrevLSN != hb.PrevLSN || (again.Resync == nil) != (hb.Resync == nil) {
			t.Fatalf("round trip changed the heartbeat: %+v → %+v", hb, again)
		}
	})
}
