package restore

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
)

// HistoryOptions chooses what History reads.
type HistoryOptions struct {
	// Table is the qualified table to read; "" means the archive's only table.
	Table string
	// AfterEnd and AfterIndex skip every event at or before chain position
	// (AfterEnd, AfterIndex); AfterEnd 0 reads from the first event.
	AfterEnd   event.Position
	AfterIndex int
	// Since skips segments whose every commit is at or before it (the
	// caller still filters events by commit time: commit times are not
	// monotonic in chain order). Zero reads every segment.
	Since time.Time
	// Filter restricts the events to some streams or event types.
	Filter Filter
	// Parallel, TempDir and MaxSegmentBytes are as in Options.
	Parallel        int
	TempDir         string
	MaxSegmentBytes int64
}

// History reads an archive's events of one table in chain order, from a
// chain position up to the watermark the catalog had when it was opened:
// what a replay reads before it follows the live feed. Segments are
// downloaded ahead, verified against the catalog and decrypted exactly as
// a restore reads them; objects that garbage collection deletes after a
// merge are re-planned. It is not safe for concurrent use.
type History struct {
	c       *chainReader
	wm      catalog.Watermark
	started bool
	empty   bool
}

// historyEnd selects every commit time: History is bounded by the watermark's
// position, not by a time.
var historyEnd = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// History returns a reader of the archive's events after a chain position.
func (a *Archive) History(opts HistoryOptions) (*History, error) {
	table := opts.Table
	tables := a.Tables()
	switch {
	case table == "" && len(tables) > 1:
		return nil, failf(ErrUsage, "pass the table (--table) with one of them", "the archive holds several tables (%v)", tables)
	case table == "" && len(tables) == 1:
		table = tables[0]
	case table != "" && len(tables) > 0 && !contains(tables, table):
		return nil, failf(ErrUsage, "pass the table (--table) with one of them", "the archive holds no table %s (it holds %v)", table, tables)
	}
	wm := a.Catalog.Watermark()
	pr := &Progress{}
	c := &chainReader{a: a, target: historyEnd, table: table, maxEnd: wm.LSN, filter: opts.Filter,
		parallel: opts.Parallel, progress: pr, history: true, since: opts.Since,
		f: &fetcher{store: a.Store, keyring: a.Keyring, maxBytes: opts.MaxSegmentBytes, tempDir: opts.TempDir, progress: pr}}
	if opts.AfterEnd != 0 {
		c.after = chainPos{End: opts.AfterEnd, Index: opts.AfterIndex}
	}
	c.refs = a.historyRefs(table, opts.Since)
	return &History{c: c, wm: wm, empty: len(c.refs) == 0}, nil
}

// historyRefs lists table's segments that may hold commits after since,
// in chain order.
func (a *Archive) historyRefs(table string, since time.Time) []catalog.SegmentRef {
	var out []catalog.SegmentRef
	for _, s := range a.Catalog.Segments() {
		if s.Table == table && s.Events > 0 && (since.IsZero() || s.MaxCommitTime.After(since)) {
			out = append(out, s)
		}
	}
	return out
}

// Watermark is the archive's watermark when the reader was made: every
// source transaction at or before its position is read by Next.
func (h *History) Watermark() catalog.Watermark { return h.wm }

// Next returns the next event, or io.EOF after the last one at or before
// the watermark.
func (h *History) Next(ctx context.Context) (*event.Event, error) {
	if h.empty {
		return nil, io.EOF
	}
	if !h.started {
		h.started = true
		_, ok, err := h.c.start(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			h.empty = true
			return nil, io.EOF
		}
	}
	it, err := h.c.next(ctx)
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	if err != nil {
		return nil, err
	}
	return it.e, nil
}

// Table is the archived definition of the table read, known once Next
// returned an event.
func (h *History) Table() (event.Table, bool) {
	if !h.started || h.c.segments == 0 {
		return event.Table{}, false
	}
	return h.c.def, true
}

// Close stops the downloads and removes their files.
func (h *History) Close() { h.c.close() }

// Origin identifies the archive by the chain position its first event
// starts from; it survives merges and catalog rebuilds, so a saved replay
// position can be checked against the archive it came from. "" for an
// archive without segments.
func (a *Archive) Origin() string { return a.origin() }
