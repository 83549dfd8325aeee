package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/internal/objstore"
)

// Merge limits. A merge entry must fit in MaxEntryBytes.
const (
	// MaxLevel is the highest segment level (levels 1…MaxLevel are merges).
	MaxLevel = 8
	// MaxMergeInputs bounds the segments one merge replaces.
	MaxMergeInputs = 2048
)

// Merge records that one merged segment (Output, level ≥ 1) replaced
// consecutive live segments of one table (Inputs, in chain order). The
// output holds exactly the inputs' events in order: its EventsDigest is
// the digest of their concatenated events, which the merger computed from
// the inputs (each checked against its SHA-256 here) and verify recomputes.
// The inputs stop being live; they are superseded objects that garbage
// collection deletes after its grace period.
type Merge struct {
	// Inputs are the replaced segments, in chain order.
	Inputs []MergeInput `json:"inputs"`
	// Output is the merged segment.
	Output SegmentRef `json:"output"`
}

// MergeInput identifies one replaced segment object.
type MergeInput struct {
	// Key is the object key.
	Key string `json:"key"`
	// Size and SHA256 are those the catalog listed for it.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Input returns the merge-input record of the segment r describes.
func (r SegmentRef) Input() MergeInput { return MergeInput{Key: r.Key, Size: r.Size, SHA256: r.SHA256} }

// SupersededRef is a segment object a merge replaced: no longer read by
// restores, kept until garbage collection deletes it after a grace period.
type SupersededRef struct {
	MergeInput
	// Seq is the merge entry that superseded it.
	Seq uint64 `json:"seq"`
	// At is that entry's time (the writer's clock): GC deletes the object
	// once At is older than its grace period.
	At time.Time `json:"at"`
}

// checkMerge reports why m cannot be applied to the catalog, or "". The
// inputs must be live, consecutive among their table's live segments, in
// order; the output must continue exactly where they start and end.
func (c *Catalog) checkMerge(m *Merge) string {
	if len(m.Inputs) < 2 || len(m.Inputs) > MaxMergeInputs {
		return fmt.Sprintf("merge of %d inputs (2…%d)", len(m.Inputs), MaxMergeInputs)
	}
	out := &m.Output
	if reason := checkSegment(out); reason != "" {
		return "merge output: " + reason
	}
	if out.Level < 1 || !isSHA256Hex(out.EventsDigest) {
		return "merge output needs a level ≥ 1 and an events digest"
	}
	if reason := c.checkNewKey(out.Key); reason != "" {
		return "merge output: " + reason
	}
	ins, reason := c.liveRun(m.Inputs)
	if reason != "" {
		return reason
	}
	return checkMergeOutput(ins, out)
}

// checkNewKey reports why key cannot be listed as a new segment, or "".
func (c *Catalog) checkNewKey(key string) string {
	if seq, ok := c.keys[key]; ok {
		return fmt.Sprintf("segment %s is already listed by entry %d", key, seq)
	}
	if s, ok := c.superseded[key]; ok {
		return fmt.Sprintf("segment %s was superseded by merge entry %d", key, s.Seq)
	}
	return ""
}

// liveRun returns the live segments the inputs name, checking they are
// consecutive in the live order of one table.
func (c *Catalog) liveRun(inputs []MergeInput) ([]SegmentRef, string) {
	i := -1
	if _, ok := c.keys[inputs[0].Key]; ok {
		i = c.indexOf(inputs[0].Key)
	}
	if i < 0 {
		return nil, fmt.Sprintf("merge input %s is not a live segment", inputs[0].Key)
	}
	table := c.segments[i].Table
	var out []SegmentRef
	for k, in := range inputs {
		for i < len(c.segments) && c.segments[i].Table != table {
			i++ // another table's segment between two of this table's
		}
		if i >= len(c.segments) || c.segments[i].Key != in.Key {
			return nil, fmt.Sprintf("merge input %d (%s) does not follow input %d among the live segments of %s", k, in.Key, k-1, table)
		}
		s := c.segments[i]
		if s.Size != in.Size || s.SHA256 != in.SHA256 {
			return nil, fmt.Sprintf("merge input %s differs from the listed segment", in.Key)
		}
		out = append(out, s)
		i++
	}
	return out, ""
}

// checkMergeOutput reports how out fails to describe the inputs' events.
func checkMergeOutput(ins []SegmentRef, out *SegmentRef) string {
	first, last := ins[0], ins[len(ins)-1]
	events, txns := 0, 0
	minT, maxT := first.MinCommitTime, first.MaxCommitTime
	for _, s := range ins {
		if s.Table != out.Table || s.TableID != out.TableID {
			return fmt.Sprintf("merge input %s is of table %s (%s), the output of %s (%s)", s.Key, s.Table, s.TableID, out.Table, out.TableID)
		}
		if s.Level >= out.Level {
			return fmt.Sprintf("merge input %s has level %d, not below the output's %d", s.Key, s.Level, out.Level)
		}
		events += s.Events
		txns += s.Transactions
		if s.Events > 0 {
			minT, maxT = earlier(minT, s.MinCommitTime), later(maxT, s.MaxCommitTime)
		}
	}
	switch {
	case out.Events != events:
		return fmt.Sprintf("merge output holds %d events, its inputs %d", out.Events, events)
	case out.Transactions > txns || (events > 0 && out.Transactions == 0):
		return fmt.Sprintf("merge output holds %d transactions, its inputs %d", out.Transactions, txns)
	case out.FirstEndLSN != first.FirstEndLSN || out.PrevLSN != first.PrevLSN || out.LastEndLSN != last.LastEndLSN:
		return fmt.Sprintf("merge output spans %s…%s (prev %s), its inputs %s…%s (prev %s)",
			out.FirstEndLSN, out.LastEndLSN, out.PrevLSN, first.FirstEndLSN, last.LastEndLSN, first.PrevLSN)
	case events > 0 && (!out.MinCommitTime.Equal(minT) || !out.MaxCommitTime.Equal(maxT)):
		return fmt.Sprintf("merge output commit times %s…%s, its inputs %s…%s", out.MinCommitTime, out.MaxCommitTime, minT, maxT)
	}
	return ""
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// indexOf returns the index of the live segment key, or -1.
func (c *Catalog) indexOf(key string) int {
	for i, s := range c.segments {
		if s.Key == key {
			return i
		}
	}
	return -1
}

// applyMerge replaces the checked merge's inputs by its output, at the
// position of the first input.
func (c *Catalog) applyMerge(m *Merge, seq uint64, at time.Time) {
	gone := make(map[string]bool, len(m.Inputs))
	for _, in := range m.Inputs {
		gone[in.Key] = true
		delete(c.keys, in.Key)
		c.superseded[in.Key] = SupersededRef{MergeInput: in, Seq: seq, At: at.UTC()}
	}
	segs := make([]SegmentRef, 0, len(c.segments)-len(m.Inputs)+1)
	seqs := make([]uint64, 0, cap(segs))
	placed := false
	for i, s := range c.segments {
		if !gone[s.Key] {
			segs, seqs = append(segs, s), append(seqs, c.segSeqs[i])
			continue
		}
		if !placed {
			segs, seqs = append(segs, m.Output), append(seqs, seq)
			placed = true
		}
	}
	c.segments, c.segSeqs = segs, seqs
	c.keys[m.Output.Key] = seq
	delete(c.debris, m.Output.Key) // a crashed merge's upload, recorded as debris, adopted
}

// Superseded returns the objects merges replaced that are still recorded
// (GC has not been seen to delete them), in key order.
func (c *Catalog) Superseded() []SupersededRef {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.sortedSuperseded()
}

func (c *Catalog) sortedSuperseded() []SupersededRef {
	out := make([]SupersededRef, 0, len(c.superseded))
	for _, s := range c.superseded {
		out = append(out, s)
	}
	sortByKey(out, func(s SupersededRef) string { return s.Key })
	return out
}

// SegmentsOf returns the live segments of table in chain order.
func (c *Catalog) SegmentsOf(table string) []SegmentRef {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []SegmentRef
	for _, s := range c.segments {
		if s.Table == table {
			out = append(out, s)
		}
	}
	return out
}

// prune forgets superseded and debris records whose objects are gone (GC
// deleted them), so checkpoints list only what is in the store. It lists
// segments/ only when there is something to prune.
func (c *Catalog) prune(ctx context.Context, store objstore.Store) error {
	c.mu.RLock()
	n := len(c.superseded) + len(c.debris)
	c.mu.RUnlock()
	if n == 0 {
		return nil
	}
	objs, err := store.List(ctx, SegmentsPrefix, "")
	if err != nil {
		return fmt.Errorf("catalog: list segments: %w", err)
	}
	present := make(map[string]bool, len(objs))
	for _, o := range objs {
		present[o.Key] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.superseded {
		if !present[k] {
			delete(c.superseded, k)
		}
	}
	for k := range c.debris {
		if !present[k] {
			delete(c.debris, k)
		}
	}
	return nil
}
