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

// Sentinel errors every backend returns (wrapped) so callers can classify
// failures with errors.Is, never by message.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrExists: a conditional create found the key already present.
	ErrExists = errors.New("object already exists")
	// ErrAccessDenied: the backend rejected the credentials or permissions.
	ErrAccessDenied = errors.New("access denied")
)

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// PutOptions are per-call knobs for Put.
type PutOptions struct {
	// IfAbsent makes the put a conditional create: it fails with ErrExists
	// when the key is already there (S3 If-None-Match: *, O_EXCL locally),
	// and never replaces an existing object.
	IfAbsent bool
}

// Store is a flat key space of immutable-by-convention objects. Keys are
// slash-separated paths relative to the store's root (prefix).
type Store interface {
	// Put writes the object atomically: a reader sees the old object, no
	// object, or the whole new one, never a partial one. size may be -1 when
	// unknown. With IfAbsent it returns ErrExists if the key is present.
	Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error
	// Get opens the object for reading. It returns ErrNotFound when absent.
	Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error)
	// Stat returns the object's info, or ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List returns the objects whose keys start with prefix and sort after
	// startAfter ("" for all), in lexicographic key order.
	List(ctx context.Context, prefix, startAfter string) ([]ObjectInfo, error)
	// Delete removes the object; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// String describes the store for logs and errors, without secrets.
	String() string
}

// ReadAll reads a whole object, refusing one larger than limit bytes so a
// hostile bucket cannot exhaust memory, and one that ends before the size
// Get reported (io.ErrUnexpectedEOF).
func ReadAll(ctx context.Context, s Store, key string, limit int64) ([]byte, error) {
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
