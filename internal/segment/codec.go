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
// merged segment zstd defaults to its best preset and uses the largest
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
		l, window, pool := zstd.SpeedDefault, zstdWindow, zstdEncoders[0][:]
		if merged {
			l, window, pool = zstd.SpeedBestCompression, maxZstdWindow, zstdEncoders[1][:]
		}
		if level != 0 {
			l = zstd.EncoderLevelFromZstd(level)
		}
		p := &pool[l]
		if e, ok := getPooled(p).(*zstd.Encoder); ok {
			e.Reset(dst)
			return &compressor{WriteCloser: e, release: func() { e.Reset(nil); putPooled(p, e) }}, nil
		}
		e, err := zstd.NewWriter(dst, zstd.WithEncoderLevel(l), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(window), zstd.WithEncoderCRC(true))
		if err != nil {
			return nil, fmt.Errorf("new zstd writer: %w", err)
		}
		return &compressor{WriteCloser: e, release: func() { e.Reset(nil); putPooled(p, e) }}, nil
	}
	return nil, fmt.Errorf("unknown compression %d", uint8(c))
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
