package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/internal/objstore"
)

// DefaultCheckpointEvery is how many entries a Writer appends between
// checkpoints.
const DefaultCheckpointEvery = 1000

// checkpointVersion is the checkpoint format this package writes and reads.
const checkpointVersion = 1

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
	// Segments are all segments up to Seq, in chain order.
	Segments []checkpointSegment `json:"segments"`
	// Debris is every debris record up to Seq, in key order.
	Debris  []debrisRecord `json:"debris,omitempty"`
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
	var cp checkpoint
	b, err := objstore.ReadAll(ctx, store, CheckpointKey(seq), MaxCheckpointBytes, objstore.WithRetry(objstore.DefaultRetry))
	if err != nil {
		return cp, Entry{}, err
	}
	if err := json.Unmarshal(b, &cp); err != nil {
		return cp, Entry{}, fmt.Errorf("not a checkpoint: %w", err)
	}
	switch {
	case cp.Version != checkpointVersion:
		return cp, Entry{}, fmt.Errorf("unsupported version %d", cp.Version)
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

// restore sets the empty catalog to a verified checkpoint's state.
func (c *Catalog) restore(cp checkpoint, head Entry) error {
	var lastSeq uint64
	for i := range cp.Segments {
		s := &cp.Segments[i]
		if reason := checkSegment(&s.SegmentRef); reason != "" {
			return fmt.Errorf("segment %d: %s", i, reason)
		}
		if s.Seq == 0 || s.Seq > cp.Seq || s.Seq <= lastSeq {
			return fmt.Errorf("segment %d: entry seq %d out of order", i, s.Seq)
		}
		if _, dup := c.keys[s.Key]; dup {
			return fmt.Errorf("segment %s listed twice", s.Key)
		}
		lastSeq = s.Seq
		c.addSegment(s.SegmentRef, s.Seq)
	}
	if head.Segment != nil && (lastSeq != head.Seq || c.segments[len(c.segments)-1].Key != head.Segment.Key ||
		c.segments[len(c.segments)-1].SHA256 != head.Segment.SHA256) {
		return fmt.Errorf("its last segment is not entry %d's", head.Seq)
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
