package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark/tidemark/internal/archive/archivetest"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// TestArchiver_ExternalValues: on a stock nats-server, an event whose
// event_data travelled in the values object store is archived with the
// value exactly; an event whose object does not match its header (another
// digest) is given back and counted, and the watermark stays below it
// until the object is right.
func TestArchiver_ExternalValues(t *testing.T) {
	ctx := context.Background()
	node, err := testrig.StartNATSProcess(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Stop() })
	f := archivetest.NewFeed(t, node.URL, testStream)
	obs, err := f.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: feed.ValuesBucket(testStream)})
	if err != nil {
		t.Fatal(err)
	}
	big := []byte(`{"blob": "` + strings.Repeat("0123456789abcdef", 3<<16) + `"}`) // 3 MiB
	wrong := bytes.Clone(big)
	wrong[len(wrong)/2] = 'x' // same size, another digest

	before, good, bad, missing := f.Txn(1, 0), f.Txn(1, 0), f.Txn(1, 0), f.Txn(1, 0)
	goodMsg := externalMsg(t, f, obs, good, big, big)
	badMsg := externalMsg(t, f, obs, bad, big, wrong) // header names big, object holds wrong
	missingMsg := externalMsg(t, f, obs, missing, big, nil)
	if len(goodMsg.Data) > 1<<10 {
		t.Fatalf("event message body is %d bytes", len(goodMsg.Data))
	}
	store := fileStore(t)
	errs0 := testutil.ToFloat64(externalErrorsTotal)
	start(t, f, store, nil, testConfig("a1"))
	f.Publish(t, false, before)
	publishMsgs(t, f, goodMsg, badMsg, missingMsg)
	f.Publish(t, false, f.HeartbeatItem())

	archivetest.WaitWatermark(t, store, good.Pos(), 30*time.Second)
	testkit.WaitFor(t, 30*time.Second, "the mismatching and the missing value counted", func() bool {
		return testutil.ToFloat64(externalErrorsTotal) >= errs0+2
	})
	arch := archivetest.Load(t, store, nil)
	if arch.Watermark.LSN >= bad.Pos() {
		t.Fatalf("watermark %s passed the event whose value did not match (%s)", arch.Watermark.LSN, bad.Pos())
	}
	var got []byte
	for _, seg := range arch.Segments {
		for _, e := range seg.Events {
			if e.EndLSN == good.Pos() {
				got = e.Values[4]
			}
		}
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("archived event_data is %d bytes, want the %d-byte value byte for byte", len(got), len(big))
	}
	// The segment holding it stays out of merges.
	for _, ref := range arch.Catalog.Segments() {
		if ref.LastEndLSN == good.Pos() && ref.Events != 1 {
			t.Errorf("the transaction with an external value shares segment %s (%d events)", ref.Key, ref.Events)
		}
	}

	// With the right objects in place the redelivered messages are archived.
	for _, m := range []*nats.Msg{badMsg, missingMsg} {
		if _, err := obs.PutBytes(ctx, feed.ValueObjectName(m.Header.Get(nats.MsgIdHdr), 4), big); err != nil {
			t.Fatal(err)
		}
	}
	wm := archivetest.WaitWatermark(t, store, missing.Pos(), 90*time.Second)
	t.Logf("watermark %s after the object was fixed", wm.LSN)
}

// externalMsg builds it's message (one event) with event_data outside it:
// the header names value, the object holds stored (nil: no object).
func externalMsg(t *testing.T, f *archivetest.Feed, obs jetstream.ObjectStore, it archivetest.Item, value, stored []byte) *nats.Msg {
	t.Helper()
	e := *it.Events[0]
	e.Values = append([][]byte(nil), e.Values...)
	e.Values[4] = nil
	m := f.Subjects.EncodeEvent(archivetest.SystemID, it.Tables[0], event.LayoutOf(*it.Tables[0]), &e)
	m.Header.Set(feed.HeaderExternal, feed.EncodeExternal([]feed.ExternalValue{{Column: 4, Size: int64(len(value)), SHA256: sha256.Sum256(value)}}))
	if stored == nil {
		return m
	}
	if _, err := obs.PutBytes(context.Background(), feed.ValueObjectName(m.Header.Get(nats.MsgIdHdr), 4), stored); err != nil {
		t.Fatal(err)
	}
	return m
}

func publishMsgs(t *testing.T, f *archivetest.Feed, msgs ...*nats.Msg) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range msgs {
		if _, err := f.JS.PublishMsg(ctx, m); err != nil {
			t.Fatal(fmt.Errorf("publish: %w", err))
		}
	}
}

// TestArchiver_ExternalValueReupload: a writer finds the key of a segment
// holding an external value already taken — the object a writer that died
// between upload and catalog entry left behind (here copied from another
// archive of the same feed) — and accepts it after comparing it event by
// event (the bytes differ: another creation time), from temporary files.
func TestArchiver_ExternalValueReupload(t *testing.T) {
	ctx := context.Background()
	node, err := testrig.StartNATSProcess(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Stop() })
	f := archivetest.NewFeed(t, node.URL, testStream)
	obs, err := f.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: feed.ValuesBucket(testStream)})
	if err != nil {
		t.Fatal(err)
	}
	big := []byte(`{"blob": "` + strings.Repeat("fedcba9876543210", 1<<16) + `"}`) // 1 MiB
	it := f.Txn(1, 0)
	msg := externalMsg(t, f, obs, it, big, big)
	hb := f.HeartbeatItem()
	publishMsgs(t, f, msg)
	f.Publish(t, false, hb)

	first := fileStore(t)
	r := start(t, f, first, nil, testConfig("a1"))
	archivetest.WaitWatermark(t, first, hb.Pos(), 60*time.Second)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	left := archivetest.Load(t, first, nil)
	if len(left.Keys) != 1 {
		t.Fatalf("first archive lists %v, want one segment", left.Keys)
	}
	rc, info, err := first.Get(ctx, left.Keys[0])
	if err != nil {
		t.Fatal(err)
	}
	second := fileStore(t)
	err = second.Put(ctx, left.Keys[0], rc, info.Size, objstore.PutOptions{})
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}

	// The rebuilt segment's header records a later creation time: its
	// bytes differ from the object's, its events do not.
	cfg := testConfig("a2")
	cfg.Consumer = "second-archive"
	start(t, f, second, nil, cfg)
	archivetest.WaitWatermark(t, second, hb.Pos(), 60*time.Second)
	arch := archivetest.Load(t, second, nil)
	if len(arch.Keys) != 1 || arch.Keys[0] != left.Keys[0] {
		t.Fatalf("catalog lists %v, want the object left behind %s", arch.Keys, left.Keys[0])
	}
	if ref := arch.Catalog.Segments()[0]; ref.SHA256 != left.Catalog.Segments()[0].SHA256 {
		t.Fatalf("the listed object is not the one left behind")
	}
	if got := arch.Segments[0].Events[0].Values[4]; !bytes.Equal(got, big) {
		t.Fatalf("archived value is %d bytes, want %d", len(got), len(big))
	}
}
