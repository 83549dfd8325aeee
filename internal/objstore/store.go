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
	// ErrBucketNotFound: the bucket the store lives in does not exist (for
	// the file backend: its root directory is gone). No store creates a
	// bucket, so a misspelt name, endpoint or region fails rather than
	// starting a second archive.
	ErrBucketNotFound = errors.New("bucket not found")
	// ErrNoCredentials: the backend has no credentials to sign requests
	// with: none are configured, or the configured source (a profile, a web
	// identity, an instance role) could not supply them.
	ErrNoCredentials = errors.New("no credentials")
	// ErrCold: the object lives in an archive storage class (GLACIER,
	// DEEP_ARCHIVE) and is not restored ("thawed"): it cannot be read until
	// a restore request (Thawer) has completed.
	ErrCold = errors.New("object is in a cold storage class and not thawed")
)

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
	// StorageClass is the backend's storage class ("" when the backend has
	// none, or does not say); List and Stat fill it.
	StorageClass string
	// Lock is the object's retention lock; Stat fills it (zero: none, or
	// a backend without locks).
	Lock Retention
	// Thaw is the state of a cold object's restore request; Stat fills it.
	Thaw ThawState
}

// Retention is an object's retention lock (S3 Object Lock): until Until,
// no credential can delete or overwrite the object (COMPLIANCE), or only
// one allowed to bypass governance can (GOVERNANCE).
type Retention struct {
	// Mode is "GOVERNANCE" or "COMPLIANCE"; "" means no lock.
	Mode string `json:"mode,omitempty" yaml:"mode"`
	// Until is the retain-until date.
	Until time.Time `json:"until,omitzero" yaml:"-"`
}

// ThawState is where a cold object's restore request stands.
type ThawState int

const (
	// ThawNone: no restore request was made (or the object is not cold).
	ThawNone ThawState = iota
	// ThawPending: a restore request is in progress.
	ThawPending
	// ThawDone: a temporary readable copy exists.
	ThawDone
)

// PutOptions are per-call knobs for Put.
type PutOptions struct {
	// IfAbsent makes the put a conditional create: it fails with ErrExists
	// when the key is already there (S3 If-None-Match: *, O_EXCL locally),
	// and never replaces an existing object.
	IfAbsent bool
	// StorageClass stores the object in that class ("" = the backend's
	// default). Backends without classes ignore it.
	StorageClass string
	// Lock, when its Mode is set, locks the object until Lock.Until.
	// Backends without locks return ErrLockUnsupported.
	Lock Retention
}

// ErrLockUnsupported: a retention lock was asked of a backend that has none.
var ErrLockUnsupported = errors.New("the store cannot lock objects")

// Thawer is a Store whose cold objects can be restored for reading (S3
// RestoreObject).
type Thawer interface {
	// Thaw asks for a temporary readable copy of a cold object for days,
	// at tier ("Standard", "Bulk", "Expedited"). A request already in
	// progress or done is not an error.
	Thaw(ctx context.Context, key string, days int, tier string) error
}

// Store is a flat key space of immutable-by-convention objects. Keys are
// slash-separated paths relative to the store's root (prefix).
//
// Besides what each method names, every method returns (wrapped)
// ErrBucketNotFound when the store's bucket does not exist, ErrNoCredentials
// when the backend has no credentials, ErrAccessDenied when the backend
// refuses them, and ErrInvalidKey for a key ValidateKey rejects. Other
// errors (a network failure, a server error) may pass on a retry.
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
	// Delete removes the object; deleting an absent key is not an error
	// (but deleting from an absent bucket is ErrBucketNotFound).
	Delete(ctx context.Context, key string) error
	// String describes the store for logs and errors, without secrets.
	String() string
}

// Hint returns the advice for an operator that a backend attached to err,
// or "" when there is none. Backends attach one to ErrBucketNotFound,
// ErrNoCredentials and ErrAccessDenied, in their own terms (the s3 backend
// names the AWS variables); the CLIs print it as "Try: …".
func Hint(err error) string {
	var h interface{ Hint() string }
	if errors.As(err, &h) {
		return h.Hint()
	}
	return ""
}

// IsCold reports whether objects of a storage class must be thawed before
// they can be read (S3's GLACIER and DEEP_ARCHIVE; GLACIER_IR is read
// directly).
func IsCold(class string) bool { return class == "GLACIER" || class == "DEEP_ARCHIVE" }

// ThawWait is how long a thaw of a storage class typically takes at the
// Standard tier (AWS's documented figures: 3-5 hours for GLACIER, within
// 12 hours for DEEP_ARCHIVE), for planning; 0 for a class read directly.
func ThawWait(class string) time.Duration {
	switch class {
	case "GLACIER":
		return 5 * time.Hour
	case "DEEP_ARCHIVE":
		return 12 * time.Hour
	}
	return 0
}
