package merge

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	mergesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tidemark_archiver_merges_total",
		Help: "Merged segments written and recorded, by level.",
	}, []string{"level"})
	mergeInputsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_merge_inputs_total",
		Help: "Segments replaced by merges.",
	})
	mergeBytesTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_merge_output_bytes_total",
		Help: "Bytes of merged segments written.",
	})
	mergeSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "tidemark_archiver_merge_duration_seconds",
		Help:    "Time to write, store and record one merged segment.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
	})
	mergesPostponedTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_merges_postponed_total",
		Help: "Merge rounds postponed to the next interval because the archiver was catching up on a backlog.",
	})
	mergeErrorsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tidemark_archiver_merge_errors_total",
		Help: "Merges that failed, by cause: input (an input does not match the catalog) or store.",
	}, []string{"cause"})
	leftoversRecordedTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_merge_leftovers_recorded_total",
		Help: "Merged segments uploaded by an interrupted merge and recorded as debris.",
	})
	liveSegments = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_archiver_live_segments",
		Help: "Live segments in the catalog (what a restore to the watermark reads at most).",
	})
)
