package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/s3"
	"github.com/tidemark/tidemark/internal/objstore/storeurl"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/testing/harness"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// Names the run uses on the source.
const (
	publication  = "tidemark" // capture's default publication
	streamName   = "TIDEMARK"
	streamPrefix = "bench"
)

// recvSlots are the slots pg_recvlogical drains, one per baseline run.
var recvSlots = []string{"bench_recv_a", "bench_recv_b"}

// pgOptions are the server settings of both clusters: enough shared
// buffers and WAL that checkpoints do not dominate a 1M-event run.
func pgOptions() []testrig.PGOption {
	return []testrig.PGOption{
		testrig.WithConf("shared_buffers", "256MB"),
		testrig.WithConf("max_wal_size", "8GB"),
		testrig.WithConf("checkpoint_timeout", "30min"),
	}
}

// runner carries one Run's state.
type runner struct {
	cfg      Config
	res      *Results
	h        *harness.Harness
	target   *testrig.Postgres
	store    objstore.Store
	capture  *harness.Proc
	archiver *harness.Proc
	rowsFile string
	// childCPU collects the CPU time of child processes a step ran to
	// completion (their rusage), for the step's CPU accounting.
	childCPU map[string]time.Duration
}

// parties are the processes whose CPU time a phase accounts.
func (r *runner) parties() map[string]party {
	ps := map[string]party{"bench": {pid: selfPID}}
	if r.h != nil {
		if pid := r.h.PG.PID(); pid > 0 {
			ps["postgres"] = party{pid: pid, tree: true}
		}
		if r.h.NATSNode != nil {
			ps["nats-server"] = party{pid: r.h.NATSNode.PID()}
		}
		if r.h.S3 != nil {
			ps["versitygw"] = party{pid: r.h.S3.PID()}
		}
	}
	if r.target != nil {
		if pid := r.target.PID(); pid > 0 {
			ps["postgres-target"] = party{pid: pid, tree: true}
		}
	}
	for name, p := range map[string]*harness.Proc{"capture": r.capture, "archiver": r.archiver} {
		if p != nil {
			if exited, _ := p.Exited(); !exited {
				ps[name] = party{pid: p.PID()}
			}
		}
	}
	return ps
}

// Run performs one benchmark run: rig, backlog, baselines and Tidemark's
// programs on the same data. It returns what it measured so far together
// with the first error.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, res: &Results{Config: cfg, Started: time.Now()}}
	defer r.close()
	steps := []struct {
		name  string
		f     func(context.Context) error
		meter bool
	}{
		{"start rig", r.startRig, false},
		{"micro-benchmark jetstream publish", r.microPublish, false},
		{"prime capture", r.primeCapture, false},
		{"load backlog", r.loadBacklog, false},
		{"pg_recvlogical drain 1", func(ctx context.Context) error { return r.recvLogical(ctx, 0) }, true},
		{"capture drain", r.drainCapture, true},
		{"pg_recvlogical drain 2", func(ctx context.Context) error { return r.recvLogical(ctx, 1) }, true},
		{"archiver drain", r.drainArchiver, true},
		{"archive size", r.archiveSize, false},
		{"copy baseline", r.copyBaseline, true},
		{"restore late", r.restoreLate, true},
		{"replay archive", r.replayArchive, true},
		{"restore early", r.restoreEarly, true},
		{"micro-benchmark zstd", r.microZstd, false},
		{"steady workload", r.steady, true},
		{"peak rss", r.peakRSS, false},
		{"merge backlog", r.mergeBacklog, true},
		{"restore merged", r.restoreMerged, true},
	}
	for _, s := range steps {
		start := time.Now()
		cfg.Progress("step " + s.name)
		r.childCPU = map[string]time.Duration{}
		var m *cpuMeter
		if s.meter {
			m = newCPUMeter(r.parties)
		}
		err := s.f(ctx)
		if m != nil {
			r.res.CPU = append(r.res.CPU, m.stop(s.name, r.childCPU))
		}
		if err != nil {
			r.res.Finished = time.Now()
			return r.res, fmt.Errorf("%s: %w", s.name, err)
		}
		cfg.Progress("step done", "step", s.name, "took", time.Since(start).Round(time.Millisecond).String())
	}
	r.res.Finished = time.Now()
	return r.res, nil
}

// timeout bounds one wait: generous for the backlog's size.
func (r *runner) timeout() time.Duration {
	return 2*time.Minute + time.Duration(r.cfg.Events/1000)*time.Second
}

func (r *runner) close() {
	if r.h != nil {
		r.h.Close()
	}
	if r.target != nil {
		_ = r.target.Stop()
	}
}

func (r *runner) startRig(ctx context.Context) error {
	var err error
	if r.h, err = harness.Start(ctx, harness.Options{Dir: r.cfg.Dir, Store: r.cfg.Store, PGOptions: pgOptions(), NATS: "process"}); err != nil {
		return err
	}
	for _, p := range []string{"capture", "archiver", "restorer"} {
		if _, err := r.h.Binary(ctx, p); err != nil {
			return err
		}
	}
	var opts storeurl.Options
	if r.h.S3 != nil {
		opts.S3 = s3.Options{AccessKey: r.h.S3.AccessKey, SecretKey: r.h.S3.SecretKey}
	}
	if r.store, err = storeurl.OpenWith(ctx, r.h.StoreURL, opts); err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	if r.target, err = testrig.StartPostgresProcess(ctx, filepath.Join(r.cfg.Dir, "pg-target"), pgOptions()...); err != nil {
		return err
	}
	return CreatePublication(ctx, r.h.SourceURL, publication)
}

// primeCapture runs capture once on the empty table, as a deployment
// starts: it creates its slot, publishes the (empty) snapshot and its
// snapshot-done heartbeat, which start the archive's chain. Then capture
// stops, the baseline slots are created at the same position, and the
// backlog written next waits in every slot.
func (r *runner) primeCapture(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	p, err := r.h.Capture(ctx, "capture-prime", "--confirm-on", "jetstream")
	if err != nil {
		return err
	}
	if err := p.WaitReady(ctx); err != nil {
		return err
	}
	if _, err := waitCounter(ctx, p, metricHeartbeats, 1); err != nil {
		return err
	}
	if err := p.Stop(30 * time.Second); err != nil {
		return fmt.Errorf("stop capture: %w", err)
	}
	return CreateSlots(ctx, r.h.SourceURL, recvSlots...)
}

func (r *runner) microPublish(ctx context.Context) error {
	if r.cfg.SkipMicro {
		return nil
	}
	res, err := BenchJetStreamPublish(ctx, r.h.NATSURL, 600)
	r.res.JetStreamPublish = res
	if err != nil {
		return err
	}
	r.res.JetStreamFastPublish, err = BenchJetStreamFastPublish(ctx, r.h.NATSURL, 600)
	return err
}

func (r *runner) loadBacklog(ctx context.Context) error {
	res, err := Load(ctx, r.h.SourceURL, LoadConfig{Events: r.cfg.Events, Streams: r.cfg.Streams,
		Sessions: r.cfg.LoadSessions, Seed: r.cfg.Seed, StreamPrefix: streamPrefix})
	if err != nil {
		return err
	}
	r.res.Load = res
	r.cfg.Progress("backlog loaded", "events", res.Events, "transactions", res.Transactions,
		"seconds", res.Duration.Seconds(), "end_lsn", res.EndLSN)
	if r.res.RawJSONBytes, err = RawJSONBytes(ctx, r.h.SourceURL, streamPrefix); err != nil {
		return err
	}
	// A checkpoint now keeps the next one out of the timed drains.
	return execSQL(ctx, r.h.SourceURL, "CHECKPOINT")
}

func (r *runner) recvLogical(ctx context.Context, i int) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	rl, err := RecvLogical(ctx, RecvLogicalOptions{BinDir: testrig.DefaultPGBinDir, PGURL: r.h.SourceURL,
		Slot: recvSlots[i], Publication: publication, EndLSN: r.res.Load.EndLSN,
		LogPath: filepath.Join(r.cfg.Dir, recvSlots[i]+".log")})
	r.childCPU["pg_recvlogical"] = rl.CPU
	if err != nil {
		return err
	}
	d := rl.Wall
	r.res.RecvLogical = append(r.res.RecvLogical, d)
	r.cfg.Progress("pg_recvlogical drained", "seconds", d.Seconds(), "events_per_second", rate(r.res.Load.Events, d))
	// The baseline's slot would otherwise hold WAL for the rest of the run.
	return DropSlot(ctx, r.h.SourceURL, recvSlots[i])
}

func (r *runner) drainCapture(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	p, d, err := DrainCapture(ctx, r.h, r.res.Load.Events)
	r.capture = p
	if err != nil {
		return err
	}
	r.res.Capture = d
	r.cfg.Progress("capture drained", "seconds", d.Seconds(), "events_per_second", rate(r.res.Load.Events, d))
	return nil
}

func (r *runner) drainArchiver(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	p, d, err := DrainArchiver(ctx, r.h, r.res.Load.Events)
	r.archiver = p
	if err != nil {
		return err
	}
	r.res.Archiver = d
	r.cfg.Progress("archiver drained", "seconds", d.Seconds(), "events_per_second", rate(r.res.Load.Events, d))
	return nil
}

func (r *runner) archiveSize(ctx context.Context) error {
	objs, err := r.store.List(ctx, "", "")
	if err != nil {
		return fmt.Errorf("list archive: %w", err)
	}
	for _, o := range objs {
		r.res.ArchiveBytes += o.Size
		if strings.HasPrefix(o.Key, "segments/") {
			r.res.SegmentBytes += o.Size
			r.res.Segments++
		}
	}
	arc, err := restore.Open(ctx, r.store, nil)
	if err != nil {
		return err
	}
	for _, s := range arc.Catalog.Segments() {
		r.res.SegmentRawBytes += s.RawBytes
	}
	return nil
}

func (r *runner) copyBaseline(ctx context.Context) error {
	r.rowsFile = filepath.Join(r.cfg.Dir, "rows.copy")
	n, err := ExportRows(ctx, r.h.SourceURL, streamPrefix, r.rowsFile)
	if err != nil {
		return err
	}
	if n != r.res.Load.Events {
		return fmt.Errorf("exported %d rows, loaded %d", n, r.res.Load.Events)
	}
	url, err := NewEventcoreDatabase(ctx, r.target.CreateDatabase)
	if err != nil {
		return err
	}
	if err := execSQL(ctx, url, "CHECKPOINT"); err != nil {
		return err
	}
	r.res.CopyRows, r.res.Copy, err = CopyRows(ctx, url, r.rowsFile)
	r.cfg.Progress("copy baseline", "rows", r.res.CopyRows, "seconds", r.res.Copy.Seconds())
	return err
}

func (r *runner) restoreTo(ctx context.Context, n int64, name string) (RestoreRun, time.Time, int64, error) {
	t, upTo, err := CommitTimeAt(ctx, r.h.SourceURL, streamPrefix, n)
	if err != nil {
		return RestoreRun{}, t, 0, err
	}
	url, err := NewEventcoreDatabase(ctx, r.target.CreateDatabase)
	if err != nil {
		return RestoreRun{}, t, upTo, err
	}
	if err := execSQL(ctx, url, "CHECKPOINT"); err != nil {
		return RestoreRun{}, t, upTo, err
	}
	bin, err := r.h.Binary(ctx, "restorer")
	if err != nil {
		return RestoreRun{}, t, upTo, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	run, err := RunRestorer(ctx, bin, r.h.Env(), r.h.StoreURL, url, restore.FormatTime(t), filepath.Join(r.cfg.Dir, name+".log"))
	r.childCPU["restorer"] = run.CPU
	if err == nil && run.Events != upTo {
		err = fmt.Errorf("restored %d events to %s, the source committed %d by then", run.Events, restore.FormatTime(t), upTo)
	}
	r.cfg.Progress("restored", "to", restore.FormatTime(t), "events", run.Events, "seconds", run.Wall.Seconds(),
		"max_rss_mib", run.MaxRSS>>20)
	return run, t, upTo, err
}

func (r *runner) restoreLate(ctx context.Context) error {
	var err error
	r.res.RestoreLate, _, _, err = r.restoreTo(ctx, r.res.Load.Events, "restore-late")
	return err
}

func (r *runner) restoreEarly(ctx context.Context) error {
	n := max(int64(float64(r.res.Load.Events)*r.cfg.EarlyFraction), 1)
	var err error
	r.res.RestoreEarly, r.res.EarlyT, r.res.EarlyExpected, err = r.restoreTo(ctx, n, "restore-early")
	return err
}

func (r *runner) microZstd(context.Context) error {
	if r.cfg.SkipMicro {
		return nil
	}
	res, err := BenchZstd(r.rowsFile, 64<<20)
	r.res.Zstd = res
	if err == nil {
		err = os.Remove(r.rowsFile)
	}
	return err
}

// steady runs the 5,000 events/s workload with capture and the archiver
// live, and measures commit → JetStream and commit → durable archive.
func (r *runner) steady(ctx context.Context) error {
	res := r.res
	res.SteadyStart = time.Now()
	probe, err := StartLatencyProbe(ctx, r.h.NATSURL, streamName, feed.Subjects{Prefix: "tidemark"}, res.SteadyStart)
	if err != nil {
		return err
	}
	defer probe.Stop()
	before, err := r.capture.Metrics(ctx)
	if err != nil {
		return err
	}
	res.Steady, err = loadgen.Run(ctx, r.h.SourceURL, loadgen.Config{Writers: 16, Rate: r.cfg.SteadyRate,
		Duration: r.cfg.SteadyDuration, Streams: r.cfg.Streams, Seed: r.cfg.Seed + 1, StreamPrefix: "steady"})
	res.SteadyEnd = time.Now()
	if err != nil {
		return fmt.Errorf("steady workload: %w", err)
	}
	// The source is the truth: a commit under way when the workload's
	// duration ended may have succeeded without loadgen counting it.
	if res.SteadyEvents, err = countEvents(ctx, r.h.SourceURL, "steady"); err != nil {
		return err
	}
	r.cfg.Progress("steady workload written", "events", res.SteadyEvents, "events_per_second", res.Steady.EventsPerSecond())
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := probe.WaitCount(wctx, int(res.SteadyEvents)); err != nil {
		return err
	}
	after, err := r.capture.Metrics(ctx)
	if err != nil {
		return err
	}
	hist := histogramDelta(histogramBuckets(before, metricPublishLatency), histogramBuckets(after, metricPublishLatency))
	res.AckHistP50, res.HistOK = histogramQuantile(hist, 0.5)
	res.AckHistP99, _ = histogramQuantile(hist, 0.99)
	src := histogramDelta(histogramBuckets(before, metricSourceDelay), histogramBuckets(after, metricSourceDelay))
	res.SourceDelayP50, res.SourceOK = histogramQuantile(src, 0.5)
	res.SourceDelayP99, _ = histogramQuantile(src, 0.99)
	res.AckP50First, res.AckP50Last = probe.Trend(res.SteadyStart, res.SteadyEnd)
	res.StoredLatency, res.DeliveredLatency, res.ProbeBad = probe.Stop()
	slices.Sort(res.StoredLatency)
	slices.Sort(res.DeliveredLatency)
	if _, err := waitCounter(wctx, r.archiver, metricArchived, float64(res.Load.Events+res.SteadyEvents)); err != nil {
		return err
	}
	res.RPO, res.RPOUncovered, err = MeasureRPO(ctx, r.store, res.SteadyStart, res.SteadyEnd)
	slices.Sort(res.RPO)
	if err == nil && len(res.RPO) == 0 {
		err = fmt.Errorf("no archived events committed during the steady workload")
	}
	return err
}

func (r *runner) peakRSS(context.Context) error {
	var err error
	if r.res.RSSCapture, err = testkit.PeakRSS(r.capture.PID()); err != nil {
		return err
	}
	if r.res.RSSArchiver, err = testkit.PeakRSS(r.archiver.PID()); err != nil {
		return err
	}
	if r.h.NATSNode != nil {
		r.res.RSSNATS, err = testkit.PeakRSS(r.h.NATSNode.PID())
	}
	return err
}
