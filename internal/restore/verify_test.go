package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/restore/restoretest"
)

func TestVerify_HealthyArchive(t *testing.T) {
	f := sharedFixture(t)
	a := openArchive(t, f.dir, nil)
	rep, err := Verify(context.Background(), a.Store, VerifyOptions{AgainstURL: f.sourceURL})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != StatusOK || len(rep.Problems) != 0 {
		t.Fatalf("status %s, problems %+v", rep.Status, rep.Problems)
	}
	var total int
	for _, tx := range f.txns {
		total += len(tx)
	}
	if rep.Events != int64(total) || rep.Against.SourceEvents != int64(total) || rep.Against.Missing != 0 || rep.Against.Extra != 0 {
		t.Fatalf("report %+v against %+v, want %d events", rep, rep.Against, total)
	}
}

func TestVerify_FindsDamage(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	dir := copyArchive(t, f.dir)
	a := openArchive(t, dir, nil)
	segs := a.Catalog.Segments()
	flipped, missing := segs[1].Key, segs[len(segs)-2].Key
	b, err := os.ReadFile(filepath.Join(dir, flipped))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 1
	if err := os.WriteFile(filepath.Join(dir, flipped), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, missing)); err != nil {
		t.Fatal(err)
	}
	injected := strings.Replace(segs[0].Key, ".tms", "0.tms", 1)
	if err := os.WriteFile(filepath.Join(dir, injected), []byte("not a segment"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, a.Store, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != StatusFailure {
		t.Fatalf("status %s", rep.Status)
	}
	named := map[string]string{}
	for _, p := range rep.Problems {
		if p.Object != "" {
			named[p.Object] = p.Severity
		}
	}
	if named[flipped] != SeverityFailure || named[missing] != SeverityFailure || named[injected] != SeverityWarning {
		t.Fatalf("problems %+v do not name %s, %s (failures) and %s (warning)", rep.Problems, flipped, missing, injected)
	}
	// the unreadable segments' streams lose versions
	holes := false
	for _, p := range rep.Problems {
		holes = holes || p.Check == "stream" && p.Stream != "" || p.Check == "versions"
	}
	if !holes {
		t.Fatalf("no stream continuity problem among %+v", rep.Problems)
	}
	l, err := List(ctx, a, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Gaps) != 1 || l.Gaps[0].Segment != missing {
		t.Fatalf("list gaps %+v, want the missing segment %s", l.Gaps, missing)
	}
}

func TestVerify_AgainstSourceFindsMissingAndExtra(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	// an archive that lacks one transaction in the middle
	dir := t.TempDir()
	st, err := fileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	skip := len(f.txns) / 2
	txns := restoretest.Clone(append(append([][]*event.Event{}, f.txns[:skip]...), f.txns[skip+1:]...))
	if err := writeArchive(ctx, st, f.table, txns, archiveOptions{segmentEvents: 2000, seed: 4}); err != nil {
		t.Fatal(err)
	}
	a := openArchive(t, dir, nil)
	// and a source with one event the archive never saw
	src := newEventCoreDB(t)
	rep, err := Verify(ctx, a.Store, VerifyOptions{AgainstURL: f.sourceURL})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != StatusFailure || rep.Against.Missing != int64(len(f.txns[skip])) || rep.Against.Extra != 0 {
		t.Fatalf("status %s against %+v, want %d missing", rep.Status, rep.Against, len(f.txns[skip]))
	}
	stream := string(f.txns[skip][0].Values[f.table.ColumnIndex("stream_id")])
	found, gap := false, false
	for _, p := range rep.Problems {
		found = found || (p.Stream == stream && strings.Contains(p.Message, "not in the archive"))
		gap = gap || (p.Stream == stream && (p.Check == "stream" || p.Check == "versions"))
	}
	later := false // the stream continues after the skipped transaction, so its versions have a hole
	sid := f.table.ColumnIndex("stream_id")
	for _, tx := range f.txns[skip+1:] {
		for _, e := range tx {
			later = later || string(e.Values[sid]) == stream
		}
	}
	if !found || gap != later {
		t.Fatalf("missing event's stream %q not named (missing %v, continuity %v): %+v", stream, found, gap, rep.Problems)
	}
	// against an unrelated source every archived event is extra
	rep, err = Verify(ctx, a.Store, VerifyOptions{AgainstURL: src})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != StatusFailure || rep.Against.Extra != rep.Events {
		t.Fatalf("against an empty source: %+v", rep.Against)
	}
}

func TestList_Summary(t *testing.T) {
	f := sharedFixture(t)
	a := openArchive(t, f.dir, nil)
	l, err := List(context.Background(), a, f.last.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if l.Window.Empty || !l.Window.First.Equal(f.first) || !l.Window.Watermark.Equal(f.last) || l.WatermarkAge != time.Hour {
		t.Fatalf("window %+v age %s; want %s … %s", l.Window, l.WatermarkAge, f.first, f.last)
	}
	if l.Segments == 0 || l.Events == 0 || l.StoredBytes == 0 || l.RawBytes <= l.StoredBytes || len(l.Gaps) != 0 || l.Tables[0] != "public.eventcore_events" {
		t.Fatalf("listing %+v", l)
	}
}

func TestVerify_StructureAndVersionsFromOne(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	mk := func(ct time.Time, id, stream, version, data string) []*event.Event {
		vals := make([][]byte, len(f.table.Columns))
		set := func(col, v string) { vals[f.table.ColumnIndex(col)] = []byte(v) }
		set("event_id", id)
		set("stream_id", stream)
		set("stream_version", version)
		set("event_type", "T")
		set("event_data", data)
		set("metadata", "{}")
		set("created_at", "2026-01-01 00:00:00+00")
		return []*event.Event{{Table: f.table.QualifiedName(), CommitTime: ct, Values: vals}}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	txns := [][]*event.Event{
		mk(t0, "0190c6b2-0000-7000-8000-000000000001", "ok", "1", `{"a":1}`),
		mk(t0.Add(time.Second), "0190c6b2-0000-7000-8000-000000000002", "ok", "2", `{"a":2}`),
		mk(t0.Add(2*time.Second), "0190c6b2-0000-7000-8000-000000000003", "late-start", "5", `{}`),
		mk(t0.Add(3*time.Second), "0190c6b2-0000-7000-8000-000000000004", "late-start", "6", `{}`),
		mk(t0.Add(4*time.Second), "0190c6b2-0000-7000-8000-000000000005", "bad-json", "1", `{not json`),
		mk(t0.Add(5*time.Second), "0190c6b2-0000-7000-8000-000000000006", "", "1", `{}`),
	}
	dir := t.TempDir()
	st, err := fileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeArchive(ctx, st, f.table, txns, archiveOptions{segmentEvents: 3}); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, st, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"stream/late-start": false, "structure/bad-json": false, "structure/": false}
	for _, p := range rep.Problems {
		if _, ok := want[p.Check+"/"+p.Stream]; ok {
			want[p.Check+"/"+p.Stream] = true
		}
	}
	for k, found := range want {
		if !found {
			t.Errorf("no %s problem in %+v", k, rep.Problems)
		}
	}
	if rep.Status != StatusFailure {
		t.Fatalf("status %s", rep.Status)
	}
}

func TestVerify_BrokenChain(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	dir := copyArchive(t, f.dir)
	entries, err := os.ReadDir(filepath.Join(dir, "catalog", "entries"))
	if err != nil || len(entries) < 3 {
		t.Fatalf("entries: %v %d", err, len(entries))
	}
	removed := "catalog/entries/" + entries[1].Name()
	if err := os.Remove(filepath.Join(dir, removed)); err != nil {
		t.Fatal(err)
	}
	st, err := fileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, st, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chain := false
	for _, p := range rep.Problems {
		chain = chain || p.Check == "chain" && p.Severity == SeverityFailure
	}
	if rep.Status != StatusFailure || !chain {
		t.Fatalf("status %s, problems %+v", rep.Status, rep.Problems)
	}
	if _, err := Open(ctx, st, nil); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("open a broken catalog: %v, want ErrIntegrity", err)
	}
}

// TestVerify_MergedSegmentDigest verifies an archive whose only live
// segment is a merged one: clean when its events digest is the one its
// merge recorded, a FAILURE named "merge" naming the object when the merge
// recorded another (the catalog cannot tell: the object's size and SHA-256
// match).
func TestVerify_MergedSegmentDigest(t *testing.T) {
	def := eventCoreDef(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		alter  func(*catalog.SegmentRef)
		failed bool
	}{
		{"recorded digest", nil, false},
		{"other digest", func(r *catalog.SegmentRef) { r.EventsDigest = strings.Repeat("ab", 32) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := mergedArchive(t, def, 600, 150, 100, tc.alter)
			a := openArchive(t, dir, nil)
			merged := a.Catalog.Segments()[0]
			rep, err := Verify(ctx, a.Store, VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var found []Problem
			for _, p := range rep.Problems {
				if p.Check == "merge" {
					found = append(found, p)
				}
			}
			switch {
			case !tc.failed && (len(found) != 0 || rep.Status == StatusFailure):
				t.Fatalf("status %s, problems %+v", rep.Status, rep.Problems)
			case tc.failed && (rep.Status != StatusFailure || len(found) != 1 || found[0].Severity != SeverityFailure || found[0].Object != merged.Key):
				t.Fatalf("status %s, merge problems %+v (all %+v), want one failure naming %s", rep.Status, found, rep.Problems, merged.Key)
			}
			t.Logf("%s: %+v", rep.Status, found)
		})
	}
}
