package catalog

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
)

// MaxDebrisPerEntry bounds the debris one entry records.
const MaxDebrisPerEntry = 256

// DebrisRef is a segment object that a writer uploaded but whose catalog
// entry it never wrote (it crashed, or was fenced, between the two). Its
// events were archived again by a later writer or are still to come, so
// restore never reads it. Recording it, with its size and checksum, lets
// verify tell such leftovers from objects nobody wrote (an injection), and
// see if one is altered later.
type DebrisRef struct {
	// Key is the object key, under "segments/".
	Key string `json:"key"`
	// Size is the object's size in bytes when it was recorded.
	Size int64 `json:"size"`
	// SHA256 is the hex SHA-256 of the whole object when it was recorded.
	SHA256 string `json:"sha256"`
	// FirstEndLSN and LastEndLSN are the positions its trailer covers.
	FirstEndLSN event.Position `json:"first_end_lsn"`
	LastEndLSN  event.Position `json:"last_end_lsn"`
}

// AsDebris returns the debris record of the segment object r describes.
func (r SegmentRef) AsDebris() DebrisRef {
	return DebrisRef{Key: r.Key, Size: r.Size, SHA256: r.SHA256, FirstEndLSN: r.FirstEndLSN, LastEndLSN: r.LastEndLSN}
}

// debrisRecord is a DebrisRef with the seq of the entry that recorded it.
type debrisRecord struct {
	DebrisRef
	Seq uint64 `json:"seq"`
	// At is the recording entry's time; zero in checkpoints of version 1.
	At time.Time `json:"at,omitzero"`
}

// checkDebris reports what is wrong with the debris an entry records, or "".
// A key may be recorded once, and never one the catalog already lists; a
// later entry may still list a recorded key (a writer that produced the
// same segment again adopts the object).
func (c *Catalog) checkDebris(refs []DebrisRef) string {
	if len(refs) > MaxDebrisPerEntry {
		return fmt.Sprintf("%d debris objects, at most %d per entry", len(refs), MaxDebrisPerEntry)
	}
	seen := make(map[string]bool, len(refs))
	for _, d := range refs {
		switch {
		case objstore.ValidateKey(d.Key) != nil || !strings.HasPrefix(d.Key, SegmentsPrefix):
			return fmt.Sprintf("debris key %q is not a valid key under %s", d.Key, SegmentsPrefix)
		case d.Size < 0 || !isSHA256Hex(d.SHA256):
			return fmt.Sprintf("debris %s has a negative size or a malformed sha256", d.Key)
		case d.LastEndLSN < d.FirstEndLSN:
			return fmt.Sprintf("debris %s ends before it starts", d.Key)
		case seen[d.Key]:
			return fmt.Sprintf("debris %s recorded twice in one entry", d.Key)
		}
		if seq, ok := c.keys[d.Key]; ok {
			return fmt.Sprintf("debris %s is listed as a segment by entry %d", d.Key, seq)
		}
		if s, ok := c.superseded[d.Key]; ok {
			return fmt.Sprintf("debris %s was superseded by merge entry %d", d.Key, s.Seq)
		}
		if r, ok := c.debris[d.Key]; ok {
			return fmt.Sprintf("debris %s is already recorded by entry %d", d.Key, r.Seq)
		}
		seen[d.Key] = true
	}
	return ""
}

// Debris returns the debris record of key and the seq of the entry that
// recorded it; ok is false when key is not recorded as debris.
func (c *Catalog) Debris(key string) (ref DebrisRef, seq uint64, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.debris[key]
	return r.DebrisRef, r.Seq, ok
}

// Known reports whether key is listed as a segment, recorded as debris or
// superseded by a merge.
func (c *Catalog) Known(key string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, listed := c.keys[key]
	_, debris := c.debris[key]
	_, superseded := c.superseded[key]
	return listed || debris || superseded
}

// sortedDebris returns the debris records in key order.
func (c *Catalog) sortedDebris() []debrisRecord {
	out := make([]debrisRecord, 0, len(c.debris))
	for _, r := range c.debris {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
