package drill

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Observe records a drill's outcome in the drill metrics (the long-running
// mode of `restorer drill --interval` serves them); err is Run's error
// when the drill could not run at all.
func Observe(rep *Report, err error, objective time.Duration) {
	lastRun.SetToCurrentTime()
	rtoObjective.Set(objective.Seconds())
	if err != nil {
		failures.WithLabelValues("run").Inc()
		runs.WithLabelValues(StatusFailure).Inc()
		lastOK.Set(0)
		return
	}
	runs.WithLabelValues(rep.Status).Inc()
	for _, s := range rep.Steps {
		stepDuration.WithLabelValues(s.Name).Set(s.Duration.Seconds())
		if s.Status == StatusFailure {
			failures.WithLabelValues(s.Name).Inc()
		}
	}
	if rep.RTO != nil {
		rto.Set(rep.RTO.Duration.Seconds())
		rtoEventsPerSecond.Set(rep.RTO.EventsPerSecond)
	}
	if rep.Status == StatusFailure {
		lastOK.Set(0)
		return
	}
	lastOK.Set(1)
	lastSuccess.SetToCurrentTime()
}

var (
	lastRun = promauto.NewGauge(prometheus.GaugeOpts{Name: "tidemark_drill_last_run_timestamp_seconds",
		Help: "When the last restore drill ended, as a Unix timestamp."})
	lastSuccess = promauto.NewGauge(prometheus.GaugeOpts{Name: "tidemark_drill_last_success_timestamp_seconds",
		Help: "When a restore drill last passed (OK or WARNING), as a Unix timestamp."})
	lastOK = promauto.NewGauge(prometheus.GaugeOpts{Name: "tidemark_drill_last_ok",
		Help: "1 when the last restore drill passed (OK or WARNING), 0 when it failed."})
	runs = promauto.NewCounterVec(prometheus.CounterOpts{Name: "tidemark_drill_runs_total",
		Help: "Restore drills run, by result (OK, WARNING, FAILURE)."}, []string{"status"})
	failures = promauto.NewCounterVec(prometheus.CounterOpts{Name: "tidemark_drill_failures_total",
		Help: "Failed restore drill steps, by step (freshness, verify, full, partial, pitr; run: the drill could not start)."}, []string{"step"})
	stepDuration = promauto.NewGaugeVec(prometheus.GaugeOpts{Name: "tidemark_drill_step_duration_seconds",
		Help: "Wall time of each step of the last restore drill."}, []string{"step"})
	rto = promauto.NewGauge(prometheus.GaugeOpts{Name: "tidemark_drill_rto_seconds",
		Help: "Measured RTO of the last drill: wall time to a verified full restore to the watermark."})
	rtoEventsPerSecond = promauto.NewGauge(prometheus.GaugeOpts{Name: "tidemark_drill_restore_events_per_second",
		Help: "Events per second of the last drill's full restore."})
	rtoObjective = promauto.NewGauge(prometheus.GaugeOpts{Name: "tidemark_drill_rto_objective_seconds",
		Help: "The RTO objective the drill checks against (--rto-objective; 0: none)."})
)
