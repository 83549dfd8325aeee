// Package objstore is Tidemark's view of object storage: a small Store
// interface with one implementation per backend (objstore/s3,
// objstore/file) and a conformance suite (objstore/storetest) every backend
// passes. Everything read from a Store is untrusted input.
package objstore

import (
	"context"
	"errors"
	"io"
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
