package archive

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/segment"
)

// roller holds the open segments, one per table definition. All open
// segments cover the same stretch of the chain (everything accepted since
// the last flush) and the same commit-time bucket, so a flush closes them
// all together.
type roller struct {
	opts    segment.WriterOptions // Table and SystemID are set per segment
	width   time.Duration
	open    map[string]*openSegment // by table id
	ids     map[*event.Table]string // table id cache
	bucket  time.Time               // of the open segments
	system  string                  // source system id of the open segments
	opened  time.Time               // when the first event went in
	maxRaw  int64                   // the largest open segment's raw bytes
	rawSum  int64
	evCount int
	// ext holds the events whose values came from the values object
	// store; tempDir is where segments holding them are written.
	ext     *externals
	tempDir string
}

// openSegment is one table's segment being written.
type openSegment struct {
	table *event.Table
	id    string
	out   spillWriter // memory, or a temporary file once it holds an external value
	w     *segment.Writer
	// first and last are the indexes of the first and last event within
	// their transactions; streamed is set when the segment holds part of
	// a streamed (large) transaction.
	first, last int
	firstEnd    event.Position
	streamed    bool
}

// closedSegment is a finished segment ready to upload.
type closedSegment struct {
	key     string
	table   *event.Table
	tableID string
	data    []byte
	// file, when set, holds the segment instead of data (size bytes): it
	// holds an external value. The uploader closes it.
	file    *os.File
	size    int64
	trailer *segment.Trailer
}

// body returns a reader of the segment's bytes from the start.
func (c *closedSegment) body() io.Reader {
	if c.file != nil {
		return io.NewSectionReader(c.file, 0, c.size)
	}
	return bytes.NewReader(c.data)
}

// storedSize returns the segment's size in bytes.
func (c *closedSegment) storedSize() int64 {
	if c.file != nil {
		return c.size
	}
	return int64(len(c.data))
}

// release closes the segment's temporary file, if any.
func (c *closedSegment) release() {
	if c.file != nil {
		_ = c.file.Close()
	}
}

func newRoller(opts segment.WriterOptions, width time.Duration) *roller {
	return &roller{opts: opts, width: width, open: make(map[string]*openSegment), ids: make(map[*event.Table]string)}
}

// bucketOf returns the commit-time bucket a transaction belongs to.
func (r *roller) bucketOf(t time.Time) time.Time { return t.UTC().Truncate(r.width) }

// fits reports whether a transaction of the given bucket and source may
// join the open segments.
func (r *roller) fits(bucket time.Time, systemID string) bool {
	return len(r.open) == 0 || bucket.Equal(r.bucket) && systemID == r.system
}

// empty reports whether no segment is open.
func (r *roller) empty() bool { return len(r.open) == 0 }

// add appends a transaction's events to their tables' segments, skipping
// events whose table's archive already reaches the transaction (covered,
// after a crash between two catalog entries of one flush). The caller has
// checked fits. It returns how many events went in.
func (r *roller) add(it *item, covered map[string]event.Position, now time.Time) (int, error) {
	n := 0
	for i, e := range it.events {
		if e == nil {
			continue // archived by an earlier term (see chain.archived)
		}
		t := it.tables[i]
		id := r.tableID(t)
		if c, ok := covered[id]; ok && it.pos <= c {
			continue
		}
		if err := r.appendEvent(e, t, id, it, now); err != nil {
			return n, err
		}
		n++
	}
	r.evCount += n
	r.measure()
	return n, nil
}

// stream appends one event of a streamed (large) transaction.
func (r *roller) stream(e *event.Event, t *event.Table, it *item, now time.Time) error {
	if err := r.appendEvent(e, t, r.tableID(t), it, now); err != nil {
		return err
	}
	r.open[r.tableID(t)].streamed = true
	r.evCount++
	r.measure()
	return nil
}

func (r *roller) tableID(t *event.Table) string {
	id, ok := r.ids[t]
	if !ok {
		id = t.ID()
		r.ids[t] = id
	}
	return id
}

func (r *roller) appendEvent(e *event.Event, t *event.Table, id string, it *item, now time.Time) error {
	seg, err := r.segment(t, id, it, now)
	if err != nil {
		return err
	}
	if vs := r.ext.get(e); vs != nil {
		if err := seg.out.toFile(r.tempDir); err != nil {
			return fmt.Errorf("append %s to segment: %w", e, err)
		}
		if err := seg.w.AppendLarge(e, largeValues(vs, len(t.Columns))); err != nil {
			return fmt.Errorf("append %s to segment: %w", e, err)
		}
		r.ext.done(e)
	} else if err := seg.w.Append(e); err != nil {
		return fmt.Errorf("append %s to segment: %w", e, err)
	}
	if seg.w.Events() == 1 {
		seg.first, seg.firstEnd = e.Index, e.EndLSN
	}
	seg.last = e.Index
	return nil
}

// segment returns the open segment of table t, opening it when needed.
func (r *roller) segment(t *event.Table, id string, it *item, now time.Time) (*openSegment, error) {
	if seg := r.open[id]; seg != nil {
		return seg, nil
	}
	if len(r.open) == 0 {
		r.bucket, r.system, r.opened = r.bucketOf(it.time), it.systemID, now
	}
	opts := r.opts
	opts.Table, opts.SystemID = *t, it.systemID
	seg := &openSegment{table: t, id: id}
	w, err := segment.NewWriter(&seg.out, opts)
	if err != nil {
		return nil, fmt.Errorf("open segment for %s: %w", t.QualifiedName(), err)
	}
	seg.w = w
	r.open[id] = seg
	return seg, nil
}

func (r *roller) measure() {
	r.maxRaw, r.rawSum = 0, 0
	for _, seg := range r.open {
		raw := seg.w.RawBytes()
		r.maxRaw = max(r.maxRaw, raw)
		r.rawSum += raw
	}
}

// age returns how long the open segments have been open.
func (r *roller) age(now time.Time) time.Duration {
	if len(r.open) == 0 {
		return 0
	}
	return now.Sub(r.opened)
}

// close finishes every open segment and returns them in table-id order,
// leaving the roller empty.
func (r *roller) close() ([]*closedSegment, error) {
	ids := make([]string, 0, len(r.open))
	for id := range r.open {
		ids = append(ids, id)
	}
	// Catalog entries are appended in this order: by first event (end LSN,
	// then index), so the listed part of a transaction split across
	// segments is always a prefix of it in index order, even after a crash
	// between two entries of one flush.
	slices.SortFunc(ids, func(a, b string) int {
		x, y := r.open[a], r.open[b]
		if c := cmp.Compare(x.firstEnd, y.firstEnd); c != 0 {
			return c
		}
		if c := cmp.Compare(x.first, y.first); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	out := make([]*closedSegment, 0, len(ids))
	for _, id := range ids {
		seg := r.open[id]
		tr, err := seg.w.Close()
		if err != nil {
			for _, c := range out {
				c.release()
			}
			r.reset()
			return nil, fmt.Errorf("close segment of %s: %w", seg.table.QualifiedName(), err)
		}
		key := segment.Key(r.bucket, tr.FirstEndLSN, tr.LastEndLSN, id)
		if seg.streamed {
			key = streamedKey(key, seg.first, seg.last)
		}
		out = append(out, &closedSegment{
			key:     key,
			table:   seg.table,
			tableID: id,
			data:    seg.out.buf.Bytes(),
			file:    seg.out.file,
			size:    seg.out.size,
			trailer: tr,
		})
		seg.out.file = nil // the closed segment owns it now
	}
	r.reset()
	return out, nil
}

// streamedKey is the key of a segment holding part of a streamed
// transaction: several such segments of one table share their end LSNs,
// so the key also names the first and last event index it holds
// ("<table id>-<first lsn>-<last lsn>-<first index>-<last index>.tms",
// indexes as 8 hex digits). It stays deterministic: a rebuilt segment
// with the same events gets the same key.
func streamedKey(key string, first, last int) string {
	return segment.KeyWithIndexRange(key, first, last)
}

// reset drops the open segments.
func (r *roller) reset() {
	for _, seg := range r.open {
		if seg.out.file != nil { // not handed to a closed segment
			_ = seg.out.file.Close()
		}
	}
	r.open = make(map[string]*openSegment)
	r.maxRaw, r.rawSum, r.evCount = 0, 0, 0
	r.bucket, r.system, r.opened = time.Time{}, "", time.Time{}
}
