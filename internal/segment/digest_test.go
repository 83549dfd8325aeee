package segment

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/tidemark/tidemark/internal/event"
)

func TestEventsDigest(t *testing.T) {
	events := newGen(21, 10).events(500)
	var d EventsDigest
	if d.Sum() != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("empty digest %s", d.Sum())
	}
	var raw []byte
	for _, e := range events {
		d.Add(e)
		raw, _ = appendRecord(raw, e)
	}
	want := sha256.Sum256(raw)
	if d.Sum() != hex.EncodeToString(want[:]) || d.Events() != int64(len(events)) {
		t.Fatalf("digest %s over %d events, want the SHA-256 of the raw records %x", d.Sum(), d.Events(), want)
	}

	t.Run("spec example", func(t *testing.T) {
		var one EventsDigest
		one.Add(fuzzEvents()[1]) // docs/segment-format.md §2.4's record
		if got := one.Sum(); got != "5a9fa15a0d5166a59d9bff510dc90c1c43e9b9d06ae530912d34617fd540fc2e" {
			t.Fatalf("digest of the spec's example record %s", got)
		}
	})

	t.Run("same events however stored and cut", func(t *testing.T) {
		ring := mustKeyring(t, mustGenerateKey(t))
		var whole EventsDigest
		// Cut mid-transaction too: a split transaction's parts digest as the whole.
		for _, cut := range [][2]int{{0, 137}, {137, 138}, {138, len(events)}} {
			part := events[cut[0]:cut[1]]
			data, _ := encode(t, WriterOptions{Compression: Gzip, Keyring: ring}, part)
			seg, err := Decode("d.tms", data, ReadOptions{Keyring: ring})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range seg.Events {
				whole.Add(e)
			}
		}
		if whole.Sum() != d.Sum() {
			t.Fatal("digest depends on how the events were stored")
		}
	})

	t.Run("any change changes it", func(t *testing.T) {
		for what, mod := range map[string]func(*event.Event){
			"value":     func(e *event.Event) { e.Values[1] = append([]byte{}, "x"...) },
			"NULL":      func(e *event.Event) { e.Values[5] = nil },
			"empty":     func(e *event.Event) { e.Values[5] = []byte{} },
			"snapshot":  func(e *event.Event) { e.Snapshot = !e.Snapshot },
			"end lsn":   func(e *event.Event) { e.EndLSN++ },
			"time":      func(e *event.Event) { e.CommitTime = e.CommitTime.Add(1000) },
			"xid":       func(e *event.Event) { e.XID++ },
			"no values": func(e *event.Event) { e.Values = e.Values[:6] },
		} {
			var o EventsDigest
			for i, e := range events {
				if i == 250 {
					c := *e
					c.Values = append([][]byte(nil), e.Values...)
					mod(&c)
					e = &c
				}
				o.Add(e)
			}
			if o.Sum() == d.Sum() {
				t.Errorf("%s changed, digest did not", what)
			}
		}
		var swapped EventsDigest
		for i := range events {
			j := i
			if i == 10 || i == 11 {
				j = 21 - i
			}
			swapped.Add(events[j])
		}
		if swapped.Sum() == d.Sum() {
			t.Error("order does not count")
		}
	})
}
