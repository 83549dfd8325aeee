package archive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// debrisLookback is how far before the durable watermark's commit time a
// sweep starts listing. A writer's unfinished upload holds transactions
// after the watermark, whose commit times trail the watermark's by no more
// than concurrent commits take to reach the WAL; an hour is ample.
const debrisLookback = time.Hour

// sweepDebris records, in one catalog entry, the segment objects that an
// earlier writer uploaded but never listed: it crashed, or was fenced,
// between the upload and the entry. Their transactions lie after the
// durable watermark, so this term archives them again (in the same object
// when it produces the same key, which then becomes listed). Recording the
// leftovers lets verify tell them from objects nobody wrote.
//
// It runs at the start of a term, before anything is uploaded, so every
// unknown object above the watermark is another writer's. Objects at or
// below the watermark, or that are not intact segments of this archive,
// are left alone and logged: verify reports them.
func (s *session) sweepDebris(ctx context.Context) error {
	after := ""
	if !s.durable.CommitTime.IsZero() {
		after = segment.BucketPrefix(s.durable.CommitTime.Add(-debrisLookback))
	}
	objs, err := s.a.deps.Store.List(ctx, segment.KeyPrefix, after)
	if err != nil {
		return fmt.Errorf("list segments: %w", err)
	}
	var refs []catalog.DebrisRef
	for _, o := range objs {
		if s.cat.Known(o.Key) {
			continue
		}
		ref, why, err := s.inspectDebris(ctx, o)
		if err != nil {
			return err
		}
		if why != "" {
			s.log.Warn("unlisted segment object left alone; verify reports it", "key", o.Key, "reason", why)
			continue
		}
		refs = append(refs, ref)
		if len(refs) == catalog.MaxDebrisPerEntry {
			break // the rest at the next term's start
		}
	}
	if len(refs) == 0 {
		return nil
	}
	if err := s.record(ctx, s.durable, func() (catalog.Entry, error) { return s.cw.AppendDebris(ctx, refs) }); err != nil {
		return fmt.Errorf("record debris: %w", err)
	}
	debrisRecordedTotal.Add(float64(len(refs)))
	for _, r := range refs {
		s.log.Info("recorded debris of an interrupted upload", "key", r.Key, "bytes", r.Size, "catalog_seq", s.seq)
	}
	return nil
}

// inspectDebris returns the debris record of an unknown object, or why it
// is not debris this archiver may record. The error is a context end.
func (s *session) inspectDebris(ctx context.Context, o objstore.ObjectInfo) (catalog.DebrisRef, string, error) {
	info, err := segment.ParseKey(o.Key)
	switch {
	case err != nil:
		return catalog.DebrisRef{}, "not a segment key", nil
	case info.FirstEndLSN <= s.durable.LSN:
		return catalog.DebrisRef{}, fmt.Sprintf("it starts at %s, at or below the watermark %s: not an unfinished upload", info.FirstEndLSN, s.durable.LSN), nil
	}
	limit := max(2*s.a.cfg.SegmentMaxBytes, 64<<20)
	data, err := objstore.ReadAll(ctx, s.a.deps.Store, o.Key, limit)
	var tooLarge *objstore.TooLargeError
	switch {
	case ctx.Err() != nil:
		return catalog.DebrisRef{}, "", ctx.Err()
	case errors.As(err, &tooLarge):
		return catalog.DebrisRef{}, "larger than any segment this archiver writes", nil
	case err != nil:
		return catalog.DebrisRef{}, fmt.Sprintf("unreadable: %v", err), nil
	}
	ref, _, err := catalog.DescribeSegment(o.Key, data, s.a.deps.Keyring)
	switch {
	case err != nil:
		return catalog.DebrisRef{}, fmt.Sprintf("not an intact segment: %v", err), nil
	case ref.FirstEndLSN != info.FirstEndLSN || ref.LastEndLSN != info.LastEndLSN:
		return catalog.DebrisRef{}, fmt.Sprintf("its trailer (%s…%s) disagrees with its key", ref.FirstEndLSN, ref.LastEndLSN), nil
	}
	return ref.AsDebris(), "", nil
}

var debrisRecordedTotal = promauto.NewCounter(prometheus.CounterOpts{
	Name: "tidemark_archiver_debris_recorded_total",
	Help: "Segment objects left by interrupted uploads and recorded as debris in the catalog.",
})
