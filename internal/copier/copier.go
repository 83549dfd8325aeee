package copier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/lifecycle"
	"github.com/tidemark/tidemark/internal/objstore"
)

// maxEntriesHeld bounds the entries a loaded catalog may accumulate
// through refreshes before the copier loads it again from its newest
// checkpoint (a long-running copier would otherwise hold every entry).
const maxEntriesHeld = 4 * catalog.DefaultCheckpointEvery

// Copy follows the primary store's catalog into one destination store.
// Its methods are not safe for concurrent use, except Status.
type Copy struct {
	// Name labels the copy in metrics, logs and statuses (the destination
	// store's description, which holds no secrets).
	Name string

	primary objstore.Store
	dest    objstore.Store
	log     *slog.Logger
	tempDir string
	every   uint64
	policy  *lifecycle.Store

	src *catalog.Catalog // the primary's catalog, nil until loaded
	dst *catalog.Catalog // the copy's catalog, nil until loaded (or after a failure)

	mu     sync.Mutex
	status Status
}

// Options configure a Copy.
type Options struct {
	// Logger receives progress and failures; nil discards.
	Logger *slog.Logger
	// TempDir holds each segment object while it is checked and copied
	// ("" = os.TempDir()).
	TempDir string
	// CheckpointEvery is how many entries apart the copy writes its own
	// checkpoints (0 = catalog.DefaultCheckpointEvery).
	CheckpointEvery int
	// Policy is the copy's lifecycle policy: the storage class of each
	// uploaded object and the retention lock of segments and entries
	// (nil: the store's defaults, no lock).
	Policy *lifecycle.Store
	// Name names the copy (default: the destination store's description).
	Name string
}

// New returns a Copy of primary into dest.
func New(primary, dest objstore.Store, opts Options) *Copy {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := dest.String()
	if opts.Name != "" {
		name = opts.Name
	}
	every := uint64(catalog.DefaultCheckpointEvery)
	if opts.CheckpointEvery > 0 {
		every = uint64(opts.CheckpointEvery)
	}
	return &Copy{Name: name, primary: primary, dest: dest, log: log.With("copy", name), tempDir: opts.TempDir,
		every: every, policy: opts.Policy, status: Status{Copy: name}}
}

// Status is where a copy stands. Its JSON form is printed by
// `archiver copy --once --json`; fields are only ever added.
type Status struct {
	// Copy is the copy's name.
	Copy string `json:"copy"`
	// PrimarySeq and CopySeq are the last entry of each catalog.
	PrimarySeq uint64 `json:"primary_seq"`
	CopySeq    uint64 `json:"copy_seq"`
	// PrimaryWatermark and CopyWatermark are each catalog's watermark.
	PrimaryWatermark catalog.Watermark `json:"primary_watermark"`
	CopyWatermark    catalog.Watermark `json:"copy_watermark"`
	// LagEntries is PrimarySeq minus CopySeq.
	LagEntries uint64 `json:"lag_entries"`
	// LagSeconds is the primary watermark's commit time minus the copy's.
	LagSeconds float64 `json:"lag_seconds"`
	// Entries, Objects and Bytes count what the last sync copied.
	Entries int   `json:"entries_copied"`
	Objects int   `json:"objects_copied"`
	Bytes   int64 `json:"bytes_copied"`
	// Jumped is true when the last sync restarted the copy from the
	// primary's checkpoint (the primary's gc had deleted entries the copy
	// lacked).
	Jumped bool `json:"jumped,omitempty"`
	// LastSync is when a sync last reached the primary's head.
	LastSync time.Time `json:"last_sync,omitzero"`
	// Error is the last sync's failure, "" after a success.
	Error string `json:"error,omitempty"`
}

// Status returns where the copy stood after its last sync.
func (c *Copy) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Sync brings the copy up to the primary's catalog as it is when Sync
// reads it: for each entry the copy lacks, in order, it copies the objects
// the entry adds (checking size and SHA-256), then the entry itself (and
// every CheckpointEvery entries the copy's own checkpoint), then the epoch
// objects. An entry is written only after its
// objects, so the copy is a complete archive after every step. A failure
// stops the sync; the next sync continues from the copy's own catalog.
func (c *Copy) Sync(ctx context.Context) (Status, error) {
	st := Status{Copy: c.Name}
	err := c.sync(ctx, &st)
	if err != nil {
		c.dst = nil // reload: what the copy holds is the truth, not memory
		st.Error = err.Error()
		syncErrors.WithLabelValues(c.Name).Inc()
		up.WithLabelValues(c.Name).Set(0)
	} else {
		st.LastSync = time.Now().UTC()
		lastSync.WithLabelValues(c.Name).Set(float64(st.LastSync.UnixNano()) / 1e9)
		up.WithLabelValues(c.Name).Set(1)
	}
	c.mu.Lock()
	if err != nil {
		st.LastSync = c.status.LastSync
	}
	c.status = st
	c.mu.Unlock()
	return st, err
}

func (c *Copy) sync(ctx context.Context, st *Status) error {
	if err := c.loadPrimary(ctx); err != nil {
		return err
	}
	c.measure(st)
	if c.dst != nil && len(c.dst.Entries()) > maxEntriesHeld {
		c.dst = nil
	}
	if c.dst == nil {
		dst, err := catalog.Load(ctx, c.dest)
		if err != nil {
			return fmt.Errorf("load the copy's catalog: %w", err)
		}
		c.dst = dst
	}
	head := c.src.NextSeq() - 1
	if c.dst.NextSeq()-1 > head {
		return c.ahead(ctx)
	}
	for c.dst.NextSeq() <= head {
		if err := c.step(ctx, st); err != nil {
			return err
		}
		c.measure(st)
	}
	return c.copyEpochs(ctx)
}

// loadPrimary loads the primary's catalog, or reads what was appended
// since. A primary rebuilt or rewritten under the copier fails the
// refresh; the catalog is then loaded afresh on the next sync.
func (c *Copy) loadPrimary(ctx context.Context) error {
	if c.src != nil && len(c.src.Entries()) > maxEntriesHeld {
		c.src = nil // load from the newest checkpoint again: memory stays bounded
	}
	if c.src != nil {
		if err := c.src.Refresh(ctx, c.primary); err == nil {
			return nil
		} else if ctx.Err() != nil {
			return err
		}
		c.src = nil
	}
	src, err := catalog.Load(ctx, c.primary)
	if err != nil {
		return fmt.Errorf("load the primary's catalog: %w", err)
	}
	c.src = src
	return nil
}

// measure records the lag in st and the metrics; with the copy's catalog
// not loaded (the destination unreachable) it keeps the last known one.
func (c *Copy) measure(st *Status) {
	st.PrimarySeq = c.src.NextSeq() - 1
	st.PrimaryWatermark = c.src.Watermark()
	if c.dst != nil {
		st.CopySeq = c.dst.NextSeq() - 1
		st.CopyWatermark = c.dst.Watermark()
	} else {
		c.mu.Lock()
		st.CopySeq, st.CopyWatermark = c.status.CopySeq, c.status.CopyWatermark
		c.mu.Unlock()
	}
	st.LagEntries = 0
	if st.PrimarySeq > st.CopySeq {
		st.LagEntries = st.PrimarySeq - st.CopySeq
	}
	st.LagSeconds = 0
	if st.LagEntries > 0 && !st.CopyWatermark.CommitTime.IsZero() {
		st.LagSeconds = max(0, st.PrimaryWatermark.CommitTime.Sub(st.CopyWatermark.CommitTime).Seconds())
	} else if st.LagEntries > 0 {
		first, _, ok := c.src.Window()
		if ok {
			st.LagSeconds = max(0, st.PrimaryWatermark.CommitTime.Sub(first).Seconds())
		}
	}
	lagEntries.WithLabelValues(c.Name).Set(float64(st.LagEntries))
	lagSeconds.WithLabelValues(c.Name).Set(st.LagSeconds)
}

// ahead handles a copy whose catalog is longer than the primary's: a
// refresh raced the load, or the copy is not a copy of this primary.
func (c *Copy) ahead(ctx context.Context) error {
	seq := c.src.NextSeq() - 1
	if seq == 0 {
		return fmt.Errorf("the primary %s holds no catalog but the copy holds %d entries: not a copy of this archive (Try: check --store and --to)", c.primary, c.dst.NextSeq()-1)
	}
	return fmt.Errorf("the copy holds %d entries, the primary only %d: the primary's catalog was rebuilt or replaced, or this is not a copy of it (Try: restorer verify --store COPY --primary PRIMARY)", c.dst.NextSeq()-1, seq)
}

// step copies the copy's next entry with its objects, or restarts the
// copy from the primary's checkpoint when the primary's gc deleted it.
func (c *Copy) step(ctx context.Context, st *Status) error {
	seq := c.dst.NextSeq()
	e, ok, err := c.entry(ctx, seq)
	if err != nil {
		return err
	}
	if !ok {
		return c.jump(ctx, st)
	}
	key := catalog.EntryKey(seq)
	if err := c.dst.Accept(key, e); err != nil {
		return fmt.Errorf("the primary's entry %d does not continue the copy's chain (the copy was altered or is not a copy of this primary): %w", seq, err)
	}
	if err := c.copyEntryObjects(ctx, e, st); err != nil {
		return err
	}
	if err := c.putEntry(ctx, e); err != nil {
		return err
	}
	st.Entries++
	entriesCopied.WithLabelValues(c.Name).Inc()
	if seq%c.every == 0 {
		// As for the writer, a failed checkpoint fails nothing: the
		// entry is durable, and the next checkpoint folds it.
		if err := catalog.WriteCheckpoint(ctx, c.dest, c.dst, "copier", time.Now()); err != nil {
			c.log.Warn("could not write the copy's checkpoint", "seq", seq, "err", err)
		}
	}
	return nil
}

// entry returns the primary's entry seq: from its loaded catalog, or read
// from the store. ok is false when the primary no longer has it.
func (c *Copy) entry(ctx context.Context, seq uint64) (catalog.Entry, bool, error) {
	entries := c.src.Entries()
	if len(entries) > 0 && seq >= entries[0].Seq {
		if i := seq - entries[0].Seq; i < uint64(len(entries)) {
			return entries[i], true, nil
		}
	}
	body, err := objstore.ReadAll(ctx, c.primary, catalog.EntryKey(seq), catalog.MaxEntryBytes, objstore.WithRetry(objstore.DefaultRetry))
	if errors.Is(err, objstore.ErrNotFound) {
		return catalog.Entry{}, false, nil
	}
	if err != nil {
		return catalog.Entry{}, false, fmt.Errorf("read the primary's %s: %w", catalog.EntryKey(seq), err)
	}
	e, err := catalog.DecodeEntry(body)
	if err != nil {
		return catalog.Entry{}, false, fmt.Errorf("the primary's %s: %w", catalog.EntryKey(seq), err)
	}
	return e, true, nil
}

// copyEntryObjects copies the segment objects an entry adds: its segment,
// a merge's output and recorded debris. An object the primary's gc has
// already deleted (superseded since, or debris) is skipped: no later
// state of the archive reads it.
func (c *Copy) copyEntryObjects(ctx context.Context, e catalog.Entry, st *Status) error {
	var refs []objectRef
	if e.Segment != nil {
		refs = append(refs, objectRef{e.Segment.Key, e.Segment.Size, e.Segment.SHA256, false, false})
	}
	if e.Merge != nil {
		refs = append(refs, objectRef{e.Merge.Output.Key, e.Merge.Output.Size, e.Merge.Output.SHA256, false, false})
	}
	for _, d := range e.Debris {
		refs = append(refs, objectRef{d.Key, d.Size, d.SHA256, true, false})
	}
	for _, r := range refs {
		if !r.optional {
			_, live := c.src.SegmentSeq(r.key)
			r.optional = !live
		}
		if err := c.copyObject(ctx, r, st); err != nil {
			return err
		}
	}
	return nil
}

// putEntry writes the entry object to the copy. Finding the same bytes
// there already (a sync cut short after the put) is success.
func (c *Copy) putEntry(ctx context.Context, e catalog.Entry) error {
	body, err := catalog.EntryBody(e)
	if err != nil {
		return err
	}
	return c.putCatalogObject(ctx, catalog.EntryKey(e.Seq), body)
}

// putCatalogObject creates a catalog object in the copy conditionally;
// an existing object must hold the same bytes.
func (c *Copy) putCatalogObject(ctx context.Context, key string, body []byte) error {
	opts := c.putOptions(-1)
	opts.IfAbsent = true
	err := c.dest.Put(ctx, key, bytes.NewReader(body), int64(len(body)), opts)
	if !errors.Is(err, objstore.ErrExists) {
		if err != nil {
			return fmt.Errorf("write %s to the copy: %w", key, err)
		}
		return nil
	}
	have, err := objstore.ReadAll(ctx, c.dest, key, int64(len(body)), objstore.WithRetry(objstore.DefaultRetry))
	if err != nil || !bytes.Equal(have, body) {
		return fmt.Errorf("the copy already holds a different %s: it was altered or is not a copy of this primary (Try: restorer verify --store COPY --primary PRIMARY)", key)
	}
	return nil
}

// putOptions are the class and lock of an object uploaded now: a segment
// of level (-1 for a catalog entry) under the copy's policy.
func (c *Copy) putOptions(level int) objstore.PutOptions {
	if c.policy == nil {
		return objstore.PutOptions{}
	}
	return c.policy.PutOptions(level, time.Now())
}
