package archive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/feed"
)

// flush makes everything accepted so far durable, in order: upload each
// open segment, append its catalog entry (the last one carrying the new
// watermark, or a watermark-only entry when no segment is open), publish
// the watermark to META, then acknowledge the messages now covered.
//
// A flush that fails leaves the session unable to flush again: the
// segments it closed are gone from memory while head still counts their
// transactions, so any later entry (the final flush of a graceful stop
// included) would carry a watermark over events no segment holds. The
// term ends instead and the next one starts again from the durable
// watermark, with the messages redelivered.
func (s *session) flush(ctx context.Context, reason string) (err error) {
	if s.failed != nil {
		return fmt.Errorf("flush (%s) refused after an earlier flush failed: %w", reason, s.failed)
	}
	defer func() {
		if err != nil {
			s.failed = err
		}
	}()
	segs, err := s.roll.close()
	if err != nil {
		return err
	}
	defer func() {
		for _, sg := range segs {
			sg.release()
		}
		s.ext.prune()
	}()
	target := catalog.Watermark{LSN: s.head, CommitTime: s.acceptedTime}
	if len(segs) == 0 && target.LSN <= s.durable.LSN {
		// Nothing is open: streamed messages still queued belong to
		// events in durable segments.
		s.settleStreamed()
		s.sendAcks()
		return nil
	}
	if err := s.checkWatermark(segs, target); err != nil {
		return err
	}
	for i, sg := range segs {
		ref, err := s.upload(ctx, sg)
		if err != nil {
			return err
		}
		wm := s.durable
		if i == len(segs)-1 {
			wm = target
		}
		if err := s.append(ctx, ref, wm); err != nil {
			return err
		}
		s.covered[sg.tableID] = max(s.covered[sg.tableID], sg.trailer.LastEndLSN)
		s.written = max(s.written, sg.trailer.LastEndLSN)
		eventsArchivedTotal.Add(float64(sg.trailer.Events))
		s.a.setStatus(func(st *Status) {
			st.LastSegment, st.LastSegmentAt = ref.Key, time.Now()
			if sg.trailer.MaxCommitTime.After(st.LastArchivedCommitTime) {
				st.LastArchivedCommitTime = sg.trailer.MaxCommitTime
				lastCommitTime.Set(float64(sg.trailer.MaxCommitTime.UnixMicro()) / 1e6)
			}
		})
		s.log.Debug("segment archived", "key", ref.Key, "events", sg.trailer.Events,
			"raw_bytes", sg.trailer.RawBytes, "stored_bytes", ref.Size, "reason", reason)
	}
	if len(segs) == 0 {
		if err := s.append(ctx, nil, target); err != nil {
			return err
		}
	}
	if err := s.publishWatermark(ctx); err != nil {
		// The catalog is the record of truth; META catches up next flush.
		uploadErrorsTotal.WithLabelValues("meta").Inc()
		s.log.Warn("publish watermark", "err", err)
	}
	s.a.hook(StageWatermarked)
	s.settleStreamed()
	n, err := s.acks.settle(s.durable.LSN)
	if err != nil {
		s.log.Warn("acknowledge messages", "err", err, "acked", n)
	}
	s.sendAcks()
	s.a.hook(StageAcked)
	return nil
}

// errWatermarkAhead means a flush was about to write a watermark over a
// transaction that no segment holds. It ends the term (nothing is written
// or acknowledged); the next term starts again from the durable watermark.
var errWatermarkAhead = errors.New("watermark would pass a transaction no segment holds")

// checkWatermark is the last line of defence for invariant 1: the
// watermark a flush is about to write must not pass the last transaction
// taken unless a segment, listed or about to be, holds it. Heartbeats may
// lift the watermark past the last segment; transactions may not.
func (s *session) checkWatermark(segs []*closedSegment, target catalog.Watermark) error {
	hi := s.written
	for _, sg := range segs {
		hi = max(hi, sg.trailer.LastEndLSN)
	}
	if s.lastTxn <= hi {
		return nil
	}
	watermarkRefusedTotal.Inc()
	s.log.Error("refusing a catalog entry whose watermark would pass an unarchived transaction; ending the term",
		"watermark", target.LSN, "transaction", s.lastTxn, "archived_up_to", hi, "durable", s.durable.LSN)
	return fmt.Errorf("%w: watermark %s, transaction %s, segments reach %s", errWatermarkAhead, target.LSN, s.lastTxn, hi)
}

// settleStreamed acknowledges the messages of streamed events, which are
// now all in segments listed by durable catalog entries.
func (s *session) settleStreamed() {
	for _, m := range s.streamAcks {
		_ = m.Ack()
	}
	clear(s.streamAcks)
	s.streamAcks = s.streamAcks[:0]
}

// append writes one catalog entry and makes its watermark the durable one.
func (s *session) append(ctx context.Context, ref *catalog.SegmentRef, wm catalog.Watermark) error {
	return s.record(ctx, wm, func() (catalog.Entry, error) { return s.cw.Append(ctx, ref, wm) })
}

// record runs write (one catalog append setting the watermark to wm),
// retrying transient failures, and makes wm the durable watermark.
func (s *session) record(ctx context.Context, wm catalog.Watermark, write func() (catalog.Entry, error)) error {
	start := time.Now()
	entry, err := write()
	for try := 1; err != nil && transient(err) && try < storeTries; try++ {
		uploadErrorsTotal.WithLabelValues("catalog").Inc()
		s.log.Warn("append catalog entry; retrying", "err", err, "try", try)
		if !sleep(ctx, backoff(try)) {
			break
		}
		entry, err = write() // safe: the writer recognises its own earlier write
	}
	if err != nil {
		uploadErrorsTotal.WithLabelValues("catalog").Inc()
		if errors.Is(err, catalog.ErrFenced) || errors.Is(err, catalog.ErrConflict) {
			return fmt.Errorf("%w: append catalog entry: %w", ErrLeaseLost, err)
		}
		return fmt.Errorf("append catalog entry: %w", err)
	}
	uploadLatency.WithLabelValues("catalog").Observe(time.Since(start).Seconds())
	s.puts.add(time.Now(), 1)
	catalogEntriesTotal.Inc()
	s.a.hook(StageCataloged)
	s.durable, s.seq, s.lastEntry = wm, entry.Seq, time.Now()
	watermarkLSN.Set(float64(wm.LSN))
	s.a.setStatus(func(st *Status) { st.Watermark, st.CatalogSeq = wm, entry.Seq })
	return nil
}

// publishWatermark writes the durable watermark to META for capture.
func (s *session) publishWatermark(ctx context.Context) error {
	return s.a.meta.putWatermark(ctx, feed.Watermark{LSN: s.durable.LSN, CommitTime: s.durable.CommitTime,
		CatalogSeq: s.seq, UpdatedAt: time.Now().UTC()})
}

var (
	eventsArchivedTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_events_archived_total",
		Help: "Events written to segments whose catalog entry is durable.",
	})
	catalogEntriesTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_catalog_entries_total",
		Help: "Catalog entries appended (segment, watermark-only and debris).",
	})
	lastCommitTime = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_archiver_last_archived_commit_timestamp_seconds",
		Help: "Latest commit time archived so far, as a Unix timestamp.",
	})
	watermarkRefusedTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_watermark_refused_total",
		Help: "Catalog entries refused because their watermark would pass a transaction no segment holds (a bug guard; should stay 0).",
	})
	watermarkLSN = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_archiver_watermark_lsn",
		Help: "The durable watermark's LSN (as a number; precision is lost above 2^53).",
	})
)

// storeTries is how often a store write is tried before the term gives up.
const storeTries = 4

// transient reports whether a store error may go away on retry (it is not
// a fencing, conflict or validation verdict).
func transient(err error) bool {
	return !errors.Is(err, catalog.ErrFenced) && !errors.Is(err, catalog.ErrConflict) &&
		!errors.Is(err, catalog.ErrInvalidEntry) && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, context.DeadlineExceeded)
}

// backoff returns the wait before retry number try (1-based).
func backoff(try int) time.Duration { return time.Duration(try*try) * 200 * time.Millisecond }

// sleep waits d or until ctx ends; it reports whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
