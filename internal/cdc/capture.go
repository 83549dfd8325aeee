package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/redact"
)

// Capture streams one source's captured tables into JetStream. Create it
// with New and call Run once.
type Capture struct {
	cfg Config
	log *slog.Logger

	pool     *pgxpool.Pool
	nc       *nats.Conn
	js       jetstream.JetStream
	kv       jetstream.KeyValue
	values   jetstream.ObjectStore // external values (feed.ValuesBucket)
	subjects feed.Subjects
	sysid    string
	tables   *tableRegistry
	// batchWarned is set once capture said why it cannot publish in batches.
	batchWarned bool
	// source is the server last identified and checked (checkSource);
	// failedOverFrom the one before it when that was another timeline.
	source         *sourceIdentity
	failedOverFrom *sourceIdentity
	sourceDirty    bool // source not yet recorded in META

	watermark   atomic.Uint64 // archive watermark from META
	hasWM       atomic.Bool
	rewindMu    sync.Mutex
	lastRewind  time.Time
	rewind      chan struct{} // a new rewind request
	sourceDown  chan struct{} // the source is shutting down (heartbeat.go)
	heartbeatCh chan struct{} // ask for a heartbeat now
	streaming   atomic.Bool
	readyErr    atomic.Pointer[string]
	natsConn    atomic.Pointer[nats.Conn] // c.nc, for Ready on other goroutines

	// beforeStartReplication, when set (by tests, before Run), runs between
	// META saying "streaming" and START_REPLICATION after the initial snapshot.
	beforeStartReplication func()
}

// New validates cfg (filling defaults) and returns a Capture.
func New(cfg Config) (*Capture, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Capture{
		cfg: cfg, log: cfg.Logger, subjects: feed.Subjects{Prefix: cfg.SubjectPrefix},
		rewind: make(chan struct{}, 1), heartbeatCh: make(chan struct{}, 1), sourceDown: make(chan struct{}, 1),
	}
	c.setNotReady("starting")
	return c, nil
}

// Ready returns nil once replication has started and NATS is connected,
// otherwise why not (for /readyz).
func (c *Capture) Ready() error {
	if p := c.readyErr.Load(); p != nil {
		return errors.New(*p)
	}
	if !c.streaming.Load() {
		return errors.New("replication not started")
	}
	if !natsConnected(c.natsConn.Load()) {
		return errors.New("NATS not connected")
	}
	return nil
}

func (c *Capture) setNotReady(why string) { c.readyErr.Store(&why) }

// Run captures until ctx is cancelled (then it drains in-flight publishes,
// sends a final status update and returns nil) or a fatal error occurs
// (*FatalError, *CheckError). Transient failures of Postgres or NATS are
// retried from the slot's confirmed position.
func (c *Capture) Run(ctx context.Context) error {
	if err := c.start(ctx); err != nil {
		c.close()
		return err
	}
	defer c.close()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.watchWatermark(gctx) })
	g.Go(func() error { return c.watchRewind(gctx) })
	g.Go(func() error { return c.emitHeartbeats(gctx) })
	g.Go(func() error { return c.pollSlot(gctx) })
	g.Go(func() error {
		err := c.replicate(gctx)
		if err == nil {
			err = errStopped
		}
		return err
	})
	err := g.Wait()
	if errors.Is(err, errStopped) || ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// errStopped ends the helper goroutines after a clean shutdown.
var errStopped = errors.New("capture stopped")

// start connects, checks the source and prepares stream, bucket and
// publication.
func (c *Capture) start(ctx context.Context) error {
	c.log.Info("capture starting", "pg", redact.URL(c.cfg.PGURL), "nats", redact.URL(c.cfg.NATSURL),
		"slot", c.cfg.Slot, "publication", c.cfg.Publication, "tables", c.cfg.Tables, "confirm_on", string(c.cfg.ConfirmOn))
	var err error
	if c.pool, err = connectPool(ctx, c.cfg.PGURL); err != nil {
		return fatal(err, "check --pg (or the PG* environment variables) and that the server accepts connections")
	}
	slot, err := readSlot(ctx, c.pool, c.cfg.Slot)
	if err != nil {
		return err
	}
	problems, err := checkSource(ctx, c.pool, c.cfg, !slot.Exists)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return &CheckError{Problems: problems}
	}
	ident, err := identifySource(ctx, c.cfg.PGURL)
	if err != nil {
		return err
	}
	c.sysid = ident.SystemID
	if c.nc, err = connectNATS(c.cfg.NATSURL, c.cfg.NATSCreds); err != nil {
		return err
	}
	c.natsConn.Store(c.nc)
	if mp := c.nc.MaxPayload(); mp > 0 && mp < minPayload {
		return fatal(fmt.Errorf("the NATS server's max_payload is %d bytes; capture needs at least %d", mp, minPayload),
			"raise max_payload in the server configuration (its default, 1MB, is enough)")
	}
	if mp := c.nc.MaxPayload(); mp > 0 && c.cfg.ExternalValueBytes > mp/4 {
		return fatal(fmt.Errorf("--external-value-bytes %d is more than a quarter of the NATS server's max_payload (%d)", c.cfg.ExternalValueBytes, mp),
			fmt.Sprintf("set --external-value-bytes to at most %d", mp/4))
	}
	if c.js, err = jetstream.New(c.nc,
		jetstream.WithPublishAsyncMaxPending(2*c.cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(c.cfg.PublishTimeout)); err != nil {
		return fmt.Errorf("open jetstream: %w", err)
	}
	rep := &SetupReport{}
	if err := c.whileJetStreamStarts(ctx, func() error {
		rep = &SetupReport{}
		if err := checkNATSLimits(ctx, c.js, c.cfg); err != nil {
			return err
		}
		kv, err := setupNATS(ctx, c.js, c.cfg, false, rep)
		if err != nil {
			return err
		}
		if err := checkStreamLimits(ctx, c.js, c.cfg); err != nil {
			return err
		}
		c.kv = kv
		if c.values, err = c.js.ObjectStore(ctx, feed.ValuesBucket(c.cfg.Stream)); err != nil {
			return fmt.Errorf("open object store %s: %w", feed.ValuesBucket(c.cfg.Stream), err)
		}
		return checkSystemID(ctx, kv, c.sysid)
	}); err != nil {
		return err
	}
	if err := c.checkSource(ctx, ident); err != nil {
		return err
	}
	if err := setupPublication(ctx, c.pool, c.cfg, false, rep); err != nil {
		return err
	}
	for _, a := range rep.Actions {
		c.log.Debug("setup applied", "action", a)
	}
	c.tables = &tableRegistry{kv: c.kv}
	return nil
}

// newEmitter returns the emitter publishing through pub.
func (c *Capture) newEmitter(pub *publisher) *emitter {
	return &emitter{subjects: c.subjects, systemID: c.sysid, tables: c.tables, pub: pub, log: c.log,
		values: c.values, stream: c.cfg.Stream, extBytes: c.cfg.ExternalValueBytes, maxPayload: c.nc.MaxPayload}
}

// jetStreamStartWait bounds how long capture waits at start for JetStream
// to answer (a cluster electing its leaders, a server still starting).
const jetStreamStartWait = time.Minute

// whileJetStreamStarts runs f, retrying it while JetStream gives the
// answers of a server or cluster that is still starting, for up to
// jetStreamStartWait. Other errors return at once.
func (c *Capture) whileJetStreamStarts(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(jetStreamStartWait)
	delay := 250 * time.Millisecond
	for {
		err := f()
		if err == nil || !jetStreamStarting(ctx, err) || time.Now().After(deadline) {
			return err
		}
		c.log.Warn("JetStream not ready yet; retrying", "err", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// jetStreamStarting reports whether err is what JetStream answers while
// it starts or elects leaders: no responders, a timeout, or a 503.
func jetStreamStarting(ctx context.Context, err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case ctx.Err() != nil:
		return false
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return true
	case errors.As(err, &apiErr):
		return apiErr.Code == 503
	}
	return false
}

func (c *Capture) close() {
	c.streaming.Store(false)
	if c.nc != nil {
		_ = c.nc.Drain()
	}
	if c.pool != nil {
		c.pool.Close()
	}
}

// confirmable returns the position the slot may be confirmed to: the last
// position whose item and every earlier one JetStream acknowledged, and in
// archive mode also no further than the archive's watermark.
func (c *Capture) confirmable(acked event.Position) event.Position {
	if c.cfg.ConfirmOn == ConfirmJetStream {
		return acked
	}
	if !c.hasWM.Load() {
		return 0
	}
	return min(acked, event.Position(c.watermark.Load()))
}

// watchWatermark follows META's watermark key.
func (c *Capture) watchWatermark(ctx context.Context) error {
	return c.watchKey(ctx, feed.KeyWatermark, func(v []byte, _ bool) {
		var w feed.Watermark
		if err := json.Unmarshal(v, &w); err != nil {
			c.log.Warn("ignoring undecodable watermark in META", "err", err)
			return
		}
		if prev := event.Position(c.watermark.Load()); c.hasWM.Load() && w.LSN < prev {
			c.log.Warn("archive watermark moved backwards; confirming no further than the lower value", "from", prev.String(), "to", w.LSN.String())
		}
		c.watermark.Store(uint64(w.LSN))
		c.hasWM.Store(true)
	}, nil)
}

// watchRewind follows META's rewind key; a request newer than the last one
// handled signals the replication loop. A request already present when
// capture starts is satisfied by the start itself (streaming begins at the
// slot's confirmed position).
func (c *Capture) watchRewind(ctx context.Context) error {
	first := true
	return c.watchKey(ctx, feed.KeyRewind, func(v []byte, initial bool) {
		var r feed.RewindRequest
		if err := json.Unmarshal(v, &r); err != nil {
			c.log.Warn("ignoring undecodable rewind request in META", "err", err)
			return
		}
		c.rewindMu.Lock()
		defer c.rewindMu.Unlock()
		if !r.At.After(c.lastRewind) {
			return
		}
		c.lastRewind = r.At
		if initial && first {
			return
		}
		c.log.Warn("rewind requested by the archiver", "after", r.After.String(), "missing", r.Missing.String())
		select {
		case c.rewind <- struct{}{}:
		default:
		}
	}, func() { first = false })
}

// watchKey calls f with every value of a META key until ctx ends,
// re-establishing the watch after errors. It also reads the key every
// metaPollInterval: after nats-server restarts with the tail of META's
// stream lost, a watch resumes past sequence numbers the stream reuses and
// can miss new values for many seconds.
func (c *Capture) watchKey(ctx context.Context, key string, f func(v []byte, initial bool), initDone func()) error {
	for {
		w, err := c.kv.Watch(ctx, key)
		if err == nil {
			c.follow(ctx, w, key, f, initDone)
			initDone = nil
			_ = w.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			c.log.Warn("watch META key failed, retrying", "key", key, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// metaPollInterval is how often watched META keys are also read directly.
const metaPollInterval = 2 * time.Second

// follow passes a watch's values to f, and the key's current value every
// metaPollInterval once the initial values are through, until the watch
// ends or ctx does.
func (c *Capture) follow(ctx context.Context, w jetstream.KeyWatcher, key string, f func(v []byte, initial bool), initDone func()) {
	poll := time.NewTicker(metaPollInterval)
	defer poll.Stop()
	initial := true
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return
			case e == nil:
				initial = false
				if initDone != nil {
					initDone()
				}
			case e.Operation() == jetstream.KeyValuePut:
				f(e.Value(), initial)
			}
		case <-poll.C:
			if initial {
				continue
			}
			if e, err := c.kv.Get(ctx, key); err == nil {
				f(e.Value(), false)
			}
		}
	}
}

// pollSlot keeps the retained-WAL gauge current.
func (c *Capture) pollSlot(ctx context.Context) error {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		if s, err := readSlot(ctx, c.pool, c.cfg.Slot); err == nil && s.Exists {
			metricRetainedWAL.Set(float64(s.RetainedBytes))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
