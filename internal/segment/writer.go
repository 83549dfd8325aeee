package segment

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"filippo.io/age"

	"github.com/tidemark/tidemark/internal/event"
)

// flushThreshold is how many raw bytes the writer batches before handing
// them to the compressor.
const flushThreshold = 256 << 10

// now stamps a segment's creation time (Header.Created); the golden tests
// fix it so that re-encoding reproduces the stored files byte for byte.
var now = time.Now

// WriterOptions configures a Writer.
type WriterOptions struct {
	// Compression selects the compressor; the zero value is Zstd.
	Compression Compression
	// Level is the compression level: zstd 1–22 (mapped to the nearest
	// klauspost preset), gzip 1–9; 0 means the default.
	Level int
	// Keyring, when non-nil, encrypts the segment to its active key; a
	// keyring without keys is an error, never a fallback to plaintext. Nil
	// writes plaintext.
	Keyring *Keyring
	// SystemID is the source cluster's system identifier, recorded in the header.
	SystemID string
	// Table is the definition of the table whose events are appended.
	Table event.Table
	// MergeLevel is 0 for a flush segment, the archiver's own, and 1 to
	// MaxLevel for a segment the merger made from segments of lower levels
	// (1 a minute's, 2 an hour's, 3 a day's); recorded in the header as
	// Header.Level. A merged segment's zstd default is the "better" preset
	// (zstd level 7; Level 19 or more selects the best, at about half the
	// speed), with the largest window readers accept.
	MergeLevel int
	// Created is the time recorded in the header (UTC, truncated to the
	// microsecond); zero means now. A merge sets it so that the same inputs
	// give the same bytes (without encryption, which is randomised).
	Created time.Time
	// Format is the format version to write: 0 or Version (1) for records
	// compressed as one stream; ColumnarVersion (2) for the columnar body,
	// smaller but slower to write, for merged segments (MergeLevel ≥ 1) only.
	Format int
}

// Writer streams one segment to an io.Writer. It is not safe for concurrent use.
type Writer struct {
	out       *hashWriter
	headerSHA [sha256.Size]byte
	envLen    int64
	enc       io.WriteCloser // age stream, nil for plaintext
	inner     io.Writer      // where the inner section goes: enc or out
	comp      *compressor
	buf       []byte // raw records not yet compressed
	sum       *summary
	qname     string
	ncols     int
	err       error // sticky I/O error
	closed    bool

	// format version 2: buf collects a block's records
	blk         *blockEncoder
	blockEvents int
	evs         []event.Event
	vals        [][]byte
	block       []byte // the encoded block
}

// NewWriter validates opts, writes the segment's plaintext envelope (magic,
// version, flags, header) to w and returns a Writer for the events.
func NewWriter(w io.Writer, opts WriterOptions) (*Writer, error) {
	if err := checkOptions(&opts); err != nil {
		return nil, fmt.Errorf("new segment writer: %w", err)
	}
	created := opts.Created
	if created.IsZero() {
		created = now()
	}
	h := Header{Version: opts.Format, Compression: opts.Compression, SystemID: opts.SystemID,
		Table: opts.Table, Created: created.UTC().Truncate(time.Microsecond), Level: opts.MergeLevel}
	var recipient *age.X25519Recipient
	if opts.Keyring != nil {
		key, err := opts.Keyring.active()
		if err != nil {
			return nil, fmt.Errorf("new segment writer: encryption configured: %w", err)
		}
		h.KeyID, recipient = key.id, key.recipient
	}
	hj, err := json.Marshal(h.toJSON())
	if err != nil {
		return nil, fmt.Errorf("new segment writer: marshal header: %w", err)
	}
	if len(hj) > maxHeaderLen {
		return nil, fmt.Errorf("new segment writer: header is %d bytes, limit %d", len(hj), maxHeaderLen)
	}
	env := make([]byte, prefixLen, prefixLen+len(hj))
	copy(env, Magic)
	env[5] = byte(opts.Format)
	if recipient != nil {
		env[6] = flagEncrypted
	}
	binary.BigEndian.PutUint32(env[8:], uint32(len(hj)))
	env = append(env, hj...)

	sw := &Writer{out: &hashWriter{w: w, h: sha256.New()}, headerSHA: sha256.Sum256(env),
		envLen: int64(len(env)), sum: newSummary(opts.Table), qname: opts.Table.QualifiedName(),
		ncols: len(opts.Table.Columns)}
	if _, err := sw.out.Write(env); err != nil {
		return nil, fmt.Errorf("write segment header: %w", err)
	}
	sw.inner = sw.out
	if recipient != nil {
		if sw.enc, err = age.Encrypt(sw.out, recipient); err != nil {
			return nil, fmt.Errorf("start segment encryption: %w", err)
		}
		sw.inner = sw.enc
	}
	if opts.Format == ColumnarVersion {
		sw.blk = newBlockEncoder(opts.Compression, opts.Level, sw.ncols)
		return sw, nil
	}
	if sw.comp, err = newCompressor(opts.Compression, opts.Level, opts.MergeLevel > 0, sw.inner); err != nil {
		return nil, fmt.Errorf("new segment writer: %w", err)
	}
	return sw, nil
}

// checkOptions validates o and fills in defaults.
func checkOptions(o *WriterOptions) error {
	switch {
	case o.Format == 0:
		o.Format = Version
	case o.Format == ColumnarVersion && o.MergeLevel == 0:
		return errors.New("format version 2 is for merged segments only (MergeLevel ≥ 1)")
	case o.Format != Version && o.Format != ColumnarVersion:
		return fmt.Errorf("unknown format version %d", o.Format)
	}
	if o.Compression > None {
		return fmt.Errorf("unknown compression %d", uint8(o.Compression))
	}
	if err := checkLevel(o.Compression, o.Level); err != nil {
		return err
	}
	if o.MergeLevel < 0 || o.MergeLevel > MaxLevel {
		return fmt.Errorf("merge level %d out of range 0..%d", o.MergeLevel, MaxLevel)
	}
	if o.Table.Name == "" {
		return errors.New("table has no name")
	}
	if n := len(o.Table.Columns); n == 0 || n > maxColumns {
		return fmt.Errorf("table %s has %d columns, want 1..%d", o.Table.QualifiedName(), n, maxColumns)
	}
	return nil
}

// Append adds e, which must belong to the writer's table, have one value per
// column and follow the previous event in chain order (EndLSN
// non-decreasing, consecutive indexes within a transaction; see
// docs/segment-format.md). An event that breaks these rules is rejected
// without changing the segment; an I/O error is permanent.
func (w *Writer) Append(e *event.Event) error {
	switch {
	case w.err != nil:
		return w.err
	case w.closed:
		return errors.New("append event: segment writer closed")
	case e.Table != w.qname:
		return fmt.Errorf("append event %s: writer is for table %s", e, w.qname)
	case len(e.Values) != w.ncols:
		return fmt.Errorf("append event %s: %d values for %d columns", e, len(e.Values), w.ncols)
	case e.Count > maxIndex:
		return fmt.Errorf("append event %s: transaction of %d events too large", e, e.Count)
	}
	if err := w.sum.check(e); err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	var n int
	w.buf, n = appendRecord(w.buf, e)
	w.sum.add(e, n)
	if w.blk != nil {
		w.blockEvents++
		if len(w.buf) >= blockTargetRaw || w.blockEvents >= blockTargetEvents || w.blockEvents*w.ncols >= blockMaxValues {
			return w.flushBlock()
		}
		return nil
	}
	if len(w.buf) >= flushThreshold {
		return w.flush()
	}
	return nil
}

// flushBlock encodes the records in buf as a format-version-2 block and
// writes it.
func (w *Writer) flushBlock() error {
	n, nc := w.blockEvents, w.ncols
	if n == 0 {
		return nil
	}
	if cap(w.evs) < n {
		w.evs = make([]event.Event, n)
	}
	if cap(w.vals) < n*nc {
		w.vals = make([][]byte, n*nc)
	}
	evs, r := w.evs[:n], recordReader{buf: w.buf}
	for i := range evs {
		evs[i].Values = w.vals[i*nc : (i+1)*nc : (i+1)*nc]
		if reason := r.next(&evs[i]); reason != "" {
			w.err = fmt.Errorf("encode block: re-reading record %d: %s", i, reason)
			return w.err
		}
	}
	var err error
	if w.block, err = w.blk.appendBlocks(w.block[:0], evs); err != nil {
		w.err = err
		return err
	}
	if _, err := w.inner.Write(w.block); err != nil {
		w.err = fmt.Errorf("write segment block: %w", err)
		return w.err
	}
	w.buf, w.blockEvents = w.buf[:0], 0
	return nil
}

func (w *Writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.comp.Write(w.buf); err != nil {
		w.err = fmt.Errorf("compress segment: %w", err)
		return w.err
	}
	w.buf = w.buf[:0]
	return nil
}

// RawBytes returns the uncompressed size of the records appended so far.
func (w *Writer) RawBytes() int64 { return w.sum.t.RawBytes }

// Events returns the number of events appended so far.
func (w *Writer) Events() int { return w.sum.t.Events }

// Close writes the trailer and footer and returns the trailer, including the
// stored object's size and SHA-256. It does not close the underlying writer.
func (w *Writer) Close() (*Trailer, error) {
	if w.closed {
		return nil, errors.New("close segment: already closed")
	}
	w.closed = true
	if w.err != nil {
		return nil, w.err
	}
	if err := w.finish(); err != nil {
		w.err = err
		return nil, err
	}
	t := w.sum.trailer()
	if err := w.writeTrailer(&t); err != nil {
		w.err = err
		return nil, err
	}
	return &t, nil
}

// finish flushes and closes the compressor, or writes the last block.
func (w *Writer) finish() error {
	if w.blk != nil {
		defer w.blk.close()
		return w.flushBlock()
	}
	if err := w.flush(); err != nil {
		return err
	}
	if err := w.comp.Close(); err != nil {
		return fmt.Errorf("compress segment: %w", err)
	}
	w.comp.release()
	return nil
}

// writeTrailer writes trailer JSON and length, closes the encryption, writes
// the footer, and fills t.StoredBytes and t.SHA256.
func (w *Writer) writeTrailer(t *Trailer) error {
	tj, err := json.Marshal(t.toJSON(hex.EncodeToString(w.headerSHA[:])))
	if err != nil {
		return fmt.Errorf("marshal segment trailer: %w", err)
	}
	if len(tj) > maxTrailerLen {
		return fmt.Errorf("segment trailer is %d bytes, limit %d (too many streams)", len(tj), maxTrailerLen)
	}
	tj = binary.BigEndian.AppendUint32(tj, uint32(len(tj)))
	if _, err := w.inner.Write(tj); err != nil {
		return fmt.Errorf("write segment trailer: %w", err)
	}
	if w.enc != nil {
		if err := w.enc.Close(); err != nil {
			return fmt.Errorf("finish segment encryption: %w", err)
		}
	}
	footer := make([]byte, 0, footerLen)
	footer = binary.BigEndian.AppendUint64(footer, uint64(w.out.n-w.envLen))
	footer = w.out.h.Sum(footer)
	footer = append(footer, EndMagic...)
	if _, err := w.out.Write(footer); err != nil {
		return fmt.Errorf("write segment footer: %w", err)
	}
	t.StoredBytes = w.out.n
	t.SHA256 = hex.EncodeToString(w.out.h.Sum(nil))
	return nil
}

// hashWriter hashes and counts what it passes on.
type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (h *hashWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}
