package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/segment"
	"github.com/tidemark/tidemark/internal/testing/golden"
)

// update rewrites archive-v1 (internal/testing/golden/testdata) from
// feed-v1 instead of comparing with it:
// go test ./internal/archive -run TestSession_GoldenArchive -update
var update = flag.Bool("update", false, "rewrite golden files")

// TestSession_GoldenArchive feeds the recorded feed-v1 (as capture
// published it) through the archiver's own message handling — a session's
// handle, flush, upload, catalog appends and debris sweep, with the
// JetStream messages and the META bucket replaced by recorded ones — in
// two terms: the first ends with an upload cut off before its catalog
// entry, the second records that upload as debris and archives its
// transactions again. It checks what today's archiver makes of the feed
// (every event exactly once, a clean verify, the messages settled, the
// watermark published) and that the archive has the shape of the
// committed archive-v1, which -update rewrites from this run.
func TestSession_GoldenArchive(t *testing.T) {
	msgs, meta, err := golden.ReadFeedV1()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	kv := &fakeKV{vals: meta}
	run := archiveFeedV1(t, st, &fakeJetStream{kv: kv}, msgs)
	checkArchived(t, st)
	run.checkSettled(t)
	var wm feed.Watermark
	if err := json.Unmarshal(kv.get(feed.KeyWatermark), &wm); err != nil {
		t.Fatalf("META watermark: %v", err)
	}
	hbs := golden.FeedV1Heartbeats()
	if wm.LSN != hbs[len(hbs)-1] || wm.CatalogSeq != 6 {
		t.Errorf("META watermark %+v, want the last heartbeat %s at catalog seq 6", wm, hbs[len(hbs)-1])
	}
	if *update {
		writeArchiveV1(t, dir)
	}
	fixture, err := file.Open(golden.ArchiveV1Dir())
	if err != nil {
		t.Fatal(err)
	}
	got, want := shapeOf(t, st), shapeOf(t, fixture)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("today's archiver makes an archive of another shape than archive-v1 (rerun with -update if intended):\n got %s\nwant %s",
			strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

// The archiver's holders in the two terms.
const (
	goldenHolder1 = "archiver-golden-1"
	goldenHolder2 = "archiver-golden-2"
)

// feedV1Run is what archiveFeedV1 delivered, per term.
type feedV1Run struct {
	term1, term2 []*recordedMsg
}

// archiveFeedV1 archives msgs into st in two terms:
//
//	term 1: everything up to the heartbeat at CP+0x700 (the first event of
//	        minute 10:01 flushes minute 10:00: segment, entry 1), a flush
//	        (segment of minute 10:01, entry 2), the heartbeat at CP+0x800
//	        and a flush (watermark-only entry 3), then the two transactions
//	        after it and a flush cut off after the upload: debris
//	term 2: the sweep records the debris (entry 4), the messages after the
//	        watermark come again, up to the heartbeat at CP+0xC00, a flush
//	        (segment of minute 10:02, entry 5 and checkpoint 5), the last
//	        heartbeat and a flush (watermark-only entry 6)
func archiveFeedV1(t *testing.T, st objstore.Store, js *fakeJetStream, msgs []*nats.Msg) *feedV1Run {
	hbs := golden.FeedV1Heartbeats()
	at := func(pos event.Position) int {
		for i, m := range msgs {
			if feed.IsHeartbeat(m) && m.Header.Get(feed.HeaderEndLSN) == pos.String() {
				return i
			}
		}
		t.Fatalf("feed-v1 has no heartbeat at %s", pos)
		return -1
	}
	hb2, hb3, hb4, hb5 := at(hbs[2]), at(hbs[3]), at(hbs[4]), at(hbs[5])
	run := &feedV1Run{}

	ctx1, crash := context.WithCancel(context.Background())
	defer crash()
	var armed bool
	s1 := startTerm(t, ctx1, st, js, goldenHolder1, func(stage string) {
		if armed && stage == StageUploaded {
			crash() // the process dies between the upload and its catalog entry
		}
	})
	run.term1 = handleAll(t, ctx1, s1, msgs[:hb2+1])
	mustFlush(t, ctx1, s1)
	run.term1 = append(run.term1, handleAll(t, ctx1, s1, msgs[hb3:hb3+1])...)
	mustFlush(t, ctx1, s1)
	run.term1 = append(run.term1, handleAll(t, ctx1, s1, msgs[hb3+1:hb4-1])...)
	armed = true
	if err := s1.flush(ctx1, "golden"); !errors.Is(err, context.Canceled) {
		t.Fatalf("flush cut off after the upload: %v, want context.Canceled", err)
	}
	s1.giveBack()
	if err := s1.lease.Release(context.Background()); err != nil {
		t.Fatal(err)
	}

	ctx := t.Context()
	s2 := startTerm(t, ctx, st, js, goldenHolder2, nil)
	s2.cw.CheckpointEvery = 5
	run.term2 = handleAll(t, ctx, s2, msgs[hb3+1:hb4+1])
	mustFlush(t, ctx, s2)
	run.term2 = append(run.term2, handleAll(t, ctx, s2, msgs[hb5:hb5+1])...)
	mustFlush(t, ctx, s2)
	if err := s2.cw.CheckpointError(); err != nil {
		t.Fatal(err)
	}
	if err := s2.lease.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	return run
}

// startTerm acquires the lease for holder and starts a session as
// Archiver.lead does, without consuming from JetStream.
func startTerm(t *testing.T, ctx context.Context, st objstore.Store, js *fakeJetStream, holder string, hook func(string)) *session {
	t.Helper()
	cfg := Config{Stream: "TIDEMARK", Holder: holder}
	a, err := New(cfg, Deps{JetStream: js, Store: st, Hook: hook,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	lease, err := catalog.AcquireLease(ctx, st, holder, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.start(ctx, lease)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// handle decodes one message and offers it to the chain, as the pull
// goroutine and the session's loop do between them.
func (s *session) handle(ctx context.Context, m jetstream.Msg) error {
	return s.handleDelivery(ctx, s.decode(ctx, m))
}

// handleAll delivers msgs to the session as JetStream would.
func handleAll(t *testing.T, ctx context.Context, s *session, msgs []*nats.Msg) []*recordedMsg {
	t.Helper()
	out := make([]*recordedMsg, len(msgs))
	for i, m := range msgs {
		out[i] = &recordedMsg{m: m}
		if err := s.handle(ctx, out[i]); err != nil {
			t.Fatalf("handle %s: %v", m.Header.Get(feed.HeaderMsgID), err)
		}
	}
	return out
}

func mustFlush(t *testing.T, ctx context.Context, s *session) {
	t.Helper()
	if err := s.flush(ctx, "golden"); err != nil {
		t.Fatal(err)
	}
}

// checkSettled checks how every delivery was settled: term 1 acknowledged
// what its durable entries cover and gave back the rest; term 2
// acknowledged everything, the tamper report and the re-send included.
func (r *feedV1Run) checkSettled(t *testing.T) {
	t.Helper()
	for i, m := range r.term1 {
		pos := m.m.Header.Get(feed.HeaderEndLSN)
		if i < len(r.term1)-3 && (m.acked != 1 || m.naked != 0) {
			t.Errorf("term 1 message %d (%s): acked %d, naked %d; want acked once", i, pos, m.acked, m.naked)
		}
		if i >= len(r.term1)-3 && (m.acked != 0 || m.naked != 1) {
			t.Errorf("term 1 message %d (%s) of the cut-off flush: acked %d, naked %d; want given back once", i, pos, m.acked, m.naked)
		}
	}
	for i, m := range r.term2 {
		if m.acked != 1 || m.naked != 0 || m.termed != 0 {
			t.Errorf("term 2 message %d (%s): acked %d, naked %d, termed %d; want acked once",
				i, m.m.Header.Get(feed.HeaderEndLSN), m.acked, m.naked, m.termed)
		}
	}
}

// checkArchived checks the archive in st: it loads from its checkpoint,
// verifies clean, its segments hold every event of feed-v1 exactly once in
// chain order, and its debris holds the transactions of the cut-off flush.
func checkArchived(t *testing.T, st objstore.Store) {
	t.Helper()
	ctx := t.Context()
	c, err := catalog.Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if c.NextSeq() != 7 || c.Checkpoint() != 5 || len(c.Warnings()) != 0 {
		t.Errorf("catalog: next seq %d, checkpoint %d, warnings %v; want 7, 5, none", c.NextSeq(), c.Checkpoint(), c.Warnings())
	}
	rep, err := catalog.Verify(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Worst() != catalog.OK || rep.Debris != 1 {
		t.Errorf("verify: worst %s, debris %d, findings:\n%v", rep.Worst(), rep.Debris, rep.Findings)
	}
	var events []*event.Event
	for _, ref := range c.Segments() {
		events = append(events, decodeObject(t, st, ref.Key).Events...)
	}
	want := golden.FeedV1Events()
	if len(events) != len(want) {
		t.Fatalf("segments hold %d events, feed-v1 has %d", len(events), len(want))
	}
	for i := range want {
		if !events[i].Equal(want[i]) {
			t.Errorf("event %d\n got %+v\nwant %+v", i, events[i], want[i])
		}
	}
	full, err := catalog.LoadWith(ctx, st, catalog.LoadOptions{IgnoreCheckpoints: true})
	if err != nil {
		t.Fatal(err)
	}
	d := full.Entries()[3].Debris
	if len(d) != 1 {
		t.Fatalf("entry 4 records %d debris objects, want 1", len(d))
	}
	if got := decodeObject(t, st, d[0].Key).Events; len(got) != 3 || got[0].XID != 1006 || got[2].XID != 1007 {
		t.Errorf("debris %s holds %d events, want the 3 of transactions 1006 and 1007", d[0].Key, len(got))
	}
}

func decodeObject(t *testing.T, st objstore.Store, key string) *segment.Segment {
	t.Helper()
	data, err := objstore.ReadAll(t.Context(), st, key, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	seg, err := segment.Decode(key, data, segment.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return seg
}

// shapeOf describes an archive without what differs between two runs of
// the same choreography (clocks, and so sizes, checksums and hashes):
// epochs and their holders, every entry, the checkpoints and objects.
func shapeOf(t *testing.T, st objstore.Store) []string {
	t.Helper()
	ctx := t.Context()
	c, err := catalog.LoadWith(ctx, st, catalog.LoadOptions{IgnoreCheckpoints: true})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range c.Entries() {
		line := fmt.Sprintf("entry %d epoch %d writer %s watermark %s@%s", e.Seq, e.Epoch, e.Writer,
			e.Watermark.LSN, e.Watermark.CommitTime.Format(time.RFC3339Nano))
		if s := e.Segment; s != nil {
			line += fmt.Sprintf(" segment %s events %d txns %d %s..%s prev %s times %s..%s raw %d %s %s key_id %q",
				s.Key, s.Events, s.Transactions, s.FirstEndLSN, s.LastEndLSN, s.PrevLSN,
				s.MinCommitTime.Format(time.RFC3339Nano), s.MaxCommitTime.Format(time.RFC3339Nano),
				s.RawBytes, s.Table, s.TableID+"/"+s.Compression, s.KeyID)
		}
		for _, d := range e.Debris {
			line += fmt.Sprintf(" debris %s %s..%s", d.Key, d.FirstEndLSN, d.LastEndLSN)
		}
		out = append(out, line)
	}
	for _, prefix := range []string{catalog.EpochsPrefix, catalog.CheckpointsPrefix, segment.KeyPrefix} {
		objs, err := st.List(ctx, prefix, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			out = append(out, "object "+o.Key)
		}
	}
	if lease, err := catalog.CurrentLease(ctx, st); err == nil && lease != nil {
		out = append(out, fmt.Sprintf("lease epoch %d holder %s released %v", lease.Epoch, lease.Holder, lease.Released))
	}
	return out
}

// writeArchiveV1 replaces archive-v1 with the archive in dir.
func writeArchiveV1(t *testing.T, dir string) {
	t.Helper()
	dst := golden.ArchiveV1Dir()
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(d.Name(), objstore.TempPrefix) {
			return fmt.Errorf("temporary file %s left in the store", p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote archive-v1 to %s", dst)
}

// recordedMsg is a recorded message delivered as JetStream would deliver
// it, counting how it was settled. Methods the session does not call
// panic (the embedded interface is nil).
type recordedMsg struct {
	jetstream.Msg
	m                    *nats.Msg
	acked, naked, termed int
}

func (r *recordedMsg) Subject() string      { return r.m.Subject }
func (r *recordedMsg) Headers() nats.Header { return r.m.Header }
func (r *recordedMsg) Data() []byte         { return r.m.Data }
func (r *recordedMsg) Reply() string        { return "" }
func (r *recordedMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return nil, jetstream.ErrNotJSMessage // delivered by hand, not by a consumer
}
func (r *recordedMsg) Ack() error                         { r.acked++; return nil }
func (r *recordedMsg) Nak() error                         { r.naked++; return nil }
func (r *recordedMsg) NakWithDelay(_ time.Duration) error { r.naked++; return nil }
func (r *recordedMsg) Term() error                        { r.termed++; return nil }

// fakeJetStream gives a session its META bucket and pretends the consumer
// exists; it has no connection, so messages are settled directly.
type fakeJetStream struct {
	jetstream.JetStream
	kv *fakeKV
}

func (f *fakeJetStream) Conn() *nats.Conn { return nil }

func (f *fakeJetStream) KeyValue(_ context.Context, bucket string) (jetstream.KeyValue, error) {
	if bucket != feed.MetaBucket("TIDEMARK") {
		return nil, jetstream.ErrBucketNotFound
	}
	return f.kv, nil
}

func (f *fakeJetStream) Consumer(context.Context, string, string) (jetstream.Consumer, error) {
	return nil, jetstream.ErrConsumerNotFound
}

func (f *fakeJetStream) CreateOrUpdateConsumer(context.Context, string, jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	return nil, nil
}

func (f *fakeJetStream) ResetConsumer(context.Context, string, string) (*jetstream.ConsumerResetResponse, error) {
	return &jetstream.ConsumerResetResponse{}, nil
}

// fakeKV is a META bucket in memory, holding the recorded records.
type fakeKV struct {
	jetstream.KeyValue
	mu   sync.Mutex
	vals map[string][]byte
}

func (k *fakeKV) get(key string) []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.vals[key]
}

func (k *fakeKV) Get(_ context.Context, key string) (jetstream.KeyValueEntry, error) {
	v := k.get(key)
	if v == nil {
		return nil, jetstream.ErrKeyNotFound
	}
	return kvEntry{key: key, value: bytes.Clone(v)}, nil
}

func (k *fakeKV) Put(_ context.Context, key string, value []byte) (uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.vals[key] = bytes.Clone(value)
	return uint64(len(k.vals)), nil
}

type kvEntry struct {
	jetstream.KeyValueEntry
	key   string
	value []byte
}

func (e kvEntry) Key() string   { return e.key }
func (e kvEntry) Value() []byte { return e.value }

// TestSession_MixedFeedVersions: during an upgrade the stream holds
// feed version 1 and version 2 messages side by side, one transaction
// even partly in each (a capture restarted mid-transaction re-sends it
// with the same ids). The archiver makes the same archive of such a
// stream as of the version 1 recording: archive-v1's shape, every event
// exactly once.
func TestSession_MixedFeedVersions(t *testing.T) {
	msgs, meta, err := golden.ReadFeedV1()
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]*feed.EventTable{}
	v2 := 0
	for i, m := range msgs {
		if i%2 == 0 {
			continue
		}
		switch {
		case feed.IsHeartbeat(m) || feed.IsTamper(m):
			m.Header.Set(feed.HeaderFeed, "2")
		default:
			id := m.Header.Get(feed.HeaderSchemaID)
			if tables[id] == nil {
				var def event.Table
				if err := json.Unmarshal(meta[feed.TableKey(id)], &def); err != nil {
					t.Fatal(err)
				}
				tables[id] = feed.NewEventTable(&def)
			}
			e, err := feed.DecodeEvent(m, tables[id].Table)
			if err != nil {
				t.Fatal(err)
			}
			msgID := m.Header.Get(feed.HeaderMsgID)
			nm := golden.FeedV1Subjects.EncodeEventFor(feed.SystemID(m), "unused", tables[id], e)
			nm.Header.Set(feed.HeaderMsgID, msgID)
			if nm.Subject != m.Subject || !bytes.Equal(nm.Data, m.Data) {
				t.Fatalf("message %d: version 2 changes subject or body", i)
			}
			msgs[i] = nm
		}
		v2++
	}
	if v2 == 0 || feed.Version(msgs[1]) != feed.FeedV2 || feed.Version(msgs[0]) != feed.FeedV1 {
		t.Fatal("no mixed stream")
	}
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	run := archiveFeedV1(t, st, &fakeJetStream{kv: &fakeKV{vals: meta}}, msgs)
	checkArchived(t, st)
	run.checkSettled(t)
	fixture, err := file.Open(golden.ArchiveV1Dir())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := shapeOf(t, st), shapeOf(t, fixture); !reflect.DeepEqual(got, want) {
		t.Errorf("a mixed stream makes another archive than archive-v1:\n got %s\nwant %s",
			strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}
