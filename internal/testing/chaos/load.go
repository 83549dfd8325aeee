package chaos

import (
	"context"
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
