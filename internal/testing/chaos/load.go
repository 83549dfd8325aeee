package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/tidemark/tidemark/internal/testing/loadgen"
)

// Load is a workload running in the background.
type Load struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	stats  loadgen.Stats
	err    error
}

// DefaultRate is the workload's events per second: enough concurrency to
// interleave commits, little enough for a 2-core machine running the rig.
const DefaultRate = 800

// StartLoad writes an EventCore workload (4 writers, 500 streams, seeded)
// for d at rate events per second (DefaultRate when 0).
func (e *Env) StartLoad(d time.Duration, rate float64) *Load {
	if rate == 0 {
		rate = DefaultRate
	}
	ctx, cancel := context.WithCancel(e.Ctx)
	l := &Load{cancel: cancel, done: make(chan struct{})}
	cfg := loadgen.Config{Writers: 4, Rate: rate, Duration: d, Streams: 500,
		Seed: e.Seed*1000 + uint64(len(e.loads)), StreamPrefix: "chaos"}
	e.loads = append(e.loads, l)
	go func() {
		defer close(l.done)
		l.stats, l.err = loadgen.Run(ctx, e.H.SourceURL, cfg)
	}()
	return l
}

// Wait waits for the workload to end and returns what it committed; the
// error is the workload's (e.g. the source went away mid-run).
func (l *Load) Wait() (loadgen.Stats, error) {
	<-l.done
	return l.stats, l.err
}

// Stop ends the workload early and waits for it.
func (l *Load) Stop() {
	l.once.Do(l.cancel)
	<-l.done
}

// RunLoadProgram runs the loadgen program (built like the product, without
// the race detector that slows this test process's own writers several
// times) for d at rate events per second with writers connections, and
// returns its summary. Scenarios that must reach the bench rate use it:
// four race-built writers in this process top out near 1,500 events/s.
// streams spreads the events (the bench's steady workload uses 10,000:
// sixteen writers on a few hundred streams mostly retry version
// conflicts).
func (e *Env) RunLoadProgram(d time.Duration, rate float64, writers, streams int) (LoadSummary, error) {
	var s LoadSummary
	res, err := e.H.RunProgram(e.Ctx, "loadgen", "loadgen", nil, "--pg", e.H.SourceURL,
		"--duration", d.String(), "--rate", fmt.Sprint(rate), "--writers", fmt.Sprint(writers),
		"--streams", fmt.Sprint(streams), "--seed", fmt.Sprint(e.Seed*1000+uint64(len(e.loads))), "--stream-prefix", "chaos", "--json")
	if err != nil {
		return s, err
	}
	if res.ExitCode != 0 {
		return s, fmt.Errorf("loadgen exited %d (see %s)", res.ExitCode, res.LogPath)
	}
	if err := json.Unmarshal(res.Stdout, &s); err != nil {
		return s, fmt.Errorf("loadgen summary %q: %w", res.Stdout, err)
	}
	return s, nil
}

// LoadSummary is what `loadgen --json` prints.
type LoadSummary struct {
	Events          int64   `json:"events"`
	Transactions    int64   `json:"transactions"`
	DurationSeconds float64 `json:"duration_seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
}
