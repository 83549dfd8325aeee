package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
)

// corruptCase is one stored form a corruption test damages.
type corruptCase struct {
	name string
	data []byte
	ring *Keyring
}

func corruptCases(t *testing.T) []corruptCase {
	t.Helper()
	ring := mustKeyring(t, mustGenerateKey(t))
	events := newGen(11, 4).events(4)
	var out []corruptCase
	for _, c := range []Compression{None, Gzip, Zstd} {
		data, _ := encode(t, WriterOptions{Compression: c}, events)
		out = append(out, corruptCase{c.String(), data, nil})
	}
	data, _ := encode(t, WriterOptions{Keyring: ring}, events)
	out = append(out, corruptCase{"zstd+age", data, ring})
	for _, c := range []Compression{None, Zstd} {
		data, _ := encode(t, v2(c), events)
		out = append(out, corruptCase{"v2-" + c.String(), data, nil})
	}
	data, _ = encode(t, WriterOptions{Keyring: ring, MergeLevel: 2, Format: ColumnarVersion}, events)
	return append(out, corruptCase{"v2-zstd+age", data, ring})
}

// wantCorrupt fails unless err is a *CorruptError naming object.
func wantCorrupt(t *testing.T, object string, err error, what string) {
	t.Helper()
	var ce *CorruptError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.Object != object || !strings.Contains(err.Error(), object) {
		t.Fatalf("%s: error %v, want a CorruptError naming %q", what, err, object)
	}
}

func TestDecode_BitFlip(t *testing.T) {
	const name = "segments/2026/11/25/10/15/flip.tms"
	for _, cc := range corruptCases(t) {
		t.Run(cc.name, func(t *testing.T) {
			opts := ReadOptions{Keyring: cc.ring}
			for i := range cc.data {
				bad := bytes.Clone(cc.data)
				bad[i] ^= 1 << (i % 8)
				_, err := Decode(name, bad, opts)
				wantCorrupt(t, name, err, "flip at byte "+strconv.Itoa(i))
				_, _, err = ReadTrailer(name, bad, opts)
				wantCorrupt(t, name, err, "ReadTrailer, flip at byte "+strconv.Itoa(i))
			}
		})
	}
}

func TestDecode_Truncated(t *testing.T) {
	const name = "trunc.tms"
	for _, cc := range corruptCases(t) {
		t.Run(cc.name, func(t *testing.T) {
			for n := 0; n < len(cc.data); n += 1 + n%5 {
				_, err := Decode(name, cc.data[:n], ReadOptions{Keyring: cc.ring})
				wantCorrupt(t, name, err, "truncated to "+strconv.Itoa(n))
			}
		})
	}
}

func TestDecode_AppendedJunk(t *testing.T) {
	const name = "junk.tms"
	for _, cc := range corruptCases(t) {
		t.Run(cc.name, func(t *testing.T) {
			footer := cc.data[len(cc.data)-footerLen:]
			for what, bad := range map[string][]byte{
				"zero byte":       append(bytes.Clone(cc.data), 0),
				"junk":            append(bytes.Clone(cc.data), "junk junk junk"...),
				"repeated footer": append(bytes.Clone(cc.data), footer...),
				"two segments":    append(bytes.Clone(cc.data), cc.data...),
				"prefixed":        append([]byte("x"), cc.data...),
			} {
				_, err := Decode(name, bad, ReadOptions{Keyring: cc.ring})
				wantCorrupt(t, name, err, what)
				// Even with the checksum recomputed the extra bytes are found.
				if what != "prefixed" {
					_, err = Decode(name, rehash(bad), ReadOptions{Keyring: cc.ring})
					wantCorrupt(t, name, err, what+" (rehashed)")
				}
			}
		})
	}
}

// envelopeEnd returns the end of the plaintext header.
func envelopeEnd(data []byte) int {
	return prefixLen + int(binary.BigEndian.Uint32(data[8:prefixLen]))
}

func TestDecode_SwappedHeader(t *testing.T) {
	const name = "swap.tms"
	ring := mustKeyring(t, mustGenerateKey(t))
	events := newGen(12, 4).events(12)
	for _, enc := range []*Keyring{nil, ring} {
		a, _ := encode(t, WriterOptions{Keyring: enc, SystemID: "1111111111111111111"}, events)
		b, _ := encode(t, WriterOptions{Keyring: enc, SystemID: "2222222222222222222"}, events)
		// B's header on A's body, with a fresh footer checksum: only the
		// header binding in the (encrypted) trailer can catch it.
		swapped := append(bytes.Clone(b[:envelopeEnd(b)]), a[envelopeEnd(a):]...)
		_, err := Decode(name, rehash(swapped), ReadOptions{Keyring: ring})
		wantCorrupt(t, name, err, "swapped header")
		if !strings.Contains(err.Error(), "header_sha256") {
			t.Fatalf("swapped header reported as %v", err)
		}
		// The same with an edited system id.
		edited := bytes.Replace(bytes.Clone(a), []byte("1111111111111111111"), []byte("3333333333333333333"), 1)
		_, err = Decode(name, rehash(edited), ReadOptions{Keyring: ring})
		wantCorrupt(t, name, err, "edited header")
	}
}

// TestDecode_BehindChecksum damages content and recomputes the checksum, so
// the inner checks (decompression, records, trailer cross-check, age) must
// cope: an error, never a panic; and the damage is caught wherever a
// compressed stream or age protects it. OpenReader must fail exactly when
// Decode does, and otherwise yield Decode's events.
func TestDecode_BehindChecksum(t *testing.T) {
	const name = "inner.tms"
	for _, cc := range corruptCases(t) {
		t.Run(cc.name, func(t *testing.T) {
			end := envelopeEnd(cc.data)
			stride := 1
			switch {
			case cc.ring != nil:
				stride = 7 // each try costs an X25519 operation; age authenticates every byte alike
			case strings.HasPrefix(cc.name, "v2"):
				stride = 3 // many streams, each stored alike
			}
			for i := end; i < len(cc.data)-footerLen; i += stride {
				bad := bytes.Clone(cc.data)
				bad[i] ^= 1 << (i % 8)
				bad = rehash(bad)
				seg, err := Decode(name, bad, ReadOptions{Keyring: cc.ring})
				sameAsStream(t, name, bad, ReadOptions{Keyring: cc.ring}, seg, err)
				if err == nil {
					if cc.ring != nil {
						t.Fatalf("flip at %d of an encrypted segment went unnoticed", i)
					}
					continue // e.g. a flipped byte inside an uncompressed value
				}
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNoKey) {
					t.Fatalf("flip at %d: untyped error %v", i, err)
				}
			}
		})
	}
}

// hostileCases are forged segments behind valid checksums, each breaking
// one rule; "forged but valid" breaks none.
func hostileCases(t *testing.T) map[string]func() []byte {
	good := newGen(13, 4).events(5)
	var raw []byte
	for _, e := range good {
		raw, _ = appendRecord(raw, e)
	}
	goodTrailer := func() *trailerJSON {
		_, tr := encode(t, WriterOptions{Compression: None}, good)
		j := tr.toJSON("")
		return &j
	}
	zenc, _ := zstd.NewWriter(nil)
	t.Cleanup(func() { zenc.Close() })

	return map[string]func() []byte{
		"forged but valid": func() []byte { return forge(testHeader(None), raw, goodTrailer()) },
		"raw bytes above limit": func() []byte {
			tr := goodTrailer()
			tr.RawBytes = 2 << 30
			return forge(testHeader(Zstd), zenc.EncodeAll(raw, nil), tr)
		},
		"more events than bytes": func() []byte {
			tr := goodTrailer()
			tr.Events = 1 << 40
			return forge(testHeader(None), raw, tr)
		},
		"fewer events than records": func() []byte {
			tr := goodTrailer()
			tr.Events--
			return forge(testHeader(None), raw, tr)
		},
		"trailer lies about streams": func() []byte {
			tr := goodTrailer()
			tr.Streams["account-0"] = VersionRange{Min: -5, Max: 99}
			return forge(testHeader(None), raw, tr)
		},
		"trailer lies about times": func() []byte {
			tr := goodTrailer()
			*tr.MinCommitTimeUS--
			return forge(testHeader(None), raw, tr)
		},
		"raw bytes short of body": func() []byte {
			tr := goodTrailer()
			tr.RawBytes--
			return forge(testHeader(Zstd), zenc.EncodeAll(raw, nil), tr)
		},
		"raw bytes beyond body": func() []byte {
			tr := goodTrailer()
			tr.RawBytes++
			return forge(testHeader(Gzip), gzipBytes(t, raw), tr)
		},
		"record length huge": func() []byte {
			bad := append(binary.AppendUvarint(nil, 1<<62), raw...)
			tr := goodTrailer()
			tr.RawBytes = int64(len(bad))
			return forge(testHeader(None), bad, tr)
		},
		"value length huge": func() []byte {
			// first record: len, 3 positions, time, xid, idx, count, flags, ncols, then a value length
			bad := bytes.Clone(raw)
			i := valueOffset(bad)
			bad = append(bad[:i:i], append(binary.AppendUvarint(nil, 1<<40), bad[i+1:]...)...)
			tr := goodTrailer()
			tr.RawBytes = int64(len(bad))
			return forge(testHeader(None), bad, tr)
		},
		"compression unknown": func() []byte {
			h := map[string]any{"version": 1, "compression": "lz4", "system_id": "1", "table": eventcore.TableDef(), "created": "2026-01-01T00:00:00Z"}
			return forge(h, raw, goodTrailer())
		},
		"compression missing": func() []byte {
			h := testHeader(None)
			h.Compression = nil
			return forge(h, raw, goodTrailer())
		},
		"header version 2": func() []byte {
			h := testHeader(None)
			h.Version = 2
			return forge(h, raw, goodTrailer())
		},
		"key id without flag": func() []byte {
			h := testHeader(None)
			h.KeyID = "0123456789abcdef"
			return forge(h, raw, goodTrailer())
		},
		"too many columns": func() []byte {
			h := testHeader(None)
			h.Table.Columns = make([]event.Column, maxColumns+1)
			return forge(h, raw, goodTrailer())
		},
		"header not JSON": func() []byte {
			d := forge(testHeader(None), raw, goodTrailer())
			d[prefixLen] = '['
			return rehash(d)
		},
		"header length huge": func() []byte {
			d := forge(testHeader(None), raw, goodTrailer())
			binary.BigEndian.PutUint32(d[8:], 0xFFFFFFFF)
			return rehash(d)
		},
		"trailer length huge": func() []byte {
			d := forge(testHeader(None), raw, goodTrailer())
			binary.BigEndian.PutUint32(d[len(d)-footerLen-4:], 0xFFFFFFF0)
			return rehash(d)
		},
		"version byte 9": func() []byte {
			d := forge(testHeader(None), raw, goodTrailer())
			d[5] = 9
			return rehash(d)
		},
		"zstd window 2 GiB": func() []byte {
			tr := goodTrailer()
			return forge(testHeader(Zstd), zstdRLEBomb(1<<20, 31), tr)
		},
	}
}

func TestDecode_Hostile(t *testing.T) {
	const name = "hostile.tms"
	for what, mk := range hostileCases(t) {
		t.Run(what, func(t *testing.T) {
			data := mk()
			_, err := Decode(name, data, ReadOptions{})
			if what == "forged but valid" {
				if err != nil {
					t.Fatalf("the forging helper is broken: %v", err)
				}
				return
			}
			wantCorrupt(t, name, err, what)
			if !strings.Contains(err.Error(), hostileWant[what]) {
				t.Fatalf("error %q, want it to contain %q", err, hostileWant[what])
			}
		})
	}
}

// hostileWant is the check each TestDecode_Hostile case must trip.
var hostileWant = map[string]string{
	"raw bytes above limit":      "above the limit",
	"more events than bytes":     "raw bytes can hold",
	"fewer events than records":  "more than the trailer's",
	"trailer lies about streams": "trailer disagrees with events: stream",
	"trailer lies about times":   "trailer disagrees with events: commit times",
	"raw bytes short of body":    "longer than declared",
	"raw bytes beyond body":      "shorter than declared",
	"record length huge":         "record length exceeds body",
	"value length huge":          "value length exceeds record",
	"compression unknown":        "header: unmarshal compression",
	"compression missing":        "header has no compression",
	"header version 2":           "header version 2",
	"key id without flag":        "encryption flag and header key id disagree",
	"too many columns":           "1601 columns",
	"header not JSON":            "header:",
	"header length huge":         "header length",
	"trailer length huge":        "trailer length",
	"version byte 9":             "unsupported format version 9",
	"zstd window 2 GiB":          "window size exceeded",
}

// valueOffset returns the offset of the first record's first value length.
func valueOffset(raw []byte) int {
	off := 0
	for range 8 { // len, commit, end, prev, time, xid, index, count
		_, n := binary.Uvarint(raw[off:])
		off += n
	}
	off++ // flags
	_, n := binary.Uvarint(raw[off:])
	return off + n
}

// sameAsStream fails unless streaming data with OpenReader fails exactly
// when Decode did (decodeErr) and otherwise yields seg's events.
func sameAsStream(t *testing.T, name string, data []byte, opts ReadOptions, seg *Segment, decodeErr error) {
	t.Helper()
	got, _, err := streamAll(name, data, opts)
	if (decodeErr == nil) != (err == nil) {
		t.Fatalf("Decode: %v; stream: %v", decodeErr, err)
	}
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNoKey) {
			t.Fatalf("stream: untyped error %v", err)
		}
		return
	}
	if len(got) != len(seg.Events) {
		t.Fatalf("stream has %d events, Decode %d", len(got), len(seg.Events))
	}
	for j := range got {
		if !got[j].Equal(seg.Events[j]) {
			t.Fatalf("event %d differs from Decode's", j)
		}
	}
}
