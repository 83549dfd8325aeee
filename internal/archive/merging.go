package archive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/merge"
)

// StageMerge* are passed to Deps.Hook at the steps of a merge (crash tests).
const (
	StageMergeWritten  = "merge-written"
	StageMergeUploaded = "merge-uploaded"
	StageMergeRecorded = "merge-recorded"
)

// startMerger runs the term's merger beside the flush path: it shares the
// catalog writer (appends are serialized, and a merge never moves the
// watermark), so flushes, the watermark and the slot never wait for a
// merge. It stops when the term ends or the archiver is asked to stop; a
// fenced merge ends the term. The returned func stops it and waits.
func (a *Archiver) startMerger(term, stop context.Context, endTerm context.CancelCauseFunc, s *session) func() {
	if !a.cfg.merging() {
		return func() {}
	}
	ctx, cancel := context.WithCancel(term)
	context.AfterFunc(stop, cancel)
	m := &merge.Merger{Store: a.deps.Store, Catalog: s.cat, Writer: s.cw, Keyring: a.deps.Keyring,
		Policy: a.cfg.Merge, TempDir: a.cfg.TempDir, Logger: s.log.With("role", "merger"),
		Hook: func(step merge.Step) { a.mergeHook(step) },
		Busy: s.mergesWait(time.Now),
		Guard: func() error {
			if exp := s.lease.Expires(); !time.Now().Before(exp) {
				return fmt.Errorf("%w: it lapsed at %s", ErrLeaseLost, exp.Format(time.RFC3339Nano))
			}
			return nil
		}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if n, err := m.RemoveStaleTemp(); err != nil {
			s.log.Warn("remove temporary files of earlier merges", "err", err)
		} else if n > 0 {
			s.log.Info("removed temporary files an interrupted merge left", "files", n)
		}
		if n, err := m.RecordLeftovers(ctx); err != nil {
			s.log.Warn("record leftovers of interrupted merges; the next term tries again", "err", err)
		} else if n > 0 {
			s.log.Info("recorded leftovers of interrupted merges as debris", "objects", n)
		}
		err := m.Run(ctx, a.cfg.MergeInterval)
		if errors.Is(err, catalog.ErrFenced) || errors.Is(err, ErrLeaseLost) {
			endTerm(fmt.Errorf("%w: merger: %w", ErrLeaseLost, err))
		}
	}()
	return func() { cancel(); <-done }
}

func (a *Archiver) mergeHook(step merge.Step) {
	switch step {
	case merge.StepWritten:
		a.hook(StageMergeWritten)
	case merge.StepUploaded:
		a.hook(StageMergeUploaded)
	case merge.StepRecorded:
		a.hook(StageMergeRecorded)
	}
}

// Merges wait while the consumer holds more than postponeMergesAbove
// messages for this archiver (a backlog after an outage, or a burst), for
// at most maxMergePostpone in a row: catching up moves the watermark and
// frees the slot's WAL, while a merge only saves requests and bytes later,
// and on a small machine the two share the same cores.
const (
	postponeMergesAbove = 50_000
	maxMergePostpone    = 10 * time.Minute
)

// mergesWait returns the merger's Busy: true while the backlog is above
// postponeMergesAbove, until it has been for maxMergePostpone (an
// archiver that never catches up must still compact). It is called from
// the merger's goroutine only.
func (s *session) mergesWait(clock func() time.Time) func() bool {
	var since time.Time
	return func() bool {
		if s.backlog.Load() <= postponeMergesAbove {
			since = time.Time{}
			return false
		}
		now := clock()
		if since.IsZero() {
			since = now
			s.log.Info("merges wait while the archiver catches up", "backlog", s.backlog.Load(), "at_most", maxMergePostpone)
		}
		return now.Sub(since) < maxMergePostpone
	}
}
