package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// DefaultMaxSegmentBytes bounds one downloaded segment (stored bytes).
const DefaultMaxSegmentBytes = 1 << 30

// fetched is one planned segment, downloaded, verified against its catalog
// entry, decoded, and reduced to the events the restore selects.
type fetched struct {
	ref    catalog.SegmentRef
	index  int         // position in the plan
	table  event.Table // the archived definition
	events []*event.Event
	err    error
}

// fetcher downloads and decodes segments.
type fetcher struct {
	store   objstore.Store
	keyring *segment.Keyring
	target  time.Time
	// maxEnd, when set, is the watermark's position: events beyond it belong
	// to a transaction the archive does not hold whole yet (a large one
	// streamed into several segments), whatever their commit time.
	maxEnd   event.Position
	filter   Filter
	maxBytes int64
	progress *Progress
}

// fetch downloads ref, checks its size and SHA-256 against the catalog,
// decodes it (which verifies it again) and selects its events. Any failure
// names the object; nothing is returned from a segment that fails.
func (f *fetcher) fetch(ctx context.Context, ref catalog.SegmentRef) (*fetched, error) {
	limit := f.maxBytes
	if limit <= 0 {
		limit = DefaultMaxSegmentBytes
	}
	if ref.Size > limit {
		return nil, failf(ErrIntegrity, "raise --max-segment-bytes if the segment is legitimately this large",
			"segment %s: catalog size %d exceeds the %d-byte limit", ref.Key, ref.Size, limit)
	}
	data, err := objstore.ReadAll(ctx, f.store, ref.Key, ref.Size, objstore.WithRetry(objstore.DefaultRetry))
	if err != nil {
		return nil, f.downloadFailure(ref, err)
	}
	if int64(len(data)) != ref.Size {
		return nil, failf(ErrIntegrity, "restorer verify --store URL",
			"segment %s is corrupt: %d bytes, the catalog says %d", ref.Key, len(data), ref.Size)
	}
	if sum := sha256.Sum256(data); ref.SHA256 != "" && hex.EncodeToString(sum[:]) != ref.SHA256 {
		return nil, failf(ErrIntegrity, "restorer verify --store URL",
			"segment %s is corrupt: SHA-256 %s does not match the catalog's %s", ref.Key, hex.EncodeToString(sum[:8]), shortHash(ref.SHA256))
	}
	f.progress.BytesDownloaded.Add(int64(len(data)))
	seg, err := segment.Decode(ref.Key, data, segment.ReadOptions{Keyring: f.keyring})
	switch {
	case errors.Is(err, segment.ErrNoKey):
		return nil, withHint(ErrKey, err, "pass the key file holding that key with --encryption-key-file (keep old keys in it after a rotation)")
	case errors.Is(err, segment.ErrCorrupt):
		return nil, withHint(ErrIntegrity, err, "restorer verify --store URL")
	case err != nil:
		return nil, fmt.Errorf("decode segment %s: %w", ref.Key, err)
	}
	if err := checkAgainstCatalog(ref, seg); err != nil {
		return nil, err
	}
	out := &fetched{ref: ref, table: seg.Header.Table}
	m := f.filter.compile(event.LayoutOf(seg.Header.Table))
	for _, e := range seg.Events {
		if !e.CommitTime.After(f.target) && (f.maxEnd == 0 || e.EndLSN <= f.maxEnd) && m.match(e) {
			out.events = append(out.events, e)
		}
	}
	return out, nil
}

// downloadFailure classifies the failure to download ref.
func (f *fetcher) downloadFailure(ref catalog.SegmentRef, err error) error {
	var tooLarge *objstore.TooLargeError
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		return failf(ErrIntegrity, "restorer verify --store URL; restore to an earlier instant, or recover the object from a bucket version or replica",
			"segment %s is in the catalog but missing from %s", ref.Key, f.store)
	case errors.As(err, &tooLarge):
		return failf(ErrIntegrity, "restorer verify --store URL",
			"segment %s is corrupt: larger than the catalog's %d bytes", ref.Key, ref.Size)
	}
	if serr := storeProblem(f.store, err); serr != nil {
		return serr
	}
	return fmt.Errorf("download segment %s: %w", ref.Key, err)
}

// checkAgainstCatalog compares a decoded segment with its catalog entry.
func checkAgainstCatalog(ref catalog.SegmentRef, seg *segment.Segment) error {
	bad := func(format string, args ...any) error {
		return failf(ErrIntegrity, "restorer verify --store URL",
			"segment %s disagrees with the catalog: %s", ref.Key, fmt.Sprintf(format, args...))
	}
	tr := seg.Trailer
	switch {
	case len(seg.Events) != ref.Events || tr.Events != ref.Events:
		return bad("%d events, the catalog says %d", len(seg.Events), ref.Events)
	case seg.Header.Table.QualifiedName() != ref.Table:
		return bad("table %s, the catalog says %s", seg.Header.Table.QualifiedName(), ref.Table)
	case ref.TableID != "" && seg.Header.Table.ID() != ref.TableID:
		return bad("table definition %s, the catalog says %s", seg.Header.Table.ID(), ref.TableID)
	case tr.LastEndLSN != ref.LastEndLSN || tr.FirstEndLSN != ref.FirstEndLSN || tr.PrevLSN != ref.PrevLSN:
		return bad("chain positions %s…%s (prev %s), the catalog says %s…%s (prev %s)",
			tr.FirstEndLSN, tr.LastEndLSN, tr.PrevLSN, ref.FirstEndLSN, ref.LastEndLSN, ref.PrevLSN)
	case ref.Events > 0 && (!tr.MinCommitTime.Equal(ref.MinCommitTime) || !tr.MaxCommitTime.Equal(ref.MaxCommitTime)):
		return bad("commit times %s…%s, the catalog says %s…%s", FormatTime(tr.MinCommitTime), FormatTime(tr.MaxCommitTime),
			FormatTime(ref.MinCommitTime), FormatTime(ref.MaxCommitTime))
	}
	for i, e := range seg.Events {
		if e.CommitTime.Before(ref.MinCommitTime) || e.CommitTime.After(ref.MaxCommitTime) {
			return bad("event %d commit time %s outside the catalog's range", i, FormatTime(e.CommitTime))
		}
		if e.Table != ref.Table || len(e.Values) != len(seg.Header.Table.Columns) {
			return bad("event %d belongs to %s with %d values", i, e.Table, len(e.Values))
		}
	}
	return nil
}

func shortHash(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

// pipeline fetches refs with up to parallel downloads and decodes in flight
// and hands them out in plan order. A slot is held from the start of a
// download until the consumer calls release, so at most parallel decoded
// segments wait in memory whatever the archive's size.
type pipeline struct {
	keepGoing bool // deliver every segment, failed or not (verify)
	out       chan *fetched
	slots     chan struct{}
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

func startPipeline(ctx context.Context, f *fetcher, refs []catalog.SegmentRef, parallel int) *pipeline {
	return startPipelineWith(ctx, f.fetch, refs, parallel, false)
}

// startPipelineWith runs fetch over refs; with keepGoing a failed segment
// does not stop the ones after it.
func startPipelineWith(ctx context.Context, fetch func(context.Context, catalog.SegmentRef) (*fetched, error),
	refs []catalog.SegmentRef, parallel int, keepGoing bool) *pipeline {
	if parallel < 1 {
		parallel = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &pipeline{keepGoing: keepGoing, out: make(chan *fetched), slots: make(chan struct{}, parallel), cancel: cancel}
	pending := make(chan chan *fetched, parallel)
	p.wg.Add(2)
	go func() { // dispatcher: starts downloads in plan order as slots free up
		defer p.wg.Done()
		defer close(pending)
		for i, ref := range refs {
			select {
			case p.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			ch := make(chan *fetched, 1)
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				r, err := fetch(ctx, ref)
				if err != nil {
					r = &fetched{ref: ref, err: err}
				}
				r.index = i
				ch <- r
			}()
			select {
			case pending <- ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { // orderer: hands results out in plan order
		defer p.wg.Done()
		defer close(p.out)
		for ch := range pending {
			var r *fetched
			select {
			case r = <-ch:
			case <-ctx.Done():
				return
			}
			select {
			case p.out <- r:
			case <-ctx.Done():
				return
			}
			if r.err != nil && !p.keepGoing {
				return
			}
		}
	}()
	return p
}

// next returns the next segment in plan order, false when all are done.
// A failed segment comes back with err set, and nothing follows it.
func (p *pipeline) next(ctx context.Context) (*fetched, bool, error) {
	select {
	case r, ok := <-p.out:
		if !ok {
			return nil, false, ctx.Err()
		}
		if r.err != nil {
			return nil, false, r.err
		}
		return r, true, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// nextAny returns the next segment in plan order, failed (err set) or not;
// false when all are done.
func (p *pipeline) nextAny(ctx context.Context) (*fetched, bool) {
	select {
	case r, ok := <-p.out:
		return r, ok
	case <-ctx.Done():
		return nil, false
	}
}

// release frees the slot of a segment the consumer has taken.
func (p *pipeline) release() { <-p.slots }

// stop cancels outstanding downloads and waits for them.
func (p *pipeline) stop() {
	p.cancel()
	p.wg.Wait()
}

// preflight lists the segment objects and checks that every planned one is
// present with the size the catalog records, so a missing or truncated
// segment stops the restore before it writes anything at all. (Damage
// inside an object is caught when it is downloaded, before any of its rows
// are written.)
func preflight(ctx context.Context, store objstore.Store, refs []catalog.SegmentRef) error {
	if len(refs) == 0 {
		return nil
	}
	objs, err := store.List(ctx, catalog.SegmentsPrefix, "")
	if err != nil {
		if serr := storeProblem(store, err); serr != nil {
			return serr
		}
		return fmt.Errorf("list segments in %s: %w", store, err)
	}
	sizes := make(map[string]int64, len(objs))
	for _, o := range objs {
		sizes[o.Key] = o.Size
	}
	for _, r := range refs {
		size, ok := sizes[r.Key]
		switch {
		case !ok:
			return failf(ErrIntegrity, "restorer verify --store URL; restore to an instant before the segment's commits, or recover the object",
				"segment %s is in the catalog but missing from %s (it holds commits %s … %s)", r.Key, store,
				FormatTime(r.MinCommitTime), FormatTime(r.MaxCommitTime))
		case size != r.Size:
			return failf(ErrIntegrity, "restorer verify --store URL",
				"segment %s is corrupt: %d bytes in the store, the catalog says %d", r.Key, size, r.Size)
		}
	}
	return nil
}
