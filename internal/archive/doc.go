// Package archive is Tidemark's archiver: it pulls capture's feed from a
// JetStream consumer and makes it durable in object storage as segments
// plus entries of the hash-chained catalog.
//
// Several Archivers may run against one stream and bucket; the one holding
// the catalog lease writes and the others wait as standbys. The writer
// follows the feed's chain of positions (PrevLSN), buffers items that
// arrive out of order and asks capture to rewind when something is
// missing; it rolls segments by size, age and time bucket, and flushes in a
// fixed order — upload (conditional create), catalog entry, META
// watermark, acknowledgement — so nothing is acknowledged before it is
// listed by a durable catalog entry. Values that travelled outside their
// messages are fetched from the values object store, checked and written
// into segments from temporary files. At the start of each term it records
// the debris an earlier writer left. Inspect reads the same state from
// outside for `archiver status`. docs/archiver.md describes the behaviour,
// docs/ARCHITECTURE.md the chain and watermark contract.
package archive
