package segment

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
)

// v2 returns writer options for a format-version-2 merged segment.
func v2(c Compression) WriterOptions {
	return WriterOptions{Compression: c, MergeLevel: 1, Format: ColumnarVersion}
}

// checkRoundTrip writes events with opts and checks Decode and OpenReader
// give them back with the writer's trailer.
func checkRoundTrip(t *testing.T, opts WriterOptions, ring *Keyring, events []*event.Event) []byte {
	t.Helper()
	data, tr := encode(t, opts, events)
	seg, err := Decode("segments/v2.tms", data, ReadOptions{Keyring: ring})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	got, r, err := streamAll("segments/v2.tms", data, ReadOptions{Keyring: ring})
	if err != nil {
		t.Fatalf("OpenReader: %v", err)
	}
	if len(seg.Events) != len(events) || len(got) != len(events) {
		t.Fatalf("Decode %d, stream %d events; wrote %d", len(seg.Events), len(got), len(events))
	}
	for i := range events {
		if !seg.Events[i].Equal(events[i]) || !got[i].Equal(events[i]) {
			t.Fatalf("event %d: Decode %+v, stream %+v, want %+v", i, seg.Events[i], got[i], events[i])
		}
		for c, v := range events[i].Values {
			if (v == nil) != (seg.Events[i].Values[c] == nil) || (v == nil) != (got[i].Values[c] == nil) {
				t.Fatalf("event %d column %d: NULL and empty string confused", i, c)
			}
		}
	}
	if d := diffTrailer(tr, &seg.Trailer); d != "" || seg.Trailer.SHA256 != tr.SHA256 {
		t.Fatalf("Decode trailer differs from Close's: %s", d)
	}
	if d := diffTrailer(tr, r.Trailer()); d != "" {
		t.Fatalf("stream trailer differs from Close's: %s", d)
	}
	if seg.Header.Version != opts.Format || seg.Header.Level != opts.MergeLevel {
		t.Fatalf("header version %d level %d", seg.Header.Version, seg.Header.Level)
	}
	return data
}

func TestColumnar_RoundTrip(t *testing.T) {
	ring := mustKeyring(t, mustGenerateKey(t))
	sets := map[string][]*event.Event{
		"gen":       newGen(41, 30).events(3000),
		"eventcore": newEventCoreGen(41, 30000).events(3000),
		"fuzz":      fuzzEvents(),
	}
	for name, events := range sets {
		for _, c := range []Compression{None, Gzip, Zstd} {
			for _, enc := range []*Keyring{nil, ring} {
				t.Run(fmt.Sprintf("%s/%s/encrypted=%v", name, c, enc != nil), func(t *testing.T) {
					opts := v2(c)
					if name == "fuzz" {
						opts.Table = fuzzTable
					}
					opts.Keyring = enc
					data := checkRoundTrip(t, opts, ring, events)
					if data[5] != ColumnarVersion {
						t.Fatalf("version byte %d", data[5])
					}
				})
			}
		}
	}
}

func TestColumnar_Ratio(t *testing.T) {
	events := newEventCoreGen(42, 30000).events(20000)
	v1, _ := encode(t, WriterOptions{MergeLevel: 1}, events)
	v2d, _ := encode(t, v2(Zstd), events)
	t.Logf("v1 best %d, v2 %d bytes (%.3f)", len(v1), len(v2d), float64(len(v2d))/float64(len(v1)))
	if len(v2d) >= len(v1) {
		t.Fatal("v2 is no smaller than v1")
	}
	_ = bytes.Equal
	_ = strings.Contains
	_ = time.Now
}
