package catalog

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoad_DetectsTampering(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(t *testing.T, st storeT, entries []Entry)
		wantSeq uint64
		reason  string
	}{
		{"deleted middle entry", func(t *testing.T, st storeT, _ []Entry) {
			if err := st.Delete(ctxT(t), EntryKey(4)); err != nil {
				t.Fatal(err)
			}
		}, 4, "missing"},
		{"deleted first entry", func(t *testing.T, st storeT, _ []Entry) {
			if err := st.Delete(ctxT(t), EntryKey(1)); err != nil {
				t.Fatal(err)
			}
		}, 1, "missing"},
		{"altered content", func(t *testing.T, st storeT, _ []Entry) {
			body := strings.Replace(string(getRaw(t, st, EntryKey(3))), `"writer":"a"`, `"writer":"mallory"`, 1)
			putRaw(t, st, EntryKey(3), []byte(body))
		}, 3, "hash"},
		{"replaced with a rehashed entry", func(t *testing.T, st storeT, entries []Entry) {
			e := entries[4]
			e.Watermark.LSN += 5
			e.Hash = e.ComputeHash()
			b, _ := e.encode()
			putRaw(t, st, EntryKey(5), b)
		}, 6, "prev"},
		{"reordered", func(t *testing.T, st storeT, _ []Entry) {
			b3, b4 := getRaw(t, st, EntryKey(3)), getRaw(t, st, EntryKey(4))
			putRaw(t, st, EntryKey(3), b4)
			putRaw(t, st, EntryKey(4), b3)
		}, 3, "seq"},
		{"injected after a gap", func(t *testing.T, st storeT, entries []Entry) {
			e := entries[7]
			e.Seq, e.Prev = 20, entries[7].Hash
			e.Hash = e.ComputeHash()
			b, _ := e.encode()
			putRaw(t, st, EntryKey(20), b)
		}, 9, "missing"},
		{"injected with a forged link", func(t *testing.T, st storeT, entries []Entry) {
			e := entries[7]
			e.Seq, e.Prev = 9, entries[6].Hash // links to the wrong entry
			e.Hash = e.ComputeHash()
			b, _ := e.encode()
			putRaw(t, st, EntryKey(9), b)
		}, 9, "prev"},
		{"injected by a fenced writer", func(t *testing.T, st storeT, entries []Entry) {
			e := Entry{Seq: 9, Epoch: 1, Writer: "old", Written: base, Watermark: entries[7].Watermark, Prev: entries[7].Hash}
			e.Hash = e.ComputeHash()
			b, _ := e.encode()
			putRaw(t, st, EntryKey(9), b)
		}, 9, "epoch"},
		{"unexpected object", func(t *testing.T, st storeT, _ []Entry) {
			putRaw(t, st, EntriesPrefix+"00000000000000000005.json.bak", []byte("{}"))
		}, 6, "unexpected object"},
		{"not json", func(t *testing.T, st storeT, _ []Entry) {
			putRaw(t, st, EntryKey(2), []byte("\x00\x01garbage"))
		}, 2, "not an entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := useFakeClock(t)
			st := fileStore(t)
			c, w, _ := newWriter(t, st, "a")
			w.CheckpointEvery = -1
			appendN(t, w, c, 4)
			// Entries 5–8 come from epoch 2.
			clock.advance(2 * time.Minute)
			c2, w2, _ := newWriter(t, st, "b")
			w2.CheckpointEvery = -1
			appendN(t, w2, c2, 4)
			entries := c2.Entries()

			tt.tamper(t, st, entries)
			_, err := Load(ctxT(t), st)
			var ce *ChainError
			if !errors.As(err, &ce) || !errors.Is(err, ErrChainBroken) {
				t.Fatalf("load: err = %v, want a *ChainError", err)
			}
			if ce.Seq != tt.wantSeq || !strings.Contains(ce.Reason, tt.reason) {
				t.Fatalf("chain error at seq %d (%s): %q; want seq %d and a reason mentioning %q", ce.Seq, ce.Key, ce.Reason, tt.wantSeq, tt.reason)
			}
			if ce.Key == "" {
				t.Fatalf("chain error names no object")
			}
		})
	}
}

func TestLoad_CheckpointEqualsFullLoad(t *testing.T) {
	st := fileStore(t)
	c, w, _ := newWriter(t, st, "a")
	w.CheckpointEvery = 5
	appendN(t, w, c, 23)
	if err := w.CheckpointError(); err != nil {
		t.Fatal(err)
	}
	objs, err := st.List(ctxT(t), CheckpointsPrefix, "")
	if err != nil || len(objs) != 4 {
		t.Fatalf("checkpoints: %v, %v; want 4 (5, 10, 15, 20)", objs, err)
	}

	same := func(t *testing.T, a, b *Catalog) {
		t.Helper()
		if !reflect.DeepEqual(a.Segments(), b.Segments()) {
			t.Fatalf("segments differ: %d vs %d", len(a.Segments()), len(b.Segments()))
		}
		if a.Watermark() != b.Watermark() || a.NextSeq() != b.NextSeq() {
			t.Fatalf("watermark %+v next %d vs %+v next %d", a.Watermark(), a.NextSeq(), b.Watermark(), b.NextSeq())
		}
		ha, ea := a.Head()
		hb, eb := b.Head()
		if ha != hb || ea != eb {
			t.Fatalf("heads differ")
		}
		f1, w1, ok1 := a.Window()
		f2, w2, ok2 := b.Window()
		if !f1.Equal(f2) || w1 != w2 || ok1 != ok2 {
			t.Fatalf("windows differ")
		}
		for _, at := range []time.Time{base, base.Add(time.Hour), base.Add(24 * time.Hour)} {
			if !reflect.DeepEqual(a.Plan(at), b.Plan(at)) {
				t.Fatalf("plans for %v differ", at)
			}
		}
	}
	full, err := LoadWith(ctxT(t), st, LoadOptions{IgnoreCheckpoints: true})
	if err != nil {
		t.Fatal(err)
	}
	if full.Checkpoint() != 0 || len(full.Entries()) != 23 {
		t.Fatalf("full load: checkpoint %d, %d entries", full.Checkpoint(), len(full.Entries()))
	}
	fast, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatal(err)
	}
	if fast.Checkpoint() != 20 || len(fast.Entries()) != 4 || fast.Entries()[0].Seq != 20 {
		t.Fatalf("checkpoint load: checkpoint %d, %d entries; want 20 and entries 20–23", fast.Checkpoint(), len(fast.Entries()))
	}
	same(t, full, fast)

	// A checkpoint whose digest does not verify is skipped for the one before.
	body := strings.Replace(string(getRaw(t, st, CheckpointKey(20))), `"writer":"a"`, `"writer":"b"`, 1)
	putRaw(t, st, CheckpointKey(20), []byte(body))
	fb, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatal(err)
	}
	if fb.Checkpoint() != 15 || len(fb.Warnings()) != 1 || !strings.Contains(fb.Warnings()[0], "digest") {
		t.Fatalf("fallback: checkpoint %d, warnings %q; want 15 and one digest warning", fb.Checkpoint(), fb.Warnings())
	}
	same(t, full, fb)

	// A self-consistent checkpoint that does not match its entry is skipped too.
	var cp checkpoint
	cp, _, err = readCheckpoint(ctxT(t), st, 15)
	if err != nil {
		t.Fatal(err)
	}
	cp.Segments = cp.Segments[:len(cp.Segments)-1] // drops a segment
	cp.EntryHash = strings.Repeat("0", 64)
	cp.Digest = cp.computeDigest()
	b, _ := canonicalJSON(cp)
	putRaw(t, st, CheckpointKey(15), b)
	fb2, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatal(err)
	}
	if fb2.Checkpoint() != 10 {
		t.Fatalf("checkpoint %d, want 10 after two bad ones (warnings %q)", fb2.Checkpoint(), fb2.Warnings())
	}
	same(t, full, fb2)

	// A catalog whose last entry is a checkpoint still reports its entries.
	c3, w3, _ := newWriter(t, fileStore(t), "a")
	w3.CheckpointEvery = 5
	appendN(t, w3, c3, 5)
	l3, err := Load(ctxT(t), w3.store)
	if err != nil || l3.Checkpoint() != 5 || len(l3.Entries()) != 1 {
		t.Fatalf("load at a checkpoint: checkpoint %d, %d entries, %v", l3.Checkpoint(), len(l3.Entries()), err)
	}
}

func TestCatalog_PlanNonMonotonicCommitTimes(t *testing.T) {
	st := fileStore(t)
	c, w, _ := newWriter(t, st, "a")
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	// Chain order (by LSN) is not commit-time order.
	segs := []struct {
		first, last int
		min, max    int
	}{
		{1, 100, 10, 20},
		{101, 200, 5, 12}, // committed earlier than the segment before it
		{201, 300, 30, 40},
		{301, 400, 25, 50},
		{401, 500, 60, 70},
	}
	for i, s := range segs {
		if _, err := w.Append(ctxT(t), ref(eventPos(s.first), eventPos(s.last), at(s.min), at(s.max)),
			Watermark{LSN: eventPos(s.last), CommitTime: at(s.max)}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	loaded, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		t    time.Time
		want []int // indexes into segs, in chain order
	}{
		{at(4), nil},
		{at(5), []int{1}},
		{at(10), []int{0, 1}},
		{at(26), []int{0, 1, 3}},
		{at(30), []int{0, 1, 2, 3}},
		{at(1000), []int{0, 1, 2, 3, 4}},
	}
	for _, tt := range tests {
		got := loaded.Plan(tt.t)
		var idx []int
		for _, g := range got {
			for i, s := range segs {
				if g.FirstEndLSN == eventPos(s.first) {
					idx = append(idx, i)
				}
			}
		}
		if !reflect.DeepEqual(idx, tt.want) {
			t.Errorf("Plan(+%v) = segments %v, want %v", tt.t.Sub(base), idx, tt.want)
		}
	}
	first, last, ok := loaded.Window()
	if !ok || !first.Equal(at(5)) || last.LSN != 500 || !last.CommitTime.Equal(at(70)) {
		t.Fatalf("Window() = %v, %+v, %v; want +5m, 0/1F4 at +70m", first, last, ok)
	}
	if c.NextSeq() != loaded.NextSeq() {
		t.Fatalf("next seq %d vs %d", c.NextSeq(), loaded.NextSeq())
	}
}
