package catalog

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

func keysOf(refs []SegmentRef) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.Key
	}
	return out
}

func TestRebuild(t *testing.T) {
	backends(t, func(t *testing.T, newStore func(t *testing.T) objstore.Store) {
		clock := useFakeClock(t)
		kr := testKeyring(t)
		f := newFixture(t, newStore(t), kr)
		f.w.CheckpointEvery = 2
		f.standard(5)
		want := keysOf(f.refs)
		// A second copy of segment 2 under another key, and a damaged object.
		seg2 := getRaw(t, f.st, f.refs[2].Key)
		dup := strings.Replace(f.refs[2].Key, "/10/", "/11/", 1)
		putRaw(t, f.st, dup, seg2)
		putRaw(t, f.st, "segments/2026/11/25/10/00/garbage.tms", []byte("not a segment"))
		before, err := f.st.List(ctxT(t), "catalog/", "")
		if err != nil {
			t.Fatal(err)
		}

		dry, err := Rebuild(ctxT(t), f.st, kr, true)
		if err != nil {
			t.Fatalf("dry run: %v", err)
		}
		if !reflect.DeepEqual(keysOf(dry.Segments), want) {
			t.Fatalf("dry run plans %v, want %v", keysOf(dry.Segments), want)
		}
		if len(dry.Skipped) != 2 || dry.Entries != 0 || dry.MovedTo != "" {
			t.Fatalf("dry run: skipped %+v, entries %d, moved to %q", dry.Skipped, dry.Entries, dry.MovedTo)
		}
		// The intact copy becomes debris; the garbage object does not.
		if len(dry.Debris) != 1 || dry.Debris[0].Key != dup || dry.Debris[0].SHA256 != f.refs[2].SHA256 {
			t.Fatalf("dry run debris %+v, want the copy %s", dry.Debris, dup)
		}
		after, err := f.st.List(ctxT(t), "catalog/", "")
		if err != nil || !reflect.DeepEqual(keysOfInfo(after), keysOfInfo(before)) {
			t.Fatalf("dry run changed the catalog: %v", err)
		}
		for i, ref := range dry.Segments {
			if ref.SHA256 != f.refs[i].SHA256 || ref.Size != f.refs[i].Size || ref.KeyID != kr.ActiveID() ||
				ref.FirstEndLSN != f.refs[i].FirstEndLSN || !ref.MaxCommitTime.Equal(f.refs[i].MaxCommitTime) {
				t.Fatalf("rebuilt ref %d = %+v, want %+v", i, ref, f.refs[i])
			}
		}

		// The archiver still holds its lease: a rebuild is refused.
		var held *ErrLeaseHeld
		if _, err := Rebuild(ctxT(t), f.st, kr, false); !errors.As(err, &held) {
			t.Fatalf("rebuild under a held lease: err = %v, want ErrLeaseHeld", err)
		}
		clock.advance(2 * time.Minute)

		res, err := Rebuild(ctxT(t), f.st, kr, false)
		if err != nil {
			t.Fatalf("rebuild: %v", err)
		}
		if res.Entries != 5+1 || res.Epoch != 2 || !strings.HasPrefix(res.MovedTo, OldCatalogPrefix) { // 5 segments, 1 debris entry
			t.Fatalf("rebuild result: entries %d epoch %d moved to %q", res.Entries, res.Epoch, res.MovedTo)
		}
		old, err := f.st.List(ctxT(t), res.MovedTo, "")
		if err != nil || len(old) != 6+3 { // 6 entries, checkpoints 2, 4, 6
			t.Fatalf("old catalog holds %d objects (%v), want 9", len(old), err)
		}
		c, err := LoadWith(ctxT(t), f.st, LoadOptions{IgnoreCheckpoints: true})
		if err != nil {
			t.Fatalf("load rebuilt catalog: %v", err)
		}
		if !reflect.DeepEqual(keysOf(c.Segments()), want) || c.Watermark().LSN != f.refs[4].LastEndLSN {
			t.Fatalf("rebuilt catalog: %v, watermark %s", keysOf(c.Segments()), c.Watermark().LSN)
		}
		for _, e := range c.Entries() {
			if e.Epoch != 2 {
				t.Fatalf("rebuilt entry %d has epoch %d", e.Seq, e.Epoch)
			}
		}
		// The old archiver is fenced.
		if _, err := f.w.Append(ctxT(t), nil, Watermark{LSN: 1 << 40}); !errors.Is(err, ErrFenced) {
			t.Fatalf("old writer after rebuild: err = %v, want ErrFenced", err)
		}
		r, err := Verify(ctxT(t), f.st, kr)
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK() || r.Verified != 5 || r.Debris != 1 || hasFinding(r, Warning, "unlisted", dup) ||
			!hasFinding(r, Warning, "unlisted", "garbage.tms") {
			t.Fatalf("verify after rebuild: verified %d:%s", r.Verified, findings(r))
		}

		// Running it again moves the rebuilt catalog aside and writes the same.
		clock.advance(time.Second)
		again, err := Rebuild(ctxT(t), f.st, kr, false)
		if err != nil {
			t.Fatal(err)
		}
		if again.MovedTo == res.MovedTo || !reflect.DeepEqual(keysOf(again.Segments), want) {
			t.Fatalf("second rebuild: moved to %q, segments %v", again.MovedTo, keysOf(again.Segments))
		}
	})
}

func keysOfInfo(objs []objstore.ObjectInfo) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Key
	}
	return out
}

func TestPlanRebuild_InterleavedTables(t *testing.T) {
	mk := func(key, table string, first, last event.Position) SegmentRef {
		r := *ref(first, last, base, base.Add(time.Duration(last)*time.Second))
		r.Key, r.TableID = "segments/"+key, table
		return r
	}
	refs := []SegmentRef{
		mk("c", "t1", 160, 200),
		mk("b", "t2", 120, 140),
		mk("dup", "t1", 130, 150), // repeats part of a
		mk("a", "t1", 110, 150),
	}
	res := &RebuildResult{}
	kept, wms := planRebuild(refs, res)
	if got := keysOf(kept); !reflect.DeepEqual(got, []string{"segments/a", "segments/b", "segments/c"}) {
		t.Fatalf("kept %v", got)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Object != "segments/dup" {
		t.Fatalf("skipped %+v", res.Skipped)
	}
	var lsns []event.Position
	for _, w := range wms {
		lsns = append(lsns, w.LSN)
	}
	// a reaches 150, but b starts at 120: the watermark after a stays below b.
	if !reflect.DeepEqual(lsns, []event.Position{119, 150, 200}) {
		t.Fatalf("watermarks %v, want [119 150 200]", lsns)
	}
}

func TestPlanRebuild_LargeTransactionParts(t *testing.T) {
	bucket := time.Date(2026, 11, 25, 10, 15, 0, 0, time.UTC)
	mk := func(first, last event.Position, fromIdx, toIdx int) SegmentRef {
		r := *ref(first, last, base, base.Add(time.Second))
		r.TableID = "t1"
		r.Key = segment.Key(bucket, first, last, "t1")
		if toIdx >= 0 {
			r.Key = segment.KeyWithIndexRange(r.Key, fromIdx, toIdx)
		}
		return r
	}
	refs := []SegmentRef{
		mk(300, 300, 2000, 2999),
		mk(100, 200, 0, -1),
		mk(300, 300, 0, 999),
		mk(300, 300, 1000, 1999),
		mk(300, 300, 1000, 1999-500), // a stray part that repeats indexes: left out
		mk(400, 450, 0, -1),
	}
	res := &RebuildResult{}
	kept, wms := planRebuild(refs, res)
	if len(kept) != 5 {
		t.Fatalf("kept %v, want the four parts in index order plus the segments around them", keysOf(kept))
	}
	for i, want := range []int{0, 1000, 2000} {
		info, err := segment.ParseKey(kept[1+i].Key)
		if err != nil || !info.HasIndexRange || info.FirstIndex != want {
			t.Fatalf("part %d: %+v %v", i, info, err)
		}
	}
	if len(res.Skipped) != 1 {
		t.Fatalf("skipped %+v, want the stray part", res.Skipped)
	}
	var lsns []event.Position
	for _, w := range wms {
		lsns = append(lsns, w.LSN)
	}
	// The watermark stays below the split transaction until its last part.
	if !reflect.DeepEqual(lsns, []event.Position{200, 299, 299, 300, 450}) {
		t.Fatalf("watermarks %v", lsns)
	}
}
