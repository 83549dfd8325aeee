package restore

import (
	"context"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
)

// Listing describes what an archive holds. Its JSON form is part of the
// --json contract (docs/restore.md): fields are only ever added.
type Listing struct {
	// Store describes where the archive is (no secrets).
	Store string `json:"store"`
	// ArchiveID identifies the archive.
	ArchiveID string `json:"archive_id"`
	// Window is the restorable window.
	Window Window `json:"window"`
	// WatermarkAge is how long ago (at listing time) the watermark's commit time was.
	WatermarkAge time.Duration `json:"watermark_age_ns"`
	// Tables are the archived tables.
	Tables []string `json:"tables"`
	// Segments, Events and Transactions count what the catalog lists.
	Segments     int   `json:"segments"`
	Events       int64 `json:"events"`
	Transactions int64 `json:"transactions"`
	// StoredBytes is the segments' size in the store; RawBytes uncompressed.
	StoredBytes int64 `json:"stored_bytes"`
	RawBytes    int64 `json:"raw_bytes"`
	// CatalogEntries is the number of the catalog's last entry.
	CatalogEntries uint64 `json:"catalog_entries"`
	// Gaps are spans of the window a restore cannot reach because a listed
	// segment object is missing from the store or has the wrong size. A
	// healthy archive has none (verify checks contents too).
	Gaps []Gap `json:"gaps"`
	// Warnings are catalog remarks (e.g. a checkpoint that did not verify).
	Warnings []string `json:"warnings,omitempty"`
	// Resyncs are the resyncs from a new primary after a failover, one per
	// resync (its done record, or its begin while it is open).
	Resyncs []ResyncInfo `json:"resyncs,omitempty"`
}

// ResyncInfo describes one resync in a listing.
type ResyncInfo struct {
	catalog.Resync
	// Open is true while its done is not recorded.
	Open bool `json:"open"`
	// Seq is the catalog entry of its last record.
	Seq uint64 `json:"seq"`
}

// resyncInfos folds a catalog's resync records into one line per resync.
func resyncInfos(recs []catalog.ResyncRecord) []ResyncInfo {
	var out []ResyncInfo
	for _, r := range recs {
		if r.Phase == "done" && len(out) > 0 && out[len(out)-1].Open && out[len(out)-1].ID == r.ID {
			out[len(out)-1] = ResyncInfo{Resync: r.Resync, Seq: r.Seq}
			continue
		}
		out = append(out, ResyncInfo{Resync: r.Resync, Open: r.Phase != "done", Seq: r.Seq})
	}
	return out
}

// Gap is a span of the window that a missing or damaged segment makes unrestorable.
type Gap struct {
	// Segment is the object key concerned.
	Segment string `json:"segment"`
	// Reason says what is wrong with it.
	Reason string `json:"reason"`
	// From and To bound the commit times of the events it holds: restores
	// to any T ≥ From need it.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// List summarises the archive as of now. It lists the segment objects
// (cheap: no download) to find any the catalog names but the store lacks.
func List(ctx context.Context, a *Archive, now time.Time) (*Listing, error) {
	l := &Listing{Store: a.Store.String(), ArchiveID: a.ID(), Window: a.Window(), Tables: a.Tables(), Gaps: []Gap{},
		CatalogEntries: a.Catalog.NextSeq() - 1, Warnings: a.Catalog.Warnings()}
	l.WatermarkAge = now.Sub(l.Window.Watermark)
	l.Resyncs = resyncInfos(a.Catalog.Resyncs())
	segs := a.Catalog.Segments()
	for _, s := range segs {
		l.Segments++
		l.Events += int64(s.Events)
		l.Transactions += int64(s.Transactions)
		l.StoredBytes += s.Size
		l.RawBytes += s.RawBytes
	}
	objs, err := a.Store.List(ctx, catalog.SegmentsPrefix, "")
	if err != nil {
		if serr := storeProblem(a.Store, err); serr != nil {
			return nil, serr
		}
		return nil, fmt.Errorf("list segments in %s: %w", a.Store, err)
	}
	sizes := make(map[string]int64, len(objs))
	for _, o := range objs {
		sizes[o.Key] = o.Size
	}
	for _, s := range segs {
		size, ok := sizes[s.Key]
		switch {
		case !ok:
			l.Gaps = append(l.Gaps, Gap{Segment: s.Key, Reason: "missing from the store", From: s.MinCommitTime, To: s.MaxCommitTime})
		case size != s.Size:
			l.Gaps = append(l.Gaps, Gap{Segment: s.Key, Reason: fmt.Sprintf("%d bytes, the catalog says %d", size, s.Size),
				From: s.MinCommitTime, To: s.MaxCommitTime})
		}
	}
	return l, nil
}
