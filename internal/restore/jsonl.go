package restore

import (
	"bufio"
	"context"
	"fmt"
	"strings"

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

// restoreToFile writes the selected events as JSON lines.
func restoreToFile(ctx context.Context, p *Plan, opts *Options) (*Result, error) {
	res := &Result{Empty: p.BeforeFirst}
	if err := preflight(ctx, p.archive.Store, p.Segments); err != nil {
		return nil, err
	}
	f := &fetcher{store: p.archive.Store, keyring: p.archive.Keyring, target: p.Target, maxEnd: p.Window.WatermarkLSN, filter: opts.Filter,
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
	var stats *versionStats
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
		if stats == nil {
			stats = newVersionStats(got.table)
		}
		for _, e := range got.events {
			line = appendJSONLine(line[:0], &got.table, e)
			if _, err := w.Write(line); err != nil {
				return nil, fmt.Errorf("write output: %w", err)
			}
			stats.add(e)
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
	if stats != nil {
		res.Streams = int64(len(stats.streams) + len(stats.invalid))
	}
	res.Verification = fileVerification(res, stats, opts)
	if res.Verification.Status == VerifyFailed {
		return res, failf(ErrVerify, "`restorer verify --store URL` checks the whole archive",
			"verification of the written events failed: %v", res.Verification.Problems)
	}
	return res, nil
}

// fileVerification reports the checks done while writing a file.
func fileVerification(res *Result, st *versionStats, opts *Options) *Verification {
	if opts.NoVerify {
		return &Verification{Status: VerifySkipped}
	}
	v := &Verification{Status: VerifyOK, Rows: res.Events, Streams: res.Streams}
	v.add("count", VerifyOK, fmt.Sprintf("%d events written from the planned segments", res.Events))
	switch {
	case st == nil || !st.enabled:
		v.add("stream_versions", VerifySkipped, "no stream columns, or nothing written")
	case !opts.Filter.WholeStreams():
		v.add("stream_versions", VerifySkipped, "an --event-type restore holds parts of streams")
	default:
		if bad, n := st.broken(maxExamples); n == 0 {
			v.add("stream_versions", VerifyOK, fmt.Sprintf("%d streams contiguous from version 1", len(st.streams)))
		} else {
			names := make([]string, len(bad))
			for i, b := range bad {
				names[i] = b.String()
			}
			v.add("stream_versions", VerifyFailed, fmt.Sprintf("%d streams have versions not contiguous from 1: %s", n, strings.Join(names, ", ")))
		}
	}
	return v
}
