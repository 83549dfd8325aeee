package feed

import (
	"bytes"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
)

func TestEncodeToken_RoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain-id_1", "order.42", "a b", "*", ">", "~x", "ünïcødé/ストリーム", "a.b.*.>"} {
		tok := EncodeToken(s)
		for _, bad := range []string{".", " ", "*", ">"} {
			if bytes.Contains([]byte(tok), []byte(bad)) {
				t.Errorf("EncodeToken(%q) = %q contains %q", s, tok, bad)
			}
		}
		back, err := DecodeToken(tok)
		if err != nil || back != s {
			t.Errorf("DecodeToken(EncodeToken(%q)) = %q, %v", s, back, err)
		}
	}
	if _, err := DecodeToken("ab~4"); err == nil {
		t.Error("truncated escape accepted")
	}
	if EncodeToken("a.b") == EncodeToken("a~2Eb") {
		t.Error("encoding is not injective")
	}
}

// testTable is EventCore's table plus a nullable column.
var testTable = func() event.Table {
	t := eventcore.TableDef()
	t.Columns = append(t.Columns, event.Column{Name: "note", Type: "text", OID: 25})
	return t
}()

func TestEncodeDecodeEvent(t *testing.T) {
	e := &event.Event{
		Table: "public.eventcore_events", CommitLSN: 0x1_0000_0010, EndLSN: 0x1_0000_0040, PrevLSN: 0x1_0000_0008,
		CommitTime: time.Date(2026, 11, 25, 10, 15, 30, 123456000, time.UTC), XID: 991, Index: 1, Count: 3,
		Values: [][]byte{
			[]byte("0191f3a0-0000-7000-8000-000000000001"), []byte("order.42 \"x\" ü"), []byte("7"), []byte("OrderPlaced"),
			[]byte(`{"a": [1, 2], "s": "q\"uote"}`), []byte(`"just a string"`), []byte("2026-11-25 10:15:30.123456+00"), nil,
		},
	}
	s := Subjects{Prefix: "tidemark"}
	m := s.EncodeEvent("7301", &testTable, event.LayoutOf(testTable), e)
	if want := "tidemark.events.public.eventcore_events.OrderPlaced.order~2E42~20~22x~22~20~C3~BC"; m.Subject != want {
		t.Errorf("subject = %q, want %q", m.Subject, want)
	}
	if got := m.Header.Get(HeaderMsgID); got != "7301-100000010-1" {
		t.Errorf("msg id = %q", got)
	}
	back, err := DecodeEvent(m, &testTable)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(e) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", back, e)
	}
	m.Data = []byte(`{"bogus":1}`)
	if _, err := DecodeEvent(m, &testTable); err == nil {
		t.Error("unknown column accepted")
	}
}

func TestHeartbeat_RoundTrip(t *testing.T) {
	hb := event.Heartbeat{LSN: 99, PrevLSN: 42, Time: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), SnapshotDone: true}
	m := Subjects{Prefix: "x"}.EncodeHeartbeat("1", hb)
	got, err := DecodeHeartbeat(m)
	if err != nil || got != hb {
		t.Fatalf("got %+v, %v; want %+v", got, err, hb)
	}
	if _, err := DecodeEvent(m, &testTable); err != ErrNotEvent {
		t.Fatalf("heartbeat decoded as event: %v", err)
	}
}
