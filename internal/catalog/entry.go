package catalog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
)

// Object layout under the store's root; docs/catalog.md is the specification.
const (
	// EntriesPrefix holds one object per entry: <seq %020d>.json.
	EntriesPrefix = "catalog/entries/"
	// EpochsPrefix holds one object per writer epoch: <epoch %020d>.json.
	EpochsPrefix = "catalog/epochs/"
	// CheckpointsPrefix holds folded states: <seq %020d>.json.
	CheckpointsPrefix = "catalog/checkpoints/"
	// SegmentsPrefix is where segment objects live (segment.KeyPrefix).
	SegmentsPrefix = "segments/"
)

// Size limits for objects read from the bucket, which is untrusted.
const (
	// MaxEntryBytes bounds one entry object.
	MaxEntryBytes = 1 << 20
	// MaxEpochBytes bounds one epoch object.
	MaxEpochBytes = 64 << 10
	// MaxCheckpointBytes bounds one checkpoint object.
	MaxCheckpointBytes = 1 << 30
	// maxString bounds free-text fields (writer, table names, key ids).
	maxString = 1024
)

// EntryKey returns the object key of entry seq.
func EntryKey(seq uint64) string { return seqKey(EntriesPrefix, seq) }

// EpochKey returns the object key of epoch n.
func EpochKey(n uint64) string { return seqKey(EpochsPrefix, n) }

// CheckpointKey returns the object key of the checkpoint at seq.
func CheckpointKey(seq uint64) string { return seqKey(CheckpointsPrefix, seq) }

func seqKey(prefix string, n uint64) string { return fmt.Sprintf("%s%020d.json", prefix, n) }

// parseSeqKey returns the number in a key made by seqKey with prefix; it
// accepts exactly 20 digits and ".json", so no two keys name one number.
func parseSeqKey(prefix, key string) (uint64, bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return 0, false
	}
	digits, ok := strings.CutSuffix(rest, ".json")
	if !ok || len(digits) != 20 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil
}

// Watermark is how far the archive is complete: every source transaction
// whose commit record precedes LSN is in a segment the catalog lists.
type Watermark struct {
	// LSN is a chain position (a transaction's end LSN or a heartbeat's LSN).
	LSN event.Position `json:"lsn"`
	// CommitTime is the commit time of the item at LSN: a restore to any
	// instant up to it is complete.
	CommitTime time.Time `json:"commit_time"`
}

// SegmentRef describes one segment object, as the catalog commits to it.
type SegmentRef struct {
	// Key is the object key, under "segments/".
	Key string `json:"key"`
	// Size is the stored object's size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the hex SHA-256 of the whole stored object.
	SHA256 string `json:"sha256"`
	// Events and Transactions count what the segment holds.
	Events       int `json:"events"`
	Transactions int `json:"transactions"`
	// Table is the qualified table name; TableID its definition's ID.
	Table   string `json:"table"`
	TableID string `json:"table_id"`
	// KeyID is the encryption key's id; "" for plaintext.
	KeyID string `json:"key_id"`
	// Compression is the segment's compression ("none", "gzip", "zstd").
	Compression string `json:"compression"`
	// FirstEndLSN and LastEndLSN are the end LSNs of the first and last
	// events; PrevLSN is the first event's chain link.
	FirstEndLSN event.Position `json:"first_end_lsn"`
	LastEndLSN  event.Position `json:"last_end_lsn"`
	PrevLSN     event.Position `json:"prev_lsn"`
	// MinCommitTime and MaxCommitTime bound the events' commit times.
	MinCommitTime time.Time `json:"min_commit_time"`
	MaxCommitTime time.Time `json:"max_commit_time"`
	// RawBytes is the size of the uncompressed records.
	RawBytes int64 `json:"raw_bytes"`
	// Level is 0 for a segment a flush wrote, n ≥ 1 for one a merge of
	// level n wrote (see Merge). Omitted when 0, so entries written before
	// levels existed keep their canonical form and hash.
	Level int `json:"level,omitempty"`
	// EventsDigest is the segment.EventsDigest of the segment's events,
	// recorded for merged segments so verify can prove a merge kept every
	// event in order after its inputs are gone; "" for flush segments.
	EventsDigest string `json:"events_digest,omitempty"`
}

// Entry is one link of the catalog's hash chain: a segment added to the
// archive and/or the watermark advanced.
type Entry struct {
	// Seq numbers entries from 1 without gaps; it is also the object name.
	Seq uint64 `json:"seq"`
	// Epoch is the writer's lease epoch; it never decreases along the chain.
	Epoch uint64 `json:"epoch"`
	// Writer is the lease holder that wrote the entry.
	Writer string `json:"writer"`
	// Written is the writer's clock when it wrote the entry.
	Written time.Time `json:"written"`
	// Segment is the segment the entry adds; nil for a watermark-only entry.
	Segment *SegmentRef `json:"segment,omitempty"`
	// Debris records segment objects that writers of earlier epochs
	// uploaded but never listed (see DebrisRef); absent in most entries.
	Debris []DebrisRef `json:"debris,omitempty"`
	// Merge records a merged segment that replaces consecutive live
	// segments (see Merge); absent except in merge entries.
	Merge *Merge `json:"merge,omitempty"`
	// KnownGap records damage an operator accepted (see KnownGap); absent
	// except in known-gap entries.
	KnownGap *KnownGap `json:"known_gap,omitempty"`
	// Resync records the beginning or end of a resync from a new primary
	// after a failover (see Resync); absent except in resync entries.
	Resync *Resync `json:"resync,omitempty"`
	// Watermark is the archive's watermark after this entry.
	Watermark Watermark `json:"watermark"`
	// Prev is the Hash of entry Seq-1 ("" for entry 1).
	Prev string `json:"prev"`
	// Hash is the hex SHA-256 of the entry's canonical JSON without Hash.
	Hash string `json:"hash,omitempty"`
}

// canonicalJSON is the one encoding hashes are computed over: Go's
// encoding/json of the struct (fields in declaration order, times in
// RFC 3339 with nanoseconds, positions as "X/X"), without HTML escaping and
// without a trailing newline.
func canonicalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ComputeHash returns the hash the entry should carry: SHA-256 over its
// canonical JSON with the hash member left out.
func (e Entry) ComputeHash() string {
	e.Hash = ""
	b, err := canonicalJSON(e)
	if err != nil {
		return "" // unencodable (a time outside years 0–9999): never equals a stored hash
	}
	return sha256Hex(b)
}

// encode returns the entry's object body: canonical JSON and a newline.
func (e Entry) encode() ([]byte, error) {
	b, err := canonicalJSON(e)
	if err != nil {
		return nil, fmt.Errorf("encode entry %d: %w", e.Seq, err)
	}
	return append(b, '\n'), nil
}

// decodeEntry parses an entry object. Unknown members are ignored (they
// are not covered by the hash, so they cannot change what an entry says).
func decodeEntry(data []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return Entry{}, fmt.Errorf("not an entry: %w", err)
	}
	return e, nil
}

// normalize puts times in UTC so that the canonical form does not depend
// on the writer's time zone.
func (e *Entry) normalize() {
	e.Written = e.Written.UTC()
	e.Watermark.CommitTime = e.Watermark.CommitTime.UTC()
	if e.Segment != nil {
		s := e.Segment.normalized()
		e.Segment = &s
	}
	if e.Resync != nil {
		r := *e.Resync
		r.normalize()
		e.Resync = &r
	}
	if e.Merge != nil {
		m := *e.Merge
		m.Output = m.Output.normalized()
		m.Inputs = append([]MergeInput(nil), m.Inputs...)
		e.Merge = &m
	}
}

func (s SegmentRef) normalized() SegmentRef {
	s.MinCommitTime = s.MinCommitTime.UTC()
	s.MaxCommitTime = s.MaxCommitTime.UTC()
	return s
}

// checkSegment reports what is wrong with a segment reference, or "".
func checkSegment(s *SegmentRef) string {
	switch {
	case objstore.ValidateKey(s.Key) != nil:
		return fmt.Sprintf("segment key %q is not a valid object key", s.Key)
	case !strings.HasPrefix(s.Key, SegmentsPrefix):
		return fmt.Sprintf("segment key %q is not under %s", s.Key, SegmentsPrefix)
	case s.Size < 0 || s.RawBytes < 0 || s.Events < 0 || s.Transactions < 0:
		return "segment has a negative size or count"
	case !isSHA256Hex(s.SHA256):
		return "segment sha256 is not 64 lowercase hex digits"
	case s.LastEndLSN < s.FirstEndLSN:
		return fmt.Sprintf("segment ends (%s) before it starts (%s)", s.LastEndLSN, s.FirstEndLSN)
	case s.MaxCommitTime.Before(s.MinCommitTime):
		return "segment max commit time is before its min commit time"
	case len(s.Table) > maxString || len(s.TableID) > maxString || len(s.KeyID) > maxString || len(s.Compression) > maxString:
		return "segment has an over-long name field"
	case s.Level < 0 || s.Level > MaxLevel:
		return fmt.Sprintf("segment level %d outside 0…%d", s.Level, MaxLevel)
	case s.EventsDigest != "" && !isSHA256Hex(s.EventsDigest):
		return "segment events_digest is not 64 lowercase hex digits"
	}
	return ""
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
