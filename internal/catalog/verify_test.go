package catalog

import (
	"context"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

func hasFinding(r *Report, sev Severity, check, object string) bool {
	for _, f := range r.Findings {
		if f.Severity == sev && f.Check == check && strings.Contains(f.Object, object) {
			return true
		}
	}
	return false
}

func findings(r *Report) string {
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString("\n  " + f.String())
	}
	return b.String()
}

func TestVerify_CleanArchive(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		name := "plaintext"
		var kr *segment.Keyring
		if encrypted {
			name, kr = "encrypted", testKeyring(t)
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, fileStore(t), kr)
			f.w.CheckpointEvery = 2
			f.standard(4)
			r, err := Verify(ctxT(t), f.st, kr)
			if err != nil {
				t.Fatal(err)
			}
			if r.Worst() != OK {
				t.Fatalf("clean archive: worst %s:%s", r.Worst(), findings(r))
			}
			if r.Entries != 5 || r.Segments != 4 || r.Verified != 4 || r.Streams != 3 || r.Events == 0 || r.Transactions != 20 {
				t.Fatalf("report counts: %+v", r)
			}
			if !hasFinding(r, OK, "continuity", "") || !hasFinding(r, OK, "summary", "") {
				t.Fatalf("missing informational findings:%s", findings(r))
			}
		})
	}
}

func TestVerify_FindsDamage(t *testing.T) {
	tests := []struct {
		name    string
		keyring bool
		damage  func(t *testing.T, f *fixture) (verifyKeyring *segment.Keyring)
		sev     Severity
		check   string
		object  func(f *fixture) string
	}{
		{"missing segment", false, func(t *testing.T, f *fixture) *segment.Keyring {
			if err := f.st.Delete(ctxT(t), f.refs[1].Key); err != nil {
				t.Fatal(err)
			}
			return nil
		}, Failure, "object", func(f *fixture) string { return f.refs[1].Key }},
		{"flipped byte", false, func(t *testing.T, f *fixture) *segment.Keyring {
			b := getRaw(t, f.st, f.refs[2].Key)
			b[len(b)/2] ^= 0x40
			putRaw(t, f.st, f.refs[2].Key, b)
			return nil
		}, Failure, "checksum", func(f *fixture) string { return f.refs[2].Key }},
		{"truncated", false, func(t *testing.T, f *fixture) *segment.Keyring {
			b := getRaw(t, f.st, f.refs[0].Key)
			putRaw(t, f.st, f.refs[0].Key, b[:len(b)-10])
			return nil
		}, Failure, "object", func(f *fixture) string { return f.refs[0].Key }},
		{"no key to decrypt", true, func(t *testing.T, f *fixture) *segment.Keyring {
			return testKeyring(t) // a different key
		}, Failure, "decode", func(f *fixture) string { return f.refs[0].Key }},
		{"trailer disagrees with entry", false, func(t *testing.T, f *fixture) *segment.Keyring {
			ref := f.upload(f.batch(3), "")
			ref.Transactions++
			f.appendRef(ref)
			return nil
		}, Failure, "trailer", func(f *fixture) string { return f.refs[4].Key }},
		{"unlisted object", false, func(t *testing.T, f *fixture) *segment.Keyring {
			f.upload(f.batch(2), "")
			return nil
		}, Warning, "unlisted", func(f *fixture) string { return "segments/" }},
		{"segment left out of the catalog", false, func(t *testing.T, f *fixture) *segment.Keyring {
			f.upload(f.batch(3), "") // uploaded, never listed
			f.add(f.batch(3))
			return nil
		}, Failure, "stream", func(f *fixture) string { return f.refs[4].Key }},
		{"duplicate event id", false, func(t *testing.T, f *fixture) *segment.Keyring {
			evs := f.batch(2)
			f.nextID = 1 // the next transaction reuses event id 2
			evs = append(evs, f.txn(1, "order-9")...)
			f.add(evs)
			return nil
		}, Failure, "event-id", func(f *fixture) string { return f.refs[4].Key }},
		{"segment repeats archived positions", false, func(t *testing.T, f *fixture) *segment.Keyring {
			// The first segment's events again, under another key.
			seg, err := segment.Decode(f.refs[0].Key, getRaw(t, f.st, f.refs[0].Key), segment.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ref := f.upload(seg.Events, "copy")
			f.appendRef(ref)
			return nil
		}, Failure, "continuity", func(f *fixture) string { return f.refs[4].Key }},
		{"incomplete transaction", false, func(t *testing.T, f *fixture) *segment.Keyring {
			end := f.pos + 10
			f.ct = f.ct.Add(3 * 1e9)
			var evs []*event.Event
			for i := range 2 { // 2 of 3 events
				f.versions["order-7"]++
				f.nextID++
				evs = append(evs, f.event(end, f.pos, i, 3, "order-7", f.versions["order-7"], f.nextID))
			}
			f.pos = end
			f.add(evs)
			return nil
		}, Failure, "transaction", func(f *fixture) string { return f.refs[4].Key }},
		{"broken chain", false, func(t *testing.T, f *fixture) *segment.Keyring {
			if err := f.st.Delete(ctxT(t), EntryKey(2)); err != nil {
				t.Fatal(err)
			}
			return nil
		}, Failure, "chain", func(f *fixture) string { return EntryKey(2) }},
		{"forged checkpoint", false, func(t *testing.T, f *fixture) *segment.Keyring {
			cp, _, err := readCheckpoint(ctxT(t), f.st, 4)
			if err != nil {
				t.Fatal(err)
			}
			cp.Segments = append(cp.Segments[:1], cp.Segments[2:]...) // hides a segment from checkpoint loads
			cp.Digest = cp.computeDigest()
			b, _ := canonicalJSON(cp)
			putRaw(t, f.st, CheckpointKey(4), b)
			return nil
		}, Failure, "checkpoint", func(f *fixture) string { return CheckpointKey(4) }},
		{"epoch object missing", false, func(t *testing.T, f *fixture) *segment.Keyring {
			if err := f.st.Delete(ctxT(t), EpochKey(1)); err != nil {
				t.Fatal(err)
			}
			return nil
		}, Warning, "epoch", func(f *fixture) string { return EpochKey(1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var kr *segment.Keyring
			if tt.keyring {
				kr = testKeyring(t)
			}
			f := newFixture(t, fileStore(t), kr)
			f.w.CheckpointEvery = 2
			f.standard(4)
			vk := tt.damage(t, f)
			if vk == nil {
				vk = kr
			}
			r, err := Verify(ctxT(t), f.st, vk)
			if err != nil {
				t.Fatal(err)
			}
			if !hasFinding(r, tt.sev, tt.check, tt.object(f)) {
				t.Fatalf("no %s %s finding for %s:%s", tt.sev, tt.check, tt.object(f), findings(r))
			}
			if r.Worst() != tt.sev {
				t.Fatalf("worst severity %s, want %s:%s", r.Worst(), tt.sev, findings(r))
			}
		})
	}
}

// listHookStore runs during once, just before the first listing of prefix.
type listHookStore struct {
	objstore.Store
	prefix string
	during func()
}

func (s *listHookStore) List(ctx context.Context, prefix, startAfter string) ([]objstore.ObjectInfo, error) {
	if prefix == s.prefix && s.during != nil {
		during := s.during
		s.during = nil
		during()
	}
	return s.Store.List(ctx, prefix, startAfter)
}

// TestVerify_WriterAppendsWhileVerifying: verify reads the catalog, checks
// every segment (minutes on a large archive), then lists segments/. A
// segment a writer stored and cataloged in between is no unlisted object.
func TestVerify_WriterAppendsWhileVerifying(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	f.standard(3)
	var added SegmentRef
	st := &listHookStore{Store: f.st, prefix: SegmentsPrefix, during: func() { added = f.add(f.batch(5)) }}
	r, err := Verify(ctxT(t), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Worst() != OK {
		t.Fatalf("a segment cataloged while verify ran (%s) made it say %s:%s", added.Key, r.Worst(), findings(r))
	}
	if !hasFinding(r, OK, "unlisted", "") || r.Segments != 3 {
		t.Fatalf("want the new object noted and the 3 segments read first verified:%s", findings(r))
	}
	// An object nobody cataloged is still a warning.
	st.during = func() { f.upload(f.batch(2), "") }
	if r, err = Verify(ctxT(t), st, nil); err != nil {
		t.Fatal(err)
	}
	if r.Worst() != Warning {
		t.Fatalf("an uncataloged object: worst %s:%s", r.Worst(), findings(r))
	}
}

// TestVerify_FlipTheHashCannotSee: a flipped byte in the name of an empty
// member ("prev" of entry 1, an empty "debris"-less entry's "key_id") keeps
// the decoded entry and so its hash; verify still reports the entry, as
// not canonical, and likewise for a checkpoint.
func TestVerify_FlipTheHashCannotSee(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	f.w.CheckpointEvery = 2
	f.standard(2)
	for _, tc := range []struct{ key, from, to string }{
		{EntryKey(1), `"prev":""`, `"psev":""`},
		{CheckpointKey(2), `"entry_hash"`, `"Entry_hash"`}, // encoding/json matches names case-insensitively
	} {
		raw := getRaw(t, f.st, tc.key)
		if !strings.Contains(string(raw), tc.from) {
			t.Fatalf("%s lacks %s: %s", tc.key, tc.from, raw)
		}
		putRaw(t, f.st, tc.key, []byte(strings.Replace(string(raw), tc.from, tc.to, 1)))
		r, err := Verify(ctxT(t), f.st, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Worst() != Warning || !hasFinding(r, Warning, map[bool]string{true: "chain", false: "checkpoint"}[strings.HasPrefix(tc.key, EntriesPrefix)], tc.key) {
			t.Fatalf("%s altered: worst %s:%s", tc.key, r.Worst(), findings(r))
		}
		putRaw(t, f.st, tc.key, raw)
	}
}
