package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/internal/objstore"
)

// This file is what a copy of an archive needs from the catalog: the
// copier (internal/copier) mirrors another store's catalog object by
// object and checks every entry against the copy's own chain first.

// EntryBody returns the object body of e as a writer stores it: its
// canonical JSON, with its hash, and a newline. A copy writes these bytes,
// so its entries hash and link exactly like the primary's.
func EntryBody(e Entry) ([]byte, error) { return e.encode() }

// DecodeEntry decodes an entry object's body (untrusted). It checks the
// form, not the chain: Accept checks an entry against a catalog.
func DecodeEntry(body []byte) (Entry, error) { return decodeEntry(body) }

// Accept checks e as the next entry of c by the rules Load applies to the
// entry object named key (seq, hash, link to the previous entry, epoch,
// watermark, segments, merges, debris) and folds it in. A rejected entry
// is a *ChainError and leaves c unchanged.
func (c *Catalog) Accept(key string, e Entry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	seq, ok := parseSeqKey(EntriesPrefix, key)
	if !ok || seq != c.next {
		return &ChainError{Seq: c.next, Key: key, Reason: fmt.Sprintf("expected entry %d next", c.next)}
	}
	if reason := c.check(e); reason != "" {
		return &ChainError{Seq: seq, Key: key, Reason: reason}
	}
	c.apply(e)
	return nil
}

// EntrySeq returns the seq an entry key names; false for any other key.
func EntrySeq(key string) (uint64, bool) { return parseSeqKey(EntriesPrefix, key) }

// CheckpointSeq returns the seq a checkpoint key names; false for any
// other key.
func CheckpointSeq(key string) (uint64, bool) { return parseSeqKey(CheckpointsPrefix, key) }

// EpochNumber returns the epoch an epoch key names; false for any other key.
func EpochNumber(key string) (uint64, bool) { return parseSeqKey(EpochsPrefix, key) }

// DebrisRefs returns the recorded debris still in the catalog, in key order.
func (c *Catalog) DebrisRefs() []DebrisRef {
	c.mu.RLock()
	defer c.mu.RUnlock()
	recs := c.sortedDebris()
	out := make([]DebrisRef, len(recs))
	for i, r := range recs {
		out[i] = r.DebrisRef
	}
	return out
}

// VerifyCheckpoint reads checkpoint seq from store and checks its digest
// and its link to entry seq, as Load does before trusting it.
func VerifyCheckpoint(ctx context.Context, store objstore.Store, seq uint64) error {
	_, _, err := readCheckpoint(ctx, store, seq)
	return err
}

// WriteCheckpoint writes the checkpoint of c's current state to store as
// a Writer does (forgetting first the debris and superseded records whose
// objects store no longer holds). A copy writes its own checkpoints rather
// than the primary's: they record what the copy's own gc has left, so
// each store keeps superseded objects for its own grace.
func WriteCheckpoint(ctx context.Context, store objstore.Store, c *Catalog, writer string, now time.Time) error {
	if err := c.prune(ctx, store); err != nil {
		return err
	}
	return writeCheckpoint(ctx, store, c, writer, now)
}
