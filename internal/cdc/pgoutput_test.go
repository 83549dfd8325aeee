package cdc

import (
	"bytes"
	"encoding/binary"
	"io"
	"reflect"
	"testing"
	"time"
)

// wire builds pgoutput messages for tests.
type wire struct{ b []byte }

func (w *wire) u8(v uint8) *wire   { w.b = append(w.b, v); return w }
func (w *wire) u16(v uint16) *wire { w.b = binary.BigEndian.AppendUint16(w.b, v); return w }
func (w *wire) u32(v uint32) *wire { w.b = binary.BigEndian.AppendUint32(w.b, v); return w }
func (w *wire) u64(v uint64) *wire { w.b = binary.BigEndian.AppendUint64(w.b, v); return w }
func (w *wire) str(s string) *wire { w.b = append(append(w.b, s...), 0); return w }
func (w *wire) raw(b []byte) *wire { w.b = append(w.b, b...); return w }

func TestParseMessage(t *testing.T) {
	ct := time.Date(2026, 11, 25, 10, 15, 30, 123456000, time.UTC)
	us := uint64(ct.Sub(pgEpoch) / time.Microsecond)
	tuple := encodeTuple(nil, [][]byte{[]byte("a"), nil, {}})
	for _, tc := range []struct {
		name string
		in   []byte
		want any
	}{
		{"begin", (&wire{}).u8('B').u64(0x10).u64(us).u32(7).b, &Begin{FinalLSN: 0x10, CommitTime: ct, XID: 7}},
		{"commit", (&wire{}).u8('C').u8(0).u64(0x10).u64(0x18).u64(us).b, &Commit{CommitLSN: 0x10, EndLSN: 0x18, CommitTime: ct}},
		{"origin", (&wire{}).u8('O').u64(5).str("o").b, &Origin{LSN: 5, Name: "o"}},
		{"relation", (&wire{}).u8('R').u32(16384).str("public").str("t").u8('d').u16(2).
			u8(1).str("id").u32(2950).u32(0xFFFFFFFF).u8(0).str("v").u32(25).u32(0xFFFFFFFF).b,
			&Relation{ID: 16384, Namespace: "public", Name: "t", ReplicaIdentity: 'd', Columns: []RelationColumn{
				{Flags: 1, Name: "id", TypeOID: 2950, TypMod: -1}, {Name: "v", TypeOID: 25, TypMod: -1}}}},
		{"type", (&wire{}).u8('Y').u32(99).str("s").str("ty").b, &TypeMsg{OID: 99, Namespace: "s", Name: "ty"}},
		{"insert", (&wire{}).u8('I').u32(1).u8('N').raw(tuple).b,
			&Insert{RelationID: 1, New: Tuple{Values: [][]byte{[]byte("a"), nil, {}}}, Raw: tuple}},
		{"update key", (&wire{}).u8('U').u32(1).u8('K').raw(tuple).u8('N').raw(tuple).b,
			&Update{RelationID: 1, OldKind: 'K', Old: Tuple{Values: [][]byte{[]byte("a"), nil, {}}}, New: Tuple{Values: [][]byte{[]byte("a"), nil, {}}}}},
		{"update new only", (&wire{}).u8('U').u32(1).u8('N').u16(1).u8('u').b,
			&Update{RelationID: 1, New: Tuple{Values: [][]byte{nil}, Unchanged: []bool{true}}}},
		{"delete", (&wire{}).u8('D').u32(1).u8('O').raw(tuple).b,
			&Delete{RelationID: 1, OldKind: 'O', Old: Tuple{Values: [][]byte{[]byte("a"), nil, {}}}}},
		{"truncate", (&wire{}).u8('T').u32(2).u8(1).u32(5).u32(6).b, &Truncate{Options: 1, RelationIDs: []uint32{5, 6}}},
		{"message", (&wire{}).u8('M').u8(0).u64(0x20).str("tidemark.heartbeat").u32(2).raw([]byte("{}")).b,
			&LogicalMessage{LSN: 0x20, Prefix: "tidemark.heartbeat", Content: []byte("{}")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMessage(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestParseMessage_Malformed(t *testing.T) {
	valid := [][]byte{
		(&wire{}).u8('B').u64(1).u64(2).u32(3).b,
		(&wire{}).u8('R').u32(1).str("s").str("t").u8('d').u16(1).u8(0).str("c").u32(25).u32(0).b,
		(&wire{}).u8('I').u32(1).u8('N').raw(encodeTuple(nil, [][]byte{[]byte("xyz"), nil})).b,
		(&wire{}).u8('T').u32(1).u8(0).u32(5).b,
		(&wire{}).u8('M').u8(1).u64(9).str("p").u32(3).raw([]byte("abc")).b,
	}
	for _, v := range valid {
		if _, err := ParseMessage(v); err != nil {
			t.Fatalf("valid %q: %v", v[0], err)
		}
		// Every truncation is an error, never a panic.
		for n := 1; n < len(v); n++ {
			if _, err := ParseMessage(v[:n]); err == nil {
				t.Errorf("%q truncated to %d bytes accepted", v[0], n)
			}
		}
		if _, err := ParseMessage(append(append([]byte{}, v...), 0)); err == nil {
			t.Errorf("%q with a trailing byte accepted", v[0])
		}
	}
	for _, bad := range [][]byte{
		nil,
		{'Z'},
		(&wire{}).u8('I').u32(1).u8('X').b,
		(&wire{}).u8('I').u32(1).u8('N').u16(1).u8('t').u32(0xFFFFFFFF).b,
		(&wire{}).u8('I').u32(1).u8('N').u16(60000).b,
		(&wire{}).u8('I').u32(1).u8('N').u16(1).u8('?').b,
		(&wire{}).u8('T').u32(0x7FFFFFFF).u8(0).b,
		(&wire{}).u8('R').u32(1).str("s").b,
	} {
		if _, err := ParseMessage(bad); err == nil {
			t.Errorf("malformed %q accepted", bad)
		}
	}
}

func TestDecodeTuple_RoundTrip(t *testing.T) {
	vals := [][]byte{[]byte("0191f3a0"), nil, {}, bytes.Repeat([]byte("x"), 70000)}
	got, err := DecodeTuple(encodeTuple(nil, vals))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Values) != len(vals) {
		t.Fatalf("%d values", len(got.Values))
	}
	for i := range vals {
		if (vals[i] == nil) != (got.Values[i] == nil) || !bytes.Equal(vals[i], got.Values[i]) {
			t.Errorf("value %d differs", i)
		}
	}
}

func TestSpool_MemoryAndSpill(t *testing.T) {
	for _, limit := range []int64{0, 100, 1 << 20} {
		s := newSpool(limit, 0, t.TempDir())
		var want [][]byte
		for i := range 5000 {
			row := bytes.Repeat([]byte{byte(i)}, i%37)
			want = append(want, row)
			if err := s.Append(uint32(i%3), row); err != nil {
				t.Fatal(err)
			}
		}
		if limit < 1<<20 && s.Spilled() == 0 {
			t.Errorf("limit %d: nothing spilled", limit)
		}
		if limit == 1<<20 && s.Spilled() != 0 {
			t.Errorf("limit %d: spilled %d bytes", limit, s.Spilled())
		}
		r, err := s.Reader()
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
			row, err := r.Next()
			if err != nil {
				t.Fatalf("limit %d record %d: %v", limit, i, err)
			}
			if row.rel != uint32(i%3) || !bytes.Equal(row.raw, w) {
				t.Fatalf("limit %d record %d differs", limit, i)
			}
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("after last record: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConfig_Validate(t *testing.T) {
	ok := Config{PGURL: "postgres://x"}
	if _, err := ok.withDefaults(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]Config{
		"bad mode":   {PGURL: "x", ConfirmOn: "never"},
		"bad slot":   {PGURL: "x", Slot: "Bad-Slot"},
		"bad table":  {PGURL: "x", Tables: []string{"a.b.c"}},
		"bad stream": {PGURL: "x", Stream: "a.b"},
	} {
		if _, err := c.withDefaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSnapRow_Order(t *testing.T) {
	a := &snapRow{hasTS: false, xmin: 9}
	b := &snapRow{hasTS: true, ts: 1, xmin: 5}
	c := &snapRow{hasTS: true, ts: 1, xmin: 6}
	d := &snapRow{hasTS: true, ts: 2, xmin: 1}
	order := []*snapRow{a, b, c, d}
	for i := range order {
		for j := range order {
			if got := order[i].before(order[j]); got != (i < j) {
				t.Errorf("%d before %d = %v", i, j, got)
			}
		}
	}
	if !b.sameTxn(&snapRow{hasTS: true, ts: 1, xmin: 5}) || b.sameTxn(c) {
		t.Error("sameTxn wrong")
	}
}

func FuzzParseMessage(f *testing.F) {
	f.Add((&wire{}).u8('I').u32(1).u8('N').raw(encodeTuple(nil, [][]byte{[]byte("xyz"), nil})).b)
	f.Add((&wire{}).u8('R').u32(1).str("s").str("t").u8('d').u16(1).u8(0).str("c").u32(25).u32(0).b)
	f.Add((&wire{}).u8('U').u32(1).u8('K').raw(encodeTuple(nil, [][]byte{[]byte("k")})).u8('N').raw(encodeTuple(nil, [][]byte{nil})).b)
	f.Add((&wire{}).u8('M').u8(0).u64(9).str("tidemark.heartbeat").u32(2).raw([]byte("{}")).b)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMessage(data)
		if err == nil && m == nil {
			t.Fatal("nil message without error")
		}
		if ins, ok := m.(*Insert); ok && err == nil {
			if _, err := DecodeTuple(ins.Raw); err != nil {
				t.Fatalf("insert parsed but its tuple does not decode: %v", err)
			}
		}
	})
}

// TestSpool_LargeTuplesStayInTheFile: a tuple above the direct limit goes
// to the file even when memory has room, and comes back as a section of
// the file (not a copy), in order with the others.
func TestSpool_LargeTuplesStayInTheFile(t *testing.T) {
	s := newSpool(1<<20, 1000, t.TempDir())
	defer s.Close()
	var want [][]byte
	for i := range 20 {
		n := 10 + i
		if i%4 == 1 {
			n = 1001 + i*100
		}
		row := bytes.Repeat([]byte{byte('a' + i)}, n)
		want = append(want, row)
		if err := s.Append(uint32(i), row); err != nil {
			t.Fatal(err)
		}
	}
	if s.Spilled() == 0 {
		t.Fatal("the large tuple was kept in memory")
	}
	r, err := s.Reader()
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		row, err := r.Next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		got := row.raw
		if len(w) > 1000 {
			if row.large == nil {
				t.Fatalf("record %d (%d bytes) was read into memory", i, len(w))
			}
			if got, err = io.ReadAll(row.large); err != nil {
				t.Fatal(err)
			}
		} else if row.large != nil {
			t.Fatalf("record %d (%d bytes) left in the file", i, len(w))
		}
		if row.rel != uint32(i) || !bytes.Equal(got, w) {
			t.Fatalf("record %d differs", i)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after last record: %v", err)
	}
}

func TestDecodeLargeTuple(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 5000)
	vals := [][]byte{[]byte("id"), nil, big, {}, []byte("small")}
	raw := encodeTuple(nil, vals)
	sr := io.NewSectionReader(bytes.NewReader(append([]byte("junk"), raw...)), 4, int64(len(raw)))
	tup, large, err := decodeLargeTuple(sr, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		got := tup.Values[i]
		if large[i] != nil {
			if got != nil {
				t.Fatalf("value %d both in memory and in the file", i)
			}
			got, _ = io.ReadAll(large[i])
		}
		if (v == nil) != (got == nil) || !bytes.Equal(v, got) {
			t.Errorf("value %d differs", i)
		}
	}
	if large[2] == nil || large[0] != nil {
		t.Errorf("large = %v, want only column 2", large)
	}
	if _, _, err := decodeLargeTuple(io.NewSectionReader(bytes.NewReader(raw), 0, int64(len(raw)-1)), 100); err == nil {
		t.Error("a truncated tuple decoded")
	}
}
