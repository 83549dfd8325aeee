package catalog

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeEntry feeds DecodeEntry — what the copier applies to entry
// objects read from a primary, which is untrusted — arbitrary bytes: it
// must not panic, and an entry it accepts must encode (EntryBody) to bytes
// that decode to the same entry.
func FuzzDecodeEntry(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "golden", "catalog", "entries", "*.json"))
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"seq":1}`))
	f.Add([]byte(`{"seq":2,"merge":{"inputs":[],"output":{}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		body, err := EntryBody(e)
		if err != nil {
			return // a value encoding/json cannot write back (not from a writer)
		}
		again, err := DecodeEntry(body)
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v\n%s", err, body)
		}
		body2, err := EntryBody(again)
		if err != nil || !bytes.Equal(body, body2) {
			t.Fatalf("entry does not survive a second round trip: %v\n%s\n%s", err, body, body2)
		}
	})
}

// TestAccept_MatchesLoad applies the golden catalog's entries one by one
// with Accept and requires the state Load reaches; an entry out of order
// or altered is refused and changes nothing.
func TestAccept_MatchesLoad(t *testing.T) {
	dir := filepath.Join("testdata", "golden", "catalog", "entries")
	c := newCatalog()
	for seq := uint64(1); seq <= 5; seq++ {
		b, err := os.ReadFile(filepath.Join(dir, filepath.Base(EntryKey(seq))))
		if err != nil {
			t.Fatal(err)
		}
		e, err := DecodeEntry(b)
		if err != nil {
			t.Fatal(err)
		}
		if seq == 3 {
			if err := c.Accept(EntryKey(4), e); err == nil {
				t.Fatal("Accept took an entry under the wrong key")
			}
			bad := e
			bad.Epoch++
			if err := c.Accept(EntryKey(3), bad); err == nil {
				t.Fatal("Accept took an altered entry")
			}
		}
		if err := c.Accept(EntryKey(seq), e); err != nil {
			t.Fatalf("Accept entry %d: %v", seq, err)
		}
		if body, _ := EntryBody(e); !bytes.Equal(body, b) {
			t.Fatalf("EntryBody of entry %d differs from the stored object", seq)
		}
	}
	st := fileStore(t)
	for seq := uint64(1); seq <= 5; seq++ {
		b, _ := os.ReadFile(filepath.Join(dir, filepath.Base(EntryKey(seq))))
		putRaw(t, st, EntryKey(seq), b)
	}
	loaded, err := LoadWith(ctxT(t), st, LoadOptions{IgnoreCheckpoints: true})
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := loaded.Head()
	h2, _ := c.Head()
	if h1 != h2 || loaded.NextSeq() != c.NextSeq() || len(loaded.Segments()) != len(c.Segments()) || loaded.Watermark() != c.Watermark() {
		t.Fatalf("Accept reached %d/%s, Load %d/%s", c.NextSeq(), h2, loaded.NextSeq(), h1)
	}
}
