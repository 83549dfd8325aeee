package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/internal/testing/harness"
)

// Counter names the drivers wait on.
const (
	metricCapturePublished = "tidemark_capture_events_published_total"
	metricArchived         = "tidemark_archiver_events_archived_total"
	metricPublishLatency   = "tidemark_capture_publish_latency_seconds"
	metricSourceDelay      = "tidemark_capture_source_delay_seconds"
	metricHeartbeats       = "tidemark_capture_heartbeats_total"
)

// pollInterval is how often a driver scrapes a program's counter while
// waiting for it; it bounds a drain's timing error.
const pollInterval = 50 * time.Millisecond

// waitCounter scrapes p until counter name reaches want and returns when it
// was first seen there. It fails when p exits or ctx ends first.
func waitCounter(ctx context.Context, p *harness.Proc, name string, want float64) (time.Time, error) {
	var last float64
	for {
		if exited, err := p.Exited(); exited {
			return time.Time{}, fmt.Errorf("%s exited (%v) with %s at %.0f of %.0f:\n%s", p.Name, err, name, last, want, p.LogTail(20))
		}
		if v, err := p.Metric(ctx, name); err == nil {
			last = v
			if v >= want {
				return time.Now(), nil
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("wait for %s of %s to reach %.0f (at %.0f): %w\n%s", name, p.Name, want, last, ctx.Err(), p.LogTail(20))
		case <-time.After(pollInterval):
		}
	}
}

// DrainCapture starts capture, confirming on JetStream, on a source whose
// slot holds a backlog, and returns the process and the time from its
// start until JetStream acknowledged the backlog's last event (want events
// published in all).
func DrainCapture(ctx context.Context, h *harness.Harness, want int64) (*harness.Proc, time.Duration, error) {
	start := time.Now()
	p, err := h.Capture(ctx, "capture", "--confirm-on", "jetstream")
	if err != nil {
		return nil, 0, err
	}
	done, err := waitCounter(ctx, p, metricCapturePublished, float64(want))
	if err != nil {
		return p, 0, err
	}
	return p, done.Sub(start), nil
}

// DrainArchiver starts the archiver on a stream that already holds the
// backlog and returns the process and the time from its start until the
// catalog made want events durable.
func DrainArchiver(ctx context.Context, h *harness.Harness, want int64) (*harness.Proc, time.Duration, error) {
	start := time.Now()
	p, err := h.Archiver(ctx, "archiver")
	if err != nil {
		return nil, 0, err
	}
	done, err := waitCounter(ctx, p, metricArchived, float64(want))
	if err != nil {
		return p, 0, err
	}
	return p, done.Sub(start), nil
}
