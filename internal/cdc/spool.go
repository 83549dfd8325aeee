package cdc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// spool holds the encoded rows of one transaction: in memory up to a byte
// limit, then in an unlinked temporary file, so a transaction of any size
// is buffered in bounded memory until its commit arrives.
//
// A record is: relation index (uint32), length (uint32), tuple bytes.
//
// A tuple larger than direct goes to the file even when memory has room,
// and the reader hands it back as a section of the file rather than a
// copy: a row holding a value of hundreds of megabytes is held once (by
// pgx, while it is received), never again by the spool or the encoder.
type spool struct {
	limit  int64  // bytes kept in memory
	direct int64  // tuples larger than this always go to the file (0 = none)
	dir    string // where the spill file goes ("" = os.TempDir())

	chunks     [][]byte // in-memory records, chunkSize each (the last may be shorter)
	memUsed    int64
	records    int
	memRecords int // the first memRecords records are in chunks, the rest in the file

	file    *os.File
	w       *bufio.Writer
	spilled int64
}

const chunkSize = 1 << 20

func newSpool(limit, direct int64, dir string) *spool {
	return &spool{limit: limit, direct: direct, dir: dir}
}

// Append adds a record.
func (s *spool) Append(rel uint32, tuple []byte) error {
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], rel)
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(tuple)))
	size := int64(len(hdr) + len(tuple))
	s.records++
	if s.file == nil && s.memUsed+size <= s.limit && (s.direct <= 0 || int64(len(tuple)) <= s.direct) {
		s.memWrite(hdr[:])
		s.memWrite(tuple)
		s.memUsed += size
		s.memRecords++
		return nil
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "tidemark-txn-*.spill")
		if err != nil {
			return fmt.Errorf("create spill file: %w", err)
		}
		// Unlinked at once: the space is freed when the file is closed,
		// even if the process dies.
		_ = os.Remove(f.Name())
		s.file = f
		s.w = bufio.NewWriterSize(f, 256<<10)
	}
	if _, err := s.w.Write(hdr[:]); err != nil {
		return fmt.Errorf("write spill file: %w", err)
	}
	if _, err := s.w.Write(tuple); err != nil {
		return fmt.Errorf("write spill file: %w", err)
	}
	s.spilled += size
	return nil
}

func (s *spool) memWrite(b []byte) {
	for len(b) > 0 {
		if len(s.chunks) == 0 || len(s.chunks[len(s.chunks)-1]) == cap(s.chunks[len(s.chunks)-1]) {
			size := 4096
			if len(s.chunks) > 0 {
				size = min(chunkSize, 2*cap(s.chunks[len(s.chunks)-1]))
			}
			s.chunks = append(s.chunks, make([]byte, 0, size))
		}
		last := &s.chunks[len(s.chunks)-1]
		n := min(cap(*last)-len(*last), len(b))
		*last = append(*last, b[:n]...)
		b = b[n:]
	}
}

// Records returns the number of records appended.
func (s *spool) Records() int { return s.records }

// Spilled returns the bytes written to disk.
func (s *spool) Spilled() int64 { return s.spilled }

// Reader returns a reader over all records in order. Append must not be
// called afterwards.
func (s *spool) Reader() (*spoolReader, error) {
	r := &spoolReader{mem: &chunkReader{chunks: s.chunks}, inMem: s.memRecords, left: s.records, direct: s.direct}
	if s.file != nil {
		if err := s.w.Flush(); err != nil {
			return nil, fmt.Errorf("flush spill file: %w", err)
		}
		r.file = s.file
		r.fr = bufio.NewReaderSize(io.NewSectionReader(s.file, 0, 1<<62), 256<<10)
	}
	return r, nil
}

// Close releases the memory and the spill file.
func (s *spool) Close() error {
	s.chunks = nil
	s.memUsed = 0
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file, s.w = nil, nil
	return err
}

// spoolReader yields records in order.
type spoolReader struct {
	mem    io.Reader // the in-memory records
	inMem  int       // how many of the records left are in memory
	file   *os.File  // the spill file, nil if none
	fr     *bufio.Reader
	off    int64 // file offset fr is at
	direct int64
	left   int
	buf    []byte
}

// spooledRow is one record: the tuple's bytes, or for a tuple larger than
// the spool's direct limit a section of the spill file holding them.
type spooledRow struct {
	rel   uint32
	raw   []byte            // valid until the next call of Next
	large *io.SectionReader // the tuple in the spill file, when raw is nil
}

// Next returns the next record. It returns io.EOF after the last record.
func (r *spoolReader) Next() (spooledRow, error) {
	if r.left == 0 {
		return spooledRow{}, io.EOF
	}
	src := r.mem
	if r.inMem == 0 {
		if r.fr == nil {
			return spooledRow{}, fmt.Errorf("read spooled record: %w", io.ErrUnexpectedEOF)
		}
		src = r.fr
	}
	var hdr [8]byte
	if _, err := io.ReadFull(src, hdr[:]); err != nil {
		return spooledRow{}, fmt.Errorf("read spooled record: %w", noEOF(err))
	}
	n := int(binary.BigEndian.Uint32(hdr[4:]))
	row := spooledRow{rel: binary.BigEndian.Uint32(hdr[:4])}
	if r.inMem > 0 {
		r.inMem--
	} else {
		r.off += int64(len(hdr))
		if r.direct > 0 && int64(n) > r.direct {
			// Left in the file: skip it and hand out a view.
			row.large = io.NewSectionReader(r.file, r.off, int64(n))
			r.off += int64(n)
			r.fr.Reset(io.NewSectionReader(r.file, r.off, 1<<62))
			r.left--
			return row, nil
		}
		r.off += int64(n)
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(src, r.buf); err != nil {
		return spooledRow{}, fmt.Errorf("read spooled record: %w", noEOF(err))
	}
	r.left--
	row.raw = r.buf
	return row, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// chunkReader reads a list of byte chunks in order.
type chunkReader struct {
	chunks [][]byte
	off    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && c.off == len(c.chunks[0]) {
		c.chunks = c.chunks[1:]
		c.off = 0
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0][c.off:])
	c.off += n
	return n, nil
}
