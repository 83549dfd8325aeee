package archive

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// resyncState is an open resync (issue 18): between capture's resync-begin
// and resync-done heartbeats the transactions are rows re-read from a new
// primary, and only the rows the archive does not hold are appended.
type resyncState struct {
	mark catalog.Resync
	// held maps an archived event's identity (table definition and
	// primary key) to the digest of its values, for every archived event
	// committed at or after mark.From.
	held             map[string][sha256.Size]byte
	appended, kept   int // events appended; events skipped as held
	changed, partial int // held with other content (appended); transactions partly held
}

// inRange reports whether a transaction at pos is one of the resync's rows.
func (r *resyncState) inRange(pos event.Position) bool {
	return pos > r.mark.Base+1 && pos < r.mark.SlotLSN
}

// rowKey identifies a row: its table definition and primary key values
// (every value when the table has no key).
func rowKey(tableID string, t *event.Table, values [][]byte) string {
	b := make([]byte, 0, 64)
	b = append(b, tableID...)
	b = append(b, 0)
	keyed := false
	for i, c := range t.Columns {
		if c.Key && i < len(values) {
			b = appendValue(b, values[i])
			keyed = true
		}
	}
	if !keyed {
		for _, v := range values {
			b = appendValue(b, v)
		}
	}
	return string(b)
}

func appendValue(b, v []byte) []byte {
	if v == nil {
		return binary.BigEndian.AppendUint32(b, ^uint32(0))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// rowDigest is the SHA-256 of a row's values.
func rowDigest(values [][]byte) [sha256.Size]byte {
	h := sha256.New()
	var b []byte
	for _, v := range values {
		b = appendValue(b[:0], v)
		h.Write(b)
	}
	var d [sha256.Size]byte
	copy(d[:], h.Sum(nil))
	return d
}

// loadHeld reads every live segment that may hold events committed at or
// after the resync's From and records those events (see resyncState.held).
//
// Archived events past the resync's fork point (end LSN in (ForkLSN,
// Base]) are not held: the old primary committed them after the new
// primary's timeline forked from its own, so the new primary does not have
// them — a row it has under the same key (an application retry) is its own
// commit and is appended. They are counted as diverged in the mark
// (restores leave them out, see catalog.Diverged).
func (s *session) loadHeld(ctx context.Context, mark catalog.Resync) (*resyncState, error) {
	r := &resyncState{mark: mark, held: make(map[string][sha256.Size]byte)}
	var div []catalog.DivergedRange
	for _, d := range catalog.DivergedRangesWith(s.cat.Resyncs(), mark) {
		if d.Resync == mark.ID {
			div = append(div, d)
		}
	}
	divTxns := map[event.Position]bool{}
	segs := 0
	for _, ref := range s.cat.Segments() {
		suspect := len(div) > 0 && ref.LastEndLSN > mark.ForkLSN && ref.FirstEndLSN <= mark.Base
		if ref.Events == 0 || ref.MaxCommitTime.Before(mark.From) && !suspect {
			continue
		}
		segs++
		err := s.readSegment(ctx, ref, func(rd *segment.Reader) error {
			t := rd.Header().Table
			id := t.ID()
			for {
				e, err := rd.Next()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				if catalog.IsDiverged(div, e.EndLSN) {
					r.mark.DivergedEvents++
					divTxns[e.EndLSN] = true
					ct := e.CommitTime
					if r.mark.DivergedFirst == nil || ct.Before(*r.mark.DivergedFirst) {
						r.mark.DivergedFirst = &ct
					}
					if r.mark.DivergedLast == nil || ct.After(*r.mark.DivergedLast) {
						c2 := ct
						r.mark.DivergedLast = &c2
					}
					continue
				}
				if e.CommitTime.Before(mark.From) {
					continue
				}
				r.held[rowKey(id, &t, e.Values)] = rowDigest(e.Values)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("resync %s: read archived events since %s: %w", mark.ID, mark.From.Format("2006-01-02T15:04:05.000000Z"), err)
		}
	}
	r.mark.DivergedTransactions = len(divTxns)
	s.log.Info("resync: loaded the archived events it may re-read", "resync", mark.ID, "from", mark.From,
		"segments", segs, "events", len(r.held))
	if r.mark.DivergedEvents > 0 {
		divergedEventsTotal.Add(float64(r.mark.DivergedEvents))
		s.log.Error("resync: archived transactions past the fork point are not on the new primary (diverged history); "+
			"they stay in the archive and are left out of restores unless --include-diverged",
			"resync", mark.ID, "fork_lsn", mark.ForkLSN, "base", mark.Base, "diverged_events", r.mark.DivergedEvents,
			"diverged_transactions", r.mark.DivergedTransactions, "first_commit", r.mark.DivergedFirst, "last_commit", r.mark.DivergedLast)
	}
	return r, nil
}

// readSegment downloads a live segment, checks it against the catalog and
// calls fn with a reader of its events.
func (s *session) readSegment(ctx context.Context, ref catalog.SegmentRef, fn func(*segment.Reader) error) error {
	f, err := os.CreateTemp(s.a.cfg.TempDir, "tidemark-resync-*.tms")
	if err != nil {
		return err
	}
	defer func() { f.Close(); os.Remove(f.Name()) }()
	n, sum, err := objstore.Download(ctx, s.a.deps.Store, ref.Key, f, ref.Size, objstore.WithRetry(objstore.DefaultRetry))
	if err != nil {
		return fmt.Errorf("read %s: %w", ref.Key, err)
	}
	if n != ref.Size || sum != ref.SHA256 {
		return fmt.Errorf("%s has %d bytes and SHA-256 %.12s, the catalog lists %d and %.12s", ref.Key, n, sum, ref.Size, ref.SHA256)
	}
	rd, err := segment.OpenReader(ref.Key, f, n, segment.ReadOptions{Keyring: s.a.deps.Keyring})
	if err != nil {
		return err
	}
	defer rd.Close()
	return fn(rd)
}

// filterResync drops from a re-read transaction the events the archive
// holds. A transaction left without events becomes a heartbeat (it still
// moves the chain); one partly held keeps the rest, renumbered (a
// committed transaction is all or nothing, so this means the rows were
// changed on the source: it is logged and counted).
func (s *session) filterResync(it *item) {
	r := s.resync
	keep := it.events[:0:0]
	var tables []*event.Table
	held := 0
	for i, e := range it.events {
		if e == nil {
			return // partly archived by an earlier term: already decided then
		}
		t := it.tables[i]
		k := rowKey(s.roll.tableID(t), t, e.Values)
		d, ok := r.held[k]
		switch {
		case ok && d == rowDigest(e.Values):
			held++
			continue
		case ok:
			r.changed++
			resyncEventsTotal.WithLabelValues("changed").Inc()
			s.log.Error("resync: the new primary holds an archived row with other content; appending its version too",
				"resync", r.mark.ID, "transaction", it.pos, "event", e.String())
		}
		keep = append(keep, e)
		tables = append(tables, t)
	}
	r.kept += held
	r.appended += len(keep)
	resyncEventsTotal.WithLabelValues("held").Add(float64(held))
	resyncEventsTotal.WithLabelValues("appended").Add(float64(len(keep)))
	switch {
	case len(keep) == 0:
		it.heartbeat, it.events, it.tables, it.have = true, nil, nil, 0
	case held > 0:
		r.partial++
		s.log.Error("resync: a re-read transaction is partly in the archive; appending the rest", "resync", r.mark.ID,
			"transaction", it.pos, "held", held, "appended", len(keep))
		for i, e := range keep {
			e.Index, e.Count = i, len(keep)
		}
		it.events, it.tables, it.have = keep, tables, len(keep)
	}
}

// acceptResync takes a resync-begin or resync-done heartbeat: everything
// before it is flushed, the heartbeat is taken, and a resync entry makes
// the watermark pass it. A begin opens the resync (loading what the
// archive holds since its From); a done closes it with the counts.
func (s *session) acceptResync(ctx context.Context, it *item) error {
	if err := s.flush(ctx, "resync"); err != nil {
		return err
	}
	mark := catalog.Resync{Resync: *it.resync}
	var next *resyncState
	switch mark.Phase {
	case event.ResyncBegin:
		var err error
		if next, err = s.loadHeld(ctx, mark); err != nil {
			return err
		}
		mark = next.mark // with the diverged counts
		if s.resync != nil {
			s.log.Warn("resync: a new resync begins before the last one was done; it replaces it", "resync", mark.ID, "replaced", s.resync.mark.ID)
		}
	case event.ResyncDone:
		if s.resync == nil || s.resync.mark.ID != mark.ID {
			s.log.Error("resync: done without its begin; taking it as a heartbeat", "resync", mark.ID)
			s.taken(it)
			return nil
		}
		mark.Appended, mark.Held = s.resync.appended, s.resync.kept
		b := s.resync.mark
		mark.DivergedEvents, mark.DivergedTransactions, mark.DivergedFirst, mark.DivergedLast =
			b.DivergedEvents, b.DivergedTransactions, b.DivergedFirst, b.DivergedLast
	}
	s.taken(it)
	wm := catalog.Watermark{LSN: s.head, CommitTime: s.acceptedTime}
	if err := s.record(ctx, wm, func() (catalog.Entry, error) { return s.cw.AppendResync(ctx, mark, wm) }); err != nil {
		return err
	}
	if err := s.publishWatermark(ctx); err != nil {
		s.log.Warn("publish watermark", "err", err)
	}
	if n, err := s.acks.settle(s.durable.LSN); err != nil {
		s.log.Warn("acknowledge messages", "err", err, "acked", n)
	}
	s.sendAcks()
	if mark.Phase == event.ResyncBegin {
		s.resync = next
		resyncOpen.Set(1)
		s.log.Warn("resync begun: appending the rows of the new primary the archive does not hold", "resync", mark.ID,
			"from", mark.From, "base", mark.Base, "slot_lsn", mark.SlotLSN, "timeline", mark.Timeline, "prev_timeline", mark.PrevTimeline)
		return nil
	}
	s.log.Warn("resync done", "resync", mark.ID, "rows_reread", mark.Rows, "appended", mark.Appended, "held", mark.Held,
		"changed", s.resync.changed, "partial_transactions", s.resync.partial)
	s.resync = nil
	resyncOpen.Set(0)
	return nil
}

// resumeResync reopens the resync the catalog has begun but not done (an
// earlier term stopped in its middle).
func (s *session) resumeResync(ctx context.Context) error {
	mark, ok := s.cat.OpenResync()
	if !ok {
		return nil
	}
	r, err := s.loadHeld(ctx, mark)
	if err != nil {
		return err
	}
	s.resync = r
	resyncOpen.Set(1)
	s.log.Warn("resync resumed where an earlier term stopped", "resync", mark.ID, "watermark", s.durable.LSN)
	return nil
}

var (
	resyncEventsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tidemark_archiver_resync_events_total",
		Help: "Events re-read from a new primary during a resync, by result: appended (the archive did not hold them), held (skipped), changed (held with other content; appended too).",
	}, []string{"result"})
	divergedEventsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_diverged_events_total",
		Help: "Archived events a resync found past the fork point of the new primary's timeline (diverged history: kept, left out of restores by default). Counted again when a new writer resumes the resync.",
	})
	resyncOpen = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_archiver_resync_open",
		Help: "1 while a resync from a new primary is open (between its begin and done heartbeats).",
	})
)

// resyncHolds reports whether the archive holds an event of a large
// re-read transaction (streamed event by event); it counts the result.
func (s *session) resyncHolds(e *event.Event, t *event.Table) bool {
	r := s.resync
	d, ok := r.held[rowKey(s.roll.tableID(t), t, e.Values)]
	if ok && d == rowDigest(e.Values) {
		r.kept++
		resyncEventsTotal.WithLabelValues("held").Inc()
		return true
	}
	if ok {
		r.changed++
		resyncEventsTotal.WithLabelValues("changed").Inc()
	}
	r.appended++
	resyncEventsTotal.WithLabelValues("appended").Inc()
	return false
}

// checkLateResync reports a resync-begin heartbeat at or below the chain's
// position that the catalog has no record of: capture planned the resync
// below what was already archived, so its rows would be appended without
// being compared (duplicates). Capture plans above everything the stream
// held, so this needs a stream that lost its tail.
func (s *session) checkLateResync(hb event.Heartbeat) {
	for _, r := range s.cat.Resyncs() {
		if r.ID == hb.Resync.ID {
			return // a redelivery of one already recorded
		}
	}
	s.log.Error("resync begin at or below the archive's position and not in the catalog: its re-read rows are not compared and may be archived twice; "+
		"stop capture and start a new archive epoch (docs/operations.md \"Slot lost\")",
		"resync", hb.Resync.ID, "position", hb.LSN, "accepted", s.chain.w)
}
