package restore

import (
	"context"
	"errors"
	"fmt"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
)

// CopyReport compares a copy's catalog (archiver copy) with its primary's.
// Its JSON form is part of `restorer verify --primary --json`.
type CopyReport struct {
	// Primary describes the primary store (no secrets).
	Primary string `json:"primary"`
	// CopySeq and PrimarySeq are the last entry of each catalog.
	CopySeq    uint64 `json:"copy_seq"`
	PrimarySeq uint64 `json:"primary_seq"`
	// ComparedSeq is the entry whose hash was compared (0: none could be).
	ComparedSeq uint64 `json:"compared_seq"`
	// HeadMatches is true when both catalogs hold the same hash there:
	// their hash chains, and so their live segments, agree up to it.
	HeadMatches bool `json:"head_matches"`
	// LagEntries is PrimarySeq minus CopySeq.
	LagEntries uint64 `json:"lag_entries"`
	// CopyWatermark and PrimaryWatermark are each catalog's watermark.
	CopyWatermark    catalog.Watermark `json:"copy_watermark"`
	PrimaryWatermark catalog.Watermark `json:"primary_watermark"`
}

// CompareCopy checks the archive in copy against its primary: the copy's
// chain head must be an entry of the primary's chain (same seq, same
// hash), so the copy holds exactly the primary's history up to it. It
// adds its findings to rep (check "copy"), which Verify made of the copy
// itself (its own hash chain and every object). A copy whose head the
// primary no longer holds (gc folded it) is compared at the primary's
// oldest entry the copy also holds.
func CompareCopy(ctx context.Context, copy, primary objstore.Store, rep *Report) (*CopyReport, error) {
	pc, err := catalog.Load(ctx, primary)
	if err != nil {
		return nil, classifyStoreErr(primary, err)
	}
	cc, err := catalog.Load(ctx, copy)
	if err != nil {
		// Verify of the copy has reported why.
		return &CopyReport{Primary: primary.String()}, nil
	}
	cr := &CopyReport{Primary: primary.String(), CopySeq: cc.NextSeq() - 1, PrimarySeq: pc.NextSeq() - 1,
		CopyWatermark: cc.Watermark(), PrimaryWatermark: pc.Watermark()}
	if cr.PrimarySeq > cr.CopySeq {
		cr.LagEntries = cr.PrimarySeq - cr.CopySeq
	}
	problem := func(sev, format string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{Severity: sev, Check: "copy", Message: fmt.Sprintf(format, args...)})
		if sev == SeverityFailure {
			rep.Status = StatusFailure
		} else if rep.Status == StatusOK {
			rep.Status = StatusWarning
		}
	}
	if cr.CopySeq > cr.PrimarySeq {
		problem(SeverityFailure, "the copy holds %d entries, the primary %s only %d: not a copy of this primary, or the primary's catalog was replaced",
			cr.CopySeq, primary, cr.PrimarySeq)
		return cr, nil
	}
	seq, copyHash, primaryHash, err := commonEntry(ctx, cc, copy, pc, primary)
	if err != nil {
		return cr, err
	}
	if seq == 0 {
		problem(SeverityWarning, "no entry of the copy (last %d) is still held by the primary %s (its gc folded them): the heads cannot be compared; run archiver copy to bring the copy up",
			cr.CopySeq, primary)
		return cr, nil
	}
	cr.ComparedSeq = seq
	cr.HeadMatches = copyHash == primaryHash
	if !cr.HeadMatches {
		problem(SeverityFailure, "entry %d differs between the copy (%.16s) and the primary %s (%.16s): the histories diverge",
			seq, copyHash, primary, primaryHash)
		return cr, nil
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("copy of %s: entry %d has the primary's hash; the copy is %d entries behind (watermark %s, the primary's %s)",
		primary, seq, cr.LagEntries, FormatTime(cr.CopyWatermark.CommitTime), FormatTime(cr.PrimaryWatermark.CommitTime)))
	return cr, nil
}

// commonEntry returns the newest entry both catalogs can show — the
// copy's head if the primary still holds it — with its hash in each; seq
// 0 when there is none.
func commonEntry(ctx context.Context, cc *catalog.Catalog, copy objstore.Store, pc *catalog.Catalog, primary objstore.Store) (uint64, string, string, error) {
	seq := cc.NextSeq() - 1
	copyHash, _ := cc.Head()
	if seq == 0 {
		return 0, "", "", nil
	}
	if h, ok, err := entryHash(ctx, pc, primary, seq); err != nil || ok {
		return seq, copyHash, h, err
	}
	// The primary's gc folded the copy's head: compare at the primary's
	// oldest entry, if the copy holds it.
	first := pc.Entries()
	if len(first) == 0 || first[0].Seq > seq {
		return 0, "", "", nil
	}
	ch, ok, err := entryHash(ctx, cc, copy, first[0].Seq)
	if err != nil || !ok {
		return 0, "", "", err
	}
	return first[0].Seq, ch, first[0].Hash, nil
}

// entryHash returns the hash of entry seq: from c if it holds it, else read
// from store. ok is false when store no longer has it.
func entryHash(ctx context.Context, c *catalog.Catalog, store objstore.Store, seq uint64) (string, bool, error) {
	if es := c.Entries(); len(es) > 0 && seq >= es[0].Seq && seq-es[0].Seq < uint64(len(es)) {
		return es[seq-es[0].Seq].Hash, true, nil
	}
	b, err := objstore.ReadAll(ctx, store, catalog.EntryKey(seq), catalog.MaxEntryBytes, objstore.WithRetry(objstore.DefaultRetry))
	if errors.Is(err, objstore.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read %s from %s: %w", catalog.EntryKey(seq), store, err)
	}
	e, err := catalog.DecodeEntry(b)
	if err != nil || e.Hash != e.ComputeHash() || e.Seq != seq {
		return "corrupt", true, nil
	}
	return e.Hash, true, nil
}
