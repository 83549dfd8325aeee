package catalog

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/objstore"
)

// mergedRef returns the merge output describing ins at level.
func mergedRef(ins []SegmentRef, level int) SegmentRef {
	out := ins[0]
	out.Key = strings.TrimSuffix(ins[0].Key, ".tms") + "-L1.tms"
	out.Level = level
	out.EventsDigest = strings.Repeat("ab", 32)
	out.Events, out.Transactions, out.RawBytes, out.Size = 0, 0, 0, 0
	for _, s := range ins {
		out.Events += s.Events
		out.Transactions += s.Transactions
		out.RawBytes += s.RawBytes
		out.Size += s.Size / 2
		out.MinCommitTime = earlier(out.MinCommitTime, s.MinCommitTime)
		out.MaxCommitTime = later(out.MaxCommitTime, s.MaxCommitTime)
	}
	out.LastEndLSN = ins[len(ins)-1].LastEndLSN
	return out
}

func inputsOf(ins []SegmentRef) []MergeInput {
	out := make([]MergeInput, len(ins))
	for i, s := range ins {
		out[i] = s.Input()
	}
	return out
}

func TestWriter_AppendMerge(t *testing.T) {
	st := fileStore(t)
	c, w, _ := newWriter(t, st, "a")
	appendN(t, w, c, 9) // 6 segments
	segs := append([]SegmentRef(nil), c.Segments()...)
	out := mergedRef(segs[1:4], 1)
	if _, err := w.AppendMerge(ctxT(t), Merge{Inputs: inputsOf(segs[1:4]), Output: out}); err != nil {
		t.Fatalf("append merge: %v", err)
	}
	live := c.Segments()
	if len(live) != 4 || live[0].Key != segs[0].Key || live[1].Key != out.Key || live[2].Key != segs[4].Key {
		t.Fatalf("live segments after the merge: %v", keysOf(live))
	}
	if sup := c.Superseded(); len(sup) != 3 {
		t.Fatalf("superseded = %d, want 3", len(sup))
	}
	// A plan to the end reads the merged segment, not its inputs.
	for _, s := range c.Plan(base.Add(1000 * time.Hour)) {
		if s.Key == segs[2].Key {
			t.Fatalf("plan reads superseded %s", s.Key)
		}
	}
	reloaded, err := LoadWith(ctxT(t), st, LoadOptions{IgnoreCheckpoints: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(reloaded.Segments()); strings.Join(got, ",") != strings.Join(keysOf(live), ",") {
		t.Fatalf("reloaded live segments %v, want %v", got, keysOf(live))
	}
}

func TestWriter_AppendMergeRejects(t *testing.T) {
	st := fileStore(t)
	c, w, _ := newWriter(t, st, "a")
	appendN(t, w, c, 9)
	segs := append([]SegmentRef(nil), c.Segments()...)
	tests := []struct {
		name string
		m    func() Merge
	}{
		{"one input", func() Merge { return Merge{Inputs: inputsOf(segs[:1]), Output: mergedRef(segs[:1], 1)} }},
		{"gap between inputs", func() Merge {
			ins := []SegmentRef{segs[0], segs[2]}
			return Merge{Inputs: inputsOf(ins), Output: mergedRef(ins, 1)}
		}},
		{"out of order", func() Merge {
			ins := []SegmentRef{segs[1], segs[0]}
			return Merge{Inputs: inputsOf(ins), Output: mergedRef(ins, 1)}
		}},
		{"events lost", func() Merge {
			m := Merge{Inputs: inputsOf(segs[:2]), Output: mergedRef(segs[:2], 1)}
			m.Output.Events--
			return m
		}},
		{"ends early", func() Merge {
			m := Merge{Inputs: inputsOf(segs[:2]), Output: mergedRef(segs[:2], 1)}
			m.Output.LastEndLSN--
			return m
		}},
		{"level 0", func() Merge { return Merge{Inputs: inputsOf(segs[:2]), Output: mergedRef(segs[:2], 0)} }},
		{"no digest", func() Merge {
			m := Merge{Inputs: inputsOf(segs[:2]), Output: mergedRef(segs[:2], 1)}
			m.Output.EventsDigest = ""
			return m
		}},
		{"output reuses an input key", func() Merge {
			m := Merge{Inputs: inputsOf(segs[:2]), Output: mergedRef(segs[:2], 1)}
			m.Output.Key = segs[0].Key
			return m
		}},
		{"input checksum differs", func() Merge {
			m := Merge{Inputs: inputsOf(segs[:2]), Output: mergedRef(segs[:2], 1)}
			m.Inputs[1].SHA256 = strings.Repeat("0", 64)
			return m
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.AppendMerge(ctxT(t), tt.m())
			if !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("err = %v, want ErrInvalidEntry", err)
			}
		})
	}
	t.Run("input already superseded", func(t *testing.T) {
		if _, err := w.AppendMerge(ctxT(t), Merge{Inputs: inputsOf(segs[:2]), Output: mergedRef(segs[:2], 1)}); err != nil {
			t.Fatal(err)
		}
		again := mergedRef(segs[1:3], 1)
		again.Key = strings.Replace(again.Key, "-L1", "-L2", 1)
		_, err := w.AppendMerge(ctxT(t), Merge{Inputs: inputsOf(segs[1:3]), Output: again})
		if !errors.Is(err, ErrInvalidEntry) {
			t.Fatalf("err = %v, want ErrInvalidEntry", err)
		}
		if _, err := w.Append(ctxT(t), &segs[1], Watermark{LSN: c.Watermark().LSN + 100, CommitTime: base}); !errors.Is(err, ErrInvalidEntry) {
			t.Fatalf("re-listing a superseded segment: err = %v, want ErrInvalidEntry", err)
		}
	})
}

// TestCollect_GraceAndFold merges, then collects: superseded objects and
// folded entries go only after the grace, Load still works afterwards, and
// the next checkpoint forgets the records of deleted objects.
func TestCollect_GraceAndFold(t *testing.T) {
	clock := useFakeClock(t)
	st := fileStore(t)
	c, w, _ := newWriter(t, st, "a")
	w.CheckpointEvery = 4
	appendN(t, w, c, 9)
	for _, s := range c.Segments() {
		putRaw(t, st, s.Key, []byte("segment"))
	}
	segs := append([]SegmentRef(nil), c.Segments()...)
	out := mergedRef(segs[:3], 1)
	putRaw(t, st, out.Key, []byte("merged"))
	if _, err := w.AppendMerge(ctxT(t), Merge{Inputs: inputsOf(segs[:3]), Output: out}); err != nil {
		t.Fatal(err)
	}
	appendN(t, w, c, 3) // a checkpoint at 12, after the merge

	res, err := Collect(ctxT(t), st, GCOptions{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res.Segments != 0 || res.Entries != 0 || res.KeptInGrace != 3 {
		t.Fatalf("within the grace: %+v", res)
	}
	clock.advance(2 * time.Hour)
	res, err = Collect(ctxT(t), st, GCOptions{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res.Segments != 3 || res.FoldedBy != 12 || res.Entries != 11 || res.Checkpoints != 2 {
		t.Fatalf("after the grace: %+v", res)
	}
	for _, s := range segs[:3] {
		if _, err := st.Stat(ctxT(t), s.Key); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("superseded %s still there: %v", s.Key, err)
		}
	}
	if _, err := st.Stat(ctxT(t), out.Key); err != nil {
		t.Fatalf("live merged segment: %v", err)
	}
	loaded, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatalf("load after gc: %v", err)
	}
	if loaded.Checkpoint() != 12 || len(loaded.Segments()) != len(c.Segments()) {
		t.Fatalf("load after gc: checkpoint %d, %d segments", loaded.Checkpoint(), len(loaded.Segments()))
	}
	appendN(t, w, c, 4) // the checkpoint at 16 lists no superseded objects
	reloaded, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatal(err)
	}
	if reloaded.Checkpoint() != 16 || len(reloaded.Superseded()) != 0 {
		t.Fatalf("checkpoint %d still lists %d superseded objects", reloaded.Checkpoint(), len(reloaded.Superseded()))
	}
	if _, err := LoadWith(ctxT(t), st, LoadOptions{IgnoreCheckpoints: true}); !errors.Is(err, ErrChainBroken) {
		t.Fatalf("load without checkpoints after gc: %v, want the chain broken at entry 1", err)
	}
}

func TestCollect_DryRunDeletesNothing(t *testing.T) {
	clock := useFakeClock(t)
	st := fileStore(t)
	c, w, _ := newWriter(t, st, "a")
	w.CheckpointEvery = 4
	appendN(t, w, c, 9)
	clock.advance(time.Hour)
	res, err := Collect(ctxT(t), st, GCOptions{Grace: time.Minute, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries == 0 || len(res.Deleted) == 0 {
		t.Fatalf("dry run found nothing: %+v", res)
	}
	if _, err := st.Stat(ctxT(t), EntryKey(1)); err != nil {
		t.Fatalf("dry run deleted entry 1: %v", err)
	}
}
