// Package restore replays a Tidemark archive into PostgreSQL: point-in-time
// restores (exactly the source transactions committed at or before T),
// partial restores by stream or event type, JSON-lines export, listing the
// restorable window, and verifying an archive against its catalog and the
// live source.
//
// Open loads and verifies an archive's catalog; Archive.Plan picks the
// segments a restore to T needs; Restore downloads, verifies and decodes
// them in parallel and loads them with COPY in resumable batches; List and
// Verify report on the archive. The package returns errors classified by
// the sentinels in errors.go (with operator hints, HintOf) and never logs
// or exits; cmd/restorer maps them to exit codes. docs/restore.md is the
// user-facing specification.
package restore
