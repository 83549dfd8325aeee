package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// Download copies an object of at most limit bytes into f (rewound and
// emptied first) and returns its size and hex SHA-256: the streaming
// sibling of ReadAll, for objects too large to hold in memory (segments).
// It refuses an object larger than limit (*TooLargeError, without reading
// on) and reports a body shorter than announced as io.ErrUnexpectedEOF.
// With WithRetry it starts over from the beginning on the failures ReadAll
// retries, by the same rule.
func Download(ctx context.Context, s Store, key string, f *os.File, limit int64, opts ...ReadOption) (int64, string, error) {
	var o readOptions
	for _, opt := range opts {
		opt(&o)
	}
	wait := o.retry.Backoff
	for attempt := 1; ; attempt++ {
		n, sum, err := downloadOnce(ctx, s, key, f, limit)
		if err == nil || attempt >= o.retry.Attempts || !retryable(err) {
			return n, sum, err
		}
		if !sleep(ctx, wait) {
			return 0, "", ctx.Err()
		}
		wait *= 2
	}
}

func downloadOnce(ctx context.Context, s Store, key string, f *os.File, limit int64) (int64, string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, "", err
	}
	if err := f.Truncate(0); err != nil {
		return 0, "", err
	}
	rc, info, err := s.Get(ctx, key)
	if err != nil {
		return 0, "", err
	}
	defer rc.Close()
	if info.Size > limit {
		return 0, "", &TooLargeError{Key: key, Size: info.Size, Limit: limit}
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, limit+1))
	switch {
	case err != nil:
		return n, "", err
	case n > limit:
		return n, "", &TooLargeError{Key: key, Size: n, Limit: limit}
	case n < info.Size:
		return n, "", fmt.Errorf("read %s: %d of %d bytes: %w", key, n, info.Size, io.ErrUnexpectedEOF)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
