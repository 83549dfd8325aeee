package bench

import (
	"time"

	"github.com/tidemark/tidemark/internal/testing/loadgen"
)

// Results are everything one Run measured. Durations of drains run from
// the process start to the last event handled.
type Results struct {
	// Config is the run's configuration (defaults filled in).
	Config Config
	// Started and Finished bound the run.
	Started, Finished time.Time

	// Load is the backlog written; RawJSONBytes its rows as JSON objects.
	Load         LoadResult
	RawJSONBytes int64

	// RecvLogical are the pg_recvlogical drains of the backlog (two runs,
	// before and after capture's).
	RecvLogical []time.Duration
	// Capture is capture's drain of the backlog into JetStream.
	Capture time.Duration
	// Archiver is the archiver's drain of the full stream.
	Archiver time.Duration

	// ArchiveBytes is every object in the store after the backlog was
	// archived; SegmentBytes the segments alone, Segments their number,
	// SegmentRawBytes their uncompressed records.
	ArchiveBytes, SegmentBytes, SegmentRawBytes int64
	Segments                                    int

	// CopyRows and Copy are the plain-COPY baseline.
	CopyRows int64
	Copy     time.Duration
	// RestoreLate restores to the backlog's last commit, RestoreEarly to
	// EarlyT (the commit of the event at EarlyFraction), which covers
	// EarlyExpected events.
	RestoreLate, RestoreEarly RestoreRun
	// Replay reads the whole archive with `restorer replay`, right after
	// RestoreLate.
	Replay ReplayRun
	// Merge is the time to merge the backlog's live segments into one;
	// MergedInputs, MergedBytes and MergedEvents describe that merge, and
	// RestoreMerged restores to the backlog's end from the merged segment.
	Merge         time.Duration
	MergedInputs  int
	MergedBytes   int64
	MergedEvents  int64
	MergedLevel   int
	RestoreMerged RestoreRun
	EarlyT        time.Time
	EarlyExpected int64

	// Steady is the steady workload as loadgen saw it, SteadyEvents what
	// the source holds from it; AckP50First/Last the median commit →
	// stored in JetStream of the first and last third of it;
	// StoredLatency commit → stored in JetStream per event (sorted),
	// DeliveredLatency commit → delivered to a consumer (sorted), ProbeBad
	// messages without a readable commit time or metadata;
	// AckHistP50/P99 capture's own commit → ack histogram and
	// SourceDelayP50/P99 its commit → walsender sent histogram over the
	// same period (HistOK, SourceOK false when they had no samples).
	Steady                         loadgen.Stats
	SteadyEvents                   int64
	StoredLatency                  []time.Duration
	DeliveredLatency               []time.Duration
	ProbeBad                       int
	AckP50First, AckP50Last        time.Duration
	AckHistP50                     time.Duration
	AckHistP99                     time.Duration
	HistOK                         bool
	SourceDelayP50, SourceDelayP99 time.Duration
	SourceOK                       bool
	RPO                            []time.Duration
	RPOUncovered                   int
	SteadyStart, SteadyEnd         time.Time

	// RSSCapture, RSSArchiver and RSSNATS are the peak RSS (VmHWM) of
	// capture, the archiver and nats-server at the end of the run, in bytes.
	RSSCapture, RSSArchiver, RSSNATS int64

	// CPU is the CPU time each process used in each timed phase.
	CPU []CPUUse

	// JetStreamPublish and Zstd are machine limits from testing.Benchmark
	// (zero when skipped).
	JetStreamPublish, JetStreamFastPublish, Zstd MicroResult
}

// RecvLogicalMean is the mean pg_recvlogical drain time.
func (r *Results) RecvLogicalMean() time.Duration {
	if len(r.RecvLogical) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range r.RecvLogical {
		sum += d
	}
	return sum / time.Duration(len(r.RecvLogical))
}
