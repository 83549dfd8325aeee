package cdc

import "errors"

// Fatal conditions: capture stops and exits rather than guess. Each is
// returned wrapped in a *FatalError carrying advice for the operator.
var (
	// ErrSlotMissing: the slot does not exist although capture has streamed
	// from it before; a new slot would leave a gap.
	ErrSlotMissing = errors.New("replication slot missing")
	// ErrSlotLost: the slot was invalidated (wal_status = lost); the WAL it
	// protected is gone.
	ErrSlotLost = errors.New("replication slot invalidated")
	// ErrSystemIDChanged: the source is a different cluster than the one
	// this stream was captured from (e.g. failover to a server without the slot).
	ErrSystemIDChanged = errors.New("source system identifier changed")
	// ErrOlderTimeline: the source is a server of this cluster on an
	// earlier timeline than the one capture streamed from: a former primary
	// that still accepts writes after a failover.
	ErrOlderTimeline = errors.New("source is on an earlier timeline")
	// ErrSnapshotIncomplete: a previous capture created the slot but did not
	// finish publishing the initial snapshot.
	ErrSnapshotIncomplete = errors.New("initial snapshot incomplete")
	// ErrSnapshotInProgress: `capture setup --reset-slot` refused because a
	// capture is still creating the slot and publishing its initial snapshot.
	ErrSnapshotInProgress = errors.New("initial snapshot in progress")
	// ErrSourceNotReady: the source failed a set-up check (see *CheckError).
	ErrSourceNotReady = errors.New("source not ready for capture")
)

// FatalError is an error capture cannot heal by retrying, with a hint that
// says what the operator should do.
type FatalError struct {
	Err  error
	Hint string
}

// Error returns the underlying error's message (the hint is separate).
func (e *FatalError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error, so errors.Is finds the sentinel.
func (e *FatalError) Unwrap() error { return e.Err }

func fatal(err error, hint string) error { return &FatalError{Err: err, Hint: hint} }
