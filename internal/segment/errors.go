package segment

import (
	"errors"
	"fmt"
)

// ErrCorrupt is matched (errors.Is) by every error that reports a damaged,
// truncated, oversized or otherwise invalid segment; the concrete type is
// *CorruptError.
var ErrCorrupt = errors.New("segment corrupt")

// ErrNoKey is matched (errors.Is) by errors reporting that the keyring has
// no key for an encrypted segment, or that the key with the segment's key id
// does not decrypt it; the concrete type is *KeyError.
var ErrNoKey = errors.New("segment key not available")

// CorruptError reports a segment that failed verification or parsing.
type CorruptError struct {
	// Object names the segment (its object key), as passed to Decode.
	Object string
	// Reason says what is wrong, e.g. "checksum mismatch".
	Reason string
	// Err is the underlying error, if any (a decompressor's, for example).
	Err error
}

// Error implements error.
func (e *CorruptError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("segment %s corrupt: %s: %v", e.Object, e.Reason, e.Err)
	}
	return fmt.Sprintf("segment %s corrupt: %s", e.Object, e.Reason)
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the underlying error.
func (e *CorruptError) Unwrap() error { return e.Err }

func corruptf(object, format string, args ...any) *CorruptError {
	return &CorruptError{Object: object, Reason: fmt.Sprintf(format, args...)}
}

// KeyError reports an encrypted segment the keyring cannot decrypt.
type KeyError struct {
	// Object names the segment.
	Object string
	// KeyID is the key id recorded in the segment's header.
	KeyID string
	// Missing is true when the keyring has no key with KeyID, false when it
	// has one but that key does not decrypt the segment.
	Missing bool
}

// Error implements error; the message names the key id, never key material.
func (e *KeyError) Error() string {
	if e.Missing {
		return fmt.Sprintf("segment %s encrypted with key %s, which is not in the keyring; add the old key to --encryption-key-file",
			e.Object, e.KeyID)
	}
	return fmt.Sprintf("segment %s: the keyring's key %s does not decrypt it (wrong key for this key id)", e.Object, e.KeyID)
}

// Is reports whether target is ErrNoKey.
func (e *KeyError) Is(target error) bool { return target == ErrNoKey }
