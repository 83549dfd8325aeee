package restore

import (
	"context"
	"errors"
	"io"
	"sync"
)

// appendCopyText appends one row in COPY text format: columns separated by
// tabs, NULL as \N, and backslash, newline, carriage return and tab escaped,
// so the server stores exactly the bytes it is given.
func appendCopyText(dst []byte, values [][]byte, cols []int) []byte {
	for i, c := range cols {
		if i > 0 {
			dst = append(dst, '\t')
		}
		var v []byte
		if c >= 0 && c < len(values) {
			v = values[c]
		}
		if v == nil {
			dst = append(dst, '\\', 'N')
			continue
		}
		start := 0
		for j, b := range v {
			var esc byte
			switch b {
			case '\\':
				esc = '\\'
			case '\n':
				esc = 'n'
			case '\r':
				esc = 'r'
			case '\t':
				esc = 't'
			default:
				continue
			}
			dst = append(dst, v[start:j]...)
			dst = append(dst, '\\', esc)
			start = j + 1
		}
		dst = append(dst, v[start:]...)
	}
	return append(dst, '\n')
}

// batchReader streams one batch as COPY text rows, pulling the selected
// events as the server takes them, so a batch costs no memory per row: at
// least limit rows, then up to the end of the last row's transaction. The
// COPY runs its Read in another goroutine, and may abandon it on a broken
// connection: close waits for a Read in progress and ends the reading.
type batchReader struct {
	ctx   context.Context
	in    *lookahead
	cols  []int // archive column index for each COPY column
	limit int

	mu        sync.Mutex
	closed    bool
	buf       []byte
	off       int
	rows      int
	last      item  // the batch's last event
	exhausted bool  // no event follows the batch
	err       error // the events' failure, which fails the COPY
}

// Read implements io.Reader.
func (b *batchReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, io.EOF
	}
	if b.off == len(b.buf) {
		if b.buf == nil {
			b.buf = make([]byte, 0, 128<<10)
		}
		b.buf, b.off = b.buf[:0], 0
		for len(b.buf) < len(p) {
			more, err := b.next()
			if err != nil {
				b.err = err
				return 0, err
			}
			if !more {
				break
			}
		}
		if len(b.buf) == 0 {
			return 0, io.EOF
		}
	}
	n := copy(p, b.buf[b.off:])
	b.off += n
	return n, nil
}

// next encodes one row into buf; false when the batch is complete.
func (b *batchReader) next() (bool, error) {
	if b.exhausted {
		return false, nil
	}
	it, err := b.in.pull(b.ctx)
	if errors.Is(err, io.EOF) {
		b.exhausted = true
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if b.rows >= b.limit && it.e.EndLSN != b.last.e.EndLSN {
		b.in.unpull(it) // the next batch starts with it
		return false, nil
	}
	b.buf = appendCopyText(b.buf, it.e.Values, b.cols)
	b.rows++
	b.last = it
	return true, nil
}

// close ends the reading and returns the events' failure, if any.
func (b *batchReader) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return b.err
}

// lookahead is an event source that can take one event back.
type lookahead struct {
	next   func(context.Context) (item, error) // io.EOF after the last
	peeked *item
}

// pull returns the event taken back, or the source's next.
func (l *lookahead) pull(ctx context.Context) (item, error) {
	if it := l.peeked; it != nil {
		l.peeked = nil
		return *it, nil
	}
	return l.next(ctx)
}

// unpull makes it the next event pull returns.
func (l *lookahead) unpull(it item) { l.peeked = &it }
