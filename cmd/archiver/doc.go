// Command archiver moves Tidemark's JetStream feed into object storage:
// compressed, checksummed, optionally encrypted segments plus a hash-chained
// catalog that knows how far the archive is complete. See docs/archiver.md.
package main
