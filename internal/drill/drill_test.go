package drill

import (
	"errors"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
)

func TestCheckScratch(t *testing.T) {
	const src = "postgres://app@db.internal:5432/eventcore"
	for _, tc := range []struct {
		name, scratch, source, prefix string
		ok                            bool
	}{
		{"maintenance database on the source server", "postgres://drill@db.internal:5432/postgres", src, DefaultPrefix, true},
		{"another server", "postgres://drill@restore.internal/postgres", src, DefaultPrefix, true},
		{"no source", "postgres://drill@restore.internal/postgres", "", DefaultPrefix, true},
		{"the source database itself", "postgres://drill@db.internal:5432/eventcore", src, DefaultPrefix, false},
		{"scratch URL under the prefix", "postgres://drill@restore.internal/tidemark_drill_x", "", DefaultPrefix, false},
		{"source under the prefix", "postgres://drill@db.internal:5432/postgres", "postgres://app@db.internal:5432/tidemark_drill_app", DefaultPrefix, false},
		{"empty-ish prefix", "postgres://drill@restore.internal/postgres", "", "t", false},
		{"prefix with a quote", "postgres://drill@restore.internal/postgres", "", `drill"x`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkScratch(tc.scratch, tc.source, tc.prefix)
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrUsage) {
				t.Fatalf("checkScratch: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestArchiveOracle(t *testing.T) {
	tbl := event.Table{Schema: "public", Name: "eventcore_events", Columns: []event.Column{
		{Name: "event_id", OID: 2950}, {Name: "stream_id"}, {Name: "stream_version"}}}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	o := newArchiveOracle()
	ev := func(id, stream, version string, at time.Duration) *event.Event {
		return &event.Event{CommitTime: t0.Add(at), Values: [][]byte{[]byte(id), []byte(stream), []byte(version)}}
	}
	// chain order need not be commit-time order
	for _, e := range []*event.Event{ev("a", "s1", "1", 2*time.Second), ev("b", "s2", "1", time.Second), ev("c", "s1", "2", 3*time.Second)} {
		o.add(&tbl, e)
	}
	if !o.ok {
		t.Fatal("the EventCore layout was not recognised")
	}
	o.seal()
	ha, hb, hc := eventHash([]byte("a"), []byte("s1"), []byte("1")), eventHash([]byte("b"), []byte("s2"), []byte("1")), eventHash([]byte("c"), []byte("s1"), []byte("2"))
	for _, tc := range []struct {
		at   time.Duration
		want Sum
	}{
		{0, Sum{}},
		{time.Second, Sum{1, hb}},
		{2*time.Second + time.Microsecond/2, Sum{2, hb + ha}},
		{time.Hour, Sum{3, ha + hb + hc}},
	} {
		if got := o.At(t0.Add(tc.at)); got != tc.want {
			t.Errorf("At(+%s) = %s, want %s", tc.at, got, tc.want)
		}
	}
	if got, want := o.Streams([]string{"s1", "nope"}), (Sum{2, ha + hc}); got != want {
		t.Errorf("Streams(s1) = %s, want %s", got, want)
	}
}
