package merge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/segment"
	"github.com/tidemark/tidemark/internal/testing/golden"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func table() event.Table {
	return event.Table{Schema: "public", Name: "eventcore_events", Columns: []event.Column{
		{Name: "event_id", Type: "uuid", OID: 2950, NotNull: true, Key: true},
		{Name: "stream_id", Type: "text", OID: 25, NotNull: true},
		{Name: "stream_version", Type: "bigint", OID: 20, NotNull: true},
		{Name: "event_data", Type: "jsonb", OID: 3802},
	}}
}

// archive is a real archive in a file store, written flush by flush.
type archive struct {
	t       *testing.T
	store   objstore.Store
	cat     *catalog.Catalog
	w       *catalog.Writer
	clock   time.Time
	pos     event.Position
	xid     uint32
	version map[string]int64
	events  []*event.Event // every event appended, in chain order
	keyring *segment.Keyring
	lease   *catalog.Lease
}

func newArchive(t *testing.T, keyring *segment.Keyring) *archive {
	t.Helper()
	st, err := file.Open(filepath.Join(t.TempDir(), "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	a := &archive{t: t, store: st, clock: t0, pos: 100, xid: 10, version: map[string]int64{}, keyring: keyring}
	a.reload("writer")
	return a
}

// reload loads the catalog afresh as a new writer term.
func (a *archive) reload(holder string) {
	a.t.Helper()
	lease, err := catalog.AcquireLease(ctx(a.t), a.store, holder, time.Hour)
	if err != nil {
		a.t.Fatal(err)
	}
	a.lease = lease
	if a.cat, err = catalog.Load(ctx(a.t), a.store); err != nil {
		a.t.Fatal(err)
	}
	a.w = catalog.NewWriter(a.store, a.cat, holder, lease.Epoch())
	a.w.Clock = func() time.Time { return a.clock }
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// flush appends one flush segment of txns transactions of size events
// each, advancing the clock by step first.
func (a *archive) flush(step time.Duration, txns, size int) catalog.SegmentRef {
	a.t.Helper()
	a.clock = a.clock.Add(step)
	var buf bytes.Buffer
	sw, err := segment.NewWriter(&buf, segment.WriterOptions{Compression: segment.Zstd, Keyring: a.keyring, SystemID: "1", Table: table()})
	if err != nil {
		a.t.Fatal(err)
	}
	for range txns {
		prev := a.pos
		a.pos += 10
		a.xid++
		ct := a.clock.Add(time.Duration(a.xid%7) * time.Microsecond)
		for i := range size {
			stream := fmt.Sprintf("s-%d", a.xid%5)
			a.version[stream]++
			e := &event.Event{Table: "public.eventcore_events", CommitLSN: a.pos - 1, EndLSN: a.pos, PrevLSN: prev,
				CommitTime: ct, XID: a.xid, Index: i, Count: size,
				Values: [][]byte{fmt.Appendf(nil, "00000000-0000-0000-0000-%012d", len(a.events)), []byte(stream),
					fmt.Append(nil, a.version[stream]), fmt.Appendf(nil, `{"n": %d}`, len(a.events))}}
			if i == 1 {
				e.Values[3] = nil
			}
			if err := sw.Append(e); err != nil {
				a.t.Fatal(err)
			}
			a.events = append(a.events, e)
		}
	}
	tr, err := sw.Close()
	if err != nil {
		a.t.Fatal(err)
	}
	key := segment.Key(tr.MinCommitTime.Truncate(time.Minute), tr.FirstEndLSN, tr.LastEndLSN, table().ID())
	if err := a.store.Put(ctx(a.t), key, bytes.NewReader(buf.Bytes()), int64(buf.Len()), objstore.PutOptions{IfAbsent: true}); err != nil {
		a.t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	ref := catalog.SegmentRef{Key: key, Size: int64(buf.Len()), SHA256: hex.EncodeToString(sum[:]), Events: tr.Events,
		Transactions: tr.Transactions, Table: "public.eventcore_events", TableID: table().ID(), KeyID: keyID(a.keyring),
		Compression: "zstd", FirstEndLSN: tr.FirstEndLSN, LastEndLSN: tr.LastEndLSN, PrevLSN: tr.PrevLSN,
		MinCommitTime: tr.MinCommitTime, MaxCommitTime: tr.MaxCommitTime, RawBytes: tr.RawBytes}
	if _, err := a.w.Append(ctx(a.t), &ref, catalog.Watermark{LSN: a.pos, CommitTime: tr.MaxCommitTime}); err != nil {
		a.t.Fatal(err)
	}
	return ref
}

func (a *archive) merger() *Merger {
	return &Merger{Store: a.store, Catalog: a.cat, Writer: a.w, Keyring: a.keyring, TempDir: a.t.TempDir(),
		Policy: Policy{Levels: []time.Duration{time.Minute, time.Hour}, Settle: time.Second}}
}

// liveEvents decodes the live segments in order.
func (a *archive) liveEvents() []*event.Event {
	a.t.Helper()
	var out []*event.Event
	for _, ref := range a.cat.Segments() {
		data, err := objstore.ReadAll(ctx(a.t), a.store, ref.Key, ref.Size)
		if err != nil {
			a.t.Fatal(err)
		}
		seg, err := segment.Decode(ref.Key, data, segment.ReadOptions{Keyring: a.keyring})
		if err != nil {
			a.t.Fatalf("decode %s: %v", ref.Key, err)
		}
		out = append(out, seg.Events...)
	}
	return out
}

// check asserts that the live segments hold exactly the events appended,
// in order, and that verify is clean.
func (a *archive) check() {
	a.t.Helper()
	got := a.liveEvents()
	if len(got) != len(a.events) {
		a.t.Fatalf("live segments hold %d events, %d were archived", len(got), len(a.events))
	}
	for i := range got {
		if !got[i].Equal(a.events[i]) {
			a.t.Fatalf("event %d differs after merging: %+v vs %+v", i, got[i], a.events[i])
		}
	}
	rep, err := catalog.Verify(ctx(a.t), a.store, a.keyring)
	if err != nil {
		a.t.Fatal(err)
	}
	if rep.Worst() != catalog.OK {
		a.t.Fatalf("verify: %v", rep.Findings)
	}
}

func TestMerger_RunOnceMergesMinutesThenHours(t *testing.T) {
	a := newArchive(t, nil)
	for range 200 { // 200 flushes, one every 2 s: 6 minutes and more
		a.flush(2*time.Second, 2, 3)
	}
	before := len(a.cat.Segments())
	res, err := a.merger().RunOnce(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	live := a.cat.Segments()
	if res.Merges == 0 || len(live) >= before {
		t.Fatalf("merges %d: %d live segments before, %d after", res.Merges, before, len(live))
	}
	levels := map[int]int{}
	for _, s := range live {
		levels[s.Level]++
	}
	if levels[1] == 0 {
		t.Fatalf("no minute segments: %v", levels)
	}
	a.check()
	// An hour later the minutes merge into an hour segment.
	for range 30 {
		a.flush(2*time.Minute, 1, 2)
	}
	if _, err := a.merger().RunOnce(ctx(t)); err != nil {
		t.Fatal(err)
	}
	levels = map[int]int{}
	for _, s := range a.cat.Segments() {
		levels[s.Level]++
	}
	if levels[2] == 0 {
		t.Fatalf("no hour segment after an hour: %v", levels)
	}
	a.check()
}

func TestMerger_EncryptedArchive(t *testing.T) {
	key, err := segment.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := segment.ParseKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	a := newArchive(t, kr)
	for range 70 {
		a.flush(time.Second, 1, 2)
	}
	if res, err := a.merger().RunOnce(ctx(t)); err != nil || res.Merges == 0 {
		t.Fatalf("merges %d, err %v", res.Merges, err)
	}
	for _, s := range a.cat.Segments() {
		if s.KeyID != kr.ActiveID() {
			t.Fatalf("segment %s has key id %q, want %q", s.Key, s.KeyID, kr.ActiveID())
		}
	}
	a.check()
}

// errCrash stands for a kill -9 at a step of a merge.
var errCrash = errors.New("crash")

// crashAt runs m until it reaches step and stops it there (a panic
// standing for kill -9); it fails the test if m never reaches step.
func crashAt(t *testing.T, m *Merger, step Step) {
	t.Helper()
	m.Hook = func(s Step) {
		if s == step {
			panic(errCrash)
		}
	}
	defer func() {
		if r := recover(); r != errCrash {
			panic(r)
		}
	}()
	_, _ = m.RunOnce(ctx(t))
	t.Fatalf("no crash at %s", step)
}

// TestMerger_CrashAtEveryStep stops a merge at each step (a panic standing
// for kill -9), then starts a new term: the archive must verify clean, hold
// every event once, and finish merging.
func TestMerger_CrashAtEveryStep(t *testing.T) {
	for _, step := range []Step{StepPlanned, StepWritten, StepUploaded, StepRecorded} {
		t.Run(string(step), func(t *testing.T) {
			a := newArchive(t, nil)
			for range 130 {
				a.flush(time.Second, 1, 2)
			}
			crashAt(t, a.merger(), step)
			a.reload("writer")
			m := a.merger()
			if _, err := m.RecordLeftovers(ctx(t)); err != nil {
				t.Fatal(err)
			}
			if _, err := m.RunOnce(ctx(t)); err != nil {
				t.Fatal(err)
			}
			a.check()
		})
	}
}

// TestMerger_LeftoverOfAnotherGroupIsDebris leaves a merged object no
// group will produce again (its inputs were merged differently since): the
// next term records it as debris, verify stays clean and GC removes it.
func TestMerger_LeftoverOfAnotherGroupIsDebris(t *testing.T) {
	a := newArchive(t, nil)
	for range 70 {
		a.flush(time.Second, 1, 2)
	}
	crashAt(t, a.merger(), StepUploaded)
	a.reload("writer")
	// More segments in the same minute change the group: the leftover's
	// key is never produced again.
	a.clock = a.clock.Add(-30 * time.Second)
	m := a.merger()
	n, err := m.RecordLeftovers(ctx(t))
	if err != nil || n != 1 {
		t.Fatalf("recorded %d leftovers, err %v; want 1", n, err)
	}
	if _, err := m.RunOnce(ctx(t)); err != nil {
		t.Fatal(err)
	}
	a.check()
	a.clock = a.clock.Add(time.Hour)
	a.flush(time.Second, 1, 1)
	res, err := catalog.Collect(ctx(t), a.store, catalog.GCOptions{Grace: time.Minute, Clock: func() time.Time { return a.clock }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Debris == 0 && res.Segments == 0 {
		t.Fatalf("gc deleted nothing: %+v", res)
	}
	a.check()
}

// adoptingStore runs adopt once, just before it deletes key.
type adoptingStore struct {
	objstore.Store
	key   string
	adopt func()
}

func (s *adoptingStore) Delete(ctx context.Context, key string) error {
	if key == s.key && s.adopt != nil {
		s.adopt()
		s.adopt = nil
	}
	return s.Store.Delete(ctx, key)
}

// TestMerger_GCKeepsLeftoverWhileAdoptable: an interrupted merge's upload,
// recorded as debris by the next term, lies below the watermark; if gc
// deleted it past its grace while the writer adopts it (between gc's Load
// and its Delete), the live merged segment would be gone. gc keeps it
// while its inputs are live; the merger adopts it, and gc then collects the
// inputs instead.
func TestMerger_GCKeepsLeftoverWhileAdoptable(t *testing.T) {
	a := newArchive(t, nil)
	for range 70 {
		a.flush(time.Second, 1, 2)
	}
	crashAt(t, a.merger(), StepUploaded)
	a.reload("writer")
	m := a.merger()
	if n, err := m.RecordLeftovers(ctx(t)); err != nil || n != 1 {
		t.Fatalf("recorded %d leftovers, err %v; want 1", n, err)
	}
	var leftover string
	for _, e := range a.cat.Entries() {
		if len(e.Debris) == 1 {
			leftover = e.Debris[0].Key
		}
	}
	adopt := func() {
		if res, err := m.RunOnce(ctx(t)); err != nil || res.Adopted != 1 {
			t.Fatalf("merge after the leftover was recorded: %+v, %v; want one adopted", res, err)
		}
	}
	st := &adoptingStore{Store: a.store, key: leftover, adopt: adopt}
	a.clock = a.clock.Add(time.Minute) // the leftover's record is past the grace
	res, err := catalog.Collect(ctx(t), st, catalog.GCOptions{Grace: time.Second, Clock: func() time.Time { return a.clock }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Debris != 0 {
		t.Errorf("gc deleted %d debris objects while the leftover's inputs were live", res.Debris)
	}
	if st.adopt != nil {
		st.adopt()
	}
	a.check()
	a.clock = a.clock.Add(time.Minute)
	if res, err = catalog.Collect(ctx(t), a.store, catalog.GCOptions{Grace: time.Second, Clock: func() time.Time { return a.clock }}); err != nil {
		t.Fatal(err)
	}
	if res.Segments == 0 {
		t.Errorf("gc deleted no superseded input after the adoption: %+v", res)
	}
	a.check()
}

// TestMerger_DamagedInputIsSkipped: an input whose bytes no longer match
// the catalog is never merged (the merge would launder the damage).
func TestMerger_DamagedInputIsSkipped(t *testing.T) {
	a := newArchive(t, nil)
	var refs []catalog.SegmentRef
	for range 70 {
		refs = append(refs, a.flush(time.Second, 1, 2))
	}
	bad := refs[3]
	data, err := objstore.ReadAll(ctx(t), a.store, bad.Key, bad.Size)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if err := a.store.Put(ctx(t), bad.Key, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := a.merger().RunOnce(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped == 0 {
		t.Fatalf("the damaged input's group was not skipped: %+v", res)
	}
	if _, ok := a.cat.SegmentSeq(bad.Key); !ok {
		t.Fatalf("damaged %s is no longer live: it was merged", bad.Key)
	}
}

// TestMerger_GCAfterMergeKeepsEveryEvent merges, collects past the grace,
// and reloads: the archive still holds every event and verifies clean.
func TestMerger_GCAfterMergeKeepsEveryEvent(t *testing.T) {
	a := newArchive(t, nil)
	a.w.CheckpointEvery = 16
	for range 150 {
		a.flush(time.Second, 2, 2)
	}
	if _, err := a.merger().RunOnce(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for range 40 {
		a.flush(time.Minute, 1, 1)
	}
	res, err := catalog.Collect(ctx(t), a.store, catalog.GCOptions{Grace: 5 * time.Minute, Clock: func() time.Time { return a.clock }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Segments == 0 || res.Entries == 0 {
		t.Fatalf("gc: %+v", res)
	}
	a.reload("writer")
	a.check()
}

func keyID(kr *segment.Keyring) string {
	if kr == nil {
		return ""
	}
	return kr.ActiveID()
}

// TestVerify_MergeDigestMismatch records a merge whose digest does not
// match its output's events (a merger that lost or reordered events would):
// verify names it.
func TestVerify_MergeDigestMismatch(t *testing.T) {
	a := newArchive(t, nil)
	for range 70 {
		a.flush(time.Second, 1, 2)
	}
	m := a.merger()
	groups := Plan(a.cat.Segments(), a.cat.Watermark(), m.Policy)
	if len(groups) == 0 {
		t.Fatal("nothing to merge")
	}
	g := groups[0]
	tmp, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.write(ctx(t), g, tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.upload(ctx(t), tmp, out); err != nil {
		t.Fatal(err)
	}
	out.EventsDigest = strings.Repeat("0", 64)
	inputs := make([]catalog.MergeInput, len(g.Inputs))
	for i, s := range g.Inputs {
		inputs[i] = s.Input()
	}
	if _, err := a.w.AppendMerge(ctx(t), catalog.Merge{Inputs: inputs, Output: *out}); err != nil {
		t.Fatal(err)
	}
	rep, err := catalog.Verify(ctx(t), a.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range rep.Findings {
		if f.Check == "merge" && f.Severity == catalog.Failure && f.Object == out.Key {
			found = true
		}
	}
	if !found {
		t.Fatalf("verify did not report the digest mismatch: %v", rep.Findings)
	}
}

// TestMerger_MergesArchiveV1InPlace: an archive written by the version
// before levels (archive-v1: flush segments, a version-1 checkpoint,
// debris) is merged in place by this one; it then verifies clean and its
// live segments hold the same events in the same order.
func TestMerger_MergesArchiveV1InPlace(t *testing.T) {
	st, err := file.Open(testkit.CopyDir(t, golden.ArchiveV1Dir()))
	if err != nil {
		t.Fatal(err)
	}
	a := &archive{t: t, store: st, clock: time.Now(), version: map[string]int64{}}
	a.reload("writer")
	before := a.liveEvents()
	m := a.merger()
	m.Policy = Policy{Levels: []time.Duration{time.Minute, 2 * time.Minute}, Settle: time.Second}
	res, err := m.RunOnce(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Merges == 0 {
		t.Fatalf("nothing merged in archive-v1: %+v (live %v)", res, a.cat.Segments())
	}
	a.events = before
	a.check()
	for _, e := range golden.FeedV1Events() {
		found := false
		for _, got := range before {
			if got.EndLSN == e.EndLSN && got.Index == e.Index {
				found = true
			}
		}
		if !found {
			t.Fatalf("archive-v1 lacks event %s/%d of feed-v1", e.EndLSN, e.Index)
		}
	}
}

// TestMerger_RemoveStaleTemp: a term removes the temporary files a killed
// merge left in its directory, and nothing else there.
func TestMerger_RemoveStaleTemp(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"tidemark-merge-1.tms", "tidemark-merge-in-2.tms", "other.tms"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n, err := (&Merger{TempDir: dir}).RemoveStaleTemp()
	if err != nil || n != 2 {
		t.Fatalf("removed %d, err %v; want 2", n, err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 1 || filepath.Base(left[0]) != "other.tms" {
		t.Fatalf("left %v, want only other.tms", left)
	}
}

// TestRebuild_MergedArchive: a catalog rebuilt from the segment objects of
// a merged archive (merged outputs and superseded inputs side by side)
// lists the merged segments with their levels and verifies clean.
func TestRebuild_MergedArchive(t *testing.T) {
	a := newArchive(t, nil)
	for range 130 {
		a.flush(time.Second, 1, 2)
	}
	if res, err := a.merger().RunOnce(ctx(t)); err != nil || res.Merges == 0 {
		t.Fatalf("merges %d, err %v", res.Merges, err)
	}
	if err := a.lease.Release(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Rebuild(ctx(t), a.store, nil, false); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	a.reload("writer")
	levels := 0
	for _, s := range a.cat.Segments() {
		levels += s.Level
	}
	if levels == 0 {
		t.Fatalf("the rebuilt catalog lists no merged segment: %v", a.cat.Segments())
	}
	a.check()
}

// TestMerger_BusyPostponesTheRound: while Busy answers true nothing is
// merged; the next round, no longer busy, merges as usual.
func TestMerger_BusyPostponesTheRound(t *testing.T) {
	a := newArchive(t, nil)
	for range 60 {
		a.flush(2*time.Second, 2, 3)
	}
	before := len(a.cat.Segments())
	busy := true
	m := a.merger()
	m.Busy = func() bool { return busy }
	res, err := m.RunOnce(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Merges != 0 || len(a.cat.Segments()) != before {
		t.Fatalf("busy: %d merges, %d live segments (was %d)", res.Merges, len(a.cat.Segments()), before)
	}
	busy = false
	if res, err = m.RunOnce(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if res.Merges == 0 || len(a.cat.Segments()) >= before {
		t.Fatalf("no longer busy: %d merges, %d live segments (was %d)", res.Merges, len(a.cat.Segments()), before)
	}
	a.check()
}
