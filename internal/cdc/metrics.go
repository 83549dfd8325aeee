package cdc

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Capture's metrics, registered on the default Prometheus registry.
var (
	metricEventsPublished = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_capture_events_published_total",
		Help: "Event messages acknowledged by JetStream (re-sends after a rewind count again).",
	})
	metricBytesPublished = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_capture_bytes_published_total",
		Help: "Bytes of event message bodies acknowledged by JetStream.",
	})
	metricPublishErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_capture_publish_errors_total",
		Help: "JetStream publishes that failed or timed out (each is retried with the same Nats-Msg-Id).",
	})
	metricPublishLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "tidemark_capture_publish_latency_seconds",
		Help:    "Time from a transaction's source commit to JetStream's acknowledgement of its last event.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
	})
	// metricSourceDelay is the source's share of commit → JetStream, so
	// that a latency can be laid at the right door: both times come from
	// the source's clock.
	metricSourceDelay = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "tidemark_capture_source_delay_seconds",
		Help:    "Time from a transaction's source commit to the walsender sending its commit to capture (WAL flush, decoding, and any backlog).",
		Buckets: prometheus.ExponentialBuckets(0.00025, 2, 16),
	})
	metricLag = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_capture_lag_seconds",
		Help: "Now minus the source time of the last acknowledged item (event commit or heartbeat).",
	})
	metricLastCommit = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_capture_last_event_commit_timestamp_seconds",
		Help: "Source commit time of the last acknowledged event, as a Unix timestamp.",
	})
	metricConfirmedLSN = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_capture_confirmed_lsn",
		Help: "The LSN last confirmed to the replication slot, as a number.",
	})
	metricRetainedWAL = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_capture_slot_retained_wal_bytes",
		Help: "WAL the slot retains: pg_current_wal_lsn() - restart_lsn.",
	})
	metricTamper = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tidemark_capture_tamper_events_total",
		Help: "UPDATE, DELETE and TRUNCATE changes seen on captured tables.",
	}, []string{"table", "op"})
	metricStalled = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_capture_publish_stalled",
		Help: "1 while the oldest unacknowledged publish has waited longer than the stall timeout or is being retried.",
	})
	metricHeartbeats = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_capture_heartbeats_total",
		Help: "Heartbeats acknowledged by JetStream.",
	})
	metricRewinds = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_capture_rewinds_total",
		Help: "Restarts of streaming from the slot's confirmed position (archiver request or failed publishes).",
	})
	metricSpilledBytes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_capture_spilled_bytes_total",
		Help: "Bytes of large transactions spilled to temporary files.",
	})
	metricSourceChecks = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tidemark_capture_source_checks_total",
		Help: "Servers identified at start and after each lost connection, by what capture found: same_server, promoted_standby, older_timeline, different_cluster.",
	}, []string{"found"})
	metricTimeline = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_capture_source_timeline",
		Help: "The timeline of the server capture streams from (IDENTIFY_SYSTEM); it rises by one with each promotion.",
	})
	metricPastFork = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_capture_archive_past_fork_bytes",
		Help: "After a failover: how far (in WAL bytes) the archive's durable watermark lies past the point where the new primary's timeline forked from the old one; above 0, archived transactions may be missing on the new primary.",
	})
	metricResyncs = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_capture_resyncs_total",
		Help: "Resyncs published after a failover: a new slot and the rows committed since the archive's watermark (minus the overlap) re-read from the new primary.",
	})
	metricResyncRows = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_capture_resync_rows_total",
		Help: "Rows re-read and published by resyncs (the archiver appends only those it does not hold).",
	})
)
