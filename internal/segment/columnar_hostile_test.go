package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
)

// hostileTable has a UUID column and a JSON column, so a block has value,
// skeleton and literal streams to damage.
var hostileTable = event.Table{Schema: "s", Name: "h", Columns: []event.Column{
	{Name: "id", Type: "uuid"}, {Name: "doc", Type: "jsonb"}}}

// Stream indexes in a block of hostileTable whose documents share one
// skeleton with two placeholders.
const (
	hsXID      = streamXID
	hsFlags    = streamFlags
	hsIDKind   = fieldStreams + colKind
	hsIDUUID   = fieldStreams + colUUID
	hsDocKind  = fieldStreams + colStreams + colKind
	hsDocSkels = fieldStreams + colStreams + colSkeletons
	hsDocSkID  = fieldStreams + colStreams + colSkeletonID
	hsLitTag0  = fieldStreams + 2*colStreams
	hsLitData0 = hsLitTag0 + 1
	hsStreams  = hsLitTag0 + 4
)

func hostileEvents() []*event.Event {
	ct := time.Date(2026, 11, 25, 10, 15, 0, 0, time.UTC)
	mk := func(end event.Position, idx, count int, id, doc string) *event.Event {
		return &event.Event{Table: "s.h", CommitLSN: end - 10, EndLSN: end, PrevLSN: end - 50, CommitTime: ct, XID: uint32(end),
			Index: idx, Count: count, Values: [][]byte{[]byte(id), []byte(doc)}}
	}
	return []*event.Event{
		mk(100, 0, 2, "0e3fc9a8-3a5b-4c5e-9f1a-2b3c4d5e6f70", `{"k": "v", "n": 1}`),
		mk(100, 1, 2, "1e3fc9a8-3a5b-4c5e-9f1a-2b3c4d5e6f70", `{"k": "w", "n": 2}`),
		mk(200, 0, 1, "2e3fc9a8-3a5b-4c5e-9f1a-2b3c4d5e6f70", `{"k": "x", "n": 3}`),
	}
}

// hostileStreams returns the streams of the block hostileEvents make.
func hostileStreams(t testing.TB) [][]byte {
	t.Helper()
	enc := newBlockEncoder(None, 0, 2)
	var evs []event.Event
	for _, e := range hostileEvents() {
		evs = append(evs, *e)
	}
	if err := enc.build(evs); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	enc.streams(func(s []byte) { out = append(out, bytes.Clone(s)) })
	if len(out) != hsStreams {
		t.Fatalf("%d streams, want %d", len(out), hsStreams)
	}
	return out
}

// appendRawBlock appends a block of n events made of streams, all stored.
func appendRawBlock(dst []byte, n int, streams [][]byte) []byte {
	total := 0
	for _, s := range streams {
		total += len(s)
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	dst = binary.AppendUvarint(dst, uint64(total))
	for _, s := range streams {
		dst = append(dst, methodStored)
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// forgeV2 builds a plaintext version-2 segment around body with the
// trailer of hostileEvents, changed by f.
func forgeV2(t testing.TB, c Compression, body []byte, f func(*trailerJSON)) []byte {
	t.Helper()
	_, tr := encode(t, WriterOptions{Table: hostileTable, Compression: None}, hostileEvents())
	j := tr.toJSON("")
	if f != nil {
		f(&j)
	}
	h := headerJSON{Version: ColumnarVersion, Compression: &c, SystemID: "1", Table: hostileTable,
		Created: time.Date(2026, 11, 25, 10, 15, 0, 0, time.UTC), Level: 1}
	return forgeVersion(ColumnarVersion, h, body, &j)
}

func TestColumnar_Hostile(t *testing.T) {
	const name = "hostile2.tms"
	ok := hostileStreams(t)
	block := func(n int, mod func(s [][]byte)) []byte {
		s := make([][]byte, len(ok))
		for i := range ok {
			s[i] = bytes.Clone(ok[i])
		}
		if mod != nil {
			mod(s)
		}
		return appendRawBlock(nil, n, s)
	}
	valid := block(3, nil)
	_, h := binary.Uvarint(valid[1:])
	first := 1 + h // the first stream's method; its raw_len and stored_len follow
	// patch replaces the block's bytes from offset at with b.
	patch := func(at int, b ...byte) []byte {
		out := bytes.Clone(valid)
		copy(out[at:], b)
		return out
	}
	firstEntry := func(s []byte) []byte {
		_, n := binary.Uvarint(s)
		return s[:n]
	}
	zbomb := zstdRLEBomb(1<<30, 23)
	for _, tc := range []struct {
		name, want string
		c          Compression
		body       []byte
		trailer    func(*trailerJSON)
	}{
		{"valid", "", None, valid, nil},
		{"block of no events", "want 1..65536", None, block(0, nil), nil},
		{"block of too many events", "want 1..65536", None, appendRawBlock(nil, maxBlockEvents+1, ok), nil},
		{"stream bytes above limit", "above the limit", None,
			append(binary.AppendUvarint(binary.AppendUvarint(nil, 3), maxBlockStreamBytes+1), valid[2:]...), nil},
		{"streams short of the block", "streams hold", None,
			append(binary.AppendUvarint(binary.AppendUvarint(nil, 3), uint64(len(valid))), valid[2:]...), nil},
		{"stream longer than the block", "exceeds the block's", None, patch(first+1, 0x7f), nil},
		{"stream stored beyond the body", "beyond the body", Zstd,
			binary.AppendUvarint(append(bytes.Clone(valid[:first]), methodCompressed, 3), 1<<40), nil},
		{"unknown method", "method 7", None, patch(first, 7), nil},
		{"compressed without compression", "method 1", None, patch(first, methodCompressed), nil},
		{"partial block", "unexpected EOF", None, append(bytes.Clone(valid), 1, 10), nil},
		{"kind stream too long", "has bytes beyond its 3 events", None, block(3, func(s [][]byte) { s[hsIDKind] = append(s[hsIDKind], kindNull) }), nil},
		{"kind stream short", "truncated kind stream", None, block(3, func(s [][]byte) { s[hsIDKind] = s[hsIDKind][:2] }), nil},
		{"unknown kind", "unknown value kind 9", None, block(3, func(s [][]byte) { s[hsIDKind][1] = 9 }), nil},
		{"uuid stream short", "truncated uuid stream", None, block(3, func(s [][]byte) { s[hsIDUUID] = s[hsIDUUID][:40] }), nil},
		{"skeleton id out of range", "skeleton id", None, block(3, func(s [][]byte) { s[hsDocSkID][2] = 1 }), nil},
		{"more skeletons than events", "skeletons for 3 events", None, block(3, func(s [][]byte) { s[hsDocSkels][0] = 4 }), nil},
		{"truncated skeleton", "truncated skeleton", None, block(3, func(s [][]byte) { s[hsDocSkels][1] = 0x7f }), nil},
		{"too many placeholders", "placeholders", None, block(3, func(s [][]byte) {
			s[hsDocSkels] = append(binary.AppendUvarint([]byte{1}, maxBlockSlots+1), make([]byte, maxBlockSlots+1)...)
		}), nil},
		{"literal beyond its stream", "literal beyond its stream", None, block(3, func(s [][]byte) { s[hsLitTag0][0] = 0x7f }), nil},
		{"uuid literal short", "truncated uuid literal", None, block(3, func(s [][]byte) { s[hsLitTag0][0] = tagUUID }), nil},
		{"xid out of range", "transaction fields out of range", None, block(3, func(s [][]byte) {
			s[hsXID] = binary.AppendVarint(nil, 1<<33)
			s[hsXID] = binary.AppendVarint(s[hsXID], 100)
		}), nil},
		{"unknown flags", "unknown record flags", None, block(3, func(s [][]byte) { s[hsFlags][1] = 0x80 }), nil},
		{"transaction runs past its count", "outside count", None, block(3, func(s [][]byte) {
			s[streamEnd] = []byte{100, 0, 0} // the third event continues a transaction of two
			for i := streamCommit; i <= streamCount; i++ {
				s[i] = firstEntry(s[i])
			}
		}), nil},
		{"more events than the trailer", "more than the trailer's", None, valid, func(j *trailerJSON) { j.Events--; j.Transactions-- }},
		{"records beyond raw bytes", "exceed the trailer's", None, valid, func(j *trailerJSON) { j.RawBytes -= 10 }},
		{"raw bytes beyond records", "trailer disagrees with events: raw bytes", None, valid, func(j *trailerJSON) { j.RawBytes++ }},
		{"zstd bomb in a stream", "longer than declared", Zstd, block(3, nil)[:0:0], nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.name == "zstd bomb in a stream" {
				// The first stream: 1 GiB of zeros declared as its 3 bytes.
				body = binary.AppendUvarint(binary.AppendUvarint(nil, 3), uint64(len(valid)))
				body = append(body, methodCompressed)
				body = binary.AppendUvarint(body, 3)
				body = binary.AppendUvarint(body, uint64(len(zbomb)))
				body = append(body, zbomb...)
			}
			data := forgeV2(t, tc.c, body, tc.trailer)
			var derr, serr error
			allocated, peak := measure(func() {
				_, derr = Decode(name, data, ReadOptions{})
				_, _, serr = streamAll(name, data, ReadOptions{})
			})
			if allocated > memoryBound || peak > memoryBound {
				t.Fatalf("allocated %d bytes (peak heap growth %d), bound %d", allocated, peak, memoryBound)
			}
			if tc.want == "" {
				if derr != nil || serr != nil {
					t.Fatalf("the forging helpers are broken: %v; %v", derr, serr)
				}
				return
			}
			for what, err := range map[string]error{"Decode": derr, "stream": serr} {
				wantCorrupt(t, name, err, what)
				if !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("%s: error %q, want it to contain %q", what, err, tc.want)
				}
			}
		})
	}
}

// TestColumnar_SpecExample pins docs/segment-format.md §2.7's example block.
func TestColumnar_SpecExample(t *testing.T) {
	s := hostileStreams(t)
	want := map[int]string{
		streamEnd: "64 00 64", streamCommit: "14 14", streamPrev: "63 63", streamTime: "80 c4 e4 97 e3 c5 b0 06 00",
		streamXID: "c8 01 c8 01", streamIndex: "00 00", streamCount: "02 01", streamFlags: "00 00 00",
		hsIDKind: "02 02 02", hsIDUUID - 1: "", hsIDUUID - 2: "", hsDocKind - 1: "", hsDocKind: "03 03 03",
		hsDocSkels: "01 12 7b 22 6b 22 3a 20 22 00 22 2c 20 22 6e 22 3a 20 00 7d", hsDocSkID: "00 00 00",
		hsLitTag0: "02 02 02", hsLitData0: "76 77 78", hsLitTag0 + 2: "02 02 02", hsLitData0 + 2: "31 32 33",
	}
	for i, w := range want {
		if got := fmt.Sprintf("% x", s[i]); got != w {
			t.Errorf("stream %d: % x, spec says %s", i, s[i], w)
		}
	}
	if b := appendRawBlock(nil, 3, s); fmt.Sprintf("% x", b[:2]) != "03 75" {
		t.Errorf("block starts % x, spec says 03 75", b[:2])
	}
}
