package archive

import (
	"bytes"
	"fmt"
	"slices"
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
}

// openSegment is one table's segment being written.
type openSegment struct {
	table *event.Table
	id    string
	buf   bytes.Buffer
	w     *segment.Writer
}

// closedSegment is a finished segment ready to upload.
type closedSegment struct {
	key     string
	table   *event.Table
	tableID string
	data    []byte
	trailer *segment.Trailer
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
		t := it.tables[i]
		id, ok := r.ids[t]
		if !ok {
			id = t.ID()
			r.ids[t] = id
		}
		if c, ok := covered[id]; ok && it.pos <= c {
			continue
		}
		seg, err := r.segment(t, id, it, now)
		if err != nil {
			return n, err
		}
		if err := seg.w.Append(e); err != nil {
			return n, fmt.Errorf("append %s to segment: %w", e, err)
		}
		n++
	}
	r.evCount += n
	r.measure()
	return n, nil
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
	w, err := segment.NewWriter(&seg.buf, opts)
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
	slices.Sort(ids)
	out := make([]*closedSegment, 0, len(ids))
	for _, id := range ids {
		seg := r.open[id]
		tr, err := seg.w.Close()
		if err != nil {
			r.reset()
			return nil, fmt.Errorf("close segment of %s: %w", seg.table.QualifiedName(), err)
		}
		out = append(out, &closedSegment{
			key:     segment.Key(r.bucket, tr.FirstEndLSN, tr.LastEndLSN, id),
			table:   seg.table,
			tableID: id,
			data:    seg.buf.Bytes(),
			trailer: tr,
		})
	}
	r.reset()
	return out, nil
}

// reset drops the open segments.
func (r *roller) reset() {
	r.open = make(map[string]*openSegment)
	r.maxRaw, r.rawSum, r.evCount = 0, 0, 0
	r.bucket, r.system, r.opened = time.Time{}, "", time.Time{}
}
