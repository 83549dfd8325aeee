package monitor

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/testing/golden"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// TestFeedCompare checks archived events against their copies on a real
// JetStream stream: equal copies pass (an external value by its header's
// size and SHA-256), a changed copy, a skipped version, a deleted message
// and a wrong external digest are findings, and an event older than the
// stream's first message is only counted as expired.
func TestFeedCompare(t *testing.T) {
	ctx := context.Background()
	n := testrig.StartNATS(t)
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subjects := feed.Subjects{Prefix: "tidemark"}
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TIDEMARK", Subjects: []string{subjects.All()}})
	if err != nil {
		t.Fatal(err)
	}
	tbl := golden.FeedV1Table()
	l := event.LayoutOf(tbl)
	past := time.Now().UTC().Add(-time.Second).Truncate(time.Microsecond)
	lsn := event.Position(0x1000)
	ev := func(stream string, version int, data string, at time.Time) *event.Event {
		lsn += 0x100
		return &event.Event{Table: tbl.QualifiedName(), CommitLSN: lsn, EndLSN: lsn + 0x10, PrevLSN: lsn - 0x100, CommitTime: at, XID: uint32(lsn), Count: 1,
			Values: [][]byte{[]byte(fmt.Sprintf("00000000-0000-0000-0000-%012x", uint64(lsn))), []byte(stream), []byte(strconv.Itoa(version)),
				[]byte("Created"), []byte(data), []byte("{}"), []byte("2026-12-07 01:00:00+00")}}
	}
	publish := func(e *event.Event, edit func(m *nats.Msg)) uint64 {
		m := subjects.EncodeEvent("7000000000000000001", &tbl, l, e)
		if edit != nil {
			edit(m)
		}
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	withData := func(e *event.Event, data []byte) *event.Event {
		c := *e
		c.Values = append([][]byte(nil), e.Values...)
		c.Values[l.EventData] = data
		return &c
	}
	external := func(value, digestOf string) func(m *nats.Msg) {
		return func(m *nats.Msg) {
			m.Header.Set(feed.HeaderExternal, feed.EncodeExternal([]feed.ExternalValue{{Column: l.EventData, Size: int64(len(value)), SHA256: sha256.Sum256([]byte(digestOf))}}))
		}
	}

	a1, a2, a3, a5 := ev("a", 1, `{"n": 1}`, past), ev("a", 2, `{"n": 2}`, past), ev("a", 3, `{"n": 3}`, past), ev("a", 5, `{"n": 5}`, past)
	publish(a1, nil)
	publish(a2, nil)
	publish(withData(a3, []byte(`{"n": 33}`)), nil)
	publish(a5, nil)          // version 4 never published: a gap after 3
	big := `{"big": "value"}` // as if in the values object store: null in the message
	d1, e1 := ev("d", 1, big, past), ev("e", 1, big, past)
	publish(withData(d1, nil), external(big, big))
	publish(withData(e1, nil), external(big, "something else"))
	// Committed after the stream's first message by more than the slack
	// (a commit time in the future stands for a later commit here), then
	// deleted from the stream.
	b1 := ev("b", 1, `{"n": 1}`, time.Now().UTC().Add(time.Minute))
	if err := st.DeleteMsg(ctx, publish(b1, nil)); err != nil {
		t.Fatal(err)
	}
	old := ev("c", 1, `{}`, past.Add(-time.Hour)) // before the stream's first message, never on it

	fr, err := openFeedRound(ctx, FeedOptions{JS: js, Stream: "TIDEMARK", Subjects: subjects})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		e       *event.Event
		want    []string
		expired bool
	}{
		{"equal", a1, nil, false},
		{"equal, next version follows", a2, nil, false},
		{"changed copy, then a gap", a3, []string{CheckFeedChanged, CheckFeedGap}, false},
		{"external value by digest", d1, nil, false},
		{"external value with another digest", e1, []string{CheckFeedChanged}, false},
		{"deleted from the stream", b1, []string{CheckFeedMissing}, false},
		{"older than the stream", old, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &Round{}
			if err := fr.compare(ctx, &tbl, "seg", c.e, r); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range r.Findings {
				got = append(got, f.Check)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) || (r.FeedExpired == 1) != c.expired || (r.FeedCompared == 1) == c.expired {
				t.Fatalf("findings %v (want %v), compared %d, expired %d:\n%s", got, c.want, r.FeedCompared, r.FeedExpired, checks(r))
			}
		})
	}
}
