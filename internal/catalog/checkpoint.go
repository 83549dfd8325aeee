package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/objstore"
)

// DefaultCheckpointEvery is how many entries a Writer appends between
// checkpoints. A checkpoint lists only live objects, so it stays small and
// can be frequent; GC deletes the entries a checkpoint folds, so this also
// bounds the entry objects kept between collections.
const DefaultCheckpointEvery = 256

// Checkpoint formats: version 1 lists every segment ever added (written
// before merges existed, still read); version 2 lists the live segments
// and the superseded objects GC has yet to delete.
const (
	checkpointV1      = 1
	checkpointVersion = 2
)

// maxCheckpointTries bounds how many checkpoints Load tries, newest first,
// before it reads every entry.
const maxCheckpointTries = 3

// checkpoint is the catalog folded up to entry Seq.
type checkpoint struct {
	Version int `json:"version"`
	// Seq, EntryHash and Epoch are those of the last entry folded in: the
	// link into the hash chain.
	Seq       uint64 `json:"seq"`
	EntryHash string `json:"entry_hash"`
	Epoch     uint64 `json:"epoch"`
	// Watermark is entry Seq's watermark.
	Watermark Watermark `json:"watermark"`
	// Segments are the live segments after Seq, in chain order (version
	// 1: all segments up to Seq).
	Segments []checkpointSegment `json:"segments"`
	// Debris is every debris record up to Seq whose object was still
	// present when the checkpoint was written, in key order.
	Debris []debrisRecord `json:"debris,omitempty"`
	// Superseded are the objects merges replaced whose deletion has not
	// been seen yet, in key order (version 2).
	Superseded []SupersededRef `json:"superseded,omitempty"`
	// KnownGaps are the known gaps recorded up to Seq, in chain order.
	KnownGaps []KnownGapRecord `json:"known_gaps,omitempty"`
	// Resyncs are every resync recorded up to Seq, in entry order.
	Resyncs []ResyncRecord `json:"resyncs,omitempty"`
	Writer  string         `json:"writer"`
	Written time.Time      `json:"written"`
	// Digest is the SHA-256 of the checkpoint's canonical JSON without it.
	Digest string `json:"digest,omitempty"`
}

// checkpointSegment is a segment with the seq of the entry that added it.
type checkpointSegment struct {
	Seq uint64 `json:"seq"`
	SegmentRef
}

func (cp checkpoint) computeDigest() string {
	cp.Digest = ""
	b, err := canonicalJSON(cp)
	if err != nil {
		return ""
	}
	return sha256Hex(b)
}

// snapshot returns the catalog's state as a checkpoint.
func (c *Catalog) snapshot(writer string, now time.Time) checkpoint {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cp := checkpoint{Version: checkpointVersion, Seq: c.next - 1, EntryHash: c.lastHash, Epoch: c.lastEpoch,
		Watermark: c.wm, Writer: writer, Written: now.UTC(), Segments: make([]checkpointSegment, len(c.segments))}
	for i, s := range c.segments {
		cp.Segments[i] = checkpointSegment{Seq: c.segSeqs[i], SegmentRef: s}
	}
	cp.Debris = c.sortedDebris()
	cp.Superseded = c.sortedSuperseded()
	cp.KnownGaps = slices.Clone(c.knownGaps)
	cp.Resyncs = append([]ResyncRecord(nil), c.resyncs...)
	cp.Digest = cp.computeDigest()
	return cp
}

// writeCheckpoint stores the catalog's current state. A checkpoint already
// present at that seq is left alone: it folds the same entries.
func writeCheckpoint(ctx context.Context, store objstore.Store, c *Catalog, writer string, now time.Time) error {
	cp := c.snapshot(writer, now)
	if cp.Seq == 0 {
		return nil
	}
	b, err := canonicalJSON(cp)
	if err != nil {
		return fmt.Errorf("catalog: encode checkpoint %d: %w", cp.Seq, err)
	}
	err = store.Put(ctx, CheckpointKey(cp.Seq), bytes.NewReader(b), int64(len(b)), objstore.PutOptions{IfAbsent: true})
	if err != nil && !errors.Is(err, objstore.ErrExists) {
		return fmt.Errorf("catalog: write checkpoint %d: %w", cp.Seq, err)
	}
	return nil
}

// loadCheckpoint returns a catalog started from the newest checkpoint that
// verifies, trying up to maxCheckpointTries and recording the ones it skips
// in Warnings. Without a usable checkpoint it returns an empty catalog and
// Load reads every entry.
func loadCheckpoint(ctx context.Context, store objstore.Store) (*Catalog, error) {
	objs, err := store.List(ctx, CheckpointsPrefix, "")
	if err != nil {
		return nil, fmt.Errorf("catalog: list checkpoints: %w", err)
	}
	seqs := sortedSeqKeys(objs, CheckpointsPrefix)
	var warnings []string
	for i := len(seqs) - 1; i >= 0 && len(seqs)-i <= maxCheckpointTries; i-- {
		cp, head, err := readCheckpoint(ctx, store, seqs[i])
		if err == nil {
			c := newCatalog()
			if err = c.restore(cp, head); err == nil {
				c.warnings = warnings
				return c, nil
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		warnings = append(warnings, fmt.Sprintf("skipped checkpoint %s: %v", CheckpointKey(seqs[i]), err))
	}
	c := newCatalog()
	c.warnings = warnings
	return c, nil
}

// readCheckpoint reads checkpoint seq and the entry it links to, and checks
// the digest and the link. Errors say why the checkpoint is unusable.
func readCheckpoint(ctx context.Context, store objstore.Store, seq uint64) (checkpoint, Entry, error) {
	cp, head, _, err := readCheckpointBody(ctx, store, seq)
	return cp, head, err
}

// readCheckpointBody is readCheckpoint that also returns the stored bytes.
func readCheckpointBody(ctx context.Context, store objstore.Store, seq uint64) (cp checkpoint, head Entry, b []byte, err error) {
	b, err = objstore.ReadAll(ctx, store, CheckpointKey(seq), MaxCheckpointBytes, objstore.WithRetry(objstore.DefaultRetry))
	if err != nil {
		return cp, Entry{}, nil, err
	}
	cp, head, err = checkCheckpoint(ctx, store, seq, b)
	return cp, head, b, err
}

// checkCheckpoint parses checkpoint seq's bytes and checks its digest and
// its link to the entry it folds.
func checkCheckpoint(ctx context.Context, store objstore.Store, seq uint64, b []byte) (checkpoint, Entry, error) {
	var cp checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return cp, Entry{}, fmt.Errorf("not a checkpoint: %w", err)
	}
	switch {
	case cp.Version != checkpointV1 && cp.Version != checkpointVersion:
		return cp, Entry{}, fmt.Errorf("unsupported version %d", cp.Version)
	case cp.Version == checkpointV1 && len(cp.Superseded) > 0:
		return cp, Entry{}, errors.New("version 1 lists superseded objects")
	case cp.Seq != seq:
		return cp, Entry{}, fmt.Errorf("says seq %d", cp.Seq)
	case cp.Digest != cp.computeDigest():
		return cp, Entry{}, errors.New("digest does not match its content")
	}
	eb, err := objstore.ReadAll(ctx, store, EntryKey(seq), MaxEntryBytes, objstore.WithRetry(objstore.DefaultRetry))
	if err != nil {
		return cp, Entry{}, fmt.Errorf("read the entry it folds: %w", err)
	}
	head, err := decodeEntry(eb)
	if err != nil {
		return cp, Entry{}, fmt.Errorf("entry %d: %w", seq, err)
	}
	switch {
	case head.Seq != seq || head.Hash != head.ComputeHash():
		return cp, Entry{}, fmt.Errorf("entry %d does not verify", seq)
	case head.Hash != cp.EntryHash || head.Epoch != cp.Epoch ||
		head.Watermark.LSN != cp.Watermark.LSN || !head.Watermark.CommitTime.Equal(cp.Watermark.CommitTime):
		return cp, Entry{}, fmt.Errorf("does not match entry %d", seq)
	}
	return cp, head, nil
}

// restoreSegments adds the checkpoint's segments. Version 1 lists every
// segment in the order of the entries that added them; version 2 the live
// ones in chain order, where merged segments carry their merge's seq.
func (c *Catalog) restoreSegments(cp checkpoint) error {
	var lastSeq uint64
	for i := range cp.Segments {
		s := &cp.Segments[i]
		if reason := checkSegment(&s.SegmentRef); reason != "" {
			return fmt.Errorf("segment %d: %s", i, reason)
		}
		if s.Seq == 0 || s.Seq > cp.Seq || (cp.Version == checkpointV1 && s.Seq <= lastSeq) {
			return fmt.Errorf("segment %d: entry seq %d out of order", i, s.Seq)
		}
		if _, dup := c.keys[s.Key]; dup {
			return fmt.Errorf("segment %s listed twice", s.Key)
		}
		lastSeq = s.Seq
		c.addSegment(s.SegmentRef, s.Seq)
	}
	return nil
}

// added returns the segment an entry makes live: a flush segment or a
// merge's output; nil for other entries.
func (e Entry) added() *SegmentRef {
	switch {
	case e.Segment != nil:
		return e.Segment
	case e.Merge != nil:
		return &e.Merge.Output
	}
	return nil
}

func objstoreKeyInvalid(key string) bool {
	return objstore.ValidateKey(key) != nil || !strings.HasPrefix(key, SegmentsPrefix)
}

// restore sets the empty catalog to a verified checkpoint's state.
func (c *Catalog) restore(cp checkpoint, head Entry) error {
	if err := c.restoreSegments(cp); err != nil {
		return err
	}
	if added := head.added(); added != nil {
		if i := c.indexOf(added.Key); i < 0 || c.segSeqs[i] != head.Seq || c.segments[i].SHA256 != added.SHA256 {
			return fmt.Errorf("entry %d's segment %s is not among its live segments", head.Seq, added.Key)
		}
	}
	for _, s := range cp.Superseded {
		if s.Seq == 0 || s.Seq > cp.Seq || objstoreKeyInvalid(s.Key) || !isSHA256Hex(s.SHA256) {
			return fmt.Errorf("superseded %s: malformed", s.Key)
		}
		if reason := c.checkNewKey(s.Key); reason != "" {
			return errors.New(reason)
		}
		c.superseded[s.Key] = s
	}
	for _, d := range cp.Debris {
		if d.Seq == 0 || d.Seq > cp.Seq {
			return fmt.Errorf("debris %s: entry seq %d out of range", d.Key, d.Seq)
		}
		if reason := c.checkDebris([]DebrisRef{d.DebrisRef}); reason != "" {
			return errors.New(reason)
		}
		c.debris[d.Key] = d
	}
	for _, g := range cp.KnownGaps {
		if g.Seq == 0 || g.Seq > cp.Seq {
			return fmt.Errorf("known gap of entry %d: out of range", g.Seq)
		}
	}
	c.knownGaps = slices.Clone(cp.KnownGaps)
	for i, r := range cp.Resyncs {
		if r.Seq == 0 || r.Seq > cp.Seq || (i > 0 && r.Seq <= cp.Resyncs[i-1].Seq) {
			return fmt.Errorf("resync %s: entry seq %d out of order", r.ID, r.Seq)
		}
	}
	c.resyncs = append([]ResyncRecord(nil), cp.Resyncs...)
	if cp.Epoch == 0 {
		return errors.New("epoch 0")
	}
	c.entries = []Entry{head}
	c.wm = cp.Watermark
	c.next = cp.Seq + 1
	c.lastHash = cp.EntryHash
	c.lastEpoch = cp.Epoch
	c.checkpoint = cp.Seq
	return nil
}
