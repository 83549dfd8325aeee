package archive

import "errors"

// Errors the archiver returns wrapped; classify them with errors.Is.
var (
	// ErrLeaseLost means the archiver is no longer the writer: its lease
	// expired or a newer epoch wrote to the catalog. The archiver goes back
	// to standby; nothing it held was acknowledged.
	ErrLeaseLost = errors.New("archiver lease lost")

	// ErrConflictingObject means a segment key already holds an object with
	// different content than the archiver would write there. Keys are
	// deterministic, so this is never a benign race: another source or a
	// bug writes to the archive. The archiver stops writing and Run
	// returns it.
	ErrConflictingObject = errors.New("conflicting segment object")

	// ErrUnarchivable means the segment writer refused an accepted
	// transaction (for example one whose events of one table are not
	// consecutive within it). The archiver stops rather than skip it, and
	// Run returns it.
	ErrUnarchivable = errors.New("transaction cannot be archived")
)
