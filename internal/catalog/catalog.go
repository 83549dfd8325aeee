package catalog

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tidemark/tidemark/internal/objstore"
)

// loadBatch is how many entry objects Load reads in parallel at a time.
const (
	loadBatch       = 256
	loadParallelism = 16
)

// Catalog is the verified state of the catalog: its segments in chain
// order and its watermark. Its methods are safe for concurrent use; a
// Writer appends to the Catalog it was given.
type Catalog struct {
	mu         sync.RWMutex
	entries    []Entry      // entries read, from the checkpoint's head entry on
	segments   []SegmentRef // chain order
	segSeqs    []uint64     // entry seq of each segment
	keys       map[string]uint64
	debris     map[string]debrisRecord
	superseded map[string]SupersededRef
	resyncs    []ResyncRecord
	wm         Watermark
	next       uint64 // seq of the next entry
	lastHash   string
	lastEpoch  uint64
	first      time.Time // earliest MinCommitTime of a segment with events
	hasFirst   bool
	checkpoint uint64 // seq of the checkpoint Load started from, 0 for none
	warnings   []string
	knownGaps  []KnownGapRecord // chain order
	// afterApply, when set, runs after each entry readEntries applies
	// (without the lock held); Verify compares checkpoints there.
	afterApply func(seq uint64) error
	// afterBody, when set, sees each applied entry's stored bytes (without
	// the lock held); Verify checks they are the canonical encoding.
	afterBody func(key string, body []byte)
}

func newCatalog() *Catalog {
	return &Catalog{keys: make(map[string]uint64), debris: make(map[string]debrisRecord),
		superseded: make(map[string]SupersededRef), next: 1}
}

// LoadOptions tune LoadWith.
type LoadOptions struct {
	// IgnoreCheckpoints reads and verifies every entry from seq 1.
	IgnoreCheckpoints bool
}

// Load reads the catalog: the latest checkpoint whose hash and link to its
// entry verify, then every entry after it, checking the hash chain. A
// store without a catalog yields an empty Catalog (NextSeq 1). A broken
// chain is a *ChainError (errors.Is ErrChainBroken).
func Load(ctx context.Context, store objstore.Store) (*Catalog, error) {
	return LoadWith(ctx, store, LoadOptions{})
}

// LoadWith is Load with options.
func LoadWith(ctx context.Context, store objstore.Store, opts LoadOptions) (*Catalog, error) {
	c, err := load(ctx, store, opts)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// load returns the catalog up to the first broken entry together with the
// error, so Verify can report on what precedes the break.
func load(ctx context.Context, store objstore.Store, opts LoadOptions) (*Catalog, error) {
	if opts.IgnoreCheckpoints {
		c := newCatalog()
		return c, c.readEntries(ctx, store)
	}
	c, err := loadCheckpoint(ctx, store)
	if err != nil {
		return newCatalog(), err
	}
	return c, c.readEntries(ctx, store)
}

// Refresh reads and verifies the entries appended since the catalog was
// loaded or last refreshed.
func (c *Catalog) Refresh(ctx context.Context, store objstore.Store) error {
	return c.readEntries(ctx, store)
}

// readEntries lists the entries after the current head and applies them in
// order, reading them in parallel batches.
func (c *Catalog) readEntries(ctx context.Context, store objstore.Store) error {
	c.mu.RLock()
	after := ""
	if c.next > 1 {
		after = EntryKey(c.next - 1)
	}
	c.mu.RUnlock()
	objs, err := store.List(ctx, EntriesPrefix, after)
	if err != nil {
		return fmt.Errorf("catalog: list entries: %w", err)
	}
	for start := 0; start < len(objs); start += loadBatch {
		batch := objs[start:min(start+loadBatch, len(objs))]
		bodies, err := readBatch(ctx, store, batch)
		if err != nil {
			return err
		}
		for i, o := range batch {
			if err := c.applyObject(o.Key, bodies[i]); err != nil {
				return err
			}
			if c.afterBody != nil {
				c.afterBody(o.Key, bodies[i])
			}
			if c.afterApply != nil {
				if err := c.afterApply(c.next - 1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func readBatch(ctx context.Context, store objstore.Store, objs []objstore.ObjectInfo) ([][]byte, error) {
	bodies := make([][]byte, len(objs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(loadParallelism)
	for i, o := range objs {
		if _, ok := parseSeqKey(EntriesPrefix, o.Key); !ok {
			continue // applyObject reports it
		}
		g.Go(func() error {
			b, err := objstore.ReadAll(gctx, store, o.Key, MaxEntryBytes, objstore.WithRetry(objstore.DefaultRetry))
			if err != nil {
				return fmt.Errorf("catalog: read %s: %w", o.Key, err)
			}
			bodies[i] = b
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return bodies, nil
}

// applyObject verifies one listed entry object and folds it in.
func (c *Catalog) applyObject(key string, body []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	seq, ok := parseSeqKey(EntriesPrefix, key)
	if !ok {
		return &ChainError{Seq: c.next, Key: key, Reason: "unexpected object among the entries (not <20 digits>.json)"}
	}
	if seq != c.next {
		if seq > c.next {
			return &ChainError{Seq: c.next, Key: EntryKey(c.next), Reason: fmt.Sprintf("entry missing (the next present is %d)", seq)}
		}
		return &ChainError{Seq: seq, Key: key, Reason: fmt.Sprintf("unexpected entry (expected %d next)", c.next)}
	}
	e, err := decodeEntry(body)
	if err != nil {
		return &ChainError{Seq: seq, Key: key, Reason: err.Error()}
	}
	if reason := c.check(e); reason != "" {
		return &ChainError{Seq: seq, Key: key, Reason: reason}
	}
	c.apply(e)
	return nil
}

// check reports why e cannot be the next entry, or "". Writer.Append and
// Load use the same rules, so Load accepts exactly what a writer can write.
func (c *Catalog) check(e Entry) string {
	switch {
	case e.Seq != c.next:
		return fmt.Sprintf("entry says seq %d, expected %d (reordered or replaced)", e.Seq, c.next)
	case e.Hash != e.ComputeHash():
		return "hash does not match the entry's content (altered)"
	case e.Prev != c.lastHash:
		return fmt.Sprintf("prev %s does not match the hash of entry %d (%s): replaced or injected", short(e.Prev), e.Seq-1, short(c.lastHash))
	case e.Epoch == 0:
		return "epoch 0 (epochs start at 1)"
	case e.Epoch < c.lastEpoch:
		return fmt.Sprintf("epoch %d is lower than the previous entry's %d (written by a fenced writer)", e.Epoch, c.lastEpoch)
	case len(e.Writer) > maxString:
		return "writer name too long"
	case e.Watermark.LSN < c.wm.LSN:
		return fmt.Sprintf("watermark %s is behind the previous %s", e.Watermark.LSN, c.wm.LSN)
	}
	if e.Segment != nil {
		if reason := checkSegment(e.Segment); reason != "" {
			return reason
		}
		if reason := c.checkNewKey(e.Segment.Key); reason != "" {
			return reason
		}
	}
	if e.KnownGap != nil && e.Resync != nil {
		return "an entry records a known gap or a resync, not both"
	}
	if e.KnownGap != nil {
		return c.checkKnownGap(e)
	}
	if e.Resync != nil {
		return c.checkResync(e)
	}
	if e.Merge != nil {
		switch {
		case e.Segment != nil || len(e.Debris) > 0:
			return "a merge entry adds no other segment or debris"
		case e.Watermark.LSN != c.wm.LSN || !e.Watermark.CommitTime.Equal(c.wm.CommitTime):
			return "a merge entry keeps the watermark"
		}
		return c.checkMerge(e.Merge)
	}
	return c.checkDebris(e.Debris)
}

// apply folds a checked entry into the state.
func (c *Catalog) apply(e Entry) {
	c.entries = append(c.entries, e)
	if e.Segment != nil {
		c.addSegment(*e.Segment, e.Seq)
	}
	if e.Merge != nil {
		c.applyMerge(e.Merge, e.Seq, e.Written)
	}
	for _, d := range e.Debris {
		c.debris[d.Key] = debrisRecord{DebrisRef: d, Seq: e.Seq, At: e.Written.UTC()}
	}
	if e.KnownGap != nil {
		c.knownGaps = append(c.knownGaps, KnownGapRecord{KnownGap: *e.KnownGap, Seq: e.Seq, At: e.Written.UTC()})
	}
	if e.Resync != nil {
		c.resyncs = append(c.resyncs, ResyncRecord{Resync: *e.Resync, Seq: e.Seq, Written: e.Written.UTC()})
	}
	c.wm = e.Watermark
	c.next = e.Seq + 1
	c.lastHash = e.Hash
	c.lastEpoch = e.Epoch
}

func (c *Catalog) addSegment(s SegmentRef, seq uint64) {
	c.segments = append(c.segments, s)
	c.segSeqs = append(c.segSeqs, seq)
	c.keys[s.Key] = seq
	delete(c.debris, s.Key) // a writer produced the same segment again and adopted the object
	if s.Events > 0 && (!c.hasFirst || s.MinCommitTime.Before(c.first)) {
		c.first, c.hasFirst = s.MinCommitTime, true
	}
}

// Watermark returns the watermark of the last entry (zero when empty).
func (c *Catalog) Watermark() Watermark {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.wm
}

// Entries returns the entries Load read, in order: all of them on a load
// without a checkpoint, otherwise the checkpoint's last entry and every
// entry after it. It is empty only for an empty catalog. The slice is
// shared; do not modify it.
func (c *Catalog) Entries() []Entry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.entries[:len(c.entries):len(c.entries)]
}

// Segments returns every live segment in chain (catalog) order: merged
// segments in place of the segments they replaced. The slice is shared; do
// not modify it.
func (c *Catalog) Segments() []SegmentRef {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.segments[:len(c.segments):len(c.segments)]
}

// NextSeq returns the sequence number the next entry will get (1 for an
// empty catalog).
func (c *Catalog) NextSeq() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.next
}

// Head returns the hash and epoch of the last entry ("" and 0 when empty).
func (c *Catalog) Head() (hash string, epoch uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.lastHash, c.lastEpoch
}

// Checkpoint returns the seq of the checkpoint Load started from, 0 if it
// read every entry.
func (c *Catalog) Checkpoint() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.checkpoint
}

// Warnings lists what Load skipped without failing (checkpoints that did
// not verify). Callers may log them.
func (c *Catalog) Warnings() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]string(nil), c.warnings...)
}

// Window returns the span a restore can target: first is the earliest
// commit time in any segment, last the watermark. ok is false while the
// archive holds no event.
func (c *Catalog) Window() (first time.Time, last Watermark, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.first, c.wm, c.hasFirst
}

// Plan returns the segments that may hold commits at or before t (those
// with MinCommitTime <= t), in chain order. Commit times are not monotonic
// in chain order, so the result is chosen by each segment's own range,
// never by position or key order.
func (c *Catalog) Plan(t time.Time) []SegmentRef {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []SegmentRef
	for _, s := range c.segments {
		if s.Events > 0 && !s.MinCommitTime.After(t) {
			out = append(out, s)
		}
	}
	return out
}

// SegmentSeq returns the seq of the entry that lists the segment key.
func (c *Catalog) SegmentSeq(key string) (uint64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	seq, ok := c.keys[key]
	return seq, ok
}

// sortByKey sorts records by the key key returns.
func sortByKey[T any](s []T, key func(T) string) {
	sort.Slice(s, func(i, j int) bool { return key(s[i]) < key(s[j]) })
}

func short(h string) string {
	if h == "" {
		return `""`
	}
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// sortedSeqKeys returns the numbers of the well-formed keys under prefix,
// ascending.
func sortedSeqKeys(objs []objstore.ObjectInfo, prefix string) []uint64 {
	var out []uint64
	for _, o := range objs {
		if n, ok := parseSeqKey(prefix, o.Key); ok {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
