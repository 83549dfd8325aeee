package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/tidemark/tidemark/internal/restore"
)

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// showProgress displays p until the returned stop is called: progress bars
// on a terminal, otherwise a status log line every interval.
func (a *app) showProgress(ctx context.Context, p *restore.Progress, interval time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	if f, ok := a.stderr.(*os.File); ok && isTerminal(f) && !a.jsonOut {
		go func() { defer wg.Done(); bars(ctx, f, p) }()
	} else {
		go func() { defer wg.Done(); a.logProgress(ctx, p, interval) }()
	}
	return func() { cancel(); wg.Wait() }
}

// bars renders download and apply bars with rate and ETA.
func bars(ctx context.Context, out *os.File, p *restore.Progress) {
	pg := mpb.New(mpb.WithOutput(out), mpb.WithWidth(40), mpb.WithRefreshRate(200*time.Millisecond))
	start := time.Now()
	dl := pg.AddBar(max(p.BytesTotal.Load(), 1),
		mpb.PrependDecorators(decor.Name("download ", decor.WCSyncSpaceR), decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace)),
		mpb.AppendDecorators(rateETA(start, func(r float64) string { return bytesHuman(int64(r)) + "/s" })))
	ap := pg.AddBar(max(p.EventsTotal.Load(), 1),
		mpb.PrependDecorators(decor.Name("events   ", decor.WCSyncSpaceR), decor.CountersNoUnit("%d / %d", decor.WCSyncSpace)),
		mpb.AppendDecorators(rateETA(start, func(r float64) string { return fmt.Sprintf("%.0f events/s", r) })))
	update := func(final bool) {
		dl.SetTotal(max(p.BytesTotal.Load(), 1), false)
		dl.SetCurrent(p.BytesDownloaded.Load())
		ap.SetTotal(max(p.EventsTotal.Load(), 1), false)
		ap.SetCurrent(p.EventsApplied.Load())
		if final {
			dl.SetTotal(-1, true)
			ap.SetTotal(-1, true)
		}
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			update(true)
			pg.Wait()
			return
		case <-tick.C:
			update(false)
		}
	}
}

// rateETA shows a bar's average rate since start and the time left at that rate.
func rateETA(start time.Time, format func(float64) string) decor.Decorator {
	return decor.Any(func(st decor.Statistics) string {
		el := time.Since(start).Seconds()
		if el <= 0 || st.Current <= 0 {
			return ""
		}
		rate := float64(st.Current) / el
		eta := "done"
		if !st.Completed && st.Total > st.Current {
			eta = "ETA " + (time.Duration(float64(st.Total-st.Current)/rate) * time.Second).Round(time.Second).String()
		}
		return format(rate) + "  " + eta
	}, decor.WCSyncSpace)
}

// logProgress logs a status line every interval.
func (a *app) logProgress(ctx context.Context, p *restore.Progress, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			applied, total := p.EventsApplied.Load(), p.EventsTotal.Load()
			attrs := []any{"phase", p.Phase(),
				"downloaded_bytes", p.BytesDownloaded.Load(), "total_bytes", p.BytesTotal.Load(),
				"segments_done", p.SegmentsDone.Load(), "segments", p.SegmentsTotal.Load(),
				"events_applied", applied, "events_total", total}
			if st := p.Started(); !st.IsZero() {
				el := time.Since(st)
				rate := float64(applied) / el.Seconds()
				attrs = append(attrs, "events_per_second", int64(rate))
				if rate > 0 && total > applied {
					attrs = append(attrs, "eta", (time.Duration(float64(total-applied)/rate) * time.Second).Round(time.Second).String())
				}
			}
			a.log.Info("restore progress", attrs...)
		}
	}
}
