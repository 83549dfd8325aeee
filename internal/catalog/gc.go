package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// DefaultGCGrace is how long an object stays after it stops being needed
// before Collect deletes it. A restore that finds a planned object gone
// re-plans from the catalog, so the grace need not outlast every restore;
// it keeps the common case (a restore or a Load in flight) undisturbed.
const DefaultGCGrace = 10 * time.Minute

// GCOptions configures Collect.
type GCOptions struct {
	// Grace is how long an object is kept after it stopped being needed;
	// 0 means DefaultGCGrace.
	Grace time.Duration
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
}

// GCResult says what Collect deleted (or, on a dry run, would delete).
type GCResult struct {
	// Segments and SegmentBytes count superseded segment objects.
	Segments     int   `json:"segments"`
	SegmentBytes int64 `json:"segment_bytes"`
	// Debris counts debris objects.
	Debris int `json:"debris"`
	// Entries and Checkpoints count catalog objects folded by a newer
	// checkpoint.
	Entries     int `json:"entries"`
	Checkpoints int `json:"checkpoints"`
	// KeptInGrace counts objects no longer needed but still in their grace.
	KeptInGrace int `json:"kept_in_grace"`
	// FoldedBy is the checkpoint the oldest kept entry starts from (0: none
	// was old enough, no entry was deleted).
	FoldedBy uint64 `json:"folded_by"`
	// Deleted lists the keys, in deletion order.
	Deleted []string `json:"deleted,omitempty"`
}

// Collect deletes what the archive no longer needs, once it has not been
// needed for the grace period: segment objects merges superseded, debris
// that can no longer be adopted (the watermark has passed it), and catalog
// entries and checkpoints older than the newest checkpoint that is itself
// older than the grace. It never deletes a live segment, the entries from
// that checkpoint on, or epochs. Collect needs delete permission on the
// store, which the writing archiver does not; it takes no lease and may run
// beside the archiver.
func Collect(ctx context.Context, store objstore.Store, opts GCOptions) (*GCResult, error) {
	clock := now
	if opts.Clock != nil {
		clock = opts.Clock
	}
	grace := opts.Grace
	if grace <= 0 {
		grace = DefaultGCGrace
	}
	c, err := Load(ctx, store)
	if err != nil {
		return nil, fmt.Errorf("catalog: gc: %w", err)
	}
	g := &collector{store: store, dry: opts.DryRun, cutoff: clock().Add(-grace), res: &GCResult{}}
	if err := g.segments(ctx, c); err != nil {
		return g.res, err
	}
	if err := g.catalog(ctx, c); err != nil {
		return g.res, err
	}
	return g.res, nil
}

type collector struct {
	store  objstore.Store
	dry    bool
	cutoff time.Time
	res    *GCResult
}

func (g *collector) delete(ctx context.Context, key string) error {
	g.res.Deleted = append(g.res.Deleted, key)
	if g.dry {
		return nil
	}
	if err := g.store.Delete(ctx, key); err != nil && !errors.Is(err, objstore.ErrNotFound) {
		return fmt.Errorf("catalog: gc: delete %s: %w", key, err)
	}
	return nil
}

// segments deletes superseded and debris objects past their grace.
func (g *collector) segments(ctx context.Context, c *Catalog) error {
	c.mu.RLock()
	sup := c.sortedSuperseded()
	debris := c.sortedDebris()
	live := make(map[string]bool, len(c.keys))
	for k := range c.keys {
		live[k] = true
	}
	adoptable := c.adoptableDebris(debris)
	wm := c.wm.LSN
	c.mu.RUnlock()
	if len(sup)+len(debris) == 0 {
		return nil
	}
	// Records stay in the catalog until the writer's next checkpoint sees
	// their objects gone: delete (and count) only what is still there.
	present, err := g.present(ctx)
	if err != nil {
		return err
	}
	for _, s := range sup {
		if !present[s.Key] {
			continue
		}
		if live[s.Key] || s.At.After(g.cutoff) {
			g.res.KeptInGrace++
			continue
		}
		if err := g.delete(ctx, s.Key); err != nil {
			return err
		}
		g.res.Segments++
		g.res.SegmentBytes += s.Size
	}
	for _, d := range debris {
		if !present[d.Key] {
			continue
		}
		// Debris above the watermark may still be adopted by the writer
		// re-archiving those positions; past it, no new segment can list it.
		// A merge's leftover lies below the watermark: it may be adopted
		// while its inputs are live.
		if live[d.Key] || d.At.After(g.cutoff) || d.LastEndLSN > wm || adoptable[d.Key] {
			g.res.KeptInGrace++
			continue
		}
		if err := g.delete(ctx, d.Key); err != nil {
			return err
		}
		g.res.Debris++
	}
	return nil
}

// present lists the segment objects in the store.
func (g *collector) present(ctx context.Context) (map[string]bool, error) {
	objs, err := g.store.List(ctx, SegmentsPrefix, "")
	if err != nil {
		return nil, fmt.Errorf("catalog: gc: list segments: %w", err)
	}
	out := make(map[string]bool, len(objs))
	for _, o := range objs {
		out[o.Key] = true
	}
	return out, nil
}

// adoptableDebris returns the debris keys that are an interrupted merge's
// output whose inputs may still be live: a live segment of the same table
// and a lower level overlaps its positions. Merging those again produces
// the same key, and the writer adopts the object it finds there, so gc
// must not delete it — a deletion after gc's Load and after the adoption
// would remove a live segment. Once no such segment is live, no group can
// produce the key again. The caller holds c.mu.
func (c *Catalog) adoptableDebris(debris []debrisRecord) map[string]bool {
	out := map[string]bool{}
	for _, d := range debris {
		info, err := segment.ParseKey(d.Key)
		if err != nil || info.Level == 0 {
			continue
		}
		for _, s := range c.segments {
			if s.TableID == info.TableID && s.Level < info.Level && s.FirstEndLSN <= d.LastEndLSN && d.FirstEndLSN <= s.LastEndLSN {
				out[d.Key] = true
				break
			}
		}
	}
	return out
}

// catalog deletes entries and checkpoints folded by the newest checkpoint
// written before the cutoff, which Load and Verify then start from.
func (g *collector) catalog(ctx context.Context, c *Catalog) error {
	objs, err := g.store.List(ctx, CheckpointsPrefix, "")
	if err != nil {
		return fmt.Errorf("catalog: gc: list checkpoints: %w", err)
	}
	seqs := sortedSeqKeys(objs, CheckpointsPrefix)
	var base uint64
	for i := len(seqs) - 1; i >= 0 && base == 0; i-- {
		if seqs[i] > c.NextSeq()-1 {
			continue // beyond the chain this collector loaded
		}
		cp, _, err := readCheckpoint(ctx, g.store, seqs[i])
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue // unusable: never collect on its word
		}
		if !cp.Written.After(g.cutoff) {
			base = seqs[i]
		}
	}
	if base == 0 {
		return nil
	}
	g.res.FoldedBy = base
	for _, seq := range seqs {
		if seq >= base {
			break
		}
		if err := g.delete(ctx, CheckpointKey(seq)); err != nil {
			return err
		}
		g.res.Checkpoints++
	}
	entries, err := g.store.List(ctx, EntriesPrefix, "")
	if err != nil {
		return fmt.Errorf("catalog: gc: list entries: %w", err)
	}
	for _, o := range entries {
		seq, ok := parseSeqKey(EntriesPrefix, o.Key)
		if !ok {
			continue // not an entry: Load and Verify report it
		}
		if seq >= base {
			break
		}
		if err := g.delete(ctx, o.Key); err != nil {
			return err
		}
		g.res.Entries++
	}
	return nil
}
