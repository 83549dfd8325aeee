package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/merge"
)

// mergeBacklog stops the archiver and merges every live segment of the
// backlog (those whose commits end by the backlog's last commit) into one
// merged segment of the top level, as the day merge of a busy day would,
// with the real merger holding the catalog lease.
func (r *runner) mergeBacklog(ctx context.Context) error {
	if err := r.archiver.Stop(30 * time.Second); err != nil {
		return fmt.Errorf("stop archiver: %w", err)
	}
	end, _, err := CommitTimeAt(ctx, r.h.SourceURL, streamPrefix, r.res.Load.Events)
	if err != nil {
		return err
	}
	lease, err := catalog.AcquireLease(ctx, r.store, "bench-merger", time.Hour)
	if err != nil {
		return fmt.Errorf("acquire lease: %w", err)
	}
	defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }()
	cat, err := catalog.Load(ctx, r.store)
	if err != nil {
		return err
	}
	var g merge.Group
	for _, s := range cat.Segments() {
		if s.MaxCommitTime.After(end) {
			break
		}
		g.Inputs = append(g.Inputs, s)
	}
	if len(g.Inputs) == 1 && g.Inputs[0].Level > 0 {
		// The archiver's own merges already made the backlog one segment.
		s := g.Inputs[0]
		r.res.MergedInputs, r.res.MergedBytes, r.res.MergedEvents, r.res.MergedLevel = 1, s.Size, int64(s.Events), s.Level
		r.cfg.Progress("the archiver already merged the backlog into one segment", "level", s.Level, "bytes", s.Size)
		return nil
	}
	if len(g.Inputs) < 2 {
		r.cfg.Progress("the backlog is in one flush segment: nothing to merge", "segments", len(g.Inputs))
		return nil
	}
	g.Level = len(merge.DefaultLevels)
	g.Bucket = g.Inputs[0].MinCommitTime.UTC().Truncate(merge.DefaultLevels[g.Level-1])
	m := &merge.Merger{Store: r.store, Catalog: cat, Writer: catalog.NewWriter(r.store, cat, "bench-merger", lease.Epoch()),
		TempDir: filepath.Join(r.cfg.Dir, "merge-tmp")}
	if err := os.MkdirAll(m.TempDir, 0o755); err != nil {
		return err
	}
	start := time.Now()
	out, _, err := m.Merge(ctx, g)
	if err != nil {
		return err
	}
	r.res.Merge = time.Since(start)
	r.res.MergedInputs, r.res.MergedBytes, r.res.MergedEvents, r.res.MergedLevel = len(g.Inputs), out.Size, int64(out.Events), g.Level
	r.cfg.Progress("merged the backlog", "inputs", len(g.Inputs), "events", out.Events, "bytes", out.Size,
		"seconds", r.res.Merge.Seconds())
	return nil
}

// restoreMerged restores to the backlog's last commit again, now from the
// one merged segment: the restorer's memory must not follow segment size.
func (r *runner) restoreMerged(ctx context.Context) error {
	if r.res.MergedBytes == 0 {
		return nil
	}
	var err error
	r.res.RestoreMerged, _, _, err = r.restoreTo(ctx, r.res.Load.Events, "restore-merged")
	if err == nil && r.res.RestoreMerged.Segments != 1 {
		err = fmt.Errorf("the restore from the merged archive read %d segments, want the 1 merged segment", r.res.RestoreMerged.Segments)
	}
	return err
}
