package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// Verify checks the whole archive in store, reading every entry (not the
// checkpoints) and every segment, and reports what it finds:
//
//   - the hash chain (FAILURE at the first broken entry; only the entries
//     before it are checked further);
//   - every checkpoint against the entries it folds (FAILURE if one that
//     Load would trust disagrees, WARNING if one is unusable);
//   - every entry's epoch has its epoch object (WARNING);
//   - every segment object exists, has the size and SHA-256 the entry
//     commits to, decodes (checksums, decryption with keyring) and has the
//     trailer the entry describes (FAILURE);
//   - segments hold only positions after the watermark that preceded their
//     entry, transaction links never point backwards, and every
//     transaction is complete (all Count events, no index twice) (FAILURE;
//     incomplete transactions beyond the watermark are a WARNING);
//   - per stream, stream_version rises by exactly one across the archive,
//     and no event_id appears twice (FAILURE);
//   - every object under segments/ is listed, or recorded as debris and
//     unchanged since (WARNING otherwise: an injected or altered object, or
//     an upload in flight; restore never reads it).
//
// It returns an error only when the store cannot be read; everything wrong
// with the archive is a finding. Verify keeps per-stream versions and a
// 16-byte digest per event id in memory.
func Verify(ctx context.Context, store objstore.Store, keyring *segment.Keyring) (*Report, error) {
	return VerifyWith(ctx, store, VerifyOptions{Keyring: keyring})
}

// DefaultVerifyParallel is how many segments verify downloads at once.
const DefaultVerifyParallel = 4

// VerifyOptions tune VerifyWith.
type VerifyOptions struct {
	// Keyring decrypts encrypted segments; nil reads plaintext only.
	Keyring *segment.Keyring
	// Parallel is how many segments download at once (default
	// DefaultVerifyParallel); they are checked in chain order all the same.
	Parallel int
	// Sample, when between 0 and 1, reads only that share of the segments,
	// chosen at random (at least one): every object-level check runs on
	// those read, the checks across segments (transactions, streams, event
	// ids) do not. 0 (or 1 and above) reads every segment.
	Sample float64
	// StreamsFromOne requires each stream's first archived version to be
	// 1 (an archive holds every stream from its start: capture snapshots
	// first). Without it a stream may start anywhere (synthetic feeds).
	StreamsFromOne bool
	// Visit, when set, sees every event of every segment that passed its
	// object checks, in chain order, from one goroutine, with the event's
	// index in its segment and the segment's table definition.
	Visit func(ref SegmentRef, index int, t *event.Table, e *event.Event)
	// Planned, when set, is told which segments will be read before the
	// first download; Done after each one is checked, with the bytes read.
	Planned func(refs []SegmentRef)
	Done    func(ref SegmentRef, bytes int64)
	// TempDir holds the downloaded segments ("" = os.TempDir()).
	TempDir string
}

// VerifyWith is Verify with options: it reads each segment object once,
// Parallel at a time, and streams its events through the checks in chain
// order.
func VerifyWith(ctx context.Context, store objstore.Store, opts VerifyOptions) (*Report, error) {
	r := &Report{}
	checkpoints, err := listCheckpoints(ctx, store, r)
	if err != nil {
		return nil, err
	}
	c, err := verifyChain(ctx, store, checkpoints, r)
	if err != nil {
		return nil, err
	}
	r.catalog = c
	r.Entries = len(c.Entries())
	r.Segments = len(c.Segments())
	r.Watermark = c.Watermark()
	if err := verifyEpochs(ctx, store, c, r); err != nil {
		return nil, err
	}
	for _, g := range c.knownGaps {
		r.addf(OK, "known-gap", EntryKey(g.Seq), "", "known gap recorded %s by %q: %s (objects %v, streams %v)",
			g.At.Format(time.RFC3339), g.Operator, g.Reason, g.Objects, g.Streams)
	}
	reportResyncs(c, r)
	v := newSegmentVerifier(c, opts.Keyring, r)
	order := v.order()
	for _, i := range order {
		v.checkRef(i)
	}
	read := order
	if opts.Sample > 0 && opts.Sample < 1 {
		read = sample(order, opts.Sample)
		v.sampled = true
		r.Sampled = true
	}
	v.visit = opts.Visit
	v.fromOne = opts.StreamsFromOne
	if opts.Planned != nil {
		refs := make([]SegmentRef, len(read))
		for k, i := range read {
			refs[k] = c.segments[i]
		}
		opts.Planned(refs)
	}
	if err := v.verifyAll(ctx, store, read, opts); err != nil {
		return nil, err
	}
	v.finish()
	if err := verifyUnlisted(ctx, store, c, r); err != nil {
		return nil, err
	}
	if r.Sampled {
		r.addf(OK, "summary", "", "", "sampled: %d of %d segments read (the checks across segments did not run)", len(read), r.Segments)
	}
	r.addf(OK, "summary", "", "", "%d entries, %d of %d segments verified, %d events in %d transactions, %d streams, watermark %s",
		r.Entries, r.Verified, r.Segments, r.Events, r.Transactions, r.Streams, r.Watermark.LSN)
	r.finish()
	return r, nil
}

// sample picks a random share of idx (at least one), keeping its order.
func sample(idx []int, share float64) []int {
	var out []int
	for _, i := range idx {
		if rand.Float64() < share {
			out = append(out, i)
		}
	}
	if len(out) == 0 && len(idx) > 0 {
		out = append(out, idx[rand.IntN(len(idx))])
	}
	return out
}

// verifyAll downloads the segments idx names, Parallel at a time, and
// checks each in that order. It returns an error only when ctx ends.
func (v *segmentVerifier) verifyAll(ctx context.Context, store objstore.Store, idx []int, opts VerifyOptions) error {
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = DefaultVerifyParallel
	}
	p := startPrefetch(ctx, store, v.c.segments, idx, parallel, opts.TempDir)
	defer p.stop()
	for {
		d, ok := p.next()
		if !ok {
			break
		}
		err := v.verify(ctx, d)
		p.release(d)
		if err != nil {
			return err
		}
		if opts.Done != nil {
			opts.Done(v.c.segments[d.i], d.n)
		}
	}
	return ctx.Err()
}

// listCheckpoints returns the seqs of the well-formed checkpoint objects,
// ascending, warning about any other object among them.
func listCheckpoints(ctx context.Context, store objstore.Store, r *Report) ([]uint64, error) {
	objs, err := store.List(ctx, CheckpointsPrefix, "")
	if err != nil {
		return nil, fmt.Errorf("catalog: verify: list checkpoints: %w", err)
	}
	for _, o := range objs {
		if _, ok := parseSeqKey(CheckpointsPrefix, o.Key); !ok {
			r.addf(Warning, "checkpoint", o.Key, "", "unexpected object among the checkpoints")
		}
	}
	return sortedSeqKeys(objs, CheckpointsPrefix), nil
}

// verifyChain folds the entries into a catalog, comparing each checkpoint
// with the state at its seq. It starts at entry 1 when that entry exists;
// when GC has collected the oldest entries, it starts from the oldest
// checkpoint that verifies (the entries it folds are gone, so it is the
// proof of what they held).
func verifyChain(ctx context.Context, store objstore.Store, checkpoints []uint64, r *Report) (*Catalog, error) {
	c, err := verifyStart(ctx, store, checkpoints, r)
	if err != nil || c == nil {
		return newCatalog(), err
	}
	pending := map[uint64]bool{}
	for _, seq := range checkpoints {
		if seq > c.checkpoint {
			pending[seq] = true
		}
	}
	c.afterBody = func(key string, body []byte) {
		if !canonicalEntry(body) {
			r.addf(Warning, "chain", key, "", "its bytes are not the canonical encoding of what it says (altered where the hash cannot see, e.g. the name of an empty member)")
		}
	}
	c.afterApply = func(seq uint64) error {
		if !pending[seq] {
			return nil
		}
		delete(pending, seq)
		return verifyCheckpointAt(ctx, store, c, seq, r)
	}
	err = c.readEntries(ctx, store)
	c.afterApply, c.afterBody = nil, nil
	var ce *ChainError
	switch {
	case errors.As(err, &ce):
		r.addf(Failure, "chain", ce.Key, "", "%s; entries after %d were not checked", ce.Reason, ce.Seq-1)
	case err != nil:
		return nil, fmt.Errorf("catalog: verify: %w", err)
	}
	for seq := range pending {
		r.addf(Warning, "checkpoint", CheckpointKey(seq), "", "folds entries up to %d, beyond the verified chain", seq)
	}
	return c, nil
}

// verifyStart returns the catalog verification folds entries into: empty
// when entry 1 exists, else restored from the oldest usable checkpoint. It
// returns nil (after a FAILURE) when neither is available.
func verifyStart(ctx context.Context, store objstore.Store, checkpoints []uint64, r *Report) (*Catalog, error) {
	first, err := store.List(ctx, EntriesPrefix, "")
	if err != nil {
		return nil, fmt.Errorf("catalog: verify: list entries: %w", err)
	}
	if len(first) == 0 || first[0].Key == EntryKey(1) {
		return newCatalog(), nil
	}
	for _, seq := range checkpoints {
		cp, head, err := readCheckpoint(ctx, store, seq)
		if err == nil {
			c := newCatalog()
			if err = c.restore(cp, head); err == nil {
				r.addf(OK, "chain", CheckpointKey(seq), "", "entries before %d were collected; verified from the checkpoint that folds them", seq)
				return c, nil
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.addf(Warning, "checkpoint", CheckpointKey(seq), "", "unusable (Load skips it): %v", err)
	}
	r.addf(Failure, "chain", EntryKey(1), "", "entry 1 is gone and no checkpoint folds the entries before %s: the archive's beginning cannot be verified", first[0].Key)
	return nil, nil
}

// verifyCheckpointAt compares checkpoint seq with the catalog folded up to
// the same entry.
func verifyCheckpointAt(ctx context.Context, store objstore.Store, c *Catalog, seq uint64, r *Report) error {
	cp, _, body, err := readCheckpointBody(ctx, store, seq)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.addf(Warning, "checkpoint", CheckpointKey(seq), "", "unusable (Load skips it): %v", err)
		return nil
	}
	if msg := compareCheckpoint(cp, c); msg != "" {
		r.addf(Failure, "checkpoint", CheckpointKey(seq), "", "disagrees with the entries it folds: %s", msg)
	}
	if canon, err := canonicalJSON(cp); err != nil || !bytes.Equal(body, canon) {
		r.addf(Warning, "checkpoint", CheckpointKey(seq), "", "its bytes are not the canonical encoding of what it says (altered where the digest cannot see, e.g. the name of an empty member)")
	}
	return nil
}

// canonicalEntry reports whether an entry object's bytes are exactly the
// canonical encoding of the entry they decode to: the hash covers what an
// entry says, not how it is spelt, so a flipped byte in the name of an
// empty member ("prev" of entry 1, an empty "key_id") leaves the hash
// valid and only this comparison sees it.
func canonicalEntry(body []byte) bool {
	e, err := decodeEntry(body)
	if err != nil {
		return false
	}
	enc, err := e.encode()
	return err == nil && bytes.Equal(body, enc)
}

// compareCheckpoint reports how cp differs from the catalog folded up to
// cp.Seq. A checkpoint may leave out debris and superseded records whose
// objects were gone when it was written, never add any.
func compareCheckpoint(cp checkpoint, c *Catalog) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	// Version 1 checkpoints predate merges: up to their seq every segment
	// added is live, so both versions compare with the live list.
	want, seqs := c.segments, c.segSeqs
	if len(cp.Segments) != len(want) {
		return fmt.Sprintf("%d segments, the entries list %d", len(cp.Segments), len(want))
	}
	for i, s := range cp.Segments {
		w := want[i]
		if s.Seq != seqs[i] || s.Key != w.Key || s.SHA256 != w.SHA256 || s.Size != w.Size ||
			s.FirstEndLSN != w.FirstEndLSN || s.LastEndLSN != w.LastEndLSN || s.PrevLSN != w.PrevLSN ||
			!s.MinCommitTime.Equal(w.MinCommitTime) || !s.MaxCommitTime.Equal(w.MaxCommitTime) ||
			s.Events != w.Events || s.KeyID != w.KeyID || s.Level != w.Level || s.EventsDigest != w.EventsDigest {
			return fmt.Sprintf("segment %d (%s) differs from entry %d's", i, s.Key, seqs[i])
		}
	}
	for _, d := range cp.Debris {
		got, ok := c.debris[d.Key]
		if !ok || got.DebrisRef != d.DebrisRef || got.Seq != d.Seq {
			return fmt.Sprintf("debris record %s is not one the entries record", d.Key)
		}
	}
	if len(cp.KnownGaps) != len(c.knownGaps) {
		return fmt.Sprintf("%d known gaps, the entries record %d", len(cp.KnownGaps), len(c.knownGaps))
	}
	for i, g := range cp.KnownGaps {
		w := c.knownGaps[i]
		if g.Seq != w.Seq || !sameKnownGap(&g.KnownGap, &w.KnownGap) {
			return fmt.Sprintf("known gap %d is not the one entry %d records", i, w.Seq)
		}
	}
	for _, s := range cp.Superseded {
		got, ok := c.superseded[s.Key]
		if !ok || got.MergeInput != s.MergeInput || got.Seq != s.Seq {
			return fmt.Sprintf("superseded record %s is not one the entries record", s.Key)
		}
	}
	return ""
}

// verifyEpochs checks that every epoch the entries carry was acquired,
// and that every epoch object is intact: it parses, re-encodes to the very
// bytes stored (a flipped byte in a member name, a quote or a brace shows
// there), names its own epoch, holds times in order and, for epochs that
// wrote entries, names the writer those entries name. An epoch object is
// rewritten by every lease renewal, so no hash commits to it; a flip that
// leaves another well-formed record (a digit of a time) cannot be told
// apart. Findings are WARNINGs: epochs fence writers, restore never reads
// them.
func verifyEpochs(ctx context.Context, store objstore.Store, c *Catalog, r *Report) error {
	objs, err := store.List(ctx, EpochsPrefix, "")
	if err != nil {
		return fmt.Errorf("catalog: verify: list epochs: %w", err)
	}
	have := map[uint64]bool{}
	for _, o := range objs {
		if n, ok := parseSeqKey(EpochsPrefix, o.Key); ok {
			have[n] = true
		} else {
			r.addf(Warning, "epoch", o.Key, "", "unexpected object among the epochs")
		}
	}
	writers := map[uint64]string{}
	seen := map[uint64]bool{}
	for _, e := range c.Entries() {
		if !seen[e.Epoch] && !have[e.Epoch] {
			r.addf(Warning, "epoch", EpochKey(e.Epoch), "", "entry %d carries epoch %d but no epoch object exists", e.Seq, e.Epoch)
		}
		seen[e.Epoch] = true
		if _, ok := writers[e.Epoch]; !ok {
			writers[e.Epoch] = e.Writer
		}
	}
	for n := range have {
		msg, err := checkEpochObject(ctx, store, n, writers)
		if err != nil {
			return err
		}
		if msg != "" {
			r.addf(Warning, "epoch", EpochKey(n), "", "damaged: %s", msg)
		}
	}
	return nil
}

// checkEpochObject says what is wrong with epoch object n, or "". It
// returns an error only when ctx ends.
func checkEpochObject(ctx context.Context, store objstore.Store, n uint64, writers map[uint64]string) (string, error) {
	b, err := objstore.ReadAll(ctx, store, EpochKey(n), MaxEpochBytes, objstore.WithRetry(objstore.DefaultRetry))
	switch {
	case ctx.Err() != nil:
		return "", ctx.Err()
	case errors.Is(err, objstore.ErrNotFound):
		return "", nil // deleted since it was listed: nothing to check
	case err != nil:
		return fmt.Sprintf("unreadable (%v)", err), nil
	}
	var info LeaseInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return fmt.Sprintf("not an epoch record (%v)", err), nil
	}
	canon, err := json.Marshal(info)
	switch {
	case err != nil || !bytes.Equal(bytes.TrimSpace(b), canon):
		return "its bytes are not the record they parse to (altered)", nil
	case info.Epoch != n:
		return fmt.Sprintf("it says epoch %d", info.Epoch), nil
	case info.Holder == "":
		return "it names no holder", nil
	case info.Renewed.Before(info.Acquired) || info.Expires.Before(info.Renewed):
		return "its acquired, renewed and expiry times are out of order", nil
	}
	if w, ok := writers[n]; ok && w != info.Holder {
		return fmt.Sprintf("holder %q, but the entries of epoch %d name writer %q", info.Holder, n, w), nil
	}
	return "", nil
}

// verifyUnlisted reports objects under segments/ the catalog does not
// list. Those it records as debris pass if they still hold what was
// recorded, and so do those the catalog cataloged since verify read it (a
// writer flushed or merged meanwhile); the others are a WARNING (restore
// never reads them).
func verifyUnlisted(ctx context.Context, store objstore.Store, c *Catalog, r *Report) error {
	objs, err := store.List(ctx, SegmentsPrefix, "")
	if err != nil {
		return fmt.Errorf("catalog: verify: list segments: %w", err)
	}
	later := newerCatalog{store: store}
	for _, o := range objs {
		if _, ok := c.keys[o.Key]; ok {
			continue
		}
		if sup, ok := c.superseded[o.Key]; ok {
			if o.Size != sup.Size {
				r.addf(Warning, "unlisted", o.Key, "", "superseded by merge entry %d, but it has %d bytes, not the %d listed: altered since", sup.Seq, o.Size, sup.Size)
				continue
			}
			r.Superseded++
			continue
		}
		if d, ok := c.debris[o.Key]; ok {
			msg, err := checkDebrisObject(ctx, store, o, d.DebrisRef)
			if err != nil {
				return err
			}
			if msg != "" {
				r.addf(Warning, "unlisted", o.Key, "", "recorded as debris by entry %d, but %s: altered since", d.Seq, msg)
				continue
			}
			r.Debris++
			continue
		}
		if known, err := later.knows(ctx, o.Key); err != nil {
			return err
		} else if known {
			continue
		}
		why := "neither listed nor recorded as debris: an injected object, or an upload whose writer stopped and no archiver has led since"
		if info, err := segment.ParseKey(o.Key); err == nil && info.LastEndLSN > c.wm.LSN {
			why = "beyond the watermark: probably an upload whose catalog entry is not written yet"
		}
		r.addf(Warning, "unlisted", o.Key, "", "not in the catalog (%s); restore never reads it", why)
	}
	if r.Superseded > 0 {
		r.addf(OK, "unlisted", "", "", "%d objects replaced by merges await garbage collection; restore never reads them", r.Superseded)
	}
	if r.Debris > 0 {
		r.addf(OK, "unlisted", "", "", "%d objects left by interrupted uploads are recorded as debris and unchanged; restore never reads them", r.Debris)
	}
	if later.known > 0 {
		r.addf(OK, "unlisted", "", "", "%d objects were cataloged by entries written while verify ran (after entry %d); the next verify checks them", later.known, c.NextSeq()-1)
	}
	return nil
}

// newerCatalog loads the catalog again, once, after verify listed the
// segment objects: a writer that flushed or merged while verify ran has
// stored objects and cataloged them after the catalog verify checks was
// read, and those are not unlisted.
type newerCatalog struct {
	store objstore.Store
	c     *Catalog
	err   error
	known int
}

// knows reports whether key is listed, superseded or recorded as debris in
// the catalog as it is now (false when it cannot be loaded: the object
// stays a warning). It returns an error only when ctx ends.
func (n *newerCatalog) knows(ctx context.Context, key string) (bool, error) {
	if n.c == nil && n.err == nil {
		n.c, n.err = Load(ctx, n.store)
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
	}
	if n.err != nil || !n.c.Known(key) {
		return false, nil
	}
	n.known++
	return true, nil
}

// checkDebrisObject says how the object differs from its debris record, or
// "". It returns an error only when ctx ends.
func checkDebrisObject(ctx context.Context, store objstore.Store, o objstore.ObjectInfo, d DebrisRef) (string, error) {
	if o.Size != d.Size {
		return fmt.Sprintf("it has %d bytes, not the %d recorded", o.Size, d.Size), nil
	}
	data, err := objstore.ReadAll(ctx, store, o.Key, d.Size, objstore.WithRetry(objstore.DefaultRetry))
	switch {
	case ctx.Err() != nil:
		return "", ctx.Err()
	case err != nil:
		return fmt.Sprintf("it is unreadable (%v)", err), nil
	case sha256Hex(data) != d.SHA256:
		return "its SHA-256 differs from the one recorded", nil
	}
	return "", nil
}

// segmentVerifier checks segments and the chain, transactions, streams and
// event ids across them.
type segmentVerifier struct {
	c       *Catalog
	keyring *segment.Keyring
	r       *Report
	// before[key] is the watermark preceding the entry that added the
	// segment (for a merged one: its first input's); unknown for segments
	// a checkpoint folds.
	before map[string]event.Position
	// lastEnd is the last position of the previous segment verified, per
	// table: live segments never overlap.
	lastEnd map[string]event.Position
	// watermarks are the distinct watermark LSNs the entries record.
	watermarks map[event.Position]bool

	links    map[event.Position]event.Position // transaction end LSN → prev LSN
	pending  map[event.Position]*txnCount
	versions map[streamKey]int64
	ids      map[[16]byte]int32 // event id digest → segment index
	systems  map[string]bool

	// sampled turns the checks across segments off (not every segment is read).
	sampled bool
	// fromOne requires a stream's first version to be 1.
	fromOne bool
	// visit, when set, sees every event checked.
	visit func(ref SegmentRef, index int, t *event.Table, e *event.Event)
	// diverged are the stretches resyncs found diverged.
	diverged []DivergedRange
}

type streamKey struct{ table, stream string }

// txnCount tracks a transaction's events until all Count have been seen.
type txnCount struct {
	count   int
	seen    map[int]bool
	segment int
}

func newSegmentVerifier(c *Catalog, keyring *segment.Keyring, r *Report) *segmentVerifier {
	v := &segmentVerifier{c: c, keyring: keyring, r: r, watermarks: map[event.Position]bool{},
		before: map[string]event.Position{}, lastEnd: map[string]event.Position{},
		links: map[event.Position]event.Position{}, pending: map[event.Position]*txnCount{},
		versions: map[streamKey]int64{}, ids: map[[16]byte]int32{}, systems: map[string]bool{}, diverged: c.Diverged()}
	var wm event.Position
	for k, e := range c.entries {
		known := k > 0 || e.Seq == 1 // a checkpoint's head entry follows entries no longer read
		switch {
		case e.Segment != nil && known:
			v.before[e.Segment.Key] = wm
		case e.Merge != nil:
			if b, ok := v.before[e.Merge.Inputs[0].Key]; ok {
				v.before[e.Merge.Output.Key] = b
			}
		}
		wm = e.Watermark.LSN
		v.watermarks[wm] = true
	}
	return v
}

// order returns segment indexes by first position (catalog order among
// equals): per table that is chain order, which stream versions follow.
func (v *segmentVerifier) order() []int {
	idx := make([]int, len(v.c.segments))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		return v.c.segments[idx[a]].FirstEndLSN < v.c.segments[idx[b]].FirstEndLSN
	})
	return idx
}

// checkRef checks segment i's catalog reference against the watermarks
// and the segment before it (no download).
func (v *segmentVerifier) checkRef(i int) {
	ref := v.c.segments[i]
	if before, ok := v.before[ref.Key]; ok && ref.FirstEndLSN <= before {
		v.r.addf(Failure, "continuity", ref.Key, "", "starts at %s, at or below the watermark %s that preceded its entry: it repeats archived positions",
			ref.FirstEndLSN, before)
	}
	if last, ok := v.lastEnd[ref.Table]; ok && ref.Events > 0 && ref.FirstEndLSN < last {
		v.r.addf(Failure, "continuity", ref.Key, "", "starts at %s, before the previous live segment of %s ends (%s): live segments overlap",
			ref.FirstEndLSN, ref.Table, last)
	}
	if ref.Events > 0 {
		v.lastEnd[ref.Table] = ref.LastEndLSN
	}
	if ref.PrevLSN >= ref.FirstEndLSN && ref.Events > 0 {
		v.r.addf(Failure, "continuity", ref.Key, "", "chain link %s is not before its first position %s", ref.PrevLSN, ref.FirstEndLSN)
	}
}

// verify checks one downloaded segment; it returns an error only for
// context ends.
func (v *segmentVerifier) verify(ctx context.Context, d *download) error {
	i := d.i
	ref := v.c.segments[i]
	n, sum, err := d.n, d.sum, d.err
	var tooLarge *objstore.TooLargeError
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		v.r.addf(Failure, "object", ref.Key, "", "missing (listed by entry %d)", v.c.segSeqs[i])
		return nil
	case errors.As(err, &tooLarge):
		v.r.addf(Failure, "object", ref.Key, "", "larger than the %d bytes the catalog records", ref.Size)
		return nil
	case err != nil:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		v.r.addf(Failure, "object", ref.Key, "", "unreadable: %v", err)
		return nil
	}
	if n != ref.Size {
		v.r.addf(Failure, "object", ref.Key, "", "%d bytes, the catalog records %d", n, ref.Size)
		return nil
	}
	if sum != ref.SHA256 {
		v.r.addf(Failure, "checksum", ref.Key, "", "SHA-256 %.16s does not match the catalog's %s", sum, short(ref.SHA256))
		return nil
	}
	rd, err := segment.OpenReader(ref.Key, d.file, n, segment.ReadOptions{Keyring: v.keyring})
	switch {
	case errors.Is(err, segment.ErrNoKey):
		v.r.addf(Failure, "decode", ref.Key, "", "cannot decrypt: %v", err)
		return nil
	case err != nil:
		v.r.addf(Failure, "decode", ref.Key, "", "%v", err)
		return nil
	}
	defer rd.Close()
	if msg := compareTrailer(ref, rd.Header(), rd.Trailer()); msg != "" {
		v.r.addf(Failure, "trailer", ref.Key, "", "disagrees with the catalog: %s", msg)
		return nil
	}
	if err := v.events(i, rd); err != nil {
		v.r.addf(Failure, "decode", ref.Key, "", "%v", err)
		return nil
	}
	v.r.Verified++
	v.r.Events += rd.Trailer().Events
	v.systems[rd.Header().SystemID] = true
	return nil
}

// compareTrailer reports how a decoded segment differs from its reference.
func compareTrailer(ref SegmentRef, h *segment.Header, tr *segment.Trailer) string {
	switch {
	case tr.Events != ref.Events || tr.Transactions != ref.Transactions:
		return fmt.Sprintf("%d events in %d transactions, the catalog says %d in %d", tr.Events, tr.Transactions, ref.Events, ref.Transactions)
	case tr.FirstEndLSN != ref.FirstEndLSN || tr.LastEndLSN != ref.LastEndLSN || tr.PrevLSN != ref.PrevLSN:
		return fmt.Sprintf("positions %s…%s (prev %s), the catalog says %s…%s (prev %s)",
			tr.FirstEndLSN, tr.LastEndLSN, tr.PrevLSN, ref.FirstEndLSN, ref.LastEndLSN, ref.PrevLSN)
	case !tr.MinCommitTime.Equal(ref.MinCommitTime) || !tr.MaxCommitTime.Equal(ref.MaxCommitTime):
		return fmt.Sprintf("commit times %s…%s, the catalog says %s…%s", tr.MinCommitTime, tr.MaxCommitTime, ref.MinCommitTime, ref.MaxCommitTime)
	case tr.RawBytes != ref.RawBytes:
		return fmt.Sprintf("%d raw bytes, the catalog says %d", tr.RawBytes, ref.RawBytes)
	case h.KeyID != ref.KeyID:
		return fmt.Sprintf("key id %q, the catalog says %q", h.KeyID, ref.KeyID)
	case h.Compression.String() != ref.Compression:
		return fmt.Sprintf("compression %s, the catalog says %s", h.Compression, ref.Compression)
	case h.Level != ref.Level:
		return fmt.Sprintf("level %d, the catalog says %d", h.Level, ref.Level)
	case h.Table.QualifiedName() != ref.Table || h.Table.ID() != ref.TableID:
		return fmt.Sprintf("table %s (%s), the catalog says %s (%s)", h.Table.QualifiedName(), h.Table.ID(), ref.Table, ref.TableID)
	}
	return ""
}

// events streams one segment's events through the cross-segment checks
// and, for a merged segment, compares the digest of its events with the
// one its merge recorded. It returns the reader's error (damage found at
// the end of the stream).
func (v *segmentVerifier) events(i int, rd *segment.Reader) error {
	ref := v.c.segments[i]
	table := rd.Header().Table
	layout := event.LayoutOf(table)
	tableID := table.ID()
	var digest segment.EventsDigest
	for k := 0; ; k++ {
		e, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if msg := outsideRef(ref, e); msg != "" {
			return errors.New(msg)
		}
		digest.Add(e)
		diverged := IsDiverged(v.diverged, e.EndLSN)
		if v.visit != nil && !diverged {
			// The drill's archive oracle: what a default restore holds.
			v.visit(ref, k, &table, e)
		}
		if v.sampled {
			continue
		}
		v.transaction(i, ref.Key, e)
		if diverged {
			continue // not the new primary's history: kept, checked for integrity only
		}
		if layout.StreamID >= 0 && layout.StreamVersion >= 0 {
			v.stream(ref.Key, tableID, e.Value(layout.StreamID), e.Value(layout.StreamVersion))
		}
		if layout.EventID >= 0 {
			v.eventID(i, ref.Key, tableID, e.Value(layout.EventID))
		}
	}
	if ref.EventsDigest != "" && digest.Sum() != ref.EventsDigest {
		v.r.addf(Failure, "merge", ref.Key, "", "its events' digest %.16s differs from the %.16s its merge recorded: the merge lost, added or reordered events",
			digest.Sum(), ref.EventsDigest)
	}
	return nil
}

// outsideRef says how an event falls outside the positions and commit
// times its segment's catalog reference records, or "".
func outsideRef(ref SegmentRef, e *event.Event) string {
	switch {
	case e.EndLSN < ref.FirstEndLSN || e.EndLSN > ref.LastEndLSN:
		return fmt.Sprintf("event at %s outside the catalog's positions %s…%s", e.EndLSN, ref.FirstEndLSN, ref.LastEndLSN)
	case e.CommitTime.Before(ref.MinCommitTime) || e.CommitTime.After(ref.MaxCommitTime):
		return fmt.Sprintf("event at %s: commit time %s outside the catalog's range", e.EndLSN, e.CommitTime.UTC().Format(time.RFC3339Nano))
	}
	return ""
}

// transaction records the event's chain link and counts it towards its
// transaction's completeness.
func (v *segmentVerifier) transaction(i int, key string, e *event.Event) {
	if prev, ok := v.links[e.EndLSN]; !ok {
		v.links[e.EndLSN] = e.PrevLSN
	} else if prev != e.PrevLSN {
		v.r.addf(Failure, "transaction", key, "", "events of transaction %s disagree on its chain link (%s vs %s)", e.EndLSN, prev, e.PrevLSN)
	}
	t := v.pending[e.EndLSN]
	if t == nil {
		t = &txnCount{count: e.Count, seen: map[int]bool{}, segment: i}
		v.pending[e.EndLSN] = t
	}
	switch {
	case e.Count != t.count:
		v.r.addf(Failure, "transaction", key, "", "events of transaction %s disagree on its size (%d vs %d)", e.EndLSN, e.Count, t.count)
	case e.Index < 0 || e.Index >= e.Count:
		v.r.addf(Failure, "transaction", key, "", "event index %d outside transaction %s of %d events", e.Index, e.EndLSN, e.Count)
	case t.seen[e.Index]:
		v.r.addf(Failure, "transaction", key, "", "event %d of transaction %s appears twice", e.Index, e.EndLSN)
	default:
		t.seen[e.Index] = true
		if len(t.seen) == t.count {
			delete(v.pending, e.EndLSN)
		}
	}
}

// stream checks the one continuity rule for streams: in chain order, a
// stream's versions are 1, 2, 3, … — each event's is the one before it
// plus one, starting from 1 (with StreamsFromOne; else from anywhere).
func (v *segmentVerifier) stream(key, tableID string, id, version []byte) {
	if id == nil || version == nil {
		return
	}
	ver, ok := parseInt(version)
	if !ok {
		v.r.addf(Warning, "stream", key, string(id), "stream_version %q is not an integer", version)
		return
	}
	sk := streamKey{table: tableID, stream: string(id)}
	last, seen := v.versions[sk]
	v.versions[sk] = ver
	switch {
	case !seen && (ver == 1 || !v.fromOne):
	case !seen:
		v.r.addf(Failure, "stream", key, sk.stream, "versions 1 to %d are missing (the stream's first archived version is %d)", ver-1, ver)
	case ver == last+1:
	case ver <= last:
		v.r.addf(Failure, "stream", key, sk.stream, "version %d follows version %d: repeated or out of order", ver, last)
	default:
		v.r.addf(Failure, "stream", key, sk.stream, "versions %d to %d are missing (version %d follows %d)", last+1, ver-1, ver, last)
	}
}

// eventID checks that no event id appears twice in the archive.
func (v *segmentVerifier) eventID(i int, key, tableID string, id []byte) {
	if id == nil {
		return
	}
	h := sha256.New()
	h.Write([]byte(tableID))
	h.Write([]byte{0})
	h.Write(id)
	var d [16]byte
	copy(d[:], h.Sum(nil))
	if first, dup := v.ids[d]; dup {
		v.r.addf(Failure, "event-id", key, "", "event id %s appears again (first in %s)", id, v.c.segments[first].Key)
		return
	}
	v.ids[d] = int32(i)
}

// finish runs the checks that need every segment: chain links between
// transactions and transactions left incomplete.
func (v *segmentVerifier) finish() {
	if v.sampled {
		return
	}
	ends := make([]event.Position, 0, len(v.links))
	for end := range v.links {
		ends = append(ends, end)
	}
	sort.Slice(ends, func(a, b int) bool { return ends[a] < ends[b] })
	unproven, bridged := 0, 0
	for k, end := range ends {
		prev := v.links[end]
		if k == 0 {
			continue
		}
		before := ends[k-1]
		switch {
		case prev == before:
		case prev < before:
			v.r.addf(Warning, "continuity", "", "", "transaction %s links to %s, before the archived transaction %s", end, prev, before)
		case v.watermarks[prev]:
			bridged++
		default:
			unproven++
		}
	}
	v.r.Transactions = len(ends)
	v.r.Streams = len(v.versions)
	if unproven+bridged > 0 {
		v.r.addf(OK, "continuity", "", "", "%d links pass over items the archive does not store (heartbeats): %d end at a recorded watermark, %d cannot be checked",
			unproven+bridged, bridged, unproven)
	}
	open := make([]event.Position, 0, len(v.pending))
	for end := range v.pending {
		open = append(open, end)
	}
	sort.Slice(open, func(a, b int) bool { return open[a] < open[b] })
	for _, end := range open {
		t := v.pending[end]
		sev := Failure
		if end > v.c.wm.LSN {
			sev = Warning // the tail of a flush whose last entry is not written
		}
		v.r.addf(sev, "transaction", v.c.segments[t.segment].Key, "", "transaction %s has %d of its %d events in the archive", end, len(t.seen), t.count)
	}
	if len(v.systems) > 1 {
		v.r.addf(Warning, "decode", "", "", "segments come from %d source systems", len(v.systems))
	}
}

func parseInt(b []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}
