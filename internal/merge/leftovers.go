package merge

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/segment"
)

// RecordLeftovers records as debris the merged segments an interrupted
// merge stored but never recorded, so verify can tell them from injected
// objects and GC deletes them. It runs at the start of a writer's term,
// before the first merge. Objects that are not intact segments of this
// archive are left alone for verify to report. It returns how many it
// recorded.
func (m *Merger) RecordLeftovers(ctx context.Context) (int, error) {
	objs, err := m.Store.List(ctx, catalog.SegmentsPrefix, "")
	if err != nil {
		return 0, fmt.Errorf("merge: list segments: %w", err)
	}
	var refs []catalog.DebrisRef
	for _, o := range objs {
		info, err := segment.ParseKey(o.Key)
		if err != nil || info.Level == 0 || m.Catalog.Known(o.Key) {
			continue
		}
		ref, err := m.describe(ctx, o.Key)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			m.log().Warn("unlisted merged segment is not an intact segment of this archive; leaving it for verify", "key", o.Key, "err", err)
			continue
		}
		refs = append(refs, ref.AsDebris())
	}
	recorded := len(refs)
	for len(refs) > 0 {
		n := min(len(refs), catalog.MaxDebrisPerEntry)
		if _, err := m.Writer.AppendDebris(ctx, refs[:n]); err != nil {
			return 0, fmt.Errorf("merge: record leftovers: %w", err)
		}
		leftoversRecordedTotal.Add(float64(n))
		refs = refs[n:]
	}
	return recorded, nil
}

// tempPattern names every temporary file a merge creates (outputs, inputs
// and objects read back), so a new term can find a crashed term's files.
const tempPattern = "tidemark-merge-*"

// RemoveStaleTemp deletes the temporary files merges of earlier terms left
// in TempDir when their process was killed (kill -9, OOM). It runs at the
// start of a term, before the first merge; a file a paused, deposed writer
// still has open is only unlinked, which that writer does not notice. It
// returns how many it removed.
func (m *Merger) RemoveStaleTemp() (int, error) {
	dir := m.TempDir
	if dir == "" {
		dir = os.TempDir()
	}
	names, err := filepath.Glob(filepath.Join(dir, tempPattern))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		if err := os.Remove(name); err == nil {
			n++
		}
	}
	return n, nil
}
