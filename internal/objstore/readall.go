package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// RetryPolicy says how often and how patiently ReadAll reads an object
// whose read failed in transit.
type RetryPolicy struct {
	// Attempts bounds the reads of one object, the first included; 0 and 1
	// both mean one read.
	Attempts int
	// Backoff is the wait before the second read; it doubles before each
	// later one.
	Backoff time.Duration
}

// DefaultRetry is the policy of the catalog's and the restorer's reads:
// four reads, 200 ms, 400 ms and 800 ms apart. The backends already retry
// failed requests; this covers a body that breaks off after the response
// began, which no SDK retries.
var DefaultRetry = RetryPolicy{Attempts: 4, Backoff: 200 * time.Millisecond}

// ReadOption is a per-call knob of ReadAll.
type ReadOption func(*readOptions)

type readOptions struct {
	retry RetryPolicy
}

// WithRetry makes ReadAll retry per p (see ReadAll for which failures).
func WithRetry(p RetryPolicy) ReadOption {
	return func(o *readOptions) { o.retry = p }
}

// ReadAll reads a whole object of at most limit bytes, so a hostile bucket
// cannot exhaust memory. It refuses an object larger than limit
// (*TooLargeError) and reports a body that ends before the size Get
// announced as io.ErrUnexpectedEOF: the read was cut short in transit.
//
// Without options it reads once. WithRetry makes it read again, after a
// backoff, on any failure that may pass: a read cut short, a reset
// connection, a server error. It never retries what another read cannot
// change: ErrNotFound, ErrAccessDenied, ErrNoCredentials, ErrBucketNotFound,
// ErrInvalidKey, ErrCold, a *TooLargeError (a corrupt or foreign object). It returns
// the last read's error, or ctx's when ctx ends during a backoff.
func ReadAll(ctx context.Context, s Store, key string, limit int64, opts ...ReadOption) ([]byte, error) {
	var o readOptions
	for _, opt := range opts {
		opt(&o)
	}
	wait := o.retry.Backoff
	for attempt := 1; ; attempt++ {
		b, err := readOnce(ctx, s, key, limit)
		if err == nil || attempt >= o.retry.Attempts || !retryable(err) {
			return b, err
		}
		if !sleep(ctx, wait) {
			return nil, ctx.Err()
		}
		wait *= 2
	}
}

// retryable reports whether another read might succeed where err failed.
func retryable(err error) bool {
	var tooLarge *TooLargeError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrNotFound), errors.Is(err, ErrAccessDenied), errors.Is(err, ErrInvalidKey),
		errors.Is(err, ErrBucketNotFound), errors.Is(err, ErrNoCredentials), errors.Is(err, ErrCold), errors.As(err, &tooLarge):
		return false
	}
	return true
}

// sleep waits d, or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// readOnce is one Get and read of the whole body.
func readOnce(ctx context.Context, s Store, key string, limit int64) ([]byte, error) {
	rc, info, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if info.Size > limit {
		return nil, &TooLargeError{Key: key, Size: info.Size, Limit: limit}
	}
	// Size the buffer from the object's declared size (already checked
	// against limit): io.ReadAll's doubling kept up to twice a segment alive.
	var buf bytes.Buffer
	if info.Size > 0 {
		buf.Grow(int(info.Size) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(rc, limit+1)); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	if int64(len(b)) > limit {
		return nil, &TooLargeError{Key: key, Size: int64(len(b)), Limit: limit}
	}
	if int64(len(b)) < info.Size {
		return nil, fmt.Errorf("read %s: %d of %d bytes: %w", key, len(b), info.Size, io.ErrUnexpectedEOF)
	}
	return b, nil
}

// TooLargeError reports an object over a reader's size limit.
type TooLargeError struct {
	Key         string
	Size, Limit int64
}

func (e *TooLargeError) Error() string {
	return "object " + e.Key + " is larger than the limit (" + strconv.FormatInt(e.Size, 10) + " > " + strconv.FormatInt(e.Limit, 10) + " bytes)"
}
