package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/tidemark/tidemark/internal/event"
)

// LargeValue is a column value appended from a reader instead of memory:
// the archiver's values of hundreds of megabytes, held in a temporary
// file, pass through the compressor without ever being in memory whole.
type LargeValue struct {
	Size int64
	R    io.Reader // yields exactly Size bytes
}

// AppendLarge is Append for an event some of whose values come from
// readers: large[i], when non-nil, is column i's value and e.Values[i]
// must be nil. The record written is the same as Append would write for
// the event with those values in memory. Only format version 1 streams
// values; a reader that yields fewer or more bytes than its Size is a
// permanent error (the record is incomplete).
func (w *Writer) AppendLarge(e *event.Event, large []*LargeValue) error {
	switch {
	case w.err != nil:
		return w.err
	case w.closed:
		return errors.New("append event: segment writer closed")
	case w.blk != nil:
		return errors.New("append event: values from readers need format version 1")
	case e.Table != w.qname:
		return fmt.Errorf("append event %s: writer is for table %s", e, w.qname)
	case len(e.Values) != w.ncols || len(large) > w.ncols:
		return fmt.Errorf("append event %s: %d values for %d columns", e, len(e.Values), w.ncols)
	case e.Count > maxIndex:
		return fmt.Errorf("append event %s: transaction of %d events too large", e, e.Count)
	}
	size := payloadSize(e)
	for i, l := range large {
		if l == nil {
			continue
		}
		if e.Values[i] != nil || l.Size < 0 {
			return fmt.Errorf("append event %s: column %d has a value in memory and a reader", e, i)
		}
		size += uvarintLen(uint64(l.Size)+1) + int(l.Size) - 1
	}
	if err := w.sum.check(e); err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	start := len(w.buf)
	w.buf = binary.AppendUvarint(w.buf, uint64(size))
	w.buf = appendRecordHead(w.buf, e)
	n := len(w.buf) - start
	for i, v := range e.Values {
		var l *LargeValue
		if i < len(large) {
			l = large[i]
		}
		switch {
		case l != nil:
			w.buf = binary.AppendUvarint(w.buf, uint64(l.Size)+1)
			n += uvarintLen(uint64(l.Size) + 1)
			if err := w.flush(); err != nil {
				return err
			}
			c, err := io.CopyN(w.comp, l.R, l.Size)
			if err == nil {
				// The reader must end where it said it would.
				var one [1]byte
				if m, _ := l.R.Read(one[:]); m > 0 {
					err = fmt.Errorf("more than %d bytes", l.Size)
				}
			}
			if err != nil {
				w.err = fmt.Errorf("append event %s: column %d: copied %d of %d bytes: %w", e, i, c, l.Size, noEOF(err))
				return w.err
			}
			n += int(l.Size)
		case v == nil:
			w.buf = append(w.buf, 0)
			n++
		default:
			w.buf = binary.AppendUvarint(w.buf, uint64(len(v))+1)
			w.buf = append(w.buf, v...)
			n += uvarintLen(uint64(len(v))+1) + len(v)
		}
	}
	w.sum.add(e, n)
	if len(w.buf) >= flushThreshold {
		return w.flush()
	}
	return nil
}

// appendRecordHead appends the fields of e's record before its values
// (see appendRecord).
func appendRecordHead(dst []byte, e *event.Event) []byte {
	dst = binary.AppendUvarint(dst, uint64(e.CommitLSN))
	dst = binary.AppendUvarint(dst, uint64(e.EndLSN))
	dst = binary.AppendUvarint(dst, uint64(e.PrevLSN))
	dst = binary.AppendVarint(dst, e.CommitTime.UnixMicro())
	dst = binary.AppendUvarint(dst, uint64(e.XID))
	dst = binary.AppendUvarint(dst, uint64(e.Index))
	dst = binary.AppendUvarint(dst, uint64(e.Count))
	var flags byte
	if e.Snapshot {
		flags |= recFlagSnapshot
	}
	dst = append(dst, flags)
	return binary.AppendUvarint(dst, uint64(len(e.Values)))
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
