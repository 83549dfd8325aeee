package catalog

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/objstore"
)

// Bounds of one known-gap entry.
const (
	// MaxKnownGapItems bounds the objects, and the streams, one entry names.
	MaxKnownGapItems = 1024
)

// KnownGap is damage an operator has looked at and accepted: segment
// objects that are missing or corrupt beyond repair, and streams whose
// versions have holes because of them (or because events were never
// archived). It is recorded as a catalog entry, so it is part of the hash
// chain like everything else the archive says about itself. Verify, the
// drill and the monitor report the findings it covers as known instead of
// failing on them forever; restore is unchanged (a damaged object still
// cannot be read).
type KnownGap struct {
	// Objects are segment object keys (under "segments/") whose findings
	// are accepted.
	Objects []string `json:"objects,omitempty"`
	// Streams are stream ids whose findings are accepted.
	Streams []string `json:"streams,omitempty"`
	// Reason says why the damage is accepted (a ticket, what was lost).
	Reason string `json:"reason"`
	// Operator names who accepted it.
	Operator string `json:"operator"`
}

// KnownGapRecord is a KnownGap with the entry that recorded it.
type KnownGapRecord struct {
	KnownGap
	// Seq is the recording entry's seq; At its time.
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at"`
}

// covers reports whether the gap accepts a finding about object or stream.
func (g KnownGap) covers(object, stream string) bool {
	return object != "" && slices.Contains(g.Objects, object) || stream != "" && slices.Contains(g.Streams, stream)
}

// checkKnownGap reports what is wrong with a known-gap entry, or "".
func (c *Catalog) checkKnownGap(e Entry) string {
	g := e.KnownGap
	switch {
	case e.Segment != nil || len(e.Debris) > 0 || e.Merge != nil:
		return "a known-gap entry adds no segment, debris or merge"
	case e.Watermark.LSN != c.wm.LSN || !e.Watermark.CommitTime.Equal(c.wm.CommitTime):
		return "a known-gap entry keeps the watermark"
	case strings.TrimSpace(g.Reason) == "" || len(g.Reason) > maxString || len(g.Operator) > maxString:
		return "a known gap needs a reason (at most 1024 bytes) and an operator name of at most 1024 bytes"
	case len(g.Objects) == 0 && len(g.Streams) == 0:
		return "a known gap names at least one object or stream"
	case len(g.Objects) > MaxKnownGapItems || len(g.Streams) > MaxKnownGapItems:
		return fmt.Sprintf("a known gap names at most %d objects and %d streams", MaxKnownGapItems, MaxKnownGapItems)
	}
	for _, k := range g.Objects {
		if objstoreKeyInvalid(k) {
			return fmt.Sprintf("known-gap object %q is not a valid key under %s", k, SegmentsPrefix)
		}
	}
	for _, s := range g.Streams {
		if s == "" || len(s) > maxString {
			return "a known-gap stream id is empty or longer than 1024 bytes"
		}
	}
	return ""
}

// KnownGaps returns the known gaps recorded so far, in chain order.
func (c *Catalog) KnownGaps() []KnownGapRecord {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Clone(c.knownGaps)
}

// KnownGapFor returns the seq of the first known gap that accepts a
// finding about object or stream, or 0. It is for findings of checks
// outside this package (the restorer's, the drill's, the monitor's).
func (c *Catalog) KnownGapFor(object, stream string) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.knownGapFor(object, stream)
}

func (c *Catalog) knownGapFor(object, stream string) uint64 {
	for _, g := range c.knownGaps {
		if g.covers(object, stream) {
			return g.Seq
		}
	}
	return 0
}

func sameKnownGap(a, b *KnownGap) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Objects, b.Objects) && slices.Equal(a.Streams, b.Streams) && a.Reason == b.Reason && a.Operator == b.Operator
}

// AppendKnownGap writes the next entry recording g, keeping the watermark.
// It fails like Append; ErrInvalidEntry also when g has no reason, names
// nothing, or names an invalid object key.
func (w *Writer) AppendKnownGap(ctx context.Context, g KnownGap) (Entry, error) {
	return w.writeWith(ctx, Entry{KnownGap: &g}, true)
}

// knownGapLeaseTTL is the lease RecordKnownGap holds for its one entry.
const knownGapLeaseTTL = time.Minute

// RecordKnownGap appends g to the catalog in store as holder: it takes the
// writer's lease the way a standby archiver does (a new epoch, which fences
// older writers), appends one known-gap entry, and releases the lease so
// an archiver takes over at once. While an archiver holds the lease it
// returns *ErrLeaseHeld: stop the archivers first (they resume from the
// catalog when started again).
func RecordKnownGap(ctx context.Context, store objstore.Store, holder string, g KnownGap) (Entry, error) {
	lease, err := AcquireLease(ctx, store, holder, knownGapLeaseTTL)
	if err != nil {
		return Entry{}, fmt.Errorf("catalog: record known gap: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = lease.Release(rctx)
	}()
	c, err := Load(ctx, store)
	if err != nil {
		return Entry{}, fmt.Errorf("catalog: record known gap: %w", err)
	}
	if c.NextSeq() == 1 {
		return Entry{}, fmt.Errorf("catalog: record known gap: %w: the store holds no catalog", ErrInvalidEntry)
	}
	w := NewWriter(store, c, holder, lease.Epoch())
	e, err := w.AppendKnownGap(ctx, g)
	if err != nil {
		return Entry{}, err
	}
	return e, nil
}
