package restore

import (
	"bufio"
	"context"
	"fmt"
	"strconv"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// appendJSONLine appends one event as a JSON object: the row's columns as
// the feed encodes them (feed.AppendRow) plus "commit_time" and
// "commit_lsn", and a newline.
func appendJSONLine(dst []byte, t *event.Table, e *event.Event) []byte {
	start := len(dst)
	dst = feed.AppendRow(dst, t, e.Values)
	dst = dst[:len(dst)-1] // drop '}'
	if len(dst) > start+1 {
		dst = append(dst, ',')
	}
	dst = append(dst, `"commit_time":"`...)
	dst = e.CommitTime.UTC().AppendFormat(dst, feed.TimeLayout)
	dst = append(dst, `","commit_lsn":"`...)
	dst = append(dst, e.CommitLSN.String()...)
	dst = append(dst, `"}`...)
	return append(dst, '\n')
}

// streamTracker checks per-stream version continuity in chain order without
// holding events: memory grows with the number of streams only.
type streamTracker struct {
	layout  event.Layout
	last    map[string]int64
	bad     map[string]string
	enabled bool
}

func newStreamTracker(t event.Table, on bool) *streamTracker {
	l := event.LayoutOf(t)
	return &streamTracker{layout: l, last: map[string]int64{}, bad: map[string]string{},
		enabled: on && l.StreamID >= 0 && l.StreamVersion >= 0}
}

func (s *streamTracker) add(e *event.Event) {
	if !s.enabled {
		return
	}
	id := string(e.Value(s.layout.StreamID))
	v, err := strconv.ParseInt(string(e.Value(s.layout.StreamVersion)), 10, 64)
	if err != nil {
		if len(s.bad) < maxExamples {
			s.bad[id] = "non-integer version"
		}
		return
	}
	if want := s.last[id] + 1; v != want && len(s.bad) < maxExamples {
		if _, seen := s.bad[id]; !seen {
			s.bad[id] = fmt.Sprintf("version %d where %d was due", v, want)
		}
	}
	s.last[id] = v
}

// restoreToFile writes the selected events as JSON lines.
func restoreToFile(ctx context.Context, p *Plan, opts *Options) (*Result, error) {
	res := &Result{Empty: p.BeforeFirst}
	f := &fetcher{store: p.archive.Store, keyring: p.archive.Keyring, target: p.Target, filter: opts.Filter,
		maxBytes: opts.MaxSegmentBytes, progress: opts.Progress}
	pr := opts.Progress
	pr.BytesTotal.Store(p.Bytes)
	pr.EventsTotal.Store(p.MaxEvents)
	pr.SegmentsTotal.Store(int64(p.SegmentCount))
	pr.setPhase("load")
	pr.start()
	pl := startPipeline(ctx, f, p.Segments, opts.Parallel)
	defer pl.stop()
	w := bufio.NewWriterSize(opts.Output, 1<<20)
	var tracker *streamTracker
	var line []byte
	for {
		got, ok, err := pl.next(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		pl.release()
		if tracker == nil {
			tracker = newStreamTracker(got.table, opts.Filter.WholeStreams())
		}
		for _, e := range got.events {
			line = appendJSONLine(line[:0], &got.table, e)
			if _, err := w.Write(line); err != nil {
				return nil, fmt.Errorf("write output: %w", err)
			}
			tracker.add(e)
		}
		res.Segments++
		res.Bytes += got.ref.Size
		res.EventsThisRun += int64(len(got.events))
		pr.EventsTotal.Add(int64(len(got.events) - got.ref.Events))
		pr.EventsApplied.Add(int64(len(got.events)))
		pr.SegmentsDone.Add(1)
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("write output: %w", err)
	}
	res.Events = res.EventsThisRun
	if tracker != nil {
		res.Streams = int64(len(tracker.last))
	}
	res.Verification = fileVerification(res, tracker, opts)
	if res.Verification.Status == VerifyFailed {
		return res, failf(ErrVerify, "`restorer verify --store URL` checks the whole archive",
			"verification of the written events failed: %v", res.Verification.Problems)
	}
	return res, nil
}

// fileVerification reports the checks done while writing a file.
func fileVerification(res *Result, tr *streamTracker, opts *Options) *Verification {
	if opts.NoVerify {
		return &Verification{Status: VerifySkipped}
	}
	v := &Verification{Status: VerifyOK, Rows: res.Events, Streams: res.Streams}
	v.add("count", VerifyOK, fmt.Sprintf("%d events written from the planned segments", res.Events))
	switch {
	case tr == nil || !tr.enabled:
		v.add("stream_versions", VerifySkipped, "no stream columns, an --event-type filter, or nothing written")
	case len(tr.bad) == 0:
		v.add("stream_versions", VerifyOK, fmt.Sprintf("%d streams contiguous from version 1 in commit order", len(tr.last)))
	default:
		var ex []string
		for id, why := range tr.bad {
			ex = append(ex, id+": "+why)
		}
		v.add("stream_versions", VerifyFailed, fmt.Sprintf("streams with versions not contiguous from 1: %v", ex))
	}
	return v
}
