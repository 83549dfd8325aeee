package copier

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Every metric is labelled with the copy's name (its store, redacted).
var (
	lagEntries = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tidemark_copier_lag_entries",
		Help: "Catalog entries the primary has and the copy does not yet.",
	}, []string{"copy"})
	lagSeconds = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tidemark_copier_lag_seconds",
		Help: "The primary's watermark commit time minus the copy's: how much history the copy lacks.",
	}, []string{"copy"})
	lastSync = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tidemark_copier_last_sync_timestamp_seconds",
		Help: "Unix time of the copy's last sync that reached the primary's head.",
	}, []string{"copy"})
	up = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tidemark_copier_up",
		Help: "1 when the copy's last sync succeeded, 0 when it failed.",
	}, []string{"copy"})
	entriesCopied = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tidemark_copier_entries_copied_total",
		Help: "Catalog entries written to the copy.",
	}, []string{"copy"})
	objectsCopied = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tidemark_copier_objects_copied_total",
		Help: "Segment objects copied (checked against their SHA-256) to the copy.",
	}, []string{"copy"})
	bytesCopied = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tidemark_copier_bytes_copied_total",
		Help: "Bytes of segment objects copied to the copy.",
	}, []string{"copy"})
	syncErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tidemark_copier_sync_errors_total",
		Help: "Syncs of the copy that failed (destination or primary unreachable, a mismatch).",
	}, []string{"copy"})
	jumps = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tidemark_copier_checkpoint_jumps_total",
		Help: "Times the copy restarted from the primary's checkpoint because the primary's gc had deleted entries it still lacked.",
	}, []string{"copy"})
)
