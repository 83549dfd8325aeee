package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
)

// fuzzKey is a throwaway identity used only by tests, fixed so that stored
// corpus entries stay decryptable.
const fuzzKey = "AGE-SECRET-KEY-1HD452CYEEMPK8W8UTPKMPV54GTYGYK3K0M00Q7ALKZS9SFLG89TSQAQHNF"

// fuzzMaxRaw keeps each fuzz execution's memory small.
const fuzzMaxRaw = 4 << 20

// fuzzTable is a small table, so seeds stay a few hundred bytes: Go's
// minimizer is quadratic in the input size.
var fuzzTable = event.Table{Schema: "s", Name: "t", Columns: []event.Column{
	{Name: "stream_id", Type: "text"}, {Name: "stream_version", Type: "bigint"}, {Name: "v", Type: "text"}}}

func fuzzEvents() []*event.Event {
	ct := time.Date(2026, 11, 25, 10, 15, 0, 0, time.UTC)
	return []*event.Event{
		{Table: "s.t", CommitLSN: 90, EndLSN: 100, PrevLSN: 50, CommitTime: ct, XID: 7, Index: 0, Count: 2,
			Values: [][]byte{[]byte("a"), []byte("1"), []byte("x")}},
		{Table: "s.t", CommitLSN: 90, EndLSN: 100, PrevLSN: 50, CommitTime: ct, XID: 7, Index: 1, Count: 2,
			Values: [][]byte{[]byte("b"), []byte("2"), nil}},
		{Table: "s.t", CommitLSN: 190, EndLSN: 200, PrevLSN: 100, CommitTime: ct.Add(-time.Second), XID: 8, Count: 1,
			Snapshot: true, Values: [][]byte{[]byte("a"), []byte("2"), {}}},
	}
}

// fuzzSeeds returns valid segments of every kind, and hostile variants:
// truncated, bit-flipped, huge declared lengths, zstd and gzip bombs.
func fuzzSeeds(tb testing.TB) [][]byte {
	ring := mustKeyring(tb, fuzzKey)
	events := fuzzEvents()
	var seeds, valid [][]byte
	for _, c := range []Compression{None, Gzip, Zstd} {
		d, _ := encode(tb, WriterOptions{Compression: c, Table: fuzzTable, SystemID: "1"}, events)
		valid = append(valid, d)
	}
	enc, _ := encode(tb, WriterOptions{Keyring: ring, Table: fuzzTable, SystemID: "1"}, events)
	valid = append(valid, enc)
	// Format version 2, with a UUID and a JSON column.
	for _, c := range []Compression{None, Zstd} {
		d, _ := encode(tb, WriterOptions{Compression: c, Table: hostileTable, SystemID: "1", MergeLevel: 1, Format: ColumnarVersion}, hostileEvents())
		valid = append(valid, d)
	}
	seeds = append(seeds, valid...)
	for _, d := range valid {
		flipped := bytes.Clone(d)
		flipped[len(d)/3] ^= 0x10
		seeds = append(seeds, d[:len(d)/2], d[:len(d)-1], flipped, rehash(flipped))
	}
	// Huge declared lengths behind valid checksums.
	var raw []byte
	for _, e := range events {
		raw, _ = appendRecord(raw, e)
	}
	_, tr := encode(tb, WriterOptions{Compression: None, Table: fuzzTable}, events)
	hdr := headerJSON{Version: Version, SystemID: "1", Table: fuzzTable}
	forged := func(c Compression, body []byte, f func(*trailerJSON)) []byte {
		j := tr.toJSON("")
		j.HeaderSHA256 = ""
		f(&j)
		h := hdr
		h.Compression = &c
		return forge(h, body, &j)
	}
	seeds = append(seeds,
		forged(None, raw, func(j *trailerJSON) { j.RawBytes = 1 << 62 }),
		forged(None, raw, func(j *trailerJSON) { j.Events = 1 << 50 }),
		forged(None, append(binary.AppendUvarint(nil, 1<<60), raw...), func(j *trailerJSON) { j.RawBytes += 9 }),
	)
	hl := bytes.Clone(valid[2])
	binary.BigEndian.PutUint32(hl[8:], 0xFFFFFFFF)
	seeds = append(seeds, rehash(hl))
	// A 16 MiB zstd bomb (512 bytes; TestDecode_Bomb has the 1 GiB one), a
	// 2 GiB-window frame and a gzip bomb, each declaring 100 raw bytes.
	small := func(j *trailerJSON) { j.RawBytes = 100 }
	seeds = append(seeds,
		forged(Zstd, zstdRLEBomb(16<<20, 23), small),
		forged(Zstd, zstdRLEBomb(1<<20, 31), small),
		forged(Gzip, gzipBytes(tb, make([]byte, 1<<20)), small),
	)
	return seeds
}

// FuzzDecode feeds arbitrary bytes to Decode, as given and with the footer
// checksum recomputed (so mutations reach the checks behind it), and to
// ReadTrailer. Nothing may panic; errors must be typed and name the object;
// whatever decodes must survive a re-encode unchanged.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	ring := mustKeyring(f, fuzzKey)
	pooling = false
	f.Cleanup(func() { pooling = true })
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, ring, data) })
}

func fuzzDecode(t *testing.T, ring *Keyring, data []byte) {
	const name = "segments/fuzz.tms"
	opts := ReadOptions{Keyring: ring, MaxRawBytes: fuzzMaxRaw}
	_, err := Decode(name, data, opts)
	checkFuzzError(t, name, err)
	fixed := rehash(data)
	seg, err := Decode(name, fixed, opts)
	checkFuzzError(t, name, err)
	h, tr, err2 := ReadTrailer(name, fixed, opts)
	checkFuzzError(t, name, err2)
	if err != nil {
		return
	}
	if err2 != nil || h.KeyID != seg.Header.KeyID || tr.SHA256 != seg.Trailer.SHA256 {
		t.Fatalf("Decode succeeded but ReadTrailer = %v, %v, %v", h, tr, err2)
	}
	if len(seg.Events) != seg.Trailer.Events {
		t.Fatalf("%d events, trailer says %d", len(seg.Events), seg.Trailer.Events)
	}
	for _, format := range []int{Version, ColumnarVersion} {
		again, _ := encode(t, WriterOptions{Compression: None, Table: seg.Header.Table, SystemID: "x", MergeLevel: 1, Format: format}, seg.Events)
		back, err := Decode(name, again, ReadOptions{MaxRawBytes: 2 * fuzzMaxRaw})
		if err != nil {
			t.Fatalf("segment re-encoded in format %d does not decode: %v", format, err)
		}
		for i, e := range back.Events {
			if !e.Equal(seg.Events[i]) {
				t.Fatalf("event %d changed by re-encoding in format %d", i, format)
			}
		}
	}
}

func checkFuzzError(t *testing.T, name string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNoKey) {
		t.Fatalf("untyped error: %v", err)
	}
	if !strings.Contains(err.Error(), name) {
		t.Fatalf("error does not name the object: %v", err)
	}
}

// FuzzOpenReader streams arbitrary bytes, as given and with the footer
// checksum recomputed, with OpenReader and holds it to Decode: nothing may
// panic, errors must be typed and name the object, and whatever Decode
// accepts the stream must yield event for event with the same trailer.
// The stream may accept what Decode refuses only for Decode's memory limit.
func FuzzOpenReader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	ring := mustKeyring(f, fuzzKey)
	pooling = false
	f.Cleanup(func() { pooling = true })
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzStream(t, ring, data)
		fuzzStream(t, ring, rehash(data))
	})
}

func fuzzStream(t *testing.T, ring *Keyring, data []byte) {
	const name = "segments/fuzz.tms"
	opts := ReadOptions{Keyring: ring, MaxRawBytes: fuzzMaxRaw}
	seg, derr := Decode(name, data, opts)
	got, r, serr := streamAll(name, data, opts)
	checkFuzzError(t, name, serr)
	switch {
	case derr != nil && serr == nil:
		if !strings.Contains(derr.Error(), "MaxRawBytes") {
			t.Fatalf("the stream accepts what Decode refuses: %v", derr)
		}
		return
	case derr != nil:
		return
	case serr != nil:
		t.Fatalf("Decode accepts what the stream refuses: %v", serr)
	}
	if len(got) != len(seg.Events) {
		t.Fatalf("stream has %d events, Decode %d", len(got), len(seg.Events))
	}
	for i, e := range got {
		if !e.Equal(seg.Events[i]) {
			t.Fatalf("event %d: stream %+v, Decode %+v", i, e, seg.Events[i])
		}
	}
	if tr := r.Trailer(); diffTrailer(tr, &seg.Trailer) != "" || tr.SHA256 != seg.Trailer.SHA256 {
		t.Fatalf("stream trailer %+v, Decode's %+v", tr, seg.Trailer)
	}
}

// FuzzColumnarBody feeds arbitrary bytes as the body of a format-version-2
// segment, behind a valid envelope, trailer and checksum, so every mutation
// reaches the block decoder: nothing may panic, errors must be typed, and
// Decode and OpenReader must agree.
func FuzzColumnarBody(f *testing.F) {
	valid := appendRawBlock(nil, 3, hostileStreams(f))
	f.Add(valid, false)
	f.Add(valid[:len(valid)/2], false)
	enc := newBlockEncoder(Zstd, 0, 2)
	var evs []event.Event
	for _, e := range hostileEvents() {
		evs = append(evs, *e)
	}
	compressed, err := enc.appendBlocks(nil, evs)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(compressed, true)
	pooling = false
	f.Cleanup(func() { pooling = true })
	f.Fuzz(func(t *testing.T, body []byte, compressed bool) {
		const name = "segments/fuzz2.tms"
		c := None
		if compressed {
			c = Zstd
		}
		data := forgeV2(t, c, body, nil)
		opts := ReadOptions{MaxRawBytes: fuzzMaxRaw}
		seg, derr := Decode(name, data, opts)
		checkFuzzError(t, name, derr)
		got, _, serr := streamAll(name, data, opts)
		checkFuzzError(t, name, serr)
		if (derr == nil) != (serr == nil) {
			t.Fatalf("Decode: %v; stream: %v", derr, serr)
		}
		if derr != nil {
			return
		}
		for i, e := range got {
			if !e.Equal(seg.Events[i]) {
				t.Fatalf("event %d: stream %+v, Decode %+v", i, e, seg.Events[i])
			}
		}
	})
}
