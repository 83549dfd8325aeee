package golden

import (
	"testing"

	"github.com/nats-io/nats.go"
)

func TestMarshalMsgs_RoundTrip(t *testing.T) {
	msgs := []*nats.Msg{
		{Subject: "a.b", Header: nats.Header{"X": {"", "ü \"q\""}, "A": {"1"}}, Data: []byte("line\n\nsubject x\ndata 3\n")},
		{Subject: "c", Header: nats.Header{}, Data: nil},
		{Subject: "d", Header: nats.Header{"B": {"\x00\xff"}}, Data: []byte{0, 0xff, '\n'}},
	}
	b := MarshalMsgs("first line\nsecond line", msgs...)
	back, err := UnmarshalMsgs(b)
	if err != nil {
		t.Fatalf("UnmarshalMsgs: %v\n%s", err, b)
	}
	if len(back) != len(msgs) {
		t.Fatalf("%d messages back, want %d", len(back), len(msgs))
	}
	for i := range msgs {
		if d := DiffMsg(back[i], msgs[i]); d != "" {
			t.Errorf("message %d: %s", i, d)
		}
	}
	if again := MarshalMsgs("first line\nsecond line", back...); string(again) != string(b) {
		t.Errorf("not canonical:\n%s\n---\n%s", b, again)
	}
	for _, bad := range []string{"subject a\n", "subject a\ndata 5\nab\n", "header X \"1\"\n", "subject a\nheader X 1\ndata 0\n\n"} {
		if _, err := UnmarshalMsgs([]byte(bad)); err == nil {
			t.Errorf("UnmarshalMsgs(%q) accepted", bad)
		}
	}
}
