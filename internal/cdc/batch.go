package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/tidemark/tidemark/internal/event"
)

// batchSender publishes through JetStream fast-ingest batches (nats-server
// 2.14 and later, a stream with allow_batched): each message is stored as
// it arrives, and the server acknowledges every few hundred messages with
// one flow ack instead of one PubAck per message. That halves nats-server's
// and capture's CPU per event (docs/benchmarks.md). It gives the publisher
// the same per-message futures the direct path gives, resolved by the flow
// acks, so ordering, the window and retries are unchanged.
//
// A fast batch cannot start with a message the stream already holds (the
// server answers it as a plain duplicate and ends the batch, and the
// client waits out its ack timeout), so re-sends never go through it: the
// publisher sends them on the direct path, where the stream deduplicates
// them by Nats-Msg-Id (see publisher.send).
//
// Used from the publisher's goroutine only, like jetstreamext.FastPublisher.
type batchSender struct {
	js  jetstream.JetStream
	log *slog.Logger
	// newBatch starts a batch (a FastPublisher); replaced in tests.
	newBatch func() (jetstreamext.FastPublisher, error)

	fp      jetstreamext.FastPublisher
	open    []*batchFuture // sent in the current batch and not yet acknowledged, in batch order
	lastAdd time.Time

	mu     sync.Mutex
	broken error // set by the batch's error handler (another goroutine)
}

// batchFuture is one message's outcome in a batch.
type batchFuture struct {
	msg *nats.Msg
	seq uint64
	ok  chan *jetstream.PubAck
	err chan error
}

func (f *batchFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *batchFuture) Err() <-chan error            { return f.err }
func (f *batchFuture) Msg() *nats.Msg               { return f.msg }

// batchFlow and batchFlowAcks size a batch's flow control: the server
// acknowledges every batchFlow messages (500 is its ceiling) and the
// publisher runs at most batchFlowAcks acknowledgements ahead. The
// client's defaults (100 and 2) let 200 messages travel and then wait a
// round trip: capture drained at 0.52 of pg_recvlogical's rate with them
// and at 0.78 with these (docs/benchmarks.md). The publisher's own window
// (--max-pending, 4096) still bounds what is unacknowledged.
const (
	batchFlow     = 500
	batchFlowAcks = 8
)

func newBatchSender(js jetstream.JetStream, ackTimeout time.Duration, log *slog.Logger) *batchSender {
	b := &batchSender{js: js, log: log}
	b.newBatch = func() (jetstreamext.FastPublisher, error) {
		return jetstreamext.NewFastPublisher(js,
			jetstreamext.FastPublishFlowControl{AckTimeout: ackTimeout, Flow: batchFlow, MaxOutstandingAcks: batchFlowAcks},
			jetstreamext.WithFastPublisherErrorHandler(b.onError))
	}
	return b
}

// onError records what the server reported about the batch (a gap, a
// refused message). The batch's unacknowledged messages are then
// uncertain: the next call fails them, and the publisher re-sends them.
func (b *batchSender) onError(err error) {
	b.mu.Lock()
	if b.broken == nil {
		b.broken = err
	}
	b.mu.Unlock()
}

func (b *batchSender) takeBroken() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.broken
	b.broken = nil
	return err
}

// PublishMsgAsync adds msg to the open batch, starting one if needed.
func (b *batchSender) PublishMsgAsync(msg *nats.Msg, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if err := b.takeBroken(); err != nil {
		b.abandon(fmt.Errorf("fast batch: %w", err))
	}
	if b.fp == nil {
		fp, err := b.newBatch()
		if err != nil {
			return nil, err
		}
		b.fp = fp
	}
	f := &batchFuture{msg: msg, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	ack, err := b.fp.AddMsg(msg)
	b.lastAdd = time.Now()
	if err != nil {
		// Stored or not is unknown: fail it with the rest of the batch.
		b.open = append(b.open, f)
		b.abandon(fmt.Errorf("fast batch: %w", err))
		return f, nil
	}
	f.seq = ack.BatchSequence
	b.open = append(b.open, f)
	b.ackUpTo(ack.AckSequence)
	return f, nil
}

// ackUpTo resolves the futures of messages the server has stored.
func (b *batchSender) ackUpTo(seq uint64) {
	n := 0
	for n < len(b.open) && b.open[n].seq != 0 && b.open[n].seq <= seq {
		b.open[n].ok <- &jetstream.PubAck{}
		n++
	}
	if n > 0 {
		b.open = append(b.open[:0], b.open[n:]...)
	}
}

// abandon fails every unacknowledged message of the open batch with err
// and drops the batch; the next message starts a new one.
func (b *batchSender) abandon(err error) {
	for _, f := range b.open {
		f.err <- err
	}
	b.open = b.open[:0]
	b.fp = nil
}

// Unsettled reports whether messages of the open batch still wait for
// their acknowledgement, and since when nothing was added.
func (b *batchSender) Unsettled() (bool, time.Time) { return len(b.open) > 0, b.lastAdd }

// Settle ends the open batch, which makes the server acknowledge all of
// it: the publisher calls it when it needs the acknowledgements of the
// batch's tail (the source went quiet, the window is full, shutdown).
func (b *batchSender) Settle(ctx context.Context) {
	if b.fp == nil {
		return
	}
	if err := b.takeBroken(); err != nil {
		b.abandon(fmt.Errorf("fast batch: %w", err))
		return
	}
	if len(b.open) == 0 {
		return
	}
	_, err := b.fp.Close(ctx)
	if errors.Is(err, jetstreamext.ErrBatchClosed) {
		err = errors.New("the server ended the batch")
	}
	if err != nil {
		b.log.Debug("fast batch not acknowledged at its end; its unacknowledged messages are re-sent", "err", err)
		b.abandon(fmt.Errorf("fast batch end: %w", err))
		return
	}
	b.ackUpTo(^uint64(0))
	b.fp = nil
}

// batchServerMinor is the first nats-server 2.x minor version with
// fast-ingest batches.
const batchServerMinor = 14

// batchPublishing switches pub to fast-ingest batches when capture is
// configured for them and the server and stream allow them; otherwise
// pub keeps publishing message by message, and capture says why once.
func (c *Capture) batchPublishing(ctx context.Context, pub *publisher) error {
	if c.cfg.PublishMode != PublishBatch {
		return nil
	}
	if why := c.batchRefusal(ctx); why != "" {
		if !c.batchWarned {
			c.batchWarned = true
			c.log.Warn("publishing message by message: "+why, "publish_mode", "single")
		}
		return nil
	}
	until, err := c.lastStored(ctx)
	if err != nil {
		return fmt.Errorf("read the stream's last messages: %w", err)
	}
	pub.useBatches(newBatchSender(c.js, c.cfg.PublishTimeout, c.log), c.js, until)
	c.log.Debug("publishing in fast-ingest batches", "direct_until", until.String())
	return nil
}

// batchRefusal says why batches cannot be used ("" if they can).
func (c *Capture) batchRefusal(ctx context.Context) string {
	v := c.nc.ConnectedServerVersion()
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil || major < 2 || major == 2 && minor < batchServerMinor {
		return fmt.Sprintf("nats-server %s has no fast-ingest batches (2.%d and later have)", v, batchServerMinor)
	}
	st, err := c.js.Stream(ctx, c.cfg.Stream)
	if err != nil {
		return fmt.Sprintf("stream %s: %v", c.cfg.Stream, err)
	}
	if !st.CachedInfo().Config.AllowBatchPublish {
		return fmt.Sprintf("stream %s does not allow batches (allow_batched); capture sets it when it may update the stream", c.cfg.Stream)
	}
	return ""
}

// lastStoredScan is how many of the stream's last messages lastStored
// reads: enough to see past a few re-sends stored out of order.
const lastStoredScan = 16

// lastStored returns the highest chain position among the stream's last
// messages: items up to it may be in the stream already, so they are
// published on the direct path, where a duplicate is harmless.
func (c *Capture) lastStored(ctx context.Context) (event.Position, error) {
	return c.highestPosition(ctx, lastStoredScan)
}
