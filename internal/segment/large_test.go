package segment

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testing/eventcore"
)

// TestAppendLarge_SameSegmentAsAppend: values from readers make the same
// records as values in memory — the same segment bytes and trailer; and
// EventsDigest.Add, piece by piece for a large event, gives the digest of
// the records.
func TestAppendLarge_SameSegmentAsAppend(t *testing.T) {
	defer func(f func() time.Time) { now = f }(now)
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now = func() time.Time { return fixed }
	events := newGen(7, 20).events(40)
	big := []byte(`{"x":"` + strings.Repeat("y", 3<<20) + `"}`)
	events[10].Values[4] = big
	events[11].Values[5] = []byte(`{"m":"` + strings.Repeat("z", 300<<10) + `"}`)

	want, wantTr := encode(t, WriterOptions{}, events)

	opts := WriterOptions{Table: eventcore.TableDef(), SystemID: "7345034223590588888"}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	var d EventsDigest
	for i, e := range events {
		d.Add(e)
		if i != 10 && i != 11 {
			if err := w.Append(e); err != nil {
				t.Fatal(err)
			}
			continue
		}
		col := 4 + i - 10
		c := *e
		c.Values = append([][]byte(nil), e.Values...)
		v := c.Values[col]
		c.Values[col] = nil
		large := make([]*LargeValue, col+1)
		large[col] = &LargeValue{Size: int64(len(v)), R: bytes.NewReader(v)}
		if err := w.AppendLarge(&c, large); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) || tr.RawBytes != wantTr.RawBytes || tr.SHA256 != wantTr.SHA256 {
		t.Fatalf("AppendLarge wrote another segment (raw %d vs %d bytes)", tr.RawBytes, wantTr.RawBytes)
	}
	var whole []byte
	for _, e := range events {
		whole, _ = appendRecord(whole, e)
	}
	sum := sha256.Sum256(whole)
	if d.Sum() != hex.EncodeToString(sum[:]) {
		t.Fatalf("EventsDigest %s, records %x", d.Sum(), sum)
	}
	seg, err := Decode("x", buf.Bytes(), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(seg.Events[10].Values[4], big) {
		t.Fatal("large value did not decode back")
	}
}

// TestAppendLarge_ShortReader: a reader that ends early leaves the writer
// failed, never a segment with a short value.
func TestAppendLarge_ShortReader(t *testing.T) {
	e := newGen(1, 1).tx(1)[0]
	v := e.Values[4]
	e.Values[4] = nil
	var buf bytes.Buffer
	w, err := NewWriter(&buf, WriterOptions{Table: eventcore.TableDef(), SystemID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	large := []*LargeValue{4: {Size: int64(len(v)) + 1, R: bytes.NewReader(v)}}
	if err := w.AppendLarge(e, large); err == nil {
		t.Fatal("short reader accepted")
	}
	if _, err := w.Close(); err == nil {
		t.Fatal("segment closed after a short value")
	}
}
