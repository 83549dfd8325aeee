package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/internal/event"
)

// Resync is a resync of the archive from a new primary after a failover,
// as an entry records it (docs/catalog.md, "Resync entries"): the entry
// whose watermark passes capture's resync-begin heartbeat carries it with
// Phase "begin", the one that passes the resync-done heartbeat with Phase
// "done" and the counts. Between the two, the archiver appends only the
// re-read rows the archive does not hold.
type Resync struct {
	event.Resync
	// Appended counts re-read events the archive did not hold (appended);
	// Held those it held with the same content (skipped). Done only.
	Appended int `json:"appended,omitempty"`
	Held     int `json:"held,omitempty"`
	// DivergedEvents and DivergedTransactions count the archived events
	// (and their transactions) with an end LSN in (ForkLSN, Base]: the old
	// primary committed them after the new primary's timeline forked from
	// its own, so the new primary does not hold them (see Diverged).
	// DivergedFirst and DivergedLast bound their commit times. Recorded
	// on the begin entry (and repeated on the done entry).
	DivergedEvents       int        `json:"diverged_events,omitempty"`
	DivergedTransactions int        `json:"diverged_transactions,omitempty"`
	DivergedFirst        *time.Time `json:"diverged_first,omitempty"`
	DivergedLast         *time.Time `json:"diverged_last,omitempty"`
}

// DivergedRange is a stretch of the chain a resync found diverged: the
// archived transactions with an end LSN in (After, Through], except those
// inside an earlier resync's own positions (Skip).
type DivergedRange struct {
	Resync         string
	After, Through event.Position
	Skip           [][2]event.Position // (base, slot_lsn) of earlier resyncs: their re-read rows
}

// Diverged returns the diverged stretches of the chain, one per resync
// whose base lies past its fork point. Restores leave events in them out
// unless asked to include them; verify does not count them against stream
// continuity or event-id uniqueness.
func (c *Catalog) Diverged() []DivergedRange {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return divergedRanges(c.resyncs)
}

func divergedRanges(recs []ResyncRecord) []DivergedRange {
	var out []DivergedRange
	var earlier [][2]event.Position
	seen := map[string]bool{}
	for _, r := range recs {
		if seen[r.ID] {
			continue
		}
		seen[r.ID] = true
		if r.ForkLSN > 0 && r.Base > r.ForkLSN {
			out = append(out, DivergedRange{Resync: r.ID, After: r.ForkLSN, Through: r.Base, Skip: append([][2]event.Position(nil), earlier...)})
		}
		earlier = append(earlier, [2]event.Position{r.Base, r.SlotLSN})
	}
	return out
}

// IsDiverged reports whether an archived transaction at end LSN pos lies
// in one of the ranges.
func IsDiverged(ranges []DivergedRange, pos event.Position) bool {
	for _, d := range ranges {
		if pos <= d.After || pos > d.Through {
			continue
		}
		inner := false
		for _, sk := range d.Skip {
			if pos > sk[0] && pos < sk[1] {
				inner = true
				break
			}
		}
		if !inner {
			return true
		}
	}
	return false
}

// ResyncRecord is a resync entry as the catalog folds it.
type ResyncRecord struct {
	Resync
	// Seq is the entry that recorded it; Written that entry's time.
	Seq     uint64    `json:"seq"`
	Written time.Time `json:"written"`
}

// AppendResync writes the next entry recording r and setting the
// watermark to wm (which must pass r's heartbeat). It fails like Append;
// ErrInvalidEntry also for a malformed resync or a done without its begin.
func (w *Writer) AppendResync(ctx context.Context, r Resync, wm Watermark) (Entry, error) {
	return w.write(ctx, Entry{Resync: &r, Watermark: wm})
}

// Resyncs returns every resync recorded, begins and dones, in entry order.
func (c *Catalog) Resyncs() []ResyncRecord {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]ResyncRecord(nil), c.resyncs...)
}

// OpenResync returns the resync whose begin is recorded and whose done is
// not (an archiver stopped in its middle), if any.
func (c *Catalog) OpenResync() (Resync, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if n := len(c.resyncs); n > 0 && c.resyncs[n-1].Phase == event.ResyncBegin {
		return c.resyncs[n-1].Resync, true
	}
	return Resync{}, false
}

// checkResync reports what is wrong with an entry's resync, or "".
func (c *Catalog) checkResync(e Entry) string {
	r := e.Resync
	pos := r.Base + 1
	if r.Phase == event.ResyncDone {
		pos = r.SlotLSN
	}
	switch {
	case e.Segment != nil || e.Merge != nil || len(e.Debris) > 0:
		return "a resync entry adds no segment, merge or debris"
	case r.Phase != event.ResyncBegin && r.Phase != event.ResyncDone:
		return fmt.Sprintf("resync phase %q is neither begin nor done", r.Phase)
	case r.ID == "" || len(r.ID) > maxString:
		return "resync id empty or too long"
	case r.SlotLSN <= r.Base:
		return fmt.Sprintf("resync slot position %s is not above its base %s", r.SlotLSN, r.Base)
	case r.Rows < 0 || r.Transactions < 0 || r.Appended < 0 || r.Held < 0 || r.DivergedEvents < 0 || r.DivergedTransactions < 0:
		return "resync has a negative count"
	case e.Watermark.LSN < pos:
		return fmt.Sprintf("resync %s entry's watermark %s does not pass its heartbeat at %s", r.Phase, e.Watermark.LSN, pos)
	}
	if r.Phase == event.ResyncDone {
		open, ok := c.openResyncLocked()
		if !ok || open.ID != r.ID {
			return fmt.Sprintf("resync %s is done but was not begun", r.ID)
		}
	}
	return ""
}

func (c *Catalog) openResyncLocked() (Resync, bool) {
	if n := len(c.resyncs); n > 0 && c.resyncs[n-1].Phase == event.ResyncBegin {
		return c.resyncs[n-1].Resync, true
	}
	return Resync{}, false
}

func (r *Resync) normalize() {
	r.From = r.From.UTC()
	r.SnapshotTime = r.SnapshotTime.UTC()
	r.DivergedFirst = utcPtr(r.DivergedFirst)
	r.DivergedLast = utcPtr(r.DivergedLast)
}

// reportResyncs adds a finding per resync: OK for a finished one (what it
// re-read and appended), WARNING for one begun and not done (an archiver
// stopped in its middle: the next writer resumes it).
func reportResyncs(c *Catalog, r *Report) {
	recs := c.Resyncs()
	for i, rec := range recs {
		switch {
		case rec.Phase == event.ResyncDone:
			r.addf(OK, "resync", EntryKey(rec.Seq), "", "resync %s: rows committed %s … %s re-read from timeline %d (fork of timeline %d at %s), chain positions %s … %s; %d events appended, %d already archived",
				rec.ID, rec.From.Format(time.RFC3339Nano), rec.SnapshotTime.Format(time.RFC3339Nano), rec.Timeline, rec.PrevTimeline, rec.ForkLSN,
				rec.Base, rec.SlotLSN, rec.Appended, rec.Held)
			if rec.DivergedEvents > 0 {
				r.addf(Warning, "diverged", EntryKey(rec.Seq), "", "resync %s: %d archived events in %d transactions (commit times %s … %s, end LSNs above the fork %s up to %s) "+
					"were committed by the old primary after timeline %d forked from timeline %d and are not on the new primary: diverged history, "+
					"kept in the archive, left out of restores unless --include-diverged",
					rec.ID, rec.DivergedEvents, rec.DivergedTransactions, fmtTimePtr(rec.DivergedFirst), fmtTimePtr(rec.DivergedLast),
					rec.ForkLSN, rec.Base, rec.Timeline, rec.PrevTimeline)
			}
		case i == len(recs)-1:
			r.addf(Warning, "resync", EntryKey(rec.Seq), "", "resync %s begun and not done: an archiver stopped in its middle or it is still running (the next writer resumes it)", rec.ID)
		case recs[i+1].ID != rec.ID:
			r.addf(Warning, "resync", EntryKey(rec.Seq), "", "resync %s was begun and replaced by resync %s before it was done (capture started it again)", rec.ID, recs[i+1].ID)
		}
	}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "?"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func sameTimePtr(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// DivergedRangesWith is Diverged for the recorded resyncs followed by one
// being begun (not yet recorded): the archiver decides before it writes.
func DivergedRangesWith(recs []ResyncRecord, next Resync) []DivergedRange {
	return divergedRanges(append(recs, ResyncRecord{Resync: next}))
}
