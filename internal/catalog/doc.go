// Package catalog is the record of what the archive holds and how far it is
// complete. It lives in the bucket next to the segments, so a restore needs
// nothing else: an append-only, hash-chained list of entries, writer epochs
// that fence out stale writers, and periodic checkpoints of the folded
// state. docs/catalog.md specifies the objects.
package catalog
