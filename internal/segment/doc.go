// Package segment implements Tidemark's segment file format: the immutable,
// compressed, checksummed and optionally encrypted objects the archiver puts
// in the bucket and the restorer replays. The byte-level specification is
// docs/segment-format.md.
//
// A segment holds one table's events in chain order together with the
// table's definition (header) and a summary (trailer) that the catalog uses
// for restore planning. Flush segments store the events as records
// compressed as one stream (format version 1); merged segments may store
// them in columnar blocks (format version 2, [WriterOptions].Format), about
// half the size. [EventsDigest] identifies a sequence of events however it
// is stored. Writers stream: [NewWriter], [Writer.Append] for each
// event, [Writer.Close]. Readers treat every byte as hostile: [Decode],
// [ReadTrailer] and [OpenReader] verify the SHA-256 (and, for encrypted
// segments, the age authentication) before they interpret anything, bound
// every allocation, and report damage as a [*CorruptError] naming the
// object. [Decode] holds a whole segment in memory; [OpenReader] returns a
// [Reader] that streams its events one at a time in bounded memory.
//
// The package is pure: no network, no logging, no global configuration.
package segment
