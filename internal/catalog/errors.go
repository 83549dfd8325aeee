package catalog

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrConflict: another writer already wrote the entry with this
	// sequence number; the caller's Catalog is stale (Refresh it, or reload).
	ErrConflict = errors.New("catalog entry written by another writer")
	// ErrFenced: a newer epoch exists, so this writer or lease must stop.
	ErrFenced = errors.New("fenced by a newer catalog epoch")
	// ErrChainBroken is matched (errors.Is) by every *ChainError.
	ErrChainBroken = errors.New("catalog chain broken")
	// ErrInvalidEntry: Append was given an entry the catalog cannot hold
	// (a watermark behind the catalog's, a malformed or repeated segment).
	ErrInvalidEntry = errors.New("invalid catalog entry")
)

// ChainError reports an entry that breaks the catalog: missing (a gap),
// altered (its hash does not match), replaced or reordered (its seq or prev
// link does not match), injected (an unexpected object, an epoch going
// backwards), or unreadable.
type ChainError struct {
	// Seq is the entry number where the chain breaks.
	Seq uint64
	// Key is the object involved.
	Key string
	// Reason says what is wrong.
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("catalog: entry %d (%s): %s", e.Seq, e.Key, e.Reason)
}

// Is makes errors.Is(err, ErrChainBroken) true.
func (e *ChainError) Is(target error) bool { return target == ErrChainBroken }

// ErrLeaseHeld is returned by AcquireLease while another holder's lease
// has not expired.
type ErrLeaseHeld struct {
	// Holder is the current holder.
	Holder string
	// Epoch is the holder's epoch.
	Epoch uint64
	// Expires is when the lease lapses unless renewed (holder's clock).
	Expires time.Time
}

func (e *ErrLeaseHeld) Error() string {
	return fmt.Sprintf("catalog: lease held by %q (epoch %d) until %s", e.Holder, e.Epoch, e.Expires.UTC().Format(time.RFC3339))
}
