package segment

import (
	"time"

	"github.com/tidemark/tidemark/internal/event"
)

// Layout constants; docs/segment-format.md is the specification.
const (
	// Magic opens every segment.
	Magic = "TMSEG"
	// EndMagic closes every segment.
	EndMagic = "TMSEGEND"
	// Version is the format version this package writes unless asked for
	// another: version 1, records compressed as one stream.
	Version = 1
	// ColumnarVersion is the format version of the columnar body of merged
	// segments (WriterOptions.Format). This package reads both.
	ColumnarVersion = 2

	// prefixLen is magic(5) version(1) flags(1) reserved(1) header_len(4).
	prefixLen = 12
	// footerLen is sealed_len(8) sha256(32) end magic(8).
	footerLen = 48
	// flagEncrypted marks a sealed section that is an age file.
	flagEncrypted = 0x01

	// maxHeaderLen bounds the header JSON.
	maxHeaderLen = 1 << 20
	// maxColumns bounds the table definition (PostgreSQL allows 1600).
	maxColumns = 1600
	// maxTrailerLen bounds the trailer JSON.
	maxTrailerLen = 256 << 20
	// DefaultMaxRawBytes is ReadOptions.MaxRawBytes when it is 0.
	DefaultMaxRawBytes = 1 << 30
	// trailerLenSize is the 4-byte trailer length ending the inner section.
	trailerLenSize = 4

	// MaxLevel is the highest merge level (Header.Level, WriterOptions.MergeLevel).
	MaxLevel = 15
)

// Header is a segment's plaintext header: what it holds and how to read it.
type Header struct {
	// Version is the format version, Version (1) or ColumnarVersion (2).
	Version int
	// Compression is how the records are compressed.
	Compression Compression
	// KeyID is the key id of the key the segment is encrypted to; "" means plaintext.
	KeyID string
	// SystemID is the source cluster's system identifier.
	SystemID string
	// Table is the definition of the table the events belong to.
	Table event.Table
	// Created is when the writer started the segment (UTC, microseconds),
	// or the time the merger chose.
	Created time.Time
	// Level is 0 for a flush segment and 1 to MaxLevel for a merged one
	// (docs/segment-format.md §2.2, member "level").
	Level int
}

// VersionRange is the smallest and largest stream_version of one stream in a segment.
type VersionRange struct {
	// Min is the smallest stream_version.
	Min int64 `json:"min"`
	// Max is the largest stream_version.
	Max int64 `json:"max"`
}

// Trailer summarises a segment. All fields but StoredBytes and SHA256 are
// stored in the segment's trailer; those two describe the stored object and
// are computed by Writer.Close and by the readers.
type Trailer struct {
	// Events is the number of events.
	Events int
	// Transactions is the number of distinct transactions (EndLSN values),
	// counting a transaction split across segments in each of them.
	Transactions int
	// FirstCommitLSN is the first event's CommitLSN.
	FirstCommitLSN event.Position
	// LastCommitLSN is the last event's CommitLSN.
	LastCommitLSN event.Position
	// FirstEndLSN is the first event's EndLSN.
	FirstEndLSN event.Position
	// LastEndLSN is the last event's EndLSN: the chain position the segment reaches.
	LastEndLSN event.Position
	// PrevLSN is the first event's PrevLSN: the chain link into the segment.
	PrevLSN event.Position
	// MinCommitTime is the earliest commit time (commit times are not
	// monotonic in LSN order, so this need not be the first event's).
	MinCommitTime time.Time
	// MaxCommitTime is the latest commit time.
	MaxCommitTime time.Time
	// Streams maps each stream_id to its stream_version range; nil when the
	// table has no stream_id/stream_version columns. Events whose stream_id
	// is NULL or not valid UTF-8, or whose stream_version is not an
	// integer, are not counted.
	Streams map[string]VersionRange
	// RawBytes is the size of the uncompressed event records.
	RawBytes int64
	// StoredBytes is the size of the whole stored object.
	StoredBytes int64
	// SHA256 is the hex SHA-256 of the whole stored object.
	SHA256 string
}

// Segment is a decoded, verified segment.
type Segment struct {
	// Header is the segment's header.
	Header Header
	// Trailer is the segment's trailer, checked against the events.
	Trailer Trailer
	// Events are in chain order. Their Values alias one buffer owned by the
	// Segment; treat them as read-only.
	Events []*event.Event
}

// headerJSON is the header's wire form.
type headerJSON struct {
	Version     int          `json:"version"`
	Compression *Compression `json:"compression"`
	KeyID       string       `json:"key_id,omitempty"`
	SystemID    string       `json:"system_id"`
	Table       event.Table  `json:"table"`
	Created     time.Time    `json:"created"`
	Level       int          `json:"level,omitempty"`
}

// trailerJSON is the trailer's wire form.
type trailerJSON struct {
	Events          int                     `json:"events"`
	Transactions    int                     `json:"transactions"`
	FirstCommitLSN  event.Position          `json:"first_commit_lsn"`
	LastCommitLSN   event.Position          `json:"last_commit_lsn"`
	FirstEndLSN     event.Position          `json:"first_end_lsn"`
	LastEndLSN      event.Position          `json:"last_end_lsn"`
	PrevLSN         event.Position          `json:"prev_lsn"`
	MinCommitTimeUS *int64                  `json:"min_commit_time_us,omitempty"`
	MaxCommitTimeUS *int64                  `json:"max_commit_time_us,omitempty"`
	Streams         map[string]VersionRange `json:"streams,omitempty"`
	RawBytes        int64                   `json:"raw_bytes"`
	HeaderSHA256    string                  `json:"header_sha256"`
}

func (h *Header) toJSON() headerJSON {
	c := h.Compression
	return headerJSON{Version: h.Version, Compression: &c, KeyID: h.KeyID,
		SystemID: h.SystemID, Table: h.Table, Created: h.Created, Level: h.Level}
}

func (j *headerJSON) header() Header {
	return Header{Version: j.Version, Compression: *j.Compression, KeyID: j.KeyID,
		SystemID: j.SystemID, Table: j.Table, Created: j.Created.UTC(), Level: j.Level}
}

func (t *Trailer) toJSON(headerSHA string) trailerJSON {
	j := trailerJSON{Events: t.Events, Transactions: t.Transactions,
		FirstCommitLSN: t.FirstCommitLSN, LastCommitLSN: t.LastCommitLSN,
		FirstEndLSN: t.FirstEndLSN, LastEndLSN: t.LastEndLSN, PrevLSN: t.PrevLSN,
		Streams: t.Streams, RawBytes: t.RawBytes, HeaderSHA256: headerSHA}
	if t.Events > 0 {
		lo, hi := t.MinCommitTime.UnixMicro(), t.MaxCommitTime.UnixMicro()
		j.MinCommitTimeUS, j.MaxCommitTimeUS = &lo, &hi
	}
	return j
}

func (j *trailerJSON) trailer() Trailer {
	t := Trailer{Events: j.Events, Transactions: j.Transactions,
		FirstCommitLSN: j.FirstCommitLSN, LastCommitLSN: j.LastCommitLSN,
		FirstEndLSN: j.FirstEndLSN, LastEndLSN: j.LastEndLSN, PrevLSN: j.PrevLSN,
		Streams: j.Streams, RawBytes: j.RawBytes}
	if j.MinCommitTimeUS != nil {
		t.MinCommitTime = time.UnixMicro(*j.MinCommitTimeUS).UTC()
	}
	if j.MaxCommitTimeUS != nil {
		t.MaxCommitTime = time.UnixMicro(*j.MaxCommitTimeUS).UTC()
	}
	return t
}
