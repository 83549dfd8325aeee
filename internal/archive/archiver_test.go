package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark/tidemark/internal/archive/archivetest"
	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/objstore/storeurl"
	"github.com/tidemark/tidemark/internal/segment"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

const testStream = "TIDEMARK"

// testConfig is a Config with short timings for tests.
func testConfig(holder string) Config {
	return Config{Stream: testStream, Holder: holder, FlushInterval: 150 * time.Millisecond,
		LeaseTTL: 1500 * time.Millisecond, StandbyRetry: 100 * time.Millisecond, HoleGrace: 400 * time.Millisecond,
		RewindInterval: 500 * time.Millisecond, InfoInterval: 300 * time.Millisecond}
}

// running is an Archiver running in the background.
type running struct {
	*Archiver
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // what Run returned
}

// stop stops the archiver and returns what Run returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(20 * time.Second):
		t.Fatal("archiver did not stop")
		return nil
	}
}

func start(t *testing.T, f *archivetest.Feed, store objstore.Store, keyring *segment.Keyring, cfg Config) *running {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(cfg, Deps{JetStream: f.JS, Store: store, Keyring: keyring, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Archiver: a, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = a.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func fileStore(t *testing.T) objstore.Store {
	t.Helper()
	s, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// workload generates n transactions of 1–4 events (every seventh also
// writing a second table) with a heartbeat after every tenth.
func workload(f *archivetest.Feed, n int) []archivetest.Item {
	var items []archivetest.Item
	for i := range n {
		other := 0
		if i%7 == 3 {
			other = 2
		}
		items = append(items, f.Txn(1+i%4, other))
		if i%10 == 9 {
			items = append(items, f.HeartbeatItem())
		}
	}
	return items
}

func last(items []archivetest.Item) event.Position { return items[len(items)-1].Pos() }

func metaWatermark(t *testing.T, js jetstream.JetStream) feed.Watermark {
	t.Helper()
	kv, err := js.KeyValue(context.Background(), feed.MetaBucket(testStream))
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), feed.KeyWatermark)
	if err != nil {
		t.Fatalf("get META watermark: %v", err)
	}
	var wm feed.Watermark
	if err := json.Unmarshal(e.Value(), &wm); err != nil {
		t.Fatal(err)
	}
	return wm
}

func TestArchiver_Run_ArchivesFeed(t *testing.T) {
	nats := testrig.StartNATS(t)
	s3 := testrig.StartS3(t)
	s3.SetEnv(t)
	identity, err := segment.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyring, err := segment.ParseKeyring(identity)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		store   func(t *testing.T) objstore.Store
		keyring *segment.Keyring
	}{
		{"file", fileStore, nil},
		{"s3-encrypted", func(t *testing.T) objstore.Store {
			s, err := storeurl.Open(context.Background(), s3.StoreURL(s3.NewBucket(t), "archive"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, keyring},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := testStream
			f := archivetest.NewFeed(t, nats.URL, stream)
			t.Cleanup(func() { _ = f.JS.DeleteStream(context.Background(), stream) })
			store := tc.store(t)
			r := start(t, f, store, tc.keyring, testConfig("a1"))
			items := workload(f, 150) // crosses a minute boundary with wobbling commit times
			f.Publish(t, false, items...)
			wm := archivetest.WaitWatermark(t, store, last(items), 30*time.Second)
			if wm.LSN != last(items) {
				t.Fatalf("watermark %s, want %s", wm.LSN, last(items))
			}
			arch := archivetest.Load(t, store, tc.keyring)
			arch.Check(t, archivetest.EventIDs(items...))
			tables := map[string]bool{}
			for _, s := range arch.Segments {
				tables[s.Header.Table.QualifiedName()] = true
				if tc.keyring != nil && s.Header.KeyID != tc.keyring.ActiveID() {
					t.Fatalf("segment not encrypted to the active key: key id %q", s.Header.KeyID)
				}
			}
			if len(tables) != 2 {
				t.Fatalf("segments of tables %v, want both tables", tables)
			}
			if len(arch.Segments) < 2 {
				t.Fatalf("%d segments, want several (the feed crosses a bucket boundary)", len(arch.Segments))
			}
			if tc.keyring != nil {
				data, err := objstore.ReadAll(context.Background(), store, arch.Keys[0], 1<<30)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := segment.Decode(arch.Keys[0], data, segment.ReadOptions{}); !errors.Is(err, segment.ErrNoKey) {
					t.Fatalf("decoding an encrypted segment without keys: %v, want ErrNoKey", err)
				}
			}
			testkit.WaitFor(t, 10*time.Second, "META watermark", func() bool { return metaWatermark(t, f.JS).LSN == last(items) })
			st := r.Status()
			if !st.Leader || st.LastSegment == "" || st.Watermark.LSN != last(items) {
				t.Fatalf("status = %+v", st)
			}
			testkit.WaitFor(t, 10*time.Second, "consumer ack pending 0", func() bool {
				st := r.Status()
				return st.ConsumerAckPending == 0 && st.ConsumerPending == 0
			})
			if err := r.stop(t); err != nil {
				t.Fatalf("Run returned %v", err)
			}
			rep, err := Inspect(context.Background(), testConfig("x"), Deps{JetStream: f.JS, Store: store})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.ConsumerFound || rep.Watermark.LSN != last(items) || rep.MetaWatermark.LSN != last(items) ||
				rep.Segments != len(arch.Segments) || rep.LastSegment == "" || len(rep.Errors) > 0 {
				t.Fatalf("report = %+v", rep)
			}
		})
	}
}

func TestArchiver_Run_HeartbeatsAdvanceIdleWatermark(t *testing.T) {
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, testStream)
	store := fileStore(t)
	start(t, f, store, nil, testConfig("a1"))
	var hb archivetest.Item
	for range 5 {
		hb = f.HeartbeatItem()
		f.Publish(t, false, hb)
		time.Sleep(200 * time.Millisecond)
	}
	wm := archivetest.WaitWatermark(t, store, hb.Pos(), 10*time.Second)
	if !wm.CommitTime.Equal(hb.Heartbeat.Time) {
		t.Fatalf("watermark commit time %s, want the heartbeat's %s", wm.CommitTime, hb.Heartbeat.Time)
	}
	arch := archivetest.Load(t, store, nil)
	if len(arch.Segments) != 0 || len(arch.Catalog.Entries()) == 0 {
		t.Fatalf("heartbeats only: %d segments, %d entries", len(arch.Segments), len(arch.Catalog.Entries()))
	}
	for _, e := range arch.Catalog.Entries() {
		if e.Segment != nil {
			t.Fatalf("entry %d has a segment", e.Seq)
		}
	}
	testkit.WaitFor(t, 10*time.Second, "META watermark", func() bool { return metaWatermark(t, f.JS).LSN == hb.Pos() })
}

func TestArchiver_Run_SkipsDuplicates(t *testing.T) {
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, testStream)
	store := fileStore(t)
	dups := testutil.ToFloat64(duplicatesTotal)
	r := start(t, f, store, nil, testConfig("a1"))
	first := workload(f, 30)
	f.Publish(t, false, first...)
	archivetest.WaitWatermark(t, store, last(first), 20*time.Second)
	// Capture re-sends (new message ids, so the stream keeps them) of
	// archived items, interleaved with new ones.
	second := workload(f, 30)
	f.Publish(t, true, first[10:]...)
	f.Publish(t, false, second[:15]...)
	f.Publish(t, true, second[:15]...)
	f.Publish(t, false, second[15:]...)
	archivetest.WaitWatermark(t, store, last(second), 20*time.Second)
	archivetest.Load(t, store, nil).Check(t, archivetest.EventIDs(append(first, second...)...))
	if got := testutil.ToFloat64(duplicatesTotal) - dups; got < float64(len(archivetest.EventIDs(first[10:]...))) {
		t.Fatalf("duplicates counted %v, want at least the re-sent events", got)
	}
	// A restarted archiver sees the stream again from its ack floor and
	// archives nothing twice.
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	third := workload(f, 5)
	f.Publish(t, false, third...)
	start(t, f, store, nil, testConfig("a2"))
	archivetest.WaitWatermark(t, store, last(third), 20*time.Second)
	archivetest.Load(t, store, nil).Check(t, archivetest.EventIDs(append(append(first, second...), third...)...))
}

func TestArchiver_Run_HoleRequestsRewindAndFills(t *testing.T) {
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, testStream)
	store := fileStore(t)
	holes := testutil.ToFloat64(holesTotal)
	r := start(t, f, store, nil, testConfig("a1"))
	items := workload(f, 20)
	gap := 6
	f.Publish(t, false, items[:gap]...)
	f.Publish(t, false, items[gap+1:]...)

	kv, err := f.JS.KeyValue(context.Background(), feed.MetaBucket(testStream))
	if err != nil {
		t.Fatal(err)
	}
	var req feed.RewindRequest
	testkit.WaitFor(t, 15*time.Second, "rewind request", func() bool {
		e, err := kv.Get(context.Background(), feed.KeyRewind)
		return err == nil && json.Unmarshal(e.Value(), &req) == nil
	})
	if req.After != items[gap-1].Pos() || req.Missing != items[gap].Pos() {
		t.Fatalf("rewind request %+v, want after %s missing %s", req, items[gap-1].Pos(), items[gap].Pos())
	}
	testkit.WaitFor(t, 5*time.Second, "hole in status", func() bool {
		st := r.Status()
		return st.Hole && st.HoleMissing == items[gap].Pos() && st.Watermark.LSN == items[gap-1].Pos()
	})
	if got := testutil.ToFloat64(holesTotal) - holes; got != 1 {
		t.Fatalf("holes_total grew by %v, want 1", got)
	}
	// The replay: capture re-publishes from the slot, duplicates included.
	f.Publish(t, true, items[gap-2:gap+3]...)
	archivetest.WaitWatermark(t, store, last(items), 20*time.Second)
	archivetest.Load(t, store, nil).Check(t, archivetest.EventIDs(items...))
	testkit.WaitFor(t, 5*time.Second, "hole cleared", func() bool { return !r.Status().Hole })
}

func TestArchiver_Run_StandbyTakesOver(t *testing.T) {
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, testStream)
	store := fileStore(t)
	a := start(t, f, store, nil, testConfig("a"))
	testkit.WaitFor(t, 10*time.Second, "a leads", func() bool { return a.Status().Leader })
	b := start(t, f, store, nil, testConfig("b"))
	first := workload(f, 20)
	f.Publish(t, false, first...)
	archivetest.WaitWatermark(t, store, last(first), 20*time.Second)
	if b.Status().Leader {
		t.Fatal("two leaders")
	}
	if err := a.Ready(); err != nil {
		t.Fatalf("leader not ready: %v", err)
	}
	if err := b.Ready(); err != nil {
		t.Fatalf("standby not ready: %v", err)
	}
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	second := workload(f, 20)
	f.Publish(t, false, second...)
	archivetest.WaitWatermark(t, store, last(second), 20*time.Second)
	if !b.Status().Leader {
		t.Fatal("standby did not take over")
	}
	arch := archivetest.Load(t, store, nil)
	arch.Check(t, archivetest.EventIDs(append(first, second...)...))
	writers := map[string]bool{}
	for _, e := range arch.Catalog.Entries() {
		writers[e.Writer] = true
	}
	if !writers["a"] || !writers["b"] {
		t.Fatalf("catalog writers %v, want a then b", writers)
	}
}

func TestArchiver_Run_ConflictingObjectStops(t *testing.T) {
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, testStream)
	store := fileStore(t)
	txn := f.Txn(3, 0)
	key := segment.Key(txn.Events[0].CommitTime.Truncate(time.Minute), txn.Pos(), txn.Pos(), archivetest.Table.ID())
	garbage := []byte("not the segment the archiver would write")
	if err := store.Put(context.Background(), key, bytes.NewReader(garbage), int64(len(garbage)), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	conflicts := testutil.ToFloat64(conflictingObjectsTotal)
	f.Publish(t, false, txn)
	r := start(t, f, store, nil, testConfig("a1"))
	select {
	case <-r.done:
		if !errors.Is(r.err, ErrConflictingObject) {
			t.Fatalf("Run returned %v, want ErrConflictingObject", r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("archiver kept running over a conflicting object")
	}
	if got := testutil.ToFloat64(conflictingObjectsTotal) - conflicts; got != 1 {
		t.Fatalf("conflicting_objects_total grew by %v", got)
	}
	data, err := objstore.ReadAll(context.Background(), store, key, 1<<20)
	if err != nil || !bytes.Equal(data, garbage) {
		t.Fatalf("conflicting object was replaced: %q, %v", data, err)
	}
	cat, err := catalog.Load(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Segments()) != 0 {
		t.Fatalf("catalog lists %d segments after the conflict", len(cat.Segments()))
	}
}

func TestArchiver_Run_ReusesIdenticalObject(t *testing.T) {
	// A crash between upload and catalog entry leaves the object without an
	// entry; the next writer writes the same key and must accept it.
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, testStream)
	txn := f.Txn(3, 0)
	hb := f.HeartbeatItem()
	f.Publish(t, false, txn, hb)
	first := fileStore(t)
	cfg := testConfig("a1")
	cfg.Consumer = "first"
	r := start(t, f, first, nil, cfg)
	archivetest.WaitWatermark(t, first, hb.Pos(), 20*time.Second)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	arch := archivetest.Load(t, first, nil)
	if len(arch.Keys) != 1 {
		t.Fatalf("%d segments, want 1", len(arch.Keys))
	}
	data, err := objstore.ReadAll(context.Background(), first, arch.Keys[0], 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	second := fileStore(t)
	if err := second.Put(context.Background(), arch.Keys[0], bytes.NewReader(data), int64(len(data)), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg.Consumer = "second"
	start(t, f, second, nil, cfg)
	archivetest.WaitWatermark(t, second, hb.Pos(), 20*time.Second)
	got := archivetest.Load(t, second, nil)
	got.Check(t, archivetest.EventIDs(txn))
	if got.Catalog.Segments()[0].SHA256 != arch.Catalog.Segments()[0].SHA256 {
		t.Fatal("catalog entry does not describe the existing object")
	}
}

func TestArchiver_Run_InterleavedTablesStop(t *testing.T) {
	// One table's events must be consecutive within a transaction for the
	// segment format; the archiver stops rather than skip what it cannot write.
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, testStream)
	store := fileStore(t)
	txn := f.Txn(2, 1) // indexes 0,1 in the first table, 2 in the second
	txn.Tables[1], txn.Tables[2] = txn.Tables[2], txn.Tables[1]
	txn.Events[1].Table, txn.Events[2].Table = txn.Events[2].Table, txn.Events[1].Table
	txn.Events[1].Values, txn.Events[2].Values = txn.Events[2].Values, txn.Events[1].Values
	f.Publish(t, false, txn)
	r := start(t, f, store, nil, testConfig("a1"))
	select {
	case <-r.done:
		if !errors.Is(r.err, ErrUnarchivable) {
			t.Fatalf("Run returned %v, want ErrUnarchivable", r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("archiver kept running over an unarchivable transaction")
	}
	if cat, err := catalog.Load(context.Background(), store); err != nil || len(cat.Entries()) != 0 {
		t.Fatalf("catalog after the refusal: %v entries, %v", len(cat.Entries()), err)
	}
}

// stallStore stalls writes of lease objects while stalled is set, as if the
// lease keeper of a writer were frozen while the rest of it runs on.
type stallStore struct {
	objstore.Store
	stalled atomic.Bool
}

func (s *stallStore) Put(ctx context.Context, key string, r io.Reader, size int64, opts objstore.PutOptions) error {
	for strings.HasPrefix(key, catalog.EpochsPrefix) && s.stalled.Load() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return s.Store.Put(ctx, key, r, size, opts)
}

func TestArchiver_Run_DeposedWriterCannotAppend(t *testing.T) {
	// A's lease renewal hangs past the lease while A keeps consuming; B
	// takes over. A must not upload past its lease nor append (fenced): it
	// steps down, and nothing may be lost or archived twice.
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, testStream)
	base := fileStore(t)
	stalling := &stallStore{Store: base}
	cfgA := testConfig("a")
	cfgA.LeaseTTL = 2 * time.Second
	logA := &testkit.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of the deposed writer:\n%s", logA.String())
		}
	})
	a, err := New(cfgA, Deps{JetStream: f.JS, Store: stalling,
		Logger: slog.New(slog.NewTextHandler(logA, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-doneA
	}()
	testkit.WaitFor(t, 10*time.Second, "a leads", func() bool { return a.Status().Leader })
	first := workload(f, 20)
	f.Publish(t, false, first...)
	archivetest.WaitWatermark(t, base, last(first), 20*time.Second)

	stalling.stalled.Store(true)
	cfgB := testConfig("b")
	cfgB.LeaseTTL = 2 * time.Second
	b := start(t, f, base, nil, cfgB)
	testkit.WaitFor(t, 15*time.Second, "b leads", func() bool { return b.Status().Leader })
	var all []archivetest.Item
	all = append(all, first...)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logA.String(), "stepping down") {
		if time.Now().After(deadline) {
			t.Fatalf("deposed writer did not step down; log:\n%s", logA.String())
		}
		more := workload(f, 5)
		f.Publish(t, false, more...)
		all = append(all, more...)
		time.Sleep(100 * time.Millisecond)
	}
	// It steps down because its lease lapsed by its own clock before an
	// upload, or because the catalog refused its append (fenced).
	refused := strings.Contains(logA.String(), "append catalog entry") && strings.Contains(logA.String(), "fenced")
	if !refused && !strings.Contains(logA.String(), "lapsed at") {
		t.Fatalf("deposed writer stepped down without a lapsed lease or a refused append; log:\n%s", logA.String())
	}
	for _, line := range strings.Split(logA.String(), "\n") {
		if strings.Contains(line, "stepping down") {
			t.Logf("deposed writer: %s", line)
		}
	}
	stalling.stalled.Store(false)
	// Capture's next heartbeat: anything the deposed writer still holds
	// now shows as a hole, which resets the consumer.
	hb := f.HeartbeatItem()
	f.Publish(t, false, hb)
	all = append(all, hb)
	archivetest.WaitWatermark(t, base, last(all), 20*time.Second)
	arch := archivetest.Load(t, base, nil)
	arch.Check(t, archivetest.EventIDs(all...))
	arch.CheckFenced(t, "a", "b")
}

func TestArchiver_Run_FullReorderBufferGivesBack(t *testing.T) {
	// A hole with more items behind it than the buffer holds: what does not
	// fit is given back (never acknowledged) and archived once the hole fills.
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, testStream)
	store := fileStore(t)
	rejected := testutil.ToFloat64(bufferRejectedTotal)
	cfg := testConfig("a1")
	cfg.ReorderBuffer = 40
	start(t, f, store, nil, cfg)
	items := workload(f, 40)
	f.Publish(t, false, items[1:]...)
	testkit.WaitFor(t, 10*time.Second, "buffer rejections", func() bool {
		return testutil.ToFloat64(bufferRejectedTotal) > rejected
	})
	f.Publish(t, false, items[0])
	archivetest.WaitWatermark(t, store, last(items), 30*time.Second)
	archivetest.Load(t, store, nil).Check(t, archivetest.EventIDs(items...))
}

// TestArchiver_Run_RecordsDebris: a term starts by recording segment objects
// above the watermark that no entry lists (an earlier writer's upload cut
// off before its entry) as debris, so verify stays clean; unlisted objects
// at or below the watermark are left for verify to report.
func TestArchiver_Run_RecordsDebris(t *testing.T) {
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, testStream)
	items := []archivetest.Item{f.Txn(3, 0), f.Txn(2, 0), f.HeartbeatItem()}
	f.Publish(t, false, items...)
	ctx := context.Background()

	// A first archive supplies a real segment to leave behind.
	first := fileStore(t)
	cfg := testConfig("a1")
	cfg.Consumer = "first"
	r := start(t, f, first, nil, cfg)
	archivetest.WaitWatermark(t, first, last(items), 20*time.Second)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	arch := archivetest.Load(t, first, nil)
	data, err := objstore.ReadAll(ctx, first, arch.Keys[0], 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	info, err := segment.ParseKey(arch.Keys[0])
	if err != nil {
		t.Fatal(err)
	}
	// elsewhere is the same segment under another time bucket: a key this
	// archiver will not produce again.
	elsewhere := func(minutes int) string {
		return segment.Key(info.BucketStart.Add(time.Duration(minutes)*time.Minute), info.FirstEndLSN, info.LastEndLSN, info.TableID)
	}
	second := fileStore(t)
	debris := elsewhere(1)
	if err := second.Put(ctx, debris, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg.Consumer = "second"
	r = start(t, f, second, nil, cfg)
	archivetest.WaitWatermark(t, second, last(items), 20*time.Second)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	archivetest.Load(t, second, nil).Check(t, archivetest.EventIDs(items...))
	cat, err := catalog.Load(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	if _, seq, ok := cat.Debris(debris); !ok || seq != 1 {
		t.Fatalf("debris %s recorded by entry %d (%v), want entry 1, before any segment", debris, seq, ok)
	}
	rep, err := catalog.Verify(ctx, second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Worst() != catalog.OK || rep.Debris != 1 {
		t.Fatalf("verify: %s, %d debris: %v", rep.Worst(), rep.Debris, rep.Findings)
	}

	// Below the watermark an unlisted object is nobody's unfinished upload.
	stray := elsewhere(2)
	if err := second.Put(ctx, stray, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	r = start(t, f, second, nil, cfg)
	// start sets Accepted once the term's sweep is done.
	testkit.WaitFor(t, 20*time.Second, "a new term", func() bool { return r.Status().Accepted == last(items) })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if cat, err = catalog.Load(ctx, second); err != nil {
		t.Fatal(err)
	}
	if cat.Known(stray) {
		t.Fatalf("%s, below the watermark, was recorded", stray)
	}
	rep, err = catalog.Verify(ctx, second, nil)
	if err != nil {
		t.Fatal(err)
	}
	warned := false
	for _, fd := range rep.Findings {
		warned = warned || fd.Severity == catalog.Warning && fd.Check == "unlisted" && fd.Object == stray
	}
	if !warned || rep.Debris != 1 {
		t.Fatalf("verify with a stray object: debris %d, findings %v", rep.Debris, rep.Findings)
	}
}
