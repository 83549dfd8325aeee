package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/segment"
)

// chainPos is an event's place in its table's chain. (EndLSN, Index)
// rises strictly along a table's chain, whatever segments hold the events,
// so it identifies how far a restore got across merges.
type chainPos struct {
	End   event.Position
	Index int
}

func posOf(e *event.Event) chainPos { return chainPos{End: e.EndLSN, Index: e.Index} }

// set reports whether p is a position (the zero value is "before everything").
func (p chainPos) set() bool { return p.End != 0 }

// covers reports whether e is at or before p.
func (p chainPos) covers(e *event.Event) bool {
	return p.set() && (e.EndLSN < p.End || e.EndLSN == p.End && e.Index <= p.Index)
}

func (p chainPos) String() string { return fmt.Sprintf("%s#%d", p.End, p.Index) }

// maxReplans bounds how often one restore plans again because planned
// objects disappeared (garbage collection after merges).
var maxReplans = 5

// item is one selected event and where it was read.
type item struct {
	e *event.Event
	// key is the segment the event was read from; offset counts the
	// segment's selected events up to and including e (those restored by
	// an earlier run included), the restore state's old resume rule.
	key    string
	offset int
}

// legacySkip is an interrupted restore recorded by an older restorer, by
// segment key and the number of that segment's selected events restored.
type legacySkip struct {
	key    string
	offset int
}

// chainReader reads the events a restore selects, in chain order: the
// plan's segments are downloaded ahead in the background (bounded), each is
// verified against the catalog and then decoded as a stream, one event at
// a time. It skips the events at or before a position (a resumed restore).
// When a planned object is gone — garbage collection deleted it after a
// merge superseded it — it loads the catalog again, plans the same instant
// and table, and continues after the last event it returned, so no event
// is returned twice or skipped. It is not safe for concurrent use.
type chainReader struct {
	a        *Archive
	target   time.Time
	table    string
	maxEnd   event.Position          // the first plan's watermark: later events are never selected
	diverged []catalog.DivergedRange // left out (unless Options.IncludeDiverged)
	filter   Filter
	f        *fetcher
	parallel int
	progress *Progress

	refs   []catalog.SegmentRef // the current plan's segments still to read
	after  chainPos             // events at or before it are skipped
	legacy *legacySkip
	pl     *pipeline

	cur      *fetched
	r        *segment.Reader
	m        *matcher
	offset   int // selected events of cur so far
	def      event.Table
	replans  int
	segments int   // segments read (downloaded and opened)
	bytes    int64 // their stored bytes

	history bool      // read for History: re-plan by table and since, not by instant
	since   time.Time // History's Since
}

// newChainReader reads plan p; resume, when set, is how far an interrupted
// restore got.
func newChainReader(p *Plan, opts *Options, resume *restoreState) *chainReader {
	a := p.archive
	c := &chainReader{a: a, target: p.Target, table: p.Table, maxEnd: p.Window.WatermarkLSN, filter: opts.Filter,
		parallel: opts.Parallel, progress: opts.Progress, refs: p.Segments,
		f: &fetcher{store: a.Store, fallbacks: a.Fallbacks, keyring: a.Keyring, maxBytes: opts.MaxSegmentBytes, tempDir: opts.TempDir, progress: opts.Progress}}
	if !opts.IncludeDiverged {
		c.diverged = a.Catalog.Diverged()
	}
	if resume != nil {
		if resume.Last.set() {
			c.after = resume.Last
		} else if resume.SegmentKey != "" {
			c.legacy = &legacySkip{key: resume.SegmentKey, offset: resume.SegmentOffset}
		}
	}
	return c
}

// start checks that the planned objects are present (re-planning if some
// were collected), starts the downloads and opens the first segment, so
// that the archived table definition is known and verified before anything
// is written. ok is false when there is nothing to read.
func (c *chainReader) start(ctx context.Context) (def event.Table, ok bool, err error) {
	refs, err := c.remaining()
	if err != nil {
		return event.Table{}, false, err
	}
	for {
		err := preflight(ctx, c.a.Store, c.a.Fallbacks, refs)
		var gone *goneError
		if !errors.As(err, &gone) {
			if err != nil {
				return event.Table{}, false, err
			}
			break
		}
		if refs, err = c.replan(ctx, gone); err != nil {
			return event.Table{}, false, err
		}
	}
	cold, err := ColdObjects(ctx, c.a, refs)
	if err != nil {
		return event.Table{}, false, err
	}
	if len(cold) > 0 {
		return event.Table{}, false, coldError(cold)
	}
	c.pl = startPipeline(ctx, c.f, refs, c.parallel, false)
	if err := c.open(ctx); err != nil {
		if errors.Is(err, io.EOF) {
			return event.Table{}, false, nil
		}
		return event.Table{}, false, err
	}
	return c.def, true, nil
}

// remaining returns the current plan's segments from the one holding the
// first event not yet restored.
func (c *chainReader) remaining() ([]catalog.SegmentRef, error) {
	switch {
	case c.legacy != nil:
		for i, s := range c.refs {
			if s.Key == c.legacy.key {
				return c.refs[i:], nil
			}
		}
		return nil, failf(ErrTarget, "restore into an empty table",
			"cannot resume: segment %s recorded by the interrupted restore is not in the plan", c.legacy.key)
	case c.after.set():
		for i, s := range c.refs {
			if s.LastEndLSN >= c.after.End {
				return c.refs[i:], nil
			}
		}
		return nil, nil
	}
	return c.refs, nil
}

// next returns the next selected event, or io.EOF after the last.
func (c *chainReader) next(ctx context.Context) (item, error) {
	for {
		if c.r == nil {
			if err := c.open(ctx); err != nil {
				return item{}, err
			}
		}
		e, err := c.r.Next()
		if errors.Is(err, io.EOF) {
			if err := c.endSegment(); err != nil {
				return item{}, err
			}
			continue
		}
		if err != nil {
			return item{}, classifySegmentErr(c.cur.ref, err)
		}
		if err := checkEvent(c.cur.ref, e); err != nil {
			return item{}, err
		}
		if !c.selects(e) {
			continue
		}
		c.offset++
		if c.skips(e) {
			continue
		}
		c.after = posOf(e)
		return item{e: e, key: c.cur.ref.Key, offset: c.offset}, nil
	}
}

// selects reports whether the restore wants e: committed at or before T,
// within the first plan's watermark, matching the filter, and not diverged
// history (unless asked for).
func (c *chainReader) selects(e *event.Event) bool {
	return !e.CommitTime.After(c.target) && (c.maxEnd == 0 || e.EndLSN <= c.maxEnd) && c.m.match(e) &&
		!catalog.IsDiverged(c.diverged, e.EndLSN)
}

// skips reports whether e was restored before: by position, or by the
// old rule's count in the recorded segment.
func (c *chainReader) skips(e *event.Event) bool {
	if c.legacy != nil && c.legacy.key == c.cur.ref.Key && c.offset <= c.legacy.offset {
		c.after = posOf(e)
		return true
	}
	return c.after.covers(e)
}

// open takes the next downloaded segment and opens it, re-planning when
// an object is gone. It returns io.EOF when the plan is done.
func (c *chainReader) open(ctx context.Context) error {
	for {
		got, ok, err := c.pl.next(ctx)
		var gone *goneError
		if errors.As(err, &gone) {
			refs, err := c.replan(ctx, gone)
			if err != nil {
				return err
			}
			c.pl.stop()
			c.pl = startPipeline(ctx, c.f, refs, c.parallel, false)
			continue
		}
		switch {
		case err != nil:
			return err
		case !ok:
			return io.EOF
		}
		r, err := got.file.open(c.f.keyring)
		if err != nil {
			c.pl.release(got)
			return err
		}
		if c.segments == 0 {
			c.def = r.Header().Table
			c.m = c.filter.compile(event.LayoutOf(c.def))
		} else if id := r.Header().Table.ID(); id != c.def.ID() {
			r.Close()
			c.pl.release(got)
			return failf(ErrUsage, "restore to an instant before the definition changed, or restore with --output and load the file yourself",
				"the definition of %s changed within the plan (ids %s and %s); restoring across a schema change is not supported", c.table, c.def.ID(), id)
		}
		c.cur, c.r, c.offset = got, r, 0
		c.segments++
		c.bytes += got.ref.Size
		return nil
	}
}

// endSegment closes the segment read to its end (its trailer matched).
func (c *chainReader) endSegment() error {
	if c.legacy != nil && c.legacy.key == c.cur.ref.Key {
		if c.offset < c.legacy.offset {
			return failf(ErrTarget, "restore into an empty table",
				"cannot resume: the interrupted restore recorded %d rows of segment %s, which selects only %d",
				c.legacy.offset, c.cur.ref.Key, c.offset)
		}
		c.legacy = nil
	}
	c.closeSegment()
	c.progress.SegmentsDone.Add(1)
	return nil
}

func (c *chainReader) closeSegment() {
	if c.r != nil {
		c.r.Close()
		c.pl.release(c.cur)
		c.r, c.cur = nil, nil
	}
}

// replan loads the catalog again after gone's object was not found and
// plans the same instant: when a merge superseded the segment (and garbage
// collection deleted it), the new plan lists the merged segment instead.
// It returns the new plan's segments from the first not yet restored.
func (c *chainReader) replan(ctx context.Context, gone *goneError) ([]catalog.SegmentRef, error) {
	if c.replans >= maxReplans {
		return nil, failf(nil, "run the same command again: into a database it resumes where this run stopped",
			"segment %s is gone from %s: planned objects kept disappearing during this restore (garbage collection of segments merges superseded); giving up after %d re-plans",
			gone.ref.Key, gone.store, maxReplans)
	}
	c.replans++
	a, err := Open(ctx, c.a.Store, c.a.Keyring)
	if err != nil {
		return nil, err
	}
	a.Fallbacks = c.a.Fallbacks
	var segs []catalog.SegmentRef
	if c.history {
		segs = a.historyRefs(c.table, c.since)
	} else {
		p, err := a.Plan(c.target, c.table)
		if err != nil {
			return nil, err
		}
		segs = p.Segments
	}
	for _, s := range segs {
		if s.Key == gone.ref.Key {
			return nil, gone.lost() // still live: the object is lost, not collected
		}
	}
	if c.legacy != nil {
		return nil, failf(ErrTarget, "restore into an empty table",
			"cannot resume: segment %s recorded by the interrupted restore was merged away before this run reached it; its restore state predates chain positions", c.legacy.key)
	}
	c.a, c.refs = a, segs
	refs, err := c.remaining()
	if err != nil {
		return nil, err
	}
	var bytes int64
	for _, r := range refs {
		bytes += r.Size
	}
	c.progress.BytesTotal.Store(c.progress.BytesDownloaded.Load() + bytes)
	c.progress.SegmentsTotal.Store(c.progress.SegmentsDone.Load() + int64(len(refs)))
	return refs, nil
}

// close stops the downloads and removes their files.
func (c *chainReader) close() {
	if c.pl == nil {
		return
	}
	if c.r != nil {
		c.r.Close()
		discard(c.cur)
		c.r, c.cur = nil, nil
	}
	c.pl.stop()
}

// checkEvent checks an event against its segment's catalog entry before
// the restore uses it (the reader checks chain order, and the trailer once
// the segment ends).
func checkEvent(ref catalog.SegmentRef, e *event.Event) error {
	if e.CommitTime.Before(ref.MinCommitTime) || e.CommitTime.After(ref.MaxCommitTime) {
		return disagrees(ref, "event at %s commit time %s outside the catalog's range", e.EndLSN, FormatTime(e.CommitTime))
	}
	if e.EndLSN < ref.FirstEndLSN || e.EndLSN > ref.LastEndLSN {
		return disagrees(ref, "event at %s outside the catalog's positions %s…%s", e.EndLSN, ref.FirstEndLSN, ref.LastEndLSN)
	}
	return nil
}

// replanNote is the Result note of a restore that re-planned.
func replanNote(n int) string {
	return fmt.Sprintf("planned %d more time(s): segment objects were deleted by garbage collection after merges during the restore; the merged segments were read instead", n)
}
