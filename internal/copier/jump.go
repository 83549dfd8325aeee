package copier

import (
	"context"
	"errors"
	"fmt"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
)

// jump starts the copy from the primary's newest checkpoint when the
// primary no longer has the next entry the copy needs: its gc folded it
// (a new copy of an old archive, or a copy that was unreachable for longer
// than the primary's gc grace). It copies every object the primary's
// catalog still needs (live segments; superseded and debris objects while
// the primary keeps them), then the checkpoint and its entry, and removes
// the copy's own entries and checkpoints the checkpoint folds, as the
// copy's gc would, so the copy's chain starts at the checkpoint without a
// gap. No history is lost: the checkpoint holds the state the folded
// entries built.
func (c *Copy) jump(ctx context.Context, st *Status) error {
	src, err := catalog.Load(ctx, c.primary)
	if err != nil {
		return fmt.Errorf("load the primary's catalog: %w", err)
	}
	c.src = src
	k := src.Checkpoint()
	next := c.dst.NextSeq()
	if k == 0 || k < next {
		return fmt.Errorf("the primary lacks entry %d, which the copy needs, and has no checkpoint past it: its catalog is damaged (Try: restorer verify --store PRIMARY)", next)
	}
	c.log.Warn("the primary no longer has the entries the copy lacks; starting the copy from the primary's checkpoint",
		"copy_next", next, "checkpoint", k)
	if err := c.copyState(ctx, src, st); err != nil {
		return err
	}
	if err := c.copyCatalogObject(ctx, catalog.CheckpointKey(k), catalog.MaxCheckpointBytes); err != nil {
		return err
	}
	if err := c.putEntry(ctx, src.Entries()[0]); err != nil {
		return err
	}
	if err := catalog.VerifyCheckpoint(ctx, c.dest, k); err != nil {
		return fmt.Errorf("the checkpoint copied to the copy does not verify: %w", err)
	}
	c.dropFolded(ctx, k)
	dst, err := catalog.Load(ctx, c.dest)
	if err != nil {
		return fmt.Errorf("load the copy's catalog after starting it from checkpoint %d: %w", k, err)
	}
	if dst.NextSeq() != k+1 {
		return fmt.Errorf("the copy's catalog ends at entry %d after starting it from checkpoint %d", dst.NextSeq()-1, k)
	}
	c.dst = dst
	c.dropUnknown(ctx, src)
	st.Jumped = true
	jumps.WithLabelValues(c.Name).Inc()
	return nil
}

// copyState copies every object src's catalog still records.
func (c *Copy) copyState(ctx context.Context, src *catalog.Catalog, st *Status) error {
	for _, s := range src.Segments() {
		if err := c.copyObject(ctx, objectRef{s.Key, s.Size, s.SHA256, false, false}, st); err != nil {
			return err
		}
	}
	for _, s := range src.Superseded() {
		if err := c.copyObject(ctx, objectRef{s.Key, s.Size, s.SHA256, true, false}, st); err != nil {
			return err
		}
	}
	for _, d := range src.DebrisRefs() {
		if err := c.copyObject(ctx, objectRef{d.Key, d.Size, d.SHA256, true, false}, st); err != nil {
			return err
		}
	}
	return nil
}

// dropFolded deletes the copy's entries and checkpoints before seq k. A
// copy whose store refuses deletion (a retention lock, a role without
// delete permission) keeps them: the copy loads and restores from the
// checkpoint, and its verify reports the gap until they are gone.
func (c *Copy) dropFolded(ctx context.Context, k uint64) {
	for _, prefix := range []string{catalog.CheckpointsPrefix, catalog.EntriesPrefix} {
		objs, err := c.dest.List(ctx, prefix, "")
		if err != nil {
			c.log.Warn("could not list the copy's folded catalog objects", "prefix", prefix, "err", err)
			return
		}
		for _, o := range objs {
			seq, ok := catalog.EntrySeq(o.Key)
			if !ok {
				seq, ok = catalog.CheckpointSeq(o.Key)
			}
			if !ok || seq >= k {
				continue
			}
			if err := c.dest.Delete(ctx, o.Key); err != nil && !errors.Is(err, objstore.ErrNotFound) {
				c.log.Warn("could not delete a folded catalog object from the copy", "key", o.Key, "err", err)
				return
			}
		}
	}
}

// dropUnknown deletes the copy's segment objects that neither the copy's
// catalog (now started from the primary's checkpoint) nor the primary's
// records: superseded objects of the folded entries, which the primary's
// gc has deleted and which the copy's gc could no longer find. Left, verify
// would call them unlisted. Best effort, like dropFolded.
func (c *Copy) dropUnknown(ctx context.Context, src *catalog.Catalog) {
	objs, err := c.dest.List(ctx, catalog.SegmentsPrefix, "")
	if err != nil {
		c.log.Warn("could not list the copy's segments", "err", err)
		return
	}
	for _, o := range objs {
		if c.dst.Known(o.Key) || src.Known(o.Key) {
			continue
		}
		if err := c.dest.Delete(ctx, o.Key); err != nil && !errors.Is(err, objstore.ErrNotFound) {
			c.log.Warn("could not delete a superseded object the copy no longer records", "key", o.Key, "err", err)
			return
		}
	}
}
