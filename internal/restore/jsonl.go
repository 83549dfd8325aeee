package restore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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
	pr := opts.Progress
	pr.BytesTotal.Store(p.Bytes)
	pr.EventsTotal.Store(p.MaxEvents)
	pr.SegmentsTotal.Store(int64(p.SegmentCount))
	pr.setPhase("load")
	pr.start()
	src := newChainReader(p, opts, nil)
	defer src.close()
	def, ok, err := src.start(ctx)
	if err != nil {
		return nil, err
	}
	var stats *versionStats
	if ok {
		if stats, err = writeJSONLines(ctx, src, &def, opts.Output, res, pr); err != nil {
			return nil, err
		}
	}
	res.Segments, res.Bytes = src.segments, src.bytes
	res.FromFallback = src.progress.FromFallback.Load()
	if src.replans > 0 {
		res.Replans = src.replans
		res.Notes = append(res.Notes, replanNote(src.replans))
	}
	pr.EventsTotal.Store(res.EventsThisRun)
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

// writeJSONLines writes every event src selects to out, one line each.
func writeJSONLines(ctx context.Context, src *chainReader, def *event.Table, out io.Writer, res *Result, pr *Progress) (*versionStats, error) {
	w := bufio.NewWriterSize(out, 1<<20)
	stats := newVersionStats(*def)
	var line []byte
	for {
		it, err := src.next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		line = appendJSONLine(line[:0], def, it.e)
		if _, err := w.Write(line); err != nil {
			return nil, fmt.Errorf("write output: %w", err)
		}
		stats.add(it.e)
		res.EventsThisRun++
		pr.EventsApplied.Add(1)
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("write output: %w", err)
	}
	return stats, nil
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
	case opts.IncludeDiverged:
		v.add("stream_versions", VerifySkipped, "--include-diverged: the diverged history may repeat stream versions")
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
