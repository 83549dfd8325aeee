package catalog

import (
	"testing"
)

// FuzzApplyEntry feeds arbitrary bytes to the entry decoder and, when
// they decode, to the checks Load applies (the known-gap, merge, debris
// and segment rules) on an empty catalog and on one that has a segment:
// an entry object read from the bucket is untrusted and must never panic.
func FuzzApplyEntry(f *testing.F) {
	for _, e := range append(goldenEntries(), goldenKnownGapEntry()) {
		b, err := e.encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"seq":1,"epoch":1,"known_gap":{"objects":["segments/x"],"reason":" "}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeEntry(data)
		if err != nil {
			return
		}
		for _, c := range []*Catalog{newCatalog(), withOneSegment()} {
			e.Seq, e.Prev = c.next, c.lastHash
			e.Hash = e.ComputeHash()
			if c.check(e) == "" {
				c.apply(e)
				_ = c.knownGapFor("segments/x", "s")
				_ = c.KnownGaps()
			}
		}
	})
}

func withOneSegment() *Catalog {
	c := newCatalog()
	e := goldenEntries()[0]
	if c.check(e) == "" {
		c.apply(e)
	}
	return c
}
