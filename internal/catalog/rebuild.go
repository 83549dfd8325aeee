package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// Rebuild settings.
const (
	// rebuildLeaseTTL is the lease Rebuild holds while it writes.
	rebuildLeaseTTL = 10 * time.Minute
	// rebuildRenewEvery is how many entries Rebuild writes between renewals.
	rebuildRenewEvery = 200
	// OldCatalogPrefix starts the folder Rebuild moves the old catalog to:
	// catalog-old-<UTC time>/entries/… and …/checkpoints/….
	OldCatalogPrefix = "catalog-old-"
)

// RebuildResult is what Rebuild did (or, in a dry run, would do).
type RebuildResult struct {
	// DryRun is true when nothing was written.
	DryRun bool `json:"dry_run"`
	// Segments are the segments of the rebuilt catalog, in entry order.
	Segments []SegmentRef `json:"segments"`
	// Watermarks are the watermarks of the rebuilt entries, one per segment.
	Watermarks []Watermark `json:"watermarks"`
	// Skipped are the objects under segments/ left out, and why.
	Skipped []Finding `json:"skipped"`
	// Debris are the intact segments among Skipped (copies repeating
	// positions of kept segments), recorded as debris so that verify
	// accepts them while they stay unchanged.
	Debris []DebrisRef `json:"debris"`
	// Entries is the number of entries written (0 in a dry run).
	Entries int `json:"entries"`
	// Epoch is the lease epoch the rebuilt entries carry (0 in a dry run).
	Epoch uint64 `json:"epoch"`
	// MovedTo is the folder the old catalog was moved to ("" if there was none).
	MovedTo string `json:"moved_to,omitempty"`
}

// Watermark returns the rebuilt catalog's final watermark.
func (r *RebuildResult) Watermark() Watermark {
	if len(r.Watermarks) == 0 {
		return Watermark{}
	}
	return r.Watermarks[len(r.Watermarks)-1]
}

// Rebuild reconstructs the catalog from the segment objects alone: it reads
// every object under segments/, verifies it and reads its trailer (keyring
// decrypts), orders the segments by position, drops any that repeats
// positions of an earlier segment of the same table, and derives each
// entry's watermark (the highest position reached so far, held below the
// next segment's first position so that no segment starts at or below the
// watermark before it). Watermarks of a rebuilt catalog cannot account for
// heartbeats, nor prove that no segment was lost; Verify's per-stream
// checks can.
//
// Unless dryRun, it then acquires the catalog lease (returning
// *ErrLeaseHeld while an archiver holds it: stop the archivers first),
// moves the existing entries and checkpoints to catalog-old-<UTC time>/
// (copied, then deleted; epochs stay, so every old writer stays fenced by
// the rebuild's newer epoch), writes the new entries with that epoch (the
// left-out intact copies recorded as debris last), and releases the lease. Nothing is destroyed: the old catalog can be moved
// back by hand. An interrupted Rebuild is simply run again.
func Rebuild(ctx context.Context, store objstore.Store, keyring *segment.Keyring, dryRun bool) (*RebuildResult, error) {
	res := &RebuildResult{DryRun: dryRun}
	refs, err := readSegmentRefs(ctx, store, keyring, res)
	if err != nil {
		return nil, err
	}
	res.Segments, res.Watermarks = planRebuild(refs, res)
	debrisOfSkipped(refs, res)
	if dryRun {
		return res, nil
	}
	holder := "tidemark-rebuild/" + strconv.Itoa(os.Getpid())
	lease, err := AcquireLease(ctx, store, holder, rebuildLeaseTTL)
	if err != nil {
		return nil, fmt.Errorf("catalog: rebuild: %w", err)
	}
	res.Epoch = lease.Epoch()
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = lease.Release(rctx)
	}()
	if res.MovedTo, err = moveOldCatalog(ctx, store, now().UTC()); err != nil {
		return nil, err
	}
	c := newCatalog()
	w := NewWriter(store, c, holder, lease.Epoch())
	for i := range res.Segments {
		if i > 0 && i%rebuildRenewEvery == 0 {
			if err := lease.Renew(ctx); err != nil {
				return nil, fmt.Errorf("catalog: rebuild: %w", err)
			}
		}
		if _, err := w.Append(ctx, &res.Segments[i], res.Watermarks[i]); err != nil {
			return nil, fmt.Errorf("catalog: rebuild: %w", err)
		}
		res.Entries++
	}
	for start := 0; start < len(res.Debris); start += MaxDebrisPerEntry {
		if _, err := w.AppendDebris(ctx, res.Debris[start:min(start+MaxDebrisPerEntry, len(res.Debris))]); err != nil {
			return nil, fmt.Errorf("catalog: rebuild: %w", err)
		}
		res.Entries++
	}
	return res, nil
}

// debrisOfSkipped sets res.Debris to the intact segments that planning left
// out: they repeat positions of kept segments (leftovers of interrupted
// uploads, as a rebuild must assume).
func debrisOfSkipped(refs []SegmentRef, res *RebuildResult) {
	kept := make(map[string]bool, len(res.Segments))
	for _, r := range res.Segments {
		kept[r.Key] = true
	}
	res.Debris = []DebrisRef{}
	for _, r := range refs {
		if !kept[r.Key] {
			res.Debris = append(res.Debris, r.AsDebris())
		}
	}
}

// readSegmentRefs reads and verifies every object under segments/.
func readSegmentRefs(ctx context.Context, store objstore.Store, keyring *segment.Keyring, res *RebuildResult) ([]SegmentRef, error) {
	objs, err := store.List(ctx, SegmentsPrefix, "")
	if err != nil {
		return nil, fmt.Errorf("catalog: rebuild: list segments: %w", err)
	}
	var refs []SegmentRef
	for _, o := range objs {
		data, err := objstore.ReadAll(ctx, store, o.Key, segment.DefaultMaxRawBytes)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			res.Skipped = append(res.Skipped, Finding{Severity: Failure, Check: "object", Object: o.Key, Message: "unreadable: " + err.Error()})
			continue
		}
		ref, check, err := DescribeSegment(o.Key, data, keyring)
		if err != nil {
			res.Skipped = append(res.Skipped, Finding{Severity: Failure, Check: check, Object: o.Key, Message: err.Error()})
			continue
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

// DescribeSegment verifies the segment object key, whose bytes are data
// (segment.ReadTrailer: SHA-256, decryption with keyring, header binding),
// and returns the reference a catalog entry would carry for it. On error,
// check names what failed: "decode" or "trailer" (a trailer the catalog
// cannot hold).
func DescribeSegment(key string, data []byte, keyring *segment.Keyring) (ref SegmentRef, check string, err error) {
	h, tr, err := segment.ReadTrailer(key, data, segment.ReadOptions{Keyring: keyring})
	if err != nil {
		return SegmentRef{}, "decode", err
	}
	sum := sha256.Sum256(data)
	ref = SegmentRef{Key: key, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Events: tr.Events,
		Transactions: tr.Transactions, Table: h.Table.QualifiedName(), TableID: h.Table.ID(), KeyID: h.KeyID,
		Compression: h.Compression.String(), FirstEndLSN: tr.FirstEndLSN, LastEndLSN: tr.LastEndLSN, PrevLSN: tr.PrevLSN,
		MinCommitTime: tr.MinCommitTime.UTC(), MaxCommitTime: tr.MaxCommitTime.UTC(), RawBytes: tr.RawBytes, Level: h.Level}
	if reason := checkSegment(&ref); reason != "" {
		return SegmentRef{}, "trailer", errors.New(reason)
	}
	return ref, "", nil
}

// planRebuild orders refs by position, drops repeats and derives the
// watermarks.
func planRebuild(refs []SegmentRef, res *RebuildResult) ([]SegmentRef, []Watermark) {
	sort.SliceStable(refs, func(a, b int) bool {
		x, y := refs[a], refs[b]
		if x.FirstEndLSN != y.FirstEndLSN {
			return x.FirstEndLSN < y.FirstEndLSN
		}
		if x.LastEndLSN != y.LastEndLSN {
			return x.LastEndLSN > y.LastEndLSN // the longer first: it keeps more
		}
		return strings.Compare(x.Key, y.Key) < 0
	})
	refs = choosePartPaths(refs, res)
	var kept []SegmentRef
	reached := map[string]SegmentRef{} // table id → segment reaching furthest
	for _, r := range refs {
		if prev, ok := reached[r.TableID]; ok && r.FirstEndLSN <= prev.LastEndLSN && !continues(prev, r) {
			res.Skipped = append(res.Skipped, Finding{Severity: Warning, Check: "continuity", Object: r.Key,
				Message: fmt.Sprintf("positions %s…%s repeat those of %s (%s…%s); left out", r.FirstEndLSN, r.LastEndLSN, prev.Key, prev.FirstEndLSN, prev.LastEndLSN)})
			continue
		}
		reached[r.TableID] = r
		kept = append(kept, r)
	}
	wms := make([]Watermark, len(kept))
	var (
		high     event.Position
		highTime time.Time
	)
	for i, r := range kept {
		high = max(high, r.LastEndLSN)
		if r.MaxCommitTime.After(highTime) {
			highTime = r.MaxCommitTime
		}
		lsn := high
		if i+1 < len(kept) && kept[i+1].FirstEndLSN <= lsn && kept[i+1].FirstEndLSN > 0 {
			lsn = kept[i+1].FirstEndLSN - 1
		}
		wms[i] = Watermark{LSN: lsn, CommitTime: highTime}
	}
	return kept, wms
}

// choosePartPaths keeps, of the parts of each transaction split across
// segments (keys with index ranges over the same positions), one chain of
// parts from the lowest first index that reaches the highest last index —
// a crash can leave parts whose ranges overlap — and reports the others as
// skipped. refs are sorted; the result keeps their order.
func choosePartPaths(refs []SegmentRef, res *RebuildResult) []SegmentRef {
	type group struct {
		parts []int // indexes into refs
	}
	groups := map[string]*group{}
	infos := make([]segment.KeyInfo, len(refs))
	for i, r := range refs {
		info, err := segment.ParseKey(r.Key)
		if err != nil || !info.HasIndexRange {
			continue
		}
		infos[i] = info
		k := fmt.Sprintf("%s/%d/%d", r.TableID, r.FirstEndLSN, r.LastEndLSN)
		if groups[k] == nil {
			groups[k] = &group{}
		}
		groups[k].parts = append(groups[k].parts, i)
	}
	drop := map[int]bool{}
	for _, g := range groups {
		lo, hi := -1, -1
		for _, i := range g.parts {
			if lo < 0 || infos[i].FirstIndex < lo {
				lo = infos[i].FirstIndex
			}
			hi = max(hi, infos[i].LastIndex)
		}
		// Depth-first search for a chain lo … hi; groups are small.
		var path []int
		var walk func(from int) bool
		walk = func(from int) bool {
			for _, i := range g.parts {
				if infos[i].FirstIndex != from {
					continue
				}
				path = append(path, i)
				if infos[i].LastIndex == hi || walk(infos[i].LastIndex+1) {
					return true
				}
				path = path[:len(path)-1]
			}
			return false
		}
		onPath := map[int]bool{}
		if walk(lo) {
			for _, i := range path {
				onPath[i] = true
			}
		}
		for _, i := range g.parts {
			if !onPath[i] {
				drop[i] = true
				res.Skipped = append(res.Skipped, Finding{Severity: Warning, Check: "continuity", Object: refs[i].Key,
					Message: fmt.Sprintf("events %d…%d of the transaction ending at %s are not on the chain of its parts; left out",
						infos[i].FirstIndex, infos[i].LastIndex, refs[i].LastEndLSN)})
			}
		}
	}
	if len(drop) == 0 {
		return refs
	}
	out := make([]SegmentRef, 0, len(refs)-len(drop))
	for i, r := range refs {
		if !drop[i] {
			out = append(out, r)
		}
	}
	return out
}

// continues reports whether r is the next part of a transaction too large
// for one segment whose previous part is prev: both keys carry index ranges
// (segment.KeyWithIndexRange) over the same positions, and r starts where
// prev ended.
func continues(prev, r SegmentRef) bool {
	p, err1 := segment.ParseKey(prev.Key)
	n, err2 := segment.ParseKey(r.Key)
	return err1 == nil && err2 == nil && p.HasIndexRange && n.HasIndexRange &&
		p.FirstEndLSN == n.FirstEndLSN && p.LastEndLSN == n.LastEndLSN && n.FirstIndex == p.LastIndex+1
}

// moveOldCatalog copies the entries and checkpoints to
// catalog-old-<time>/ and deletes the originals once all are copied. It
// returns the folder, or "" when there was nothing to move.
func moveOldCatalog(ctx context.Context, store objstore.Store, t time.Time) (string, error) {
	var objs []objstore.ObjectInfo
	for _, prefix := range []string{EntriesPrefix, CheckpointsPrefix} {
		o, err := store.List(ctx, prefix, "")
		if err != nil {
			return "", fmt.Errorf("catalog: rebuild: list %s: %w", prefix, err)
		}
		objs = append(objs, o...)
	}
	if len(objs) == 0 {
		return "", nil
	}
	dest := OldCatalogPrefix + t.Format("20060102T150405.000000000Z") + "/"
	for _, o := range objs {
		if err := copyObject(ctx, store, o.Key, dest+strings.TrimPrefix(o.Key, "catalog/")); err != nil {
			return "", fmt.Errorf("catalog: rebuild: move old catalog: %w", err)
		}
	}
	for _, o := range objs {
		if err := store.Delete(ctx, o.Key); err != nil {
			return "", fmt.Errorf("catalog: rebuild: move old catalog: %w", err)
		}
	}
	return dest, nil
}

func copyObject(ctx context.Context, store objstore.Store, from, to string) error {
	rc, info, err := store.Get(ctx, from)
	if err != nil {
		return err
	}
	defer rc.Close()
	err = store.Put(ctx, to, rc, info.Size, objstore.PutOptions{IfAbsent: true})
	if errors.Is(err, objstore.ErrExists) {
		return fmt.Errorf("copy %s: %s already exists", from, to)
	}
	return err
}
