package restore

import (
	"fmt"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
)

// Plan is what a restore to one instant will read.
type Plan struct {
	// ArchiveID identifies the archive (Archive.ID).
	ArchiveID string `json:"archive_id"`
	// Target is the resolved instant: the restore holds exactly the
	// transactions with commit time ≤ Target.
	Target time.Time `json:"target_time"`
	// Window is the archive's restorable window.
	Window Window `json:"window"`
	// Table is the qualified source table restored.
	Table string `json:"table"`
	// TableID is the archived table definition's id.
	TableID string `json:"table_id"`
	// Segments are the segments that may hold commits ≤ Target, in chain order.
	Segments []catalog.SegmentRef `json:"-"`
	// SegmentCount is len(Segments).
	SegmentCount int `json:"segments"`
	// Bytes is the stored size of the planned segments (what is downloaded).
	Bytes int64 `json:"bytes"`
	// RawBytes is their uncompressed size.
	RawBytes int64 `json:"raw_bytes"`
	// MaxEvents is the number of events in the planned segments, an upper
	// bound of what is restored (the last segments may hold later commits).
	MaxEvents int64 `json:"max_events"`
	// WholeSegments counts planned segments entirely ≤ Target.
	WholeSegments int `json:"whole_segments"`
	// BeforeFirst is true when Target precedes the archive's first event:
	// the restore is empty.
	BeforeFirst bool `json:"before_first"`

	archive *Archive
	origin  string // archive.origin()
}

// Plan selects the segments a restore of table to instant t reads. table
// "" means the archive's only table. A t after the watermark is an
// *OutOfWindowError.
func (a *Archive) Plan(t time.Time, table string) (*Plan, error) {
	t = t.UTC().Truncate(time.Microsecond)
	w := a.Window()
	if t.After(w.Watermark) {
		first := "(empty)"
		if !w.Empty {
			first = FormatTime(w.First)
		}
		return nil, withHint(ErrOutOfWindow, &OutOfWindowError{Target: FormatTime(t), First: first, Watermark: FormatTime(w.Watermark)},
			"restorer list")
	}
	tables := a.Tables()
	switch {
	case table == "" && len(tables) > 1:
		return nil, failf(ErrUsage, "pass --table with one of them", "the archive holds several tables (%v)", tables)
	case table == "" && len(tables) == 1:
		table = tables[0]
	case table != "" && len(tables) > 0 && !contains(tables, table):
		return nil, failf(ErrUsage, "pass --table with one of them", "the archive holds no table %s (it holds %v)", table, tables)
	}
	p := &Plan{ArchiveID: a.ID(), Target: t, Window: w, Table: table, archive: a, origin: a.origin()}
	p.BeforeFirst = w.Empty || t.Before(w.First)
	for _, s := range a.Catalog.Plan(t) {
		if s.Table != table {
			continue
		}
		if p.TableID == "" {
			p.TableID = s.TableID
		} else if s.TableID != p.TableID {
			return nil, failf(ErrUsage, "restore to an instant before the definition changed, or restore with --output and load the file yourself",
				"the definition of %s changed within the plan (ids %s and %s); restoring across a schema change is not supported",
				table, p.TableID, s.TableID)
		}
		p.Segments = append(p.Segments, s)
		p.Bytes += s.Size
		p.RawBytes += s.RawBytes
		p.MaxEvents += int64(s.Events)
		if !s.MaxCommitTime.After(t) {
			p.WholeSegments++
		}
	}
	p.SegmentCount = len(p.Segments)
	return p, nil
}

// String summarises the plan for people.
func (p *Plan) String() string {
	return fmt.Sprintf("restore %s to %s: %d segments (%d whole), %d bytes, up to %d events; window %s",
		p.Table, FormatTime(p.Target), p.SegmentCount, p.WholeSegments, p.Bytes, p.MaxEvents, p.Window)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
