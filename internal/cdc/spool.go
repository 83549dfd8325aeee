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
type spool struct {
	limit int64  // bytes kept in memory
	dir   string // where the spill file goes ("" = os.TempDir())

	chunks  [][]byte // in-memory records, chunkSize each (the last may be shorter)
	memUsed int64
	records int

	file    *os.File
	w       *bufio.Writer
	spilled int64
}

const chunkSize = 1 << 20

func newSpool(limit int64, dir string) *spool {
	return &spool{limit: limit, dir: dir}
}

// Append adds a record.
func (s *spool) Append(rel uint32, tuple []byte) error {
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], rel)
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(tuple)))
	size := int64(len(hdr) + len(tuple))
	s.records++
	if s.file == nil && s.memUsed+size <= s.limit {
		s.memWrite(hdr[:])
		s.memWrite(tuple)
		s.memUsed += size
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
	var r io.Reader = &chunkReader{chunks: s.chunks}
	if s.file != nil {
		if err := s.w.Flush(); err != nil {
			return nil, fmt.Errorf("flush spill file: %w", err)
		}
		if _, err := s.file.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rewind spill file: %w", err)
		}
		r = io.MultiReader(r, bufio.NewReaderSize(s.file, 256<<10))
	}
	return &spoolReader{r: r, left: s.records}, nil
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
	r    io.Reader
	left int
	buf  []byte
}

// Next returns the next record; the tuple is valid until the next call.
// It returns io.EOF after the last record.
func (r *spoolReader) Next() (uint32, []byte, error) {
	if r.left == 0 {
		return 0, nil, io.EOF
	}
	var hdr [8]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return 0, nil, fmt.Errorf("read spooled record: %w", noEOF(err))
	}
	n := int(binary.BigEndian.Uint32(hdr[4:]))
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return 0, nil, fmt.Errorf("read spooled record: %w", noEOF(err))
	}
	r.left--
	return binary.BigEndian.Uint32(hdr[:4]), r.buf, nil
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
