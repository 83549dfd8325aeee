package catalog

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/testing/golden"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// update rewrites the golden files instead of comparing with them:
// go test ./internal/catalog -run Golden -update
var update = flag.Bool("update", false, "rewrite golden files")

// goldenDir is a small catalog in the store layout (catalog/entries/…,
// catalog/checkpoints/…, catalog/epochs/…) written by today's Writer and
// AcquireLease with a fixed clock. It pins docs/catalog.md: the entries'
// canonical JSON and hash chain, the checkpoint and its digest, and the
// epoch objects.
const goldenDir = "testdata/golden"

// The golden catalog's objects, in the order the writer creates them.
var goldenObjects = []string{
	EpochKey(1), EpochKey(2),
	EntryKey(1), EntryKey(2), EntryKey(3), EntryKey(4),
	CheckpointKey(4), EntryKey(5),
}

// checkpointV1File is a version-1 checkpoint, as written before merges
// existed (the golden catalog's checkpoint at 4 then); it stays readable.
const checkpointV1File = "testdata/golden/checkpoint-v1.json"

const (
	goldenHolderA = "archiver-a/host-1/4242"
	goldenHolderB = "archiver-b/host-2/977"
)

func gtime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// goldenSegments are the two segments the golden catalog lists: a
// plaintext zstd one and an encrypted gzip one.
func goldenSegments() [2]SegmentRef {
	return [2]SegmentRef{{
		Key:  "segments/2026/11/25/09/59/9f2c4e1a0b3d5f67-0000001600B374D8-0000001600B3A0F0.tms",
		Size: 183211, SHA256: "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b",
		Events: 1200, Transactions: 410, Table: "public.eventcore_events", TableID: "9f2c4e1a0b3d5f67",
		KeyID: "", Compression: "zstd", FirstEndLSN: 0x16_00B374D8, LastEndLSN: 0x16_00B3A0F0, PrevLSN: 0x16_00B37400,
		MinCommitTime: gtime("2026-11-25T09:59:00.000001Z"), MaxCommitTime: gtime("2026-11-25T09:59:59.9Z"),
		RawBytes: 812344,
	}, {
		Key:  "segments/2026/11/25/10/00/9f2c4e1a0b3d5f67-0000001600B3A1F0-0000001600B3AE00.tms",
		Size: 5123, SHA256: "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c",
		Events: 7, Transactions: 3, Table: "public.eventcore_events", TableID: "9f2c4e1a0b3d5f67",
		KeyID: "a97afaf796ee2e93", Compression: "gzip", FirstEndLSN: 0x16_00B3A1F0, LastEndLSN: 0x16_00B3AE00, PrevLSN: 0x16_00B3A0F0,
		MinCommitTime: gtime("2026-11-25T09:59:59.8Z"), MaxCommitTime: gtime("2026-11-25T10:00:02.5Z"),
		RawBytes: 4001,
	}}
}

// goldenDebris are recorded in one entry, not in key order (the
// checkpoint sorts them); the second is part of a streamed transaction.
func goldenDebris() []DebrisRef {
	return []DebrisRef{{
		Key:  "segments/2026/11/25/10/01/9f2c4e1a0b3d5f67-0000001600B3C100-0000001600B3C100-00000000-00000FFF.tms",
		Size: 70001, SHA256: "7d865e959b2466918c9863afca942d0fb89d7c9ac0c99bafc3749504ded97730",
		FirstEndLSN: 0x16_00B3C100, LastEndLSN: 0x16_00B3C100,
	}, {
		Key:  "segments/2026/11/25/10/00/9f2c4e1a0b3d5f67-0000001600B3B000-0000001600B3C000.tms",
		Size: 999, SHA256: "0000000000000000000000000000000000000000000000000000000000000001",
		FirstEndLSN: 0x16_00B3B000, LastEndLSN: 0x16_00B3C000,
	}}
}

func goldenWatermarks() [3]Watermark {
	return [3]Watermark{
		{LSN: 0x16_00B3A0F0, CommitTime: gtime("2026-11-25T09:59:59.9Z")},
		{LSN: 0x16_00B3AE00, CommitTime: gtime("2026-11-25T10:00:02.5Z")},
		{LSN: 0x16_00B3AF00, CommitTime: gtime("2026-11-25T10:00:03.000001Z")},
	}
}

// The hash chain and checkpoint digest of the golden catalog. They are
// SHA-256 over canonical JSON (docs/catalog.md), so any change in how an
// entry is encoded changes them. They were checked independently of this
// package (SHA-256 of each stored object with its "hash" or "digest"
// member removed).
const (
	goldenHash1  = "db344e888e9209a56dc7e9cb5ca119ffbf869d3c41a27ac670853bedb3231f52"
	goldenHash2  = "ff42dc4ee2a4d90db815e5eec637c75aed109daf6619083d029466d814badb6a"
	goldenHash3  = "c6af3c72af792aa77a3de8a8b6a5c5a4912400a9087543a82c2567c2a973e912"
	goldenHash4  = "2888cd52a79b8df4f0781f84a1e9ec02cf41ad4d2da959fb21dc1d24a467a499"
	goldenHash5  = "ee4d3e7ad866db00049c8c76b13269dc958bb9e751c40c86804fb5a2797a3c94"
	goldenDigest = "fdbcd053540c0a88d86f6a6e1df3fcbbdc8a18c6caa6e560f85d30ea8b386808"
	// goldenDigestV1 is checkpointV1's digest.
	goldenDigestV1 = "ef27488fddcdfc7eb482e963758fc86822a99e191d01905c7d51affbb805bd58"
)

// goldenEntries are the entries the golden catalog holds.
func goldenEntries() []Entry {
	segs, wms := goldenSegments(), goldenWatermarks()
	return []Entry{
		{Seq: 1, Epoch: 2, Writer: goldenHolderA, Written: gtime("2026-11-25T10:00:05.123456789Z"),
			Segment: &segs[0], Watermark: wms[0], Prev: "", Hash: goldenHash1},
		{Seq: 2, Epoch: 2, Writer: goldenHolderA, Written: gtime("2026-11-25T10:00:06.5Z"),
			Segment: &segs[1], Watermark: wms[1], Prev: goldenHash1, Hash: goldenHash2},
		{Seq: 3, Epoch: 2, Writer: goldenHolderA, Written: gtime("2026-11-25T10:00:07Z"),
			Watermark: wms[2], Prev: goldenHash2, Hash: goldenHash3},
		{Seq: 4, Epoch: 2, Writer: goldenHolderA, Written: gtime("2026-11-25T10:00:08.000000001Z"),
			Debris: goldenDebris(), Watermark: wms[2], Prev: goldenHash3, Hash: goldenHash4},
		{Seq: 5, Epoch: 2, Writer: goldenHolderA, Written: gtime("2026-11-25T10:01:30Z"),
			Merge: goldenMerge(), Watermark: wms[2], Prev: goldenHash4, Hash: goldenHash5},
	}
}

// goldenMerge replaces the two segments by one merged minute segment.
func goldenMerge() *Merge {
	segs := goldenSegments()
	return &Merge{Inputs: []MergeInput{segs[0].Input(), segs[1].Input()}, Output: SegmentRef{
		Key:  "segments/2026/11/25/09/59/9f2c4e1a0b3d5f67-0000001600B374D8-0000001600B3AE00-L1.tms",
		Size: 171002, SHA256: "8e1f0c2d3b4a59687766554433221100ffeeddccbbaa99887766554433221100",
		Events: 1207, Transactions: 413, Table: "public.eventcore_events", TableID: "9f2c4e1a0b3d5f67",
		KeyID: "a97afaf796ee2e93", Compression: "zstd", FirstEndLSN: 0x16_00B374D8, LastEndLSN: 0x16_00B3AE00,
		PrevLSN: 0x16_00B37400, MinCommitTime: gtime("2026-11-25T09:59:00.000001Z"), MaxCommitTime: gtime("2026-11-25T10:00:02.5Z"),
		RawBytes: 816345, Level: 1, EventsDigest: "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
	}}
}

// goldenCheckpoint is the checkpoint written after entry 4.
func goldenCheckpoint() checkpoint {
	segs, d := goldenSegments(), goldenDebris()
	at := gtime("2026-11-25T10:00:08.000000001Z")
	return checkpoint{Version: 2, Seq: 4, EntryHash: goldenHash4, Epoch: 2, Watermark: goldenWatermarks()[2],
		Segments: []checkpointSegment{{Seq: 1, SegmentRef: segs[0]}, {Seq: 2, SegmentRef: segs[1]}},
		Debris:   []debrisRecord{{DebrisRef: d[1], Seq: 4, At: at}, {DebrisRef: d[0], Seq: 4, At: at}},
		Writer:   goldenHolderA, Written: at, Digest: goldenDigest}
}

// goldenCheckpointV1 is checkpointV1's content.
func goldenCheckpointV1() checkpoint {
	segs, d := goldenSegments(), goldenDebris()
	return checkpoint{Version: 1, Seq: 4, EntryHash: goldenHash4, Epoch: 2, Watermark: goldenWatermarks()[2],
		Segments: []checkpointSegment{{Seq: 1, SegmentRef: segs[0]}, {Seq: 2, SegmentRef: segs[1]}},
		Debris:   []debrisRecord{{DebrisRef: d[1], Seq: 4}, {DebrisRef: d[0], Seq: 4}},
		Writer:   goldenHolderA, Written: gtime("2026-11-25T10:00:08.000000001Z"), Digest: goldenDigestV1}
}

// TestDecode_GoldenCheckpointV1: a version-1 checkpoint decodes to the
// values above, its digest verifies, and a catalog restores from it.
func TestDecode_GoldenCheckpointV1(t *testing.T) {
	var cp checkpoint
	if err := json.Unmarshal(golden.Read(t, checkpointV1File), &cp); err != nil {
		t.Fatal(err)
	}
	if want := goldenCheckpointV1(); !reflect.DeepEqual(cp, want) {
		t.Errorf("checkpoint v1\n got %+v\nwant %+v", cp, want)
	}
	if d := cp.computeDigest(); d != goldenDigestV1 {
		t.Errorf("checkpoint v1: recomputed digest %s, stored %s", d, goldenDigestV1)
	}
	c := newCatalog()
	if err := c.restore(cp, goldenEntries()[3]); err != nil {
		t.Fatalf("restore from checkpoint v1: %v", err)
	}
	if segs := goldenSegments(); !reflect.DeepEqual(c.Segments(), segs[:]) || len(c.sortedDebris()) != 2 {
		t.Errorf("restored %+v", c.Segments())
	}
}

// goldenLeases are the two epoch objects: B's released term, then A's.
func goldenLeases() []LeaseInfo {
	return []LeaseInfo{
		{Epoch: 1, Holder: goldenHolderB, Acquired: gtime("2026-11-25T10:00:00Z"),
			Renewed: gtime("2026-11-25T10:00:01.25Z"), Expires: gtime("2026-11-25T10:00:01.25Z"), Released: true},
		{Epoch: 2, Holder: goldenHolderA, Acquired: gtime("2026-11-25T10:00:04Z"),
			Renewed: gtime("2026-11-25T10:00:04Z"), Expires: gtime("2026-11-25T10:00:34Z")},
	}
}

// writeGoldenCatalog writes the golden catalog into st with today's
// AcquireLease, Release and Writer, the clock set to the times above.
func writeGoldenCatalog(t *testing.T, st objstore.Store) {
	clock := useFakeClock(t)
	set := func(s string) {
		clock.mu.Lock()
		clock.t = gtime(s)
		clock.mu.Unlock()
	}
	set("2026-11-25T10:00:00Z")
	b, err := AcquireLease(ctxT(t), st, goldenHolderB, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	set("2026-11-25T10:00:01.25Z")
	if err := b.Release(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	set("2026-11-25T10:00:04Z")
	a, err := AcquireLease(ctxT(t), st, goldenHolderA, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(st, c, goldenHolderA, a.Epoch())
	w.CheckpointEvery = 4
	segs, wms := goldenSegments(), goldenWatermarks()
	set("2026-11-25T10:00:05.123456789Z")
	mustAppend(t, w, &segs[0], wms[0])
	// A writer clock outside UTC: the entry records it in UTC.
	set("2026-11-25T11:00:06.5+01:00")
	mustAppend(t, w, &segs[1], wms[1])
	set("2026-11-25T10:00:07Z")
	mustAppend(t, w, nil, wms[2])
	set("2026-11-25T10:00:08.000000001Z")
	for _, d := range goldenDebris() {
		// Present, so the checkpoint keeps their records (it forgets
		// records of objects GC deleted).
		putRaw(t, st, d.Key, []byte("debris"))
	}
	if _, err := w.AppendDebris(ctxT(t), goldenDebris()); err != nil {
		t.Fatal(err)
	}
	if err := w.CheckpointError(); err != nil {
		t.Fatal(err)
	}
	set("2026-11-25T10:01:30Z")
	if _, err := w.AppendMerge(ctxT(t), *goldenMerge()); err != nil {
		t.Fatal(err)
	}
}

func mustAppend(t *testing.T, w *Writer, seg *SegmentRef, wm Watermark) {
	t.Helper()
	if _, err := w.Append(ctxT(t), seg, wm); err != nil {
		t.Fatal(err)
	}
}

// TestWriter_Golden writes the golden catalog again and requires every
// object byte for byte: hash chain, digest and epoch objects included.
func TestWriter_Golden(t *testing.T) {
	st := fileStore(t)
	writeGoldenCatalog(t, st)
	objs, err := st.List(ctxT(t), "catalog/", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != len(goldenObjects) {
		t.Errorf("writer created %d objects, the golden catalog has %d: %v", len(objs), len(goldenObjects), objs)
	}
	for _, key := range goldenObjects {
		golden.Check(t, filepath.Join(goldenDir, filepath.FromSlash(key)), getRaw(t, st, key), *update)
	}
}

// TestDecode_Golden reads the golden objects with today's decoders and
// compares every field with the values above; then Load must accept the
// chain, with and without the checkpoint.
func TestDecode_Golden(t *testing.T) {
	want := goldenEntries()
	for i, e := range want {
		b := golden.Read(t, filepath.Join(goldenDir, filepath.FromSlash(EntryKey(e.Seq))))
		if !strings.HasSuffix(string(b), "}\n") {
			t.Errorf("entry %d does not end with a newline after the JSON", e.Seq)
		}
		got, err := decodeEntry(b)
		if err != nil {
			t.Fatalf("entry %d: %v", e.Seq, err)
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("entry %d\n got %+v\nwant %+v", e.Seq, got, want[i])
		}
		if h := got.ComputeHash(); h != e.Hash {
			t.Errorf("entry %d: recomputed hash %s, stored %s", e.Seq, h, e.Hash)
		}
	}
	var cp checkpoint
	if err := json.Unmarshal(golden.Read(t, filepath.Join(goldenDir, filepath.FromSlash(CheckpointKey(4)))), &cp); err != nil {
		t.Fatal(err)
	}
	if wantCP := goldenCheckpoint(); !reflect.DeepEqual(cp, wantCP) {
		t.Errorf("checkpoint\n got %+v\nwant %+v", cp, wantCP)
	}
	if d := cp.computeDigest(); d != goldenDigest {
		t.Errorf("checkpoint: recomputed digest %s, stored %s", d, goldenDigest)
	}
	for _, l := range goldenLeases() {
		var got LeaseInfo
		if err := json.Unmarshal(golden.Read(t, filepath.Join(goldenDir, filepath.FromSlash(EpochKey(l.Epoch)))), &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, l) {
			t.Errorf("epoch %d\n got %+v\nwant %+v", l.Epoch, got, l)
		}
	}
	checkGoldenLoad(t)
}

// checkGoldenLoad loads the golden catalog as a store, as restore would.
func checkGoldenLoad(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(goldenDir); err != nil {
		t.Fatal(err)
	}
	st, err := file.Open(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []LoadOptions{{}, {IgnoreCheckpoints: true}} {
		c, err := LoadWith(ctxT(t), st, opts)
		if err != nil {
			t.Fatalf("load %+v: %v", opts, err)
		}
		wantCP := uint64(4)
		if opts.IgnoreCheckpoints {
			wantCP = 0
		}
		segs := goldenSegments()
		hash, epoch := c.Head()
		switch {
		case c.Checkpoint() != wantCP || len(c.Warnings()) != 0:
			t.Errorf("load %+v: checkpoint %d, warnings %v", opts, c.Checkpoint(), c.Warnings())
		case c.NextSeq() != 6 || hash != goldenHash5 || epoch != 2:
			t.Errorf("load %+v: next seq %d, head %s epoch %d", opts, c.NextSeq(), hash, epoch)
		case !reflect.DeepEqual(c.Segments(), []SegmentRef{goldenMerge().Output}):
			t.Errorf("load %+v: segments %+v", opts, c.Segments())
		case len(c.Superseded()) != 2 || c.Superseded()[0].MergeInput != segs[0].Input() || c.Superseded()[0].Seq != 5:
			t.Errorf("load %+v: superseded %+v", opts, c.Superseded())
		case !sameWatermark(c.Watermark(), goldenWatermarks()[2]):
			t.Errorf("load %+v: watermark %+v", opts, c.Watermark())
		}
		for _, d := range goldenDebris() {
			if got, seq, ok := c.Debris(d.Key); !ok || seq != 4 || got != d {
				t.Errorf("load %+v: debris %s = %+v, %d, %v", opts, d.Key, got, seq, ok)
			}
		}
	}
	lease, err := CurrentLease(ctxT(t), st)
	if err != nil || !reflect.DeepEqual(*lease, goldenLeases()[1]) {
		t.Errorf("current lease = %+v, %v", lease, err)
	}
}

// TestEntry_GoldenPositions pins the JSON forms that are easy to get
// wrong by hand: positions as Postgres prints them, and a time with
// nanoseconds.
func TestEntry_GoldenPositions(t *testing.T) {
	b := string(golden.Read(t, filepath.Join(goldenDir, filepath.FromSlash(EntryKey(1)))))
	for _, want := range []string{`"first_end_lsn":"16/B374D8"`, `"prev_lsn":"16/B37400"`,
		`"written":"2026-11-25T10:00:05.123456789Z"`, `"prev":""`, `"key_id":""`} {
		if !strings.Contains(b, want) {
			t.Errorf("entry 1 lacks %s: %s", want, b)
		}
	}
}

// TestLoad_GoldenArchiveV1 reads archive-v1, the archive today's
// archiver wrote from the recorded feed-v1 (internal/testing/golden):
// Load starts from its checkpoint and reads the entries after it, a load
// of every entry agrees, Verify finds nothing wrong and counts the
// recorded debris, and Plan picks segments by their commit times.
func TestLoad_GoldenArchiveV1(t *testing.T) {
	st, err := file.Open(testkit.CopyDir(t, golden.ArchiveV1Dir()))
	if err != nil {
		t.Fatal(err)
	}
	const (
		segA   = "segments/2026/11/25/10/00/2c6c8800596add51-0000000000000001-00000016B3740330.tms"
		segB   = "segments/2026/11/25/10/01/2c6c8800596add51-00000016B3740530-00000016B3740630.tms"
		segC   = "segments/2026/11/25/10/02/2c6c8800596add51-00000016B3740930-00000016B3740B30.tms"
		debris = "segments/2026/11/25/10/02/2c6c8800596add51-00000016B3740930-00000016B3740A30.tms"
	)
	wantWM := Watermark{LSN: 0x16_B3740D00, CommitTime: gtime("2026-11-25T10:02:50Z")}
	c, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatal(err)
	}
	full, err := LoadWith(ctxT(t), st, LoadOptions{IgnoreCheckpoints: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Catalog{c, full} {
		var keys []string
		for _, s := range c.Segments() {
			keys = append(keys, s.Key)
		}
		if !reflect.DeepEqual(keys, []string{segA, segB, segC}) || c.NextSeq() != 7 || !sameWatermark(c.Watermark(), wantWM) {
			t.Errorf("segments %v, next seq %d, watermark %+v", keys, c.NextSeq(), c.Watermark())
		}
		if _, seq, ok := c.Debris(debris); !ok || seq != 4 {
			t.Errorf("debris %s recorded by entry %d (%v), want 4", debris, seq, ok)
		}
	}
	if c.Checkpoint() != 5 || len(c.Entries()) != 2 || full.Checkpoint() != 0 || len(full.Entries()) != 6 {
		t.Errorf("checkpoint %d with %d entries read; full load %d entries", c.Checkpoint(), len(c.Entries()), len(full.Entries()))
	}
	kinds := ""
	for _, e := range full.Entries() {
		switch {
		case e.Segment != nil:
			kinds += "S"
		case len(e.Debris) > 0:
			kinds += "D"
		default:
			kinds += "W"
		}
		kinds += fmt.Sprint(e.Epoch)
	}
	if kinds != "S1S1W1D2S2W2" {
		t.Errorf("entries (kind, epoch) %s, want S1S1W1D2S2W2", kinds)
	}
	rep, err := Verify(ctxT(t), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Worst() != OK || rep.Segments != 3 || rep.Verified != 3 || rep.Events != 16 || rep.Debris != 1 {
		t.Errorf("verify: worst %s, %d/%d segments, %d events, %d debris:\n%v",
			rep.Worst(), rep.Verified, rep.Segments, rep.Events, rep.Debris, rep.Findings)
	}
	// Minute 10:01's segment starts at 10:01:05; 10:00's holds commits
	// from 10:00:00.5 (a snapshot row).
	for at, want := range map[string]int{"2026-11-25T10:00:00.4Z": 0, "2026-11-25T10:00:00.5Z": 1,
		"2026-11-25T10:01:05Z": 2, "2026-11-25T10:02:50Z": 3} {
		if got := len(c.Plan(gtime(at))); got != want {
			t.Errorf("Plan(%s) picks %d segments, want %d", at, got, want)
		}
	}
}
