// Package consumer reads Tidemark's event history and live feed as one
// ordered sequence: every event exactly once, in the source's commit
// order, decoded with its table definition.
//
// A Cursor starts at the beginning of time, after an instant, or at a
// saved Position. It reads history from the archive (the catalog and
// segments in object storage, decrypted with the keys it is given) up to
// the archive's watermark, then follows the live JetStream feed. The seam
// between the two is keyed on the chain position every feed item carries
// (docs/feed.md, "The chain"), so nothing is skipped and nothing is
// delivered twice — also when the stream's retention has already dropped
// the messages at the seam: the cursor then reads further in the archive,
// whose watermark advances while the archiver runs, until the feed
// overlaps. A seam that cannot be closed within Config.SeamTimeout is an
// ErrSeam error, never a silent gap.
//
// Events come one at a time (Cursor.Next) or as whole source transactions
// (Cursor.NextTransaction). Each carries its Position; a consumer that
// saves the position of what it has processed (FileStore, or any
// PositionStore) resumes after it with Resume. Run does the loop, the
// saving and the resuming.
//
// docs/consumers.md is the guide; `restorer replay` is the same cursor as
// a command printing JSON lines, for consumers in other languages.
package consumer
