package restore

import (
	"errors"
	"fmt"
)

// Sentinel errors, returned wrapped; cmd/restorer maps them to exit codes
// (docs/exit-codes.md) and prints HintOf(err) as "Try: …".
var (
	// ErrNoArchive: the store holds no catalog, or its bucket does not
	// exist (exit 10).
	ErrNoArchive = errors.New("no archive")
	// ErrOutOfWindow: the target time is after the watermark (exit 10).
	ErrOutOfWindow = errors.New("target time outside the restorable window")
	// ErrTarget: the target database cannot take this restore as it is —
	// missing table, non-empty table, incompatible columns (exit 2).
	ErrTarget = errors.New("target refused")
	// ErrPrivilege: the target role lacks a privilege the restore needs (exit 2).
	ErrPrivilege = errors.New("insufficient privilege")
	// ErrUsage: contradictory or invalid options (exit 2).
	ErrUsage = errors.New("invalid options")
	// ErrKey: a segment is encrypted with a key the keyring lacks (exit 2).
	ErrKey = errors.New("decryption key missing or wrong")
	// ErrIntegrity: a planned segment is missing, corrupt or disagrees with
	// the catalog (exit 3). Nothing from that segment was written.
	ErrIntegrity = errors.New("archive integrity")
	// ErrVerify: verification after the load found problems (exit 3).
	ErrVerify = errors.New("verification failed")
	// ErrCredentials: the object store or Postgres rejected the
	// credentials, or the object store found none (exit 12).
	ErrCredentials = errors.New("credentials rejected")
)

// hinted carries a sentinel kind, a message and an operator hint.
type hinted struct {
	kind error
	err  error
	hint string
}

func (e *hinted) Error() string        { return e.err.Error() }
func (e *hinted) Is(target error) bool { return e.kind != nil && target == e.kind }

func (e *hinted) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.kind, e.err}
}

// withHint classifies err as kind (nil: none of the sentinels, a failure
// that re-running may cure) and attaches a hint.
func withHint(kind, err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hinted{kind: kind, err: err, hint: hint}
}

// failf builds a classified error from a format string.
func failf(kind error, hint, format string, args ...any) error {
	return withHint(kind, fmt.Errorf(format, args...), hint)
}

// HintOf returns the operator hint attached to err ("" when none).
func HintOf(err error) string {
	var h *hinted
	if errors.As(err, &h) {
		return h.hint
	}
	return ""
}

// OutOfWindowError reports a target time the archive cannot restore to.
type OutOfWindowError struct {
	// Target is the requested instant.
	Target string
	// First and Watermark bound the restorable window (RFC 3339, UTC).
	First, Watermark string
}

func (e *OutOfWindowError) Error() string {
	return fmt.Sprintf("target time %s is after the archive's watermark %s; the restorable window is %s … %s",
		e.Target, e.Watermark, e.First, e.Watermark)
}

// Is makes errors.Is(err, ErrOutOfWindow) true.
func (e *OutOfWindowError) Is(target error) bool { return target == ErrOutOfWindow }
