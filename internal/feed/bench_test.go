package feed

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/event"
)

func benchEvent() *event.Event {
	data := []byte(`{"order": {"id": "ord-123456", "lines": [{"sku": "SKU-1", "qty": 2, "price": 19.99}, {"sku": "SKU-2", "qty": 1, "price": 5.5}], "customer": {"id": "cus-42", "name": "Ada Lovelace", "address": {"street": "1 Main St", "city": "London", "postal": "N1 9GU"}}}, "note": "deliver after 5pm, ring twice", "total": 45.48, "currency": "EUR", "tags": ["gift", "express", "priority"], "version": 3}`)
	meta := []byte(`{"user_id": "usr-9f8e7d6c", "causation_id": "0191f3a0-0000-7000-8000-0000000000aa", "correlation_id": "0191f3a0-0000-7000-8000-0000000000bb"}`)
	return &event.Event{Table: "public.eventcore_events", CommitLSN: 1 << 32, EndLSN: 1<<32 + 64, PrevLSN: 1 << 31,
		CommitTime: time.Now(), XID: 1234, Index: 0, Count: 3,
		Values: [][]byte{[]byte("0191f3a0-0000-7000-8000-000000000001"), []byte("order-123456"), []byte("7"), []byte("OrderPlaced"), data, meta, []byte("2026-11-25 10:15:30.123456+00"), nil}}
}

func BenchmarkEncodeEventFor(b *testing.B) {
	e, et := benchEvent(), NewEventTable(&testTable)
	s := Subjects{Prefix: "tidemark"}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.EncodeEventFor("7301", "7301", et, e)
	}
}

func BenchmarkDecodeRow(b *testing.B) {
	body := AppendRow(nil, &testTable, benchEvent().Values)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRow(&testTable, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRow_MapBaseline is the generic decoder DecodeRow replaced,
// kept as the yardstick.
func BenchmarkDecodeRow_MapBaseline(b *testing.B) {
	body := AppendRow(nil, &testTable, benchEvent().Values)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeEventV1For is version 1's encoding (sixteen headers), the
// yardstick for version 2's.
func BenchmarkEncodeEventV1For(b *testing.B) {
	e, et := benchEvent(), NewEventTable(&testTable)
	s := Subjects{Prefix: "tidemark"}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.EncodeEventV1For("7301", et, e)
	}
}

// BenchmarkEncodeTxnEvent is capture's path: the transaction's header
// prefix built once (here: once per 5 events, the bench backlog's mean).
func BenchmarkEncodeTxnEvent(b *testing.B) {
	e, et := benchEvent(), NewEventTable(&testTable)
	s := Subjects{Prefix: "tidemark"}
	b.ReportAllocs()
	var p TxnPrefix
	i := 0
	for b.Loop() {
		if i%5 == 0 {
			p = NewTxnPrefix("7301", e)
		}
		i++
		_ = s.EncodeTxnEvent(p, "7301", et, e)
	}
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	e, et := benchEvent(), NewEventTable(&testTable)
	s := Subjects{Prefix: "tidemark"}
	for _, v := range []struct {
		name string
		m    func() *nats.Msg
	}{{"v1", func() *nats.Msg { return s.EncodeEventV1For("7301", et, e) }}, {"v2", func() *nats.Msg { return s.EncodeEventFor("7301", "7301", et, e) }}} {
		b.Run(v.name, func(b *testing.B) {
			m := v.m()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeEnvelope(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
