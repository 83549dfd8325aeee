package feed_test

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/feed"
)

func v2Msg(txn string) *nats.Msg {
	m := nats.NewMsg("tidemark.events.public.t.x.y")
	m.Header.Set(feed.HeaderFeed, "2")
	m.Header.Set(feed.HeaderKind, "event")
	m.Header.Set(feed.HeaderSchemaID, "882f1390e09fec32")
	m.Header.Set(feed.HeaderTxn, txn)
	return m
}

// TestDecodeEnvelope_Refuses: every malformed Tidemark-Txn header and an
// unknown feed version is an error that names the problem, never a
// zero-valued position the chain would take as real.
func TestDecodeEnvelope_Refuses(t *testing.T) {
	const ok = "7301 16/B37400F8 16/B3740000 16/B37400C8 2026-11-25T10:15:00.000001Z 1001 1/3"
	if env, err := feed.DecodeEnvelope(v2Msg(ok)); err != nil || env.EndLSN != 0x16_B37400F8 || env.Index != 1 || env.Count != 3 || env.SystemID != "7301" {
		t.Fatalf("valid header: %+v, %v", env, err)
	}
	for _, c := range []struct{ name, txn, want string }{
		{"empty", "", "want 7 fields"},
		{"six fields", "7301 16/B37400F8 16/B3740000 16/B37400C8 2026-11-25T10:15:00.000001Z 1001", "want 7 fields"},
		{"unknown flag", ok + " resync", "want 7 fields"},
		{"bad position", strings.Replace(ok, "16/B37400F8", "16-B37400F8", 1), "parse position"},
		{"bad time", strings.Replace(ok, "2026-11-25T10:15:00.000001Z", "yesterday", 1), "cannot parse"},
		{"xid overflow", strings.Replace(ok, " 1001 ", " 4294967296 ", 1), "out of range"},
		{"no count", strings.Replace(ok, "1/3", "1", 1), "<index>/<count>"},
		{"index past count", strings.Replace(ok, "1/3", "3/3", 1), "out of range"},
		{"empty system id", " " + ok[5:], "empty system id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := feed.DecodeEnvelope(v2Msg(c.txn))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("DecodeEnvelope(%q) = %v, want an error containing %q", c.txn, err, c.want)
			}
		})
	}
	m := v2Msg(ok)
	m.Header.Set(feed.HeaderFeed, "3")
	if _, err := feed.DecodeEnvelope(m); err == nil || !strings.Contains(err.Error(), "upgrade") {
		t.Errorf("feed version 3: %v, want an error saying to upgrade the reader", err)
	}
}

// FuzzDecodeEnvelope: the header comes from the feed (untrusted); decoding
// never panics, and what it accepts is a consistent envelope.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add("7301 16/B37400F8 16/B3740000 16/B37400C8 2026-11-25T10:15:00.000001Z 1001 1/3")
	f.Add("7301.snap.16b3740000 0/2 0/1 0/2 2026-11-25T10:14:59.500000Z 705 0/1 snapshot")
	f.Add("a b c d e f g h i")
	f.Fuzz(func(t *testing.T, txn string) {
		env, err := feed.DecodeEnvelope(v2Msg(txn))
		if err != nil {
			return
		}
		if env.Count < 1 || env.Index < 0 || env.Index >= env.Count || env.SystemID == "" {
			t.Fatalf("accepted inconsistent envelope %+v from %q", env, txn)
		}
	})
}
