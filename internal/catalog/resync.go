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
	case r.Rows < 0 || r.Transactions < 0 || r.Appended < 0 || r.Held < 0:
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
		case i == len(recs)-1:
			r.addf(Warning, "resync", EntryKey(rec.Seq), "", "resync %s begun and not done: an archiver stopped in its middle or it is still running (the next writer resumes it)", rec.ID)
		case recs[i+1].ID != rec.ID:
			r.addf(Warning, "resync", EntryKey(rec.Seq), "", "resync %s was begun and replaced by resync %s before it was done (capture started it again)", rec.ID, recs[i+1].ID)
		}
	}
}
