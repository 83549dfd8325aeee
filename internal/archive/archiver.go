package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/segment"
)

// Archiver moves the feed from JetStream into the archive. Several may run
// against one stream and bucket: the one holding the catalog lease writes,
// the others wait as standbys.
type Archiver struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	meta *meta
	puts *putRate

	mu     sync.Mutex
	status Status
	values jetstream.ObjectStore // external values (feed.ValuesBucket), opened on first use
}

// Status is a snapshot of what an Archiver is doing.
type Status struct {
	// Holder is this archiver's lease holder id.
	Holder string
	// Leader is true while this archiver holds the lease and writes.
	Leader bool
	// Epoch is the lease epoch while leading.
	Epoch uint64
	// Watermark is the durable watermark (of the last catalog entry).
	Watermark catalog.Watermark
	// CatalogSeq is the sequence number of the last catalog entry.
	CatalogSeq uint64
	// Accepted is the chain position accepted in memory (>= Watermark.LSN).
	Accepted event.Position
	// LastSegment is the key of the last segment this archiver archived.
	LastSegment string
	// LastSegmentAt is when it was archived.
	LastSegmentAt time.Time
	// LastArchivedCommitTime is the latest commit time archived so far.
	LastArchivedCommitTime time.Time
	// OpenSegmentBytes is the raw size of the open segments.
	OpenSegmentBytes int64
	// OpenSegmentAge is how long the open segments have been open.
	OpenSegmentAge time.Duration
	// BufferedEvents counts events waiting in the reorder buffer.
	BufferedEvents int
	// Hole is true while the chain has a hole older than the grace period.
	Hole bool
	// HoleMissing is the position the chain waits for while Hole is true.
	HoleMissing event.Position
	// ConsumerPending and ConsumerAckPending come from the consumer's info.
	ConsumerPending, ConsumerAckPending uint64
	// LastError is the last error that ended a term or failed a lease attempt.
	LastError string
	// StoreOK is false when the last lease operation could not reach the store.
	StoreOK bool
}

// New validates cfg and returns an Archiver; Run starts it.
func New(cfg Config, deps Deps) (*Archiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("archiver config: %w", err)
	}
	if deps.JetStream == nil || deps.Store == nil {
		return nil, errors.New("archiver: JetStream and Store are required")
	}
	if deps.Keyring != nil && deps.Keyring.ActiveID() == "" {
		return nil, errors.New("archiver: encryption configured but the keyring has no key")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &Archiver{cfg: cfg, deps: deps, log: deps.Logger.With("holder", cfg.Holder),
		meta: newMeta(deps.JetStream, cfg.Stream), puts: newPutRate()}
	a.status = Status{Holder: cfg.Holder, StoreOK: true}
	return a, nil
}

// Config returns the validated configuration.
func (a *Archiver) Config() Config { return a.cfg }

// Status returns a snapshot of the archiver's state; safe for concurrent use.
func (a *Archiver) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

// Ready reports why the archiver cannot serve, or nil: NATS must be
// connected, the store reachable, and the archiver leading or a standby
// whose lease attempts work.
func (a *Archiver) Ready() error {
	if nc := a.deps.JetStream.Conn(); nc == nil || !nc.IsConnected() {
		return errors.New("nats not connected")
	}
	st := a.Status()
	if !st.StoreOK {
		return fmt.Errorf("store %s unreachable: %s", a.deps.Store, st.LastError)
	}
	return nil
}

// Run leads or stands by until ctx is cancelled (it then returns nil) or
// the archive is found in a state it must not write to
// (ErrConflictingObject, ErrUnarchivable).
func (a *Archiver) Run(ctx context.Context) error {
	a.log.Info("archiver starting", "store", a.deps.Store.String(), "stream", a.cfg.Stream,
		"consumer", a.cfg.Consumer, "encrypted", a.deps.Keyring != nil)
	for {
		lease, err := a.acquire(ctx)
		if err != nil {
			return nil // ctx cancelled
		}
		err = a.lead(ctx, lease)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrConflictingObject), errors.Is(err, ErrUnarchivable):
			return err
		case err != nil:
			a.log.Warn("stepping down to standby", "err", err)
			a.setStatus(func(st *Status) { st.LastError = err.Error() })
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(a.cfg.StandbyRetry):
		}
	}
}

// acquire waits as a standby until it wins the lease or ctx ends.
func (a *Archiver) acquire(ctx context.Context) (*catalog.Lease, error) {
	logged := false
	for {
		lease, err := catalog.AcquireLease(ctx, a.deps.Store, a.cfg.Holder, a.cfg.LeaseTTL)
		if err == nil {
			a.puts.add(time.Now(), 1)
			return lease, nil
		}
		var held *catalog.ErrLeaseHeld
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.As(err, &held):
			a.setStatus(func(st *Status) { st.StoreOK = true })
			if !logged {
				a.log.Info("standing by", "leader", held.Holder, "lease_expires", held.Expires)
				logged = true
			}
		default:
			uploadErrorsTotal.WithLabelValues("lease").Inc()
			a.log.Warn("acquire lease", "err", err)
			a.setStatus(func(st *Status) { st.StoreOK, st.LastError = false, err.Error() })
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(a.cfg.StandbyRetry):
		}
	}
}

// lead is one term as the writer. A stop (ctx cancelled) lets the work in
// hand finish: the term's own context, which every upload and catalog write
// uses, is not cancelled by the stop but by a lost lease, the end of the
// term, or stopGrace after the stop. So a graceful stop never cuts a flush
// in half (which would leave an unlisted object and redeliveries); the
// final flush then makes the rest durable.
func (a *Archiver) lead(ctx context.Context, lease *catalog.Lease) error {
	sctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	grace := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(a.stopGrace(), func() { cancel(fmt.Errorf("stopping: %w", context.Cause(ctx))) })
		context.AfterFunc(sctx, func() { t.Stop() })
	})
	defer grace()
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		a.keepLease(sctx, cancel, lease)
	}()
	isLeader.Set(1)
	a.setStatus(func(st *Status) { st.Leader, st.Epoch, st.StoreOK = true, lease.Epoch(), true })
	defer func() {
		isLeader.Set(0)
		a.setStatus(func(st *Status) { st.Leader = false })
	}()

	s, err := a.start(sctx, lease)
	if err == nil {
		stopMerging := a.startMerger(sctx, ctx, cancel, s)
		err = s.run(sctx, ctx.Done())
		stopMerging()
		if ctx.Err() != nil && err == nil {
			a.finish(s)
		}
		s.giveBack()
	}
	cancel(err)
	<-kept
	if !errors.Is(err, ErrLeaseLost) && !errors.Is(context.Cause(sctx), ErrLeaseLost) {
		// Hand the lease on at once rather than after it expires.
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		if rerr := lease.Release(rctx); rerr != nil {
			a.log.Warn("release lease", "err", rerr)
		}
		rcancel()
	}
	if ctx.Err() != nil {
		a.log.Info("archiver stopped")
		return nil
	}
	return err
}

// stopGrace is how long a stop waits for the work in hand and the final
// flush: half the lease, so a standby never waits longer than it would for
// a dead writer.
func (a *Archiver) stopGrace() time.Duration { return a.cfg.LeaseTTL / 2 }

// finish makes what the session holds durable before a graceful stop,
// within stopGrace.
func (a *Archiver) finish(s *session) {
	fctx, cancel := context.WithTimeout(context.Background(), a.stopGrace())
	defer cancel()
	if err := s.flush(fctx, "shutdown"); err != nil {
		a.log.Warn("final flush", "err", err)
	}
}

// keepLease renews the lease every third of its lifetime and cancels the
// term when it is lost or cannot be renewed in time.
func (a *Archiver) keepLease(ctx context.Context, cancel context.CancelCauseFunc, lease *catalog.Lease) {
	t := time.NewTicker(a.cfg.LeaseTTL / 3)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := lease.Renew(ctx)
		switch {
		case err == nil:
			lastOK = time.Now()
			a.puts.add(lastOK, 1)
			a.setStatus(func(st *Status) { st.StoreOK = true })
		case ctx.Err() != nil:
			return
		case errors.Is(err, catalog.ErrFenced):
			cancel(fmt.Errorf("%w: %w", ErrLeaseLost, err))
			return
		default:
			uploadErrorsTotal.WithLabelValues("lease").Inc()
			a.setStatus(func(st *Status) { st.StoreOK, st.LastError = false, err.Error() })
			if time.Since(lastOK) >= a.cfg.LeaseTTL*2/3 {
				cancel(fmt.Errorf("%w: renew failing since %s: %w", ErrLeaseLost, lastOK.Format(time.RFC3339), err))
				return
			}
			a.log.Warn("renew lease", "err", err)
		}
	}
}

// hook calls the test hook, if any.
func (a *Archiver) hook(stage string) {
	if a.deps.Hook != nil {
		a.deps.Hook(stage)
	}
}

func (a *Archiver) setStatus(f func(*Status)) {
	a.mu.Lock()
	f(&a.status)
	a.mu.Unlock()
}

// keyID returns the key id new segments are encrypted to, or "".
func (a *Archiver) keyID() string {
	if a.deps.Keyring == nil {
		return ""
	}
	return a.deps.Keyring.ActiveID()
}

func (a *Archiver) writerOptions() segment.WriterOptions {
	level := a.cfg.CompressionLevel
	if level == 0 && a.cfg.Compression == segment.Zstd && a.cfg.merging() {
		level = liveZstdLevel
	}
	return segment.WriterOptions{Compression: a.cfg.Compression, Level: level, Keyring: a.deps.Keyring}
}

// liveZstdLevel is the zstd level of the segments flushes write while
// merging is on. Level-1 merges rewrite them within minutes (with the
// default level, then the merged preset above), so what they would save
// in bytes lasts minutes, while compressing them is a quarter of the
// archiver's CPU on the flush path (docs/benchmarks.md). With merging off
// they are kept as written and get the default level.
const liveZstdLevel = 1

var isLeader = promauto.NewGauge(prometheus.GaugeOpts{
	Name: "tidemark_archiver_is_leader",
	Help: "1 while this archiver holds the lease and writes, else 0.",
})
