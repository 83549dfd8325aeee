package segment

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/tidemark/tidemark/internal/event"
)

// streamBuffer is the read-ahead of a streaming Reader, in the stored body
// and in the decompressed records; a multiple of age's 64 KiB chunks.
const streamBuffer = 64 << 10

// errReaderClosed is what Next returns after Close.
var errReaderClosed = errors.New("segment reader closed")

// Reader streams the events of one segment: it verifies the object like
// Decode before returning anything, then decodes one event at a time, so
// its memory does not depend on the segment's size (only on the largest
// event or version-2 block and, for the trailer, the number of streams).
// The trailer's summary
// of the events is checked as they go by: damage in the body surfaces as a
// *CorruptError from Next, at the latest when Next would return io.EOF.
// A Reader is not safe for concurrent use.
type Reader struct {
	name   string
	v      *verified
	body   bodyDecoder
	sum    *summary
	qname  string
	ncols  int
	events int   // the trailer's event count
	err    error // sticky: io.EOF, corruption or errReaderClosed
}

// bodyDecoder yields a body's events one at a time.
type bodyDecoder interface {
	// next fills e (whose Values has one entry per column) with the next
	// event and returns the length of its record (docs/segment-format.md
	// §2.4); io.EOF after the last, once the body is checked to end there.
	next(e *event.Event) (int, error)
	// close releases pooled decoders.
	close()
}

// OpenReader verifies the segment stored in r (size bytes, the object named
// name) as Decode does — SHA-256 read sequentially, header binding, and for
// an encrypted segment age authentication of the final chunk and size —
// and returns a Reader for its events. Each age chunk of the rest is
// authenticated as Next reads it. ReadOptions.MaxRawBytes caps one event's
// record, not the segment. Damage is a *CorruptError (ErrCorrupt); a
// missing or wrong key is a *KeyError (ErrNoKey); an error of r itself is
// returned wrapped, as neither. r must not change while the Reader is open.
func OpenReader(name string, r io.ReaderAt, size int64, opts ReadOptions) (*Reader, error) {
	v, err := verify(name, source{r: r, size: size}, opts)
	if err != nil {
		return nil, err
	}
	return newReader(name, v, opts.maxRaw())
}

func newReader(name string, v *verified, maxRecord int64) (*Reader, error) {
	t := &v.trailer
	ncols := int64(len(v.header.Table.Columns))
	if int64(t.Events) > t.RawBytes/(minRecordLen+ncols) {
		return nil, corruptf(name, "declares %d events, more than %d raw bytes can hold", t.Events, t.RawBytes)
	}
	var body bodyDecoder
	var err error
	if v.header.Version == ColumnarVersion {
		body, err = newBlockStream(name, v, maxRecord)
	} else {
		body, err = newRecordStream(name, v, maxRecord)
	}
	if err != nil {
		return nil, err
	}
	return &Reader{name: name, v: v, body: body, sum: newSummary(v.header.Table),
		qname: v.header.Table.QualifiedName(), ncols: int(ncols), events: t.Events}, nil
}

// Header returns the segment's header.
func (r *Reader) Header() *Header {
	h := r.v.header
	return &h
}

// Trailer returns the segment's stored trailer with the object's size and
// SHA-256, as ReadTrailer does. It is checked against the events only when
// Next has returned io.EOF.
func (r *Reader) Trailer() *Trailer {
	t := r.v.trailer
	return &t
}

// Next returns the next event in chain order, or io.EOF after the last one
// once the trailer has been recomputed from all the events and matched. The
// event and its values are the caller's to keep. An event that breaks chain
// order, a body that does not decode, or a trailer that disagrees is a
// *CorruptError. Errors and io.EOF are sticky.
func (r *Reader) Next() (*event.Event, error) {
	if r.err != nil {
		return nil, r.err
	}
	e := &event.Event{Table: r.qname, Values: make([][]byte, r.ncols)}
	n, err := r.body.next(e)
	switch {
	case errors.Is(err, io.EOF):
		return nil, r.fail(r.finish())
	case err != nil:
		return nil, r.fail(err)
	case r.sum.t.Events >= r.events:
		return nil, r.fail(corruptf(r.name, "body holds more than the trailer's %d events", r.events))
	case r.sum.t.RawBytes+int64(n) > r.v.trailer.RawBytes:
		return nil, r.fail(corruptf(r.name, "events' records exceed the trailer's %d raw bytes", r.v.trailer.RawBytes))
	}
	if err := r.sum.check(e); err != nil {
		return nil, r.fail(corruptf(r.name, "record %d: %v", r.sum.t.Events, err))
	}
	r.sum.add(e, n)
	return e, nil
}

// finish compares the recomputed trailer with the stored one and returns
// io.EOF when they agree.
func (r *Reader) finish() error {
	got := r.sum.trailer()
	if d := diffTrailer(&r.v.trailer, &got); d != "" {
		return corruptf(r.name, "trailer disagrees with events: %s", d)
	}
	return io.EOF
}

// fail makes err sticky and releases the decoders.
func (r *Reader) fail(err error) error {
	r.err = err
	r.body.close()
	return err
}

// Close releases the Reader's decoders; Next fails afterwards. It does not
// close the underlying io.ReaderAt.
func (r *Reader) Close() error {
	if r.err == nil {
		r.fail(errReaderClosed)
	}
	r.err = errReaderClosed
	return nil
}

// recordStream decodes version-1 records (one compressed stream of
// records) as they are decompressed.
type recordStream struct {
	name      string
	decomp    io.Reader     // decompressed records
	rd        *bufio.Reader // read-ahead over decomp
	release   func()
	compr     Compression
	left      int64 // raw bytes still to come
	off       int64 // raw offset of the next record
	index     int   // index of the next record
	maxRecord int64
}

func newRecordStream(name string, v *verified, maxRecord int64) (*recordStream, error) {
	c := v.header.Compression
	if c == None && v.body.size != v.trailer.RawBytes {
		return nil, corruptf(name, "decompress none body: stored body is %d bytes, declared %d", v.body.size, v.trailer.RawBytes)
	}
	stored := bodyReader(v.body)
	decomp, release, err := newDecompressor(c, stored)
	if err != nil {
		return nil, readFailure(name, "decompress "+c.String()+" body", err)
	}
	return &recordStream{name: name, decomp: decomp, rd: bufio.NewReaderSize(decomp, streamBuffer), release: release,
		compr: c, left: v.trailer.RawBytes, maxRecord: maxRecord}, nil
}

// byteReader reads bytes one at a time as well as in bulk.
type byteReader interface {
	io.Reader
	io.ByteReader
}

// bodyReader reads src from the start, ahead in 64 KiB pieces so that a
// decrypting source is not asked for a few bytes at a time.
func bodyReader(src source) byteReader {
	if src.data != nil {
		return bytes.NewReader(src.data)
	}
	return bufio.NewReaderSize(io.NewSectionReader(src.r, 0, src.size), streamBuffer)
}

func (s *recordStream) next(e *event.Event) (int, error) {
	if s.left == 0 {
		if err := expectEOF(s.rd); err != nil {
			return 0, s.failure(err)
		}
		return 0, io.EOF
	}
	l, hdr, err := readUvarint(s.rd)
	switch {
	case err != nil:
		return 0, s.failure(err)
	case hdr == 0:
		return 0, s.recordError("bad record length")
	}
	if s.left < hdr || l > uint64(s.left-hdr) {
		return 0, s.recordError("record length exceeds body")
	}
	n := hdr + int64(l)
	if n > s.maxRecord {
		return 0, s.recordError(fmt.Sprintf("record of %d bytes above the limit of %d (ReadOptions.MaxRawBytes)", n, s.maxRecord))
	}
	buf, err := readRecord(s.rd, l)
	if err != nil {
		return 0, s.failure(err)
	}
	rr := recordReader{buf: buf}
	if reason := rr.next(e); reason != "" {
		return 0, s.recordError(reason)
	}
	s.left -= n
	s.off += n
	s.index++
	return int(n), nil
}

// readUvarint reads a uvarint byte by byte and returns it with the number
// of bytes it took, 0 when it overflows 64 bits.
func readUvarint(rd io.ByteReader) (v uint64, n int64, err error) {
	for shift := 0; shift < 70; shift += 7 {
		b, err := rd.ReadByte()
		if err != nil {
			return 0, 0, err
		}
		if shift == 63 && b > 1 {
			return 0, 0, nil
		}
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, int64(shift/7 + 1), nil
		}
	}
	return 0, 0, nil
}

// readRecord reads the l bytes of a record after its length prefix into a
// new buffer that starts with the prefix (re-encoded), as recordReader
// expects. A large record grows its buffer as the bytes arrive, so a lying
// length costs no more memory than the data behind it.
func readRecord(rd io.Reader, l uint64) ([]byte, error) {
	const direct = 1 << 20
	hdr := uvarintLen(l)
	if l <= direct {
		buf := binary.AppendUvarint(make([]byte, 0, hdr+int(l)), l)
		if _, err := io.ReadFull(rd, buf[hdr:hdr+int(l)]); err != nil {
			return nil, err
		}
		return buf[:hdr+int(l)], nil
	}
	var b bytes.Buffer
	b.Write(binary.AppendUvarint(nil, l))
	if n, err := b.ReadFrom(io.LimitReader(rd, int64(l))); err != nil {
		return nil, err
	} else if n != int64(l) {
		return nil, io.ErrUnexpectedEOF
	}
	return b.Bytes(), nil
}

func (s *recordStream) recordError(reason string) error {
	return corruptf(s.name, "record %d at raw offset %d: %s", s.index, s.off, reason)
}

// failure reports an error of the decompressed stream: too short, too long,
// undecodable, or an error reading the object.
func (s *recordStream) failure(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("decompressed body shorter than declared %d bytes", s.off+s.left)
	}
	return readFailure(s.name, "decompress "+s.compr.String()+" body", err)
}

func (s *recordStream) close() {
	if s.release != nil {
		s.release()
		s.release = nil
	}
}
