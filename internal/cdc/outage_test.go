package cdc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark/tidemark/internal/feed"
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

// TestCapture_EventLargerThanMaxPayload: on a stock nats-server (max_payload
// 1 MiB) an event whose values exceed a message no longer stops capture:
// each value above --external-value-bytes is put into the values object
// store first, and the message carries it as null plus Tidemark-External.
// The objects hold the source's text values byte for byte; ordinary
// events around them are unchanged.
func TestCapture_EventLargerThanMaxPayload(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	node, err := testrig.StartNATSProcess(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Stop() })
	nc, err := nats.Connect(node.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if nc.MaxPayload() != 1<<20 {
		t.Fatalf("server max_payload %d, want the stock 1 MiB", nc.MaxPayload())
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.NATSURL = node.URL
	_, done := e.run(cfg)
	testkit.WaitFor(t, 30*time.Second, "capture streaming", func() bool { return e.last.Ready() == nil })
	put0 := testutil.ToFloat64(metricExternalPut)
	ins := `INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data, metadata)
		VALUES (gen_random_uuid(), $1, 'T', jsonb_build_object('x', repeat($2, $3::int)), jsonb_build_object('m', repeat('m', $4::int)))`
	e.exec(ins, "before", "a", 10, 10)
	e.exec(ins, "big", "y", 1_600_000, 10)       // 1.5 MiB: event_data outside
	e.exec(ins, "two", "z\"é", 200_000, 600_000) // both jsonb values above 256 KiB, one with escapes
	e.exec(ins, "after", "b", 10, 10)

	var fl *feedLog
	testkit.WaitFor(t, 60*time.Second, "four events in the stream", func() bool {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		fl, err = readFeed(rctx, js, cfg.Stream)
		return err == nil && len(fl.events) == 4
	})
	select {
	case err := <-done:
		t.Fatalf("capture stopped: %v", err)
	default:
	}
	obs, err := js.ObjectStore(ctx, feed.ValuesBucket(cfg.Stream))
	if err != nil {
		t.Fatal(err)
	}
	wantExternal := map[string]string{"before": "", "big": "event_data", "two": "event_data,metadata", "after": ""}
	for i, m := range fl.eventMsgs {
		sid := string(fl.events[i].Values[1]) // stream_id
		var src [2]string
		e.queryRow(`SELECT event_data::text, metadata::text FROM eventcore_events WHERE stream_id = '`+sid+`'`, &src[0], &src[1])
		hdr := m.Header.Get(feed.HeaderExternal)
		if n := len(m.Data) + len(hdr); n > 64<<10 {
			t.Errorf("%s: message body and header %d bytes", sid, n)
		}
		var names []string
		got := [2][]byte{fl.events[i].Values[4], fl.events[i].Values[5]}
		if hdr != "" {
			vs, err := feed.ParseExternal(hdr, 7)
			if err != nil {
				t.Fatalf("%s: %v", sid, err)
			}
			for _, v := range vs {
				names = append(names, []string{4: "event_data", 5: "metadata"}[v.Column])
				if string(fl.events[i].Values[v.Column]) != "null" {
					t.Errorf("%s: external column %d is %.20q in the body, want null", sid, v.Column, fl.events[i].Values[v.Column])
				}
				b, err := obs.GetBytes(ctx, feed.ValueObjectName(m.Header.Get(nats.MsgIdHdr), v.Column))
				if err != nil {
					t.Fatalf("%s column %d: %v", sid, v.Column, err)
				}
				if int64(len(b)) != v.Size || sha256.Sum256(b) != v.SHA256 {
					t.Errorf("%s column %d: object %d bytes, header says %d and another digest", sid, v.Column, len(b), v.Size)
				}
				got[v.Column-4] = b
			}
		}
		if strings.Join(names, ",") != wantExternal[sid] {
			t.Errorf("%s: external columns %v, want %q", sid, names, wantExternal[sid])
		}
		for k := range 2 {
			if string(got[k]) != src[k] {
				t.Errorf("%s column %d: %d bytes, source has %d bytes", sid, 4+k, len(got[k]), len(src[k]))
			}
		}
	}
	if n := testutil.ToFloat64(metricExternalPut) - put0; n != 3 {
		t.Errorf("external values put: %v, want 3", n)
	}
}

// TestCapture_ExternalValueResend: a re-sent event names the same object;
// when it already holds the same bytes it is not written again (a reader
// may be fetching its chunks), and when it holds other bytes it is
// replaced.
func TestCapture_ExternalValueResend(t *testing.T) {
	ctx := context.Background()
	node, err := testrig.StartNATSProcess(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Stop() })
	nc, err := nats.Connect(node.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	obs, err := js.CreateOrUpdateObjectStore(ctx, ValuesStoreConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	em := &emitter{values: obs, stream: cfg.Stream, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	value := bytes.Repeat([]byte("v"), 3<<20)
	v1, err := em.putValue(ctx, "sys-1-0.4", 4, bytes.NewReader(value))
	if err != nil {
		t.Fatal(err)
	}
	info1, err := obs.GetInfo(ctx, "sys-1-0.4")
	if err != nil {
		t.Fatal(err)
	}
	reused := testutil.ToFloat64(metricExternalReused)
	v2, err := em.putValue(ctx, "sys-1-0.4", 4, bytes.NewReader(value))
	if err != nil {
		t.Fatal(err)
	}
	info2, err := obs.GetInfo(ctx, "sys-1-0.4")
	if err != nil {
		t.Fatal(err)
	}
	if v1 != v2 || info2.NUID != info1.NUID || testutil.ToFloat64(metricExternalReused) != reused+1 {
		t.Fatalf("re-send wrote the object again (nuid %s then %s) or changed the header (%v, %v)", info1.NUID, info2.NUID, v1, v2)
	}
	other := append(bytes.Clone(value), 'x')
	v3, err := em.putValue(ctx, "sys-1-0.4", 4, bytes.NewReader(other))
	if err != nil {
		t.Fatal(err)
	}
	b, err := obs.GetBytes(ctx, "sys-1-0.4")
	if err != nil {
		t.Fatal(err)
	}
	if v3.Size != int64(len(other)) || !bytes.Equal(b, other) {
		t.Fatalf("other content: object %d bytes, want %d", len(b), len(other))
	}
}

// TestCapture_ExternalValueBytesAboveQuarterMaxPayload: a threshold the
// server's max_payload cannot honour is refused at start, naming the
// setting and the largest value it may take.
func TestCapture_ExternalValueBytesAboveQuarterMaxPayload(t *testing.T) {
	e := newEnv(t, nil)
	node, err := testrig.StartNATSProcess(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Stop() })
	cfg := e.config()
	cfg.NATSURL = node.URL
	cfg.ExternalValueBytes = 512 << 10
	err = e.runToError(cfg)
	var fe *FatalError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "--external-value-bytes 524288") ||
		!strings.Contains(fe.Hint, "--external-value-bytes to at most 262144") {
		t.Fatalf("err = %v (hint %q)", err, hintOf(err))
	}
}

func hintOf(err error) string {
	var fe *FatalError
	if errors.As(err, &fe) {
		return fe.Hint
	}
	return ""
}

// TestCapture_TamperOfLargeRow: an UPDATE of a row holding a value larger
// than max_payload is still reported (without the new row, which no
// message can carry) and capture keeps going.
func TestCapture_TamperOfLargeRow(t *testing.T) {
	e := newEnv(t, nil)
	node, err := testrig.StartNATSProcess(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Stop() })
	nc, err := nats.Connect(node.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.NATSURL = node.URL
	_, done := e.run(cfg)
	testkit.WaitFor(t, 30*time.Second, "capture streaming", func() bool { return e.last.Ready() == nil })
	e.exec(`INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data)
		VALUES (gen_random_uuid(), 'big', 'Big', jsonb_build_object('x', repeat('y', 1500000)))`)
	e.exec("ALTER TABLE eventcore_events DISABLE TRIGGER USER")
	e.exec("UPDATE eventcore_events SET event_data = jsonb_build_object('x', repeat('z', 1500000)) WHERE stream_id = 'big'")
	e.exec(`INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data)
		VALUES (gen_random_uuid(), 'after', 'Small', '{}')`)
	var fl *feedLog
	testkit.WaitFor(t, 30*time.Second, "the tamper report and the event after it", func() bool {
		rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		fl, err = readFeed(rctx, js, cfg.Stream)
		return err == nil && len(fl.tampers) == 1 && len(fl.events) == 2
	})
	select {
	case err := <-done:
		t.Fatalf("capture stopped: %v", err)
	default:
	}
	tp := fl.tampers[0]
	if tp.Op != "update" || tp.New != nil || len(tp.Old) == 0 || len(tp.Old) > 1<<10 {
		t.Fatalf("tamper report op %s, new %d bytes, old %.100s", tp.Op, len(tp.New), tp.Old)
	}
}
