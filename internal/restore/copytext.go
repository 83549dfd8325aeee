package restore

import "io"

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

// rowReader streams events as COPY text rows without materialising the
// whole batch: each Read encodes just enough rows to fill the caller's buffer.
type rowReader struct {
	chunks []chunk
	cols   []int // archive column index for each COPY column
	ci, ei int   // next chunk and event within it
	buf    []byte
	off    int
	rows   int
}

func newRowReader(chunks []chunk, cols []int) *rowReader {
	return &rowReader{chunks: chunks, cols: cols, buf: make([]byte, 0, 128<<10)}
}

// Read implements io.Reader.
func (r *rowReader) Read(p []byte) (int, error) {
	if r.off == len(r.buf) {
		r.buf, r.off = r.buf[:0], 0
		for len(r.buf) < len(p) && r.next() {
		}
		if len(r.buf) == 0 {
			return 0, io.EOF
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// next encodes one row into buf; false when every row has been encoded.
func (r *rowReader) next() bool {
	for r.ci < len(r.chunks) {
		evs := r.chunks[r.ci].events
		if r.ei < len(evs) {
			r.buf = appendCopyText(r.buf, evs[r.ei].Values, r.cols)
			r.ei++
			r.rows++
			return true
		}
		r.ci, r.ei = r.ci+1, 0
	}
	return false
}
