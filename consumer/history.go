package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/restore"
)

// historyReader groups the archive's events into transactions.
type historyReader struct {
	c     *Cursor
	h     *restore.History
	err   error
	def   *event.Table
	lay   event.Layout
	next1 *event.Event // read ahead: the first event of the next transaction
}

func newHistoryReader(c *Cursor, a *restore.Archive) *historyReader {
	end, idx := c.after()
	h, err := a.History(restore.HistoryOptions{Table: c.table, AfterEnd: end, AfterIndex: idx, Since: c.since,
		Filter:  restore.Filter{Streams: c.cfg.Filter.StreamIDs, StreamPrefixes: c.cfg.Filter.StreamPrefixes, EventTypes: c.cfg.Filter.EventTypes},
		TempDir: c.cfg.TempDir})
	if err != nil {
		return &historyReader{c: c, err: fmt.Errorf("consumer: %w", err)}
	}
	return &historyReader{c: c, h: h}
}

func (r *historyReader) watermark() event.Position {
	if r.h == nil {
		return 0
	}
	return r.h.Watermark().LSN
}

// next returns the next transaction with selected events, io.EOF at the
// watermark.
func (r *historyReader) next(ctx context.Context) (*Transaction, error) {
	if r.err != nil {
		return nil, r.err
	}
	var t *Transaction
	for {
		e := r.next1
		r.next1 = nil
		if e == nil {
			var err error
			e, err = r.h.Next(ctx)
			if errors.Is(err, io.EOF) {
				if t != nil {
					return t, nil
				}
				return nil, io.EOF
			}
			if err != nil {
				r.err = fmt.Errorf("consumer: read the archive: %w", err)
				return nil, r.err
			}
		}
		if t != nil && LSN(e.EndLSN) != t.End {
			r.next1 = e
			return t, nil
		}
		if r.def == nil {
			def, _ := r.h.Table()
			r.def, r.lay = &def, event.LayoutOf(def)
		}
		ev := newEvent(r.def, r.lay, e, r.c.origin, false)
		if !r.c.selects(ev) {
			continue
		}
		if t == nil {
			t = &Transaction{End: LSN(e.EndLSN), CommitTime: ev.CommitTime, XID: e.XID}
		}
		t.Events = append(t.Events, ev)
	}
}

func (r *historyReader) close() {
	if r.h != nil {
		r.h.Close()
	}
}
