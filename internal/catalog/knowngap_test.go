package catalog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/testing/golden"
)

// knownGapGoldenFile pins the known-gap entry's encoding (docs/catalog.md):
// the golden catalog's entry 5 followed by a known gap as entry 6.
const knownGapGoldenFile = "testdata/known-gap-entry.json"

func goldenKnownGapEntry() Entry {
	e := Entry{Seq: 6, Epoch: 2, Writer: "tidemark-known-gap/host-1/515", Written: gtime("2026-11-25T10:05:00.5Z"),
		KnownGap: &KnownGap{
			Objects:  []string{"segments/2026/11/25/09/59/9f2c4e1a0b3d5f67-0000001600B374D8-0000001600B3A0F0.tms"},
			Streams:  []string{"order-7731", "order-7790"},
			Reason:   "INC-2231: segment lost with the old bucket; events re-entered by hand",
			Operator: "jane@example.com",
		},
		Watermark: goldenWatermarks()[2], Prev: goldenHash5}
	e.Hash = e.ComputeHash()
	return e
}

func TestKnownGap_Golden(t *testing.T) {
	e := goldenKnownGapEntry()
	b, err := e.encode()
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, knownGapGoldenFile, b, *update)
	got, err := decodeEntry(golden.Read(t, knownGapGoldenFile))
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash != got.ComputeHash() || got.KnownGap == nil || !sameKnownGap(got.KnownGap, e.KnownGap) {
		t.Fatalf("decoded %+v", got)
	}
	// the golden catalog takes it as its next entry
	dir := t.TempDir()
	for _, key := range goldenObjects {
		b := golden.Read(t, filepath.Join(goldenDir, key))
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, key)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, key), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	putRaw(t, st, EntryKey(6), golden.Read(t, knownGapGoldenFile))
	c, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatal(err)
	}
	if gaps := c.KnownGaps(); len(gaps) != 1 || gaps[0].Seq != 6 || gaps[0].Reason != e.KnownGap.Reason {
		t.Fatalf("known gaps %+v", gaps)
	}
}

func TestWriter_AppendKnownGapRefusesBadInput(t *testing.T) {
	st := fileStore(t)
	c, w, _ := newWriter(t, st, "w")
	appendN(t, w, c, 1)
	for _, g := range []KnownGap{
		{Objects: []string{"segments/x.tms"}}, // no reason
		{Reason: "r"},                         // names nothing
		{Objects: []string{"catalog/entries/00000000000000000001.json"}, Reason: "r"}, // not a segment key
		{Streams: []string{""}, Reason: "r"},
	} {
		if _, err := w.AppendKnownGap(ctxT(t), g); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%+v: %v, want ErrInvalidEntry", g, err)
		}
	}
}

// TestVerify_KnownGap: a missing segment is a FAILURE until a known gap
// names it and the streams it leaves with holes; then verify reports them
// as known and the archive as OK. A checkpoint written after the gap
// carries it, and a flipped byte in the gap's entry breaks the chain.
func TestVerify_KnownGap(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	f.standard(4)
	victim := f.c.Segments()[1]
	if err := f.st.Delete(ctxT(t), victim.Key); err != nil {
		t.Fatal(err)
	}
	r, err := Verify(ctxT(t), f.st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Worst() != Failure || !hasFinding(r, Failure, "object", victim.Key) {
		t.Fatalf("missing segment: worst %s:%s", r.Worst(), findings(r))
	}
	streams := map[string]bool{}
	for _, fd := range r.Findings {
		if fd.Stream != "" {
			streams[fd.Stream] = true
		}
	}
	var names []string
	for s := range streams {
		names = append(names, s)
	}
	f.w.CheckpointEvery = 1
	e, err := f.w.AppendKnownGap(ctxT(t), KnownGap{Objects: []string{victim.Key}, Streams: names, Reason: "lost in test", Operator: "t"})
	if err != nil {
		t.Fatal(err)
	}
	r, err = Verify(ctxT(t), f.st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Worst() != OK || r.Known == 0 || !hasFinding(r, OK, "known-gap", EntryKey(e.Seq)) {
		t.Fatalf("with the known gap: worst %s, known %d:%s", r.Worst(), r.Known, findings(r))
	}
	for _, fd := range r.Findings {
		if fd.Object == victim.Key && fd.KnownGap != e.Seq {
			t.Fatalf("finding %s not marked known", fd)
		}
	}
	if _, err := f.st.Stat(ctxT(t), CheckpointKey(e.Seq)); err != nil {
		t.Fatalf("no checkpoint at the known gap: %v", err)
	}
	c, err := Load(ctxT(t), f.st)
	if err != nil || len(c.KnownGaps()) != 1 || c.Checkpoint() != e.Seq {
		t.Fatalf("load from the checkpoint: %v, gaps %+v, checkpoint %d", err, c.KnownGaps(), c.Checkpoint())
	}
	// the gap is in the chain: altering it is a broken chain
	raw := getRaw(t, f.st, EntryKey(e.Seq))
	putRaw(t, f.st, EntryKey(e.Seq), []byte(strings.Replace(string(raw), "lost in test", "lost in tesT", 1)))
	r, err = Verify(ctxT(t), f.st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Worst() != Failure || !hasFinding(r, Failure, "chain", EntryKey(e.Seq)) {
		t.Fatalf("altered known gap: worst %s:%s", r.Worst(), findings(r))
	}
}
