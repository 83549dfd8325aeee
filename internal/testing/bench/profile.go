package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/cdc"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// Components Profile can run in-process.
const (
	ComponentCapture  = "capture"
	ComponentArchiver = "archiver"
	ComponentRestore  = "restore"
)

// ProfileConfig describes one profiling run.
type ProfileConfig struct {
	// Dir holds the servers' data and logs; required.
	Dir string
	// Events and Streams size the backlog (200,000 and 10,000).
	Events, Streams int
	// Component is what runs in-process under the profiler: capture (drain
	// of the backlog into JetStream), archiver (drain of the full stream)
	// or restore (of the whole archive).
	Component string
	// CPUProfile receives the CPU profile of the component's run.
	CPUProfile io.Writer
	// HeapProfile, when set, receives a heap profile taken when the live
	// heap peaked during the run (sampled every 50 ms).
	HeapProfile io.Writer
	// Trace, when set, receives a runtime execution trace of the run
	// (go tool trace -pprof=net|sync|syscall|sched turns it into off-CPU
	// profiles: where the component waits).
	Trace io.Writer
	// Progress, when set, receives a line per step.
	Progress func(msg string, args ...any)
}

// ProfileResult is how long the profiled component took.
type ProfileResult struct {
	Events   int64
	Duration time.Duration
	// PeakHeap is the largest live heap seen (bytes), PeakRSS this
	// process's peak resident set (which includes the rig's in-process
	// parts and earlier steps).
	PeakHeap, PeakRSS int64
	// Metrics are the component's tidemark_* metrics at the end: counters
	// and gauges by name, histograms as name_sum and name_count.
	Metrics map[string]float64
	// CPU is what each party used while the component ran ("bench" is
	// the component, in-process): on a machine of few cores the
	// component's speed is often bounded by the sum, not by its own share.
	CPU CPUUse
}

// Profile builds the rig and backlog as Run does, prepares the
// component's input with the real programs, then runs the component
// in-process (its internal package, default settings) under the CPU
// profiler until it has handled the backlog. NATS runs as its own process,
// so the profile holds the component and this process's polling only.
func Profile(ctx context.Context, cfg ProfileConfig) (ProfileResult, error) {
	if cfg.Dir == "" || cfg.CPUProfile == nil {
		return ProfileResult{}, errors.New("bench: ProfileConfig.Dir and CPUProfile are required")
	}
	if cfg.Events <= 0 {
		cfg.Events = 200_000
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string, ...any) {}
	}
	rc, err := Config{Dir: cfg.Dir, Events: cfg.Events, Streams: cfg.Streams, SkipMicro: true, Progress: cfg.Progress}.withDefaults()
	if err != nil {
		return ProfileResult{}, err
	}
	r := &runner{cfg: rc, res: &Results{Config: rc}}
	defer r.close()
	for _, step := range []func(context.Context) error{r.startRig, r.primeCapture, r.loadBacklog} {
		if err := step(ctx); err != nil {
			return ProfileResult{}, err
		}
	}
	n := r.res.Load.Events
	switch cfg.Component {
	case ComponentCapture:
		return profileRun(ctx, cfg, r.parties, n, metricCapturePublished, func(ctx context.Context) error {
			c, err := cdc.New(cdc.Config{PGURL: r.h.SourceURL, NATSURL: r.h.NATSURL, ConfirmOn: cdc.ConfirmJetStream, Logger: discardLogger()})
			if err != nil {
				return err
			}
			return c.Run(ctx)
		})
	case ComponentArchiver, ComponentRestore:
		if err := r.drainCapture(ctx); err != nil {
			return ProfileResult{}, err
		}
	default:
		return ProfileResult{}, fmt.Errorf("bench: unknown component %q (want capture, archiver or restore)", cfg.Component)
	}
	if cfg.Component == ComponentArchiver {
		return profileRun(ctx, cfg, r.parties, n, metricArchived, func(ctx context.Context) error {
			nc, err := nats.Connect(r.h.NATSURL)
			if err != nil {
				return fmt.Errorf("connect nats: %w", err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return fmt.Errorf("open jetstream: %w", err)
			}
			a, err := archive.New(archive.Config{}, archive.Deps{JetStream: js, Store: r.store, Logger: discardLogger()})
			if err != nil {
				return err
			}
			return a.Run(ctx)
		})
	}
	if err := r.drainArchiver(ctx); err != nil {
		return ProfileResult{}, err
	}
	url, err := NewEventcoreDatabase(ctx, r.target.CreateDatabase)
	if err != nil {
		return ProfileResult{}, err
	}
	arc, err := restore.Open(ctx, r.store, nil)
	if err != nil {
		return ProfileResult{}, err
	}
	plan, err := arc.Plan(arc.Window().Watermark, "")
	if err != nil {
		return ProfileResult{}, err
	}
	stop, err := startProfiles(cfg)
	if err != nil {
		return ProfileResult{}, err
	}
	meter := newCPUMeter(r.parties)
	start := time.Now()
	res, err := restore.Restore(ctx, plan, restore.Options{TargetURL: url})
	d := time.Since(start)
	use := meter.stop(cfg.Component, nil)
	peak, perr := stop()
	if err == nil {
		err = perr
	}
	if err != nil {
		return ProfileResult{}, err
	}
	rss, _ := testkit.PeakRSS(selfPID)
	return ProfileResult{Events: res.Events, Duration: d, Metrics: gatherTidemark(), PeakHeap: peak, PeakRSS: rss, CPU: use}, nil
}

// startProfiles starts the CPU profile and, when asked, the execution
// trace and the peak-heap sampler; the returned function stops them and
// returns the peak live heap.
func startProfiles(cfg ProfileConfig) (func() (int64, error), error) {
	runtime.GC()
	if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
		return nil, fmt.Errorf("start cpu profile: %w", err)
	}
	if cfg.Trace != nil {
		if err := trace.Start(cfg.Trace); err != nil {
			pprof.StopCPUProfile()
			return nil, fmt.Errorf("start trace: %w", err)
		}
	}
	hp := startHeapPeak(cfg.HeapProfile != nil)
	return func() (int64, error) {
		peak, snap := hp.stop()
		if cfg.Trace != nil {
			trace.Stop()
		}
		pprof.StopCPUProfile()
		if cfg.HeapProfile != nil {
			if _, err := cfg.HeapProfile.Write(snap); err != nil {
				return peak, fmt.Errorf("write heap profile: %w", err)
			}
		}
		return peak, nil
	}, nil
}

// heapPeak samples the live heap and keeps a heap profile of its peak.
type heapPeak struct {
	done chan struct{}
	out  chan heapSnap
}

type heapSnap struct {
	peak    int64
	profile []byte
}

func startHeapPeak(keepProfile bool) *heapPeak {
	h := &heapPeak{done: make(chan struct{}), out: make(chan heapSnap, 1)}
	go func() {
		var snap heapSnap
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := int64(sample[0].Value.Uint64()); v > snap.peak {
				// A new profile only when the peak grew markedly: writing
				// one costs time.
				if keepProfile && (snap.profile == nil || v > snap.peak+snap.peak/10) {
					var b bytes.Buffer
					if pprof.Lookup("heap").WriteTo(&b, 0) == nil {
						snap.profile = b.Bytes()
					}
				}
				snap.peak = v
			}
			select {
			case <-h.done:
				h.out <- snap
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapPeak) stop() (int64, []byte) {
	close(h.done)
	s := <-h.out
	return s.peak, s.profile
}

// profileRun runs f under the CPU profiler until the in-process counter
// metric reaches n, then cancels it.
func profileRun(ctx context.Context, cfg ProfileConfig, parties func() map[string]party, n int64, metric string, f func(context.Context) error) (ProfileResult, error) {
	cfg.Progress("profiling", "component", cfg.Component, "events", n)
	stop, err := startProfiles(cfg)
	if err != nil {
		return ProfileResult{}, err
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	meter := newCPUMeter(parties)
	start := time.Now()
	go func() { done <- f(cctx) }()
	var runErr error
	var d time.Duration
	for d == 0 && runErr == nil {
		select {
		case err := <-done:
			runErr = fmt.Errorf("%s stopped early: %v", cfg.Component, err)
		case <-time.After(pollInterval):
			if v, _ := gatherCounter(metric); v >= float64(n) {
				d = time.Since(start)
			}
		case <-ctx.Done():
			runErr = ctx.Err()
		}
	}
	use := meter.stop(cfg.Component, nil)
	peak, perr := stop()
	if runErr == nil {
		runErr = perr
	}
	gathered := gatherTidemark()
	cancel()
	if runErr == nil {
		<-done
	}
	rss, _ := testkit.PeakRSS(selfPID)
	return ProfileResult{Events: n, Duration: d, Metrics: gathered, PeakHeap: peak, PeakRSS: rss, CPU: use}, runErr
}

// gatherTidemark returns this process's tidemark_* metrics: counters and
// gauges by name (label sets summed), histograms as name_sum and name_count.
func gatherTidemark() map[string]float64 {
	out := map[string]float64{}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "tidemark_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetHistogram() != nil:
				suffix := ""
				for _, l := range m.GetLabel() {
					suffix += "{" + l.GetName() + "=" + l.GetValue() + "}"
				}
				out[name+"_sum"+suffix] += m.GetHistogram().GetSampleSum()
				out[name+"_count"+suffix] += float64(m.GetHistogram().GetSampleCount())
			case m.GetCounter() != nil:
				out[name] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[name] += m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// gatherCounter reads a counter from this process's default registry.
func gatherCounter(name string) (float64, error) {
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetCounter().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("metric %s not registered", name)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
