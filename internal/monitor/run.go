package monitor

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Monitor runs a round every Interval and records it in the metrics.
type Monitor struct {
	Options
	// Interval is the time between rounds.
	Interval time.Duration
	rounds   atomic.Int64
}

// Ready reports whether a round has completed.
func (m *Monitor) Ready() bool { return m.rounds.Load() > 0 }

// Run samples until ctx ends; a round that cannot run is logged and
// counted, and the next one tries again.
func (m *Monitor) Run(ctx context.Context) error {
	for {
		r, err := RunOnce(ctx, m.Options)
		if ctx.Err() != nil {
			return nil
		}
		m.observe(r, err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(m.Interval):
		}
	}
}

func (m *Monitor) observe(r *Round, err error) {
	if err != nil {
		roundErrors.Inc()
		if m.Logger != nil {
			m.Logger.Error("monitor round failed", "err", err)
		}
		return
	}
	m.rounds.Add(1)
	rounds.Inc()
	lastRound.SetToCurrentTime()
	compared.Add(float64(r.Compared))
	feedCompared.Add(float64(r.FeedCompared))
	feedExpired.Add(float64(r.FeedExpired))
	ahead := 0.0
	if r.SlotConfirmed > r.Watermark {
		ahead = float64(r.SlotConfirmed - r.Watermark)
	}
	slotAhead.Set(ahead)
	lastViolations.Set(float64(r.Violations()))
	for _, f := range r.Findings {
		if f.KnownGap != 0 {
			known.WithLabelValues(f.Check).Inc()
			continue
		}
		violations.WithLabelValues(f.Check).Inc()
		if m.Logger != nil {
			m.Logger.Warn("integrity violation", "check", f.Check, "object", f.Object, "stream", f.Stream, "event_id", f.EventID, "message", f.Message)
		}
	}
	if m.Logger != nil {
		m.Logger.Info("monitor round", "segment", r.Segment, "segments", len(r.Segments), "compared", r.Compared,
			"feed_compared", r.FeedCompared, "feed_expired", r.FeedExpired, "violations", r.Violations(),
			"watermark", r.Watermark, "slot_confirmed", r.SlotConfirmed)
	}
}

var (
	rounds = promauto.NewCounter(prometheus.CounterOpts{Name: "tidemark_monitor_rounds_total",
		Help: "Integrity monitor rounds completed."})
	roundErrors = promauto.NewCounter(prometheus.CounterOpts{Name: "tidemark_monitor_round_errors_total",
		Help: "Integrity monitor rounds that could not run (store or source unreachable)."})
	compared = promauto.NewCounter(prometheus.CounterOpts{Name: "tidemark_monitor_events_compared_total",
		Help: "Archived events compared with their source rows."})
	feedCompared = promauto.NewCounter(prometheus.CounterOpts{Name: "tidemark_monitor_feed_compared_total",
		Help: "Archived events looked up in JetStream (found and compared, or reported missing)."})
	feedExpired = promauto.NewCounter(prometheus.CounterOpts{Name: "tidemark_monitor_feed_expired_total",
		Help: "Sampled archived events older than the stream's first retained message (no feed copy to compare)."})
	violations = promauto.NewCounterVec(prometheus.CounterOpts{Name: "tidemark_monitor_violations_total",
		Help: "Disagreements found, by check (slot, segment-missing, segment-corrupt, archive-order, source-missing, source-changed, feed-missing, feed-changed, feed-gap)."}, []string{"check"})
	known = promauto.NewCounterVec(prometheus.CounterOpts{Name: "tidemark_monitor_known_total",
		Help: "Disagreements a known-gap catalog entry accepts, by check."}, []string{"check"})
	lastViolations = promauto.NewGauge(prometheus.GaugeOpts{Name: "tidemark_monitor_last_round_violations",
		Help: "Disagreements no known gap accepts in the last round."})
	lastRound = promauto.NewGauge(prometheus.GaugeOpts{Name: "tidemark_monitor_last_round_timestamp_seconds",
		Help: "When the last monitor round completed, as a Unix timestamp."})
	slotAhead = promauto.NewGauge(prometheus.GaugeOpts{Name: "tidemark_monitor_slot_ahead_bytes",
		Help: "How far the slot's confirmed position is past the archive's watermark (0 when it is not: the invariant)."})
)
