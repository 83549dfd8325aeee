package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tidemark/tidemark/internal/objstore"
)

// Writer appends entries to a catalog as the holder of one lease epoch.
// It is safe for concurrent use, though appends are serialized.
type Writer struct {
	// CheckpointEvery is the number of entries between checkpoints (a
	// checkpoint follows every entry whose seq is a multiple of it); 0
	// means DefaultCheckpointEvery, a negative value disables checkpoints.
	// Set it before the first Append.
	CheckpointEvery int
	// Clock returns the time entries and checkpoints record; nil means
	// time.Now. Tests and the time-compressed soak set a simulated clock.
	Clock func() time.Time

	store  objstore.Store
	c      *Catalog
	holder string
	epoch  uint64

	mu                sync.Mutex
	pendingCheckpoint bool
	checkpointErr     error
	// unsure is the last entry whose Put failed: it may exist. A retry
	// of the same Append sends the same bytes, so it cannot conflict with
	// itself.
	unsure *attempt
}

// attempt is an entry that was built and sent.
type attempt struct {
	entry Entry
	data  []byte
}

// NewWriter returns a writer that appends to c (loaded from store) as
// holder with the given lease epoch. c is updated in place by Append.
func NewWriter(store objstore.Store, c *Catalog, holder string, epoch uint64) *Writer {
	return &Writer{store: store, c: c, holder: holder, epoch: epoch}
}

// Append writes the next entry (catalog/entries/<seq>.json, conditional
// create) adding seg (nil for a watermark-only entry) and setting the
// watermark to wm, and returns it. Before writing it checks that no newer
// epoch exists. Errors: ErrFenced (a newer epoch exists or wrote an entry),
// ErrConflict (another writer wrote this seq; the Catalog is stale),
// ErrInvalidEntry (wm behind the catalog's watermark, a malformed or
// repeated segment), or the store's error — after which the entry may or
// may not exist, and a retry of the same Append is safe: the conditional
// create refuses a second copy, and finding its own bytes there counts as
// success.
func (w *Writer) Append(ctx context.Context, seg *SegmentRef, wm Watermark) (Entry, error) {
	return w.write(ctx, Entry{Segment: seg, Watermark: wm})
}

// AppendDebris writes the next entry recording refs as debris (uploaded
// segment objects no entry will list), keeping the watermark where it is.
// It fails like Append; ErrInvalidEntry also when a ref is malformed,
// already recorded or listed, or there are more than MaxDebrisPerEntry.
func (w *Writer) AppendDebris(ctx context.Context, refs []DebrisRef) (Entry, error) {
	return w.writeWith(ctx, Entry{Debris: refs}, true)
}

// AppendMerge writes the next entry recording m: its output replaces its
// inputs among the live segments, and the watermark stays. It fails like
// Append; ErrInvalidEntry also when the inputs are not consecutive live
// segments of one table, or the output does not span exactly their events.
func (w *Writer) AppendMerge(ctx context.Context, m Merge) (Entry, error) {
	return w.writeWith(ctx, Entry{Merge: &m}, true)
}

func (w *Writer) now() time.Time {
	if w.Clock != nil {
		return w.Clock()
	}
	return now()
}

// write appends the next entry with content's segment, debris and
// watermark.
func (w *Writer) write(ctx context.Context, content Entry) (Entry, error) {
	return w.writeWith(ctx, content, false)
}

// writeWith is write; keepWatermark gives the entry the catalog's current
// watermark.
func (w *Writer) writeWith(ctx context.Context, content Entry, keepWatermark bool) (Entry, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if keepWatermark {
		// Read under w.mu: a flush appending at the same time (the
		// archiver's merger and its writer share this Writer) must not
		// leave this entry with the watermark before its own.
		content.Watermark = w.c.Watermark()
	}
	if err := checkNotFenced(ctx, w.store, w.epoch); err != nil {
		return Entry{}, fmt.Errorf("catalog: append: %w", err)
	}
	e, data, err := w.build(content)
	if err != nil {
		return Entry{}, err
	}
	if u := w.unsure; u != nil && u.entry.Seq == e.Seq && u.entry.Prev == e.Prev && sameContent(u.entry, e) {
		e, data = u.entry, u.data
	}
	w.unsure = nil
	key := EntryKey(e.Seq)
	err = w.store.Put(ctx, key, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{IfAbsent: true})
	if errors.Is(err, objstore.ErrExists) {
		// Ours if a retried request already stored these very bytes.
		existing, rerr := objstore.ReadAll(ctx, w.store, key, MaxEntryBytes, objstore.WithRetry(objstore.DefaultRetry))
		if rerr != nil || !bytes.Equal(existing, data) {
			return Entry{}, fmt.Errorf("catalog: append entry %d: %w", e.Seq, ErrConflict)
		}
		err = nil
	}
	if err != nil {
		w.unsure = &attempt{entry: e, data: data}
		return Entry{}, fmt.Errorf("catalog: append entry %d: %w", e.Seq, err)
	}
	w.c.mu.Lock()
	if reason := w.c.check(e); reason != "" {
		// The catalog moved under us (a Refresh by another goroutine).
		w.c.mu.Unlock()
		return Entry{}, fmt.Errorf("catalog: append entry %d: %w: %s", e.Seq, ErrConflict, reason)
	}
	w.c.apply(e)
	w.c.mu.Unlock()
	w.maybeCheckpoint(ctx, e.Seq)
	return e, nil
}

// build makes the next entry and its object body, checking it against the
// catalog as Load would.
func (w *Writer) build(content Entry) (Entry, []byte, error) {
	w.c.mu.RLock()
	defer w.c.mu.RUnlock()
	if w.c.lastEpoch > w.epoch {
		return Entry{}, nil, fmt.Errorf("catalog: append: %w: the catalog has entries of epoch %d, this writer holds %d",
			ErrFenced, w.c.lastEpoch, w.epoch)
	}
	e := Entry{Seq: w.c.next, Epoch: w.epoch, Writer: w.holder, Written: w.now(), Segment: content.Segment,
		Debris: content.Debris, Merge: content.Merge, KnownGap: content.KnownGap, Resync: content.Resync, Watermark: content.Watermark, Prev: w.c.lastHash}
	e.normalize()
	e.Hash = e.ComputeHash()
	if reason := w.c.check(e); reason != "" {
		return Entry{}, nil, fmt.Errorf("catalog: append entry %d: %w: %s", e.Seq, ErrInvalidEntry, reason)
	}
	data, err := e.encode()
	if err != nil {
		return Entry{}, nil, fmt.Errorf("catalog: append: %w: %w", ErrInvalidEntry, err)
	}
	return e, data, nil
}

// sameContent reports whether two entries add the same segment and debris
// and set the same watermark.
func sameContent(a, b Entry) bool {
	return sameSegment(a.Segment, b.Segment) && slices.Equal(a.Debris, b.Debris) && sameMerge(a.Merge, b.Merge) &&
		sameKnownGap(a.KnownGap, b.KnownGap) && sameResync(a.Resync, b.Resync) && sameWatermark(a.Watermark, b.Watermark)
}

func sameMerge(a, b *Merge) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Inputs, b.Inputs) && sameSegment(&a.Output, &b.Output)
}

func sameSegment(a, b *SegmentRef) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	return x.Key == y.Key && x.SHA256 == y.SHA256 && x.Size == y.Size && x.Events == y.Events &&
		x.Transactions == y.Transactions && x.Table == y.Table && x.TableID == y.TableID && x.KeyID == y.KeyID &&
		x.Compression == y.Compression && x.FirstEndLSN == y.FirstEndLSN && x.LastEndLSN == y.LastEndLSN &&
		x.PrevLSN == y.PrevLSN && x.MinCommitTime.Equal(y.MinCommitTime) && x.MaxCommitTime.Equal(y.MaxCommitTime) &&
		x.RawBytes == y.RawBytes && x.Level == y.Level && x.EventsDigest == y.EventsDigest
}

func sameWatermark(a, b Watermark) bool { return a.LSN == b.LSN && a.CommitTime.Equal(b.CommitTime) }

// maybeCheckpoint writes a checkpoint when one is due (or an earlier one
// failed). A failure does not fail the append: the entry is durable, and
// the checkpoint is retried after the next entry (see CheckpointError).
func (w *Writer) maybeCheckpoint(ctx context.Context, seq uint64) {
	every := w.CheckpointEvery
	if every == 0 {
		every = DefaultCheckpointEvery
	}
	if every < 0 || (seq%uint64(every) != 0 && !w.pendingCheckpoint) {
		return
	}
	err := w.c.prune(ctx, w.store)
	if err == nil {
		err = writeCheckpoint(ctx, w.store, w.c, w.holder, w.now())
	}
	w.pendingCheckpoint = err != nil
	w.checkpointErr = err
}

// CheckpointError returns the error of the last checkpoint attempt, nil
// if it succeeded (or none was due yet).
func (w *Writer) CheckpointError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checkpointErr
}

// Epoch returns the writer's lease epoch.
func (w *Writer) Epoch() uint64 { return w.epoch }

// checkNotFenced returns ErrFenced when an epoch newer than epoch exists.
func checkNotFenced(ctx context.Context, store objstore.Store, epoch uint64) error {
	objs, err := store.List(ctx, EpochsPrefix, EpochKey(epoch))
	if err != nil {
		return fmt.Errorf("list epochs: %w", err)
	}
	for _, o := range objs {
		if n, ok := parseSeqKey(EpochsPrefix, o.Key); ok && n > epoch {
			return fmt.Errorf("%w: epoch %d exists, this writer holds %d", ErrFenced, n, epoch)
		}
	}
	return nil
}

func sameResync(a, b *Resync) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.normalize()
	y.normalize()
	return x.Phase == y.Phase && x.ID == y.ID && x.From.Equal(y.From) && x.SnapshotTime.Equal(y.SnapshotTime) &&
		x.Timeline == y.Timeline && x.PrevTimeline == y.PrevTimeline && x.ForkLSN == y.ForkLSN && x.Base == y.Base &&
		x.SlotLSN == y.SlotLSN && x.Rows == y.Rows && x.Transactions == y.Transactions && x.Appended == y.Appended && x.Held == y.Held &&
		x.DivergedEvents == y.DivergedEvents && x.DivergedTransactions == y.DivergedTransactions &&
		sameTimePtr(x.DivergedFirst, y.DivergedFirst) && sameTimePtr(x.DivergedLast, y.DivergedLast)
}
