package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// zstdWindow is the window the writer uses for flush segments;
// maxZstdWindow is the largest window (and single-segment frame size) the
// reader accepts, which bounds the decoder's history buffer, and the window
// of merged segments.
const (
	zstdWindow    = 8 << 20
	maxZstdWindow = 16 << 20
)

// Encoders and decoders are expensive to build (tables, history buffers), so
// they are pooled: zstd encoders per window (flush, merged) and preset
// level, gzip writers per level.
var (
	zstdEncoders [2][5]sync.Pool // index: merged, zstd.EncoderLevel
	gzipWriters  [10]sync.Pool
	zstdDecoders sync.Pool
	gzipReaders  sync.Pool
)

// pooling turns codec reuse off for FuzzDecode, whose coverage must not
// depend on what earlier inputs left in a pooled decoder.
var pooling = true

func getPooled(p *sync.Pool) any {
	if !pooling {
		return nil
	}
	return p.Get()
}

func putPooled(p *sync.Pool, x any) {
	if pooling {
		p.Put(x)
	} else if c, ok := x.(interface{ Close() }); ok {
		c.Close()
	}
}

// compressor is a pooled streaming compressor writing into dst.
type compressor struct {
	io.WriteCloser
	release func()
}

// newCompressor returns a compressor for c at level writing to dst. For a
// merged segment zstd defaults to its "better" preset and uses the largest
// window readers accept. The caller calls Close, then release.
func newCompressor(c Compression, level int, merged bool, dst io.Writer) (*compressor, error) {
	switch c {
	case None:
		return &compressor{WriteCloser: nopCloser{dst}, release: func() {}}, nil
	case Gzip:
		if level == 0 {
			level = gzip.DefaultCompression
		}
		idx := level
		if idx < 0 {
			idx = 0
		}
		if z, ok := getPooled(&gzipWriters[idx]).(*gzip.Writer); ok {
			z.Reset(dst)
			return &compressor{WriteCloser: z, release: func() { z.Reset(nil); putPooled(&gzipWriters[idx], z) }}, nil
		}
		z, err := gzip.NewWriterLevel(dst, level)
		if err != nil {
			return nil, fmt.Errorf("new gzip writer: %w", err)
		}
		return &compressor{WriteCloser: z, release: func() { z.Reset(nil); putPooled(&gzipWriters[idx], z) }}, nil
	case Zstd:
		e, release, err := getZstdEncoder(level, merged)
		if err != nil {
			return nil, err
		}
		e.Reset(dst)
		return &compressor{WriteCloser: e, release: release}, nil
	}
	return nil, fmt.Errorf("unknown compression %d", uint8(c))
}

// getZstdEncoder returns a pooled zstd encoder for level (0: the default
// preset, the "better" one for a merged segment) and a func that puts it
// back.
func getZstdEncoder(level int, merged bool) (*zstd.Encoder, func(), error) {
	l, window, pool := zstd.SpeedDefault, zstdWindow, zstdEncoders[0][:]
	if merged {
		l, window, pool = zstd.SpeedBetterCompression, maxZstdWindow, zstdEncoders[1][:]
	}
	if level != 0 {
		l = zstd.EncoderLevelFromZstd(level)
	}
	p := &pool[l]
	e, ok := getPooled(p).(*zstd.Encoder)
	if !ok {
		var err error
		// A live segment's stream encoder compresses each block in the
		// background while the next one fills (concurrency 2): the
		// archiver's decoding and compression then run on two cores. The
		// output is the same. A merged segment is encoded whole
		// (EncodeAll), where concurrency does not apply.
		conc := 2
		if merged {
			conc = 1
		}
		e, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(l), zstd.WithEncoderConcurrency(conc),
			zstd.WithWindowSize(window), zstd.WithEncoderCRC(true))
		if err != nil {
			return nil, nil, fmt.Errorf("new zstd writer: %w", err)
		}
	}
	return e, func() { e.Reset(nil); putPooled(p, e) }, nil
}

// streamEncoder compresses the streams of format-version-2 blocks, one
// after another, with one pooled zstd encoder held until close (a pooled
// encoder dropped by the garbage collector costs a 32 MiB history to
// rebuild).
type streamEncoder struct {
	c       Compression
	level   int
	zstd    *zstd.Encoder
	release func()
}

// compress appends raw compressed to dst, as one zstd frame
// (single-segment up to maxZstdWindow, else with that window) or one gzip
// member.
func (s *streamEncoder) compress(dst *bytes.Buffer, raw []byte) error {
	if s.c == Zstd && len(raw) <= maxZstdWindow {
		if s.zstd == nil {
			var err error
			if s.zstd, s.release, err = getZstdEncoder(s.level, true); err != nil {
				return err
			}
		}
		dst.Write(s.zstd.EncodeAll(raw, dst.AvailableBuffer()))
		return nil
	}
	return compressStream(s.c, s.level, dst, raw)
}

// close puts the encoder back in its pool.
func (s *streamEncoder) close() {
	if s.release != nil {
		s.release()
		s.zstd, s.release = nil, nil
	}
}

// compressStream appends raw compressed with c at level to dst as one
// stream.
func compressStream(c Compression, level int, dst *bytes.Buffer, raw []byte) error {
	w, err := newCompressor(c, level, true, dst)
	if err != nil {
		return err
	}
	defer w.release()
	if _, err := w.Write(raw); err != nil {
		return fmt.Errorf("compress stream: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("compress stream: %w", err)
	}
	return nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// errTooLarge reports decompressed data longer than the trailer declared.
var errTooLarge = errors.New("decompressed body longer than declared")

// newDecompressor returns a reader of what src decompresses to with c, and
// a func that releases the pooled decoder; the decoder's state is bounded
// (zstd: a window of at most maxZstdWindow), whatever src claims.
func newDecompressor(c Compression, src io.Reader) (io.Reader, func(), error) {
	switch c {
	case None:
		return src, func() {}, nil
	case Gzip:
		z, ok := getPooled(&gzipReaders).(*gzip.Reader)
		if !ok {
			z = new(gzip.Reader)
		}
		if err := z.Reset(src); err != nil {
			return nil, nil, fmt.Errorf("gzip header: %w", err)
		}
		return z, func() { _ = z.Reset(bytes.NewReader(nil)); putPooled(&gzipReaders, z) }, nil
	case Zstd:
		d, ok := getPooled(&zstdDecoders).(*zstd.Decoder)
		if !ok {
			var err error
			d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(maxZstdWindow))
			if err != nil {
				return nil, nil, fmt.Errorf("new zstd reader: %w", err)
			}
		}
		if err := d.Reset(src); err != nil {
			return nil, nil, fmt.Errorf("zstd reset: %w", err)
		}
		return d, func() { _ = d.Reset(nil); putPooled(&zstdDecoders, d) }, nil
	}
	return nil, nil, fmt.Errorf("unknown compression %d", uint8(c))
}

// decompress decompresses body (compressed with c) into a new buffer of
// exactly rawLen bytes; anything more or less is an error. Memory use is
// rawLen plus the decoder's bounded state, whatever body claims.
func decompress(c Compression, body []byte, rawLen int) ([]byte, error) {
	if c == None {
		if len(body) != rawLen {
			return nil, fmt.Errorf("stored body is %d bytes, declared %d", len(body), rawLen)
		}
		return body, nil
	}
	r, release, err := newDecompressor(c, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer release()
	raw := make([]byte, rawLen)
	if _, err := io.ReadFull(r, raw); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("decompressed body shorter than declared %d bytes", rawLen)
		}
		return nil, err
	}
	return raw, expectEOF(r)
}

// expectEOF reports errTooLarge unless r is at its end.
func expectEOF(r io.Reader) error {
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	if n > 0 {
		return errTooLarge
	}
	if !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// streamDecoder decompresses the streams of format-version-2 blocks, one
// after another, with one pooled decoder.
type streamDecoder struct {
	c  Compression
	zd *zstd.Decoder
	gz *gzip.Reader
}

func newStreamDecoder(c Compression) (*streamDecoder, error) {
	if c > None {
		return nil, fmt.Errorf("unknown compression %d", uint8(c))
	}
	return &streamDecoder{c: c}, nil
}

// open returns a reader of what src decompresses to.
func (d *streamDecoder) open(src io.Reader) (io.Reader, error) {
	switch d.c {
	case Zstd:
		if d.zd == nil {
			zd, ok := getPooled(&zstdDecoders).(*zstd.Decoder)
			if !ok {
				var err error
				zd, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
					zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(maxZstdWindow))
				if err != nil {
					return nil, fmt.Errorf("new zstd reader: %w", err)
				}
			}
			d.zd = zd
		}
		if err := d.zd.Reset(src); err != nil {
			return nil, fmt.Errorf("zstd reset: %w", err)
		}
		return d.zd, nil
	case Gzip:
		if d.gz == nil {
			gz, ok := getPooled(&gzipReaders).(*gzip.Reader)
			if !ok {
				gz = new(gzip.Reader)
			}
			d.gz = gz
		}
		if err := d.gz.Reset(src); err != nil {
			return nil, fmt.Errorf("gzip header: %w", err)
		}
		return d.gz, nil
	}
	return src, nil
}

// close puts the decoder back in its pool.
func (d *streamDecoder) close() {
	if d.zd != nil {
		_ = d.zd.Reset(nil)
		putPooled(&zstdDecoders, d.zd)
		d.zd = nil
	}
	if d.gz != nil {
		_ = d.gz.Reset(bytes.NewReader(nil))
		putPooled(&gzipReaders, d.gz)
		d.gz = nil
	}
}
