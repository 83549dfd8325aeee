package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
)

// errPublishExhausted means one message failed PublishRetries times; the
// caller rewinds to the slot.
var errPublishExhausted = errors.New("publish retries exhausted")

// mark is attached to the last message of a chain item: once it and every
// earlier message are acknowledged, the item's position is handled.
type mark struct {
	pos        event.Position
	srcTime    time.Time // commit time, or the heartbeat's source time
	events     int       // event messages in the item (0 for a heartbeat)
	heartbeat  bool
	commitTime time.Time // zero for heartbeats
}

// asyncPublisher is the one method of jetstream.JetStream the publisher
// uses; tests substitute a fake.
type asyncPublisher interface {
	// PublishMsgAsync sends msg without waiting for JetStream and returns a
	// future for its acknowledgement. An error means msg was not sent (for
	// example jetstream.ErrTooManyStalledMsgs, or nats.ErrReconnectBufExceeded
	// while NATS is away). The future's Ok channel delivers the PubAck
	// (Duplicate when the stream already held the Nats-Msg-Id); its Err
	// channel delivers jetstream.ErrAsyncPublishTimeout when no
	// acknowledgement came within the publish timeout, or the server's error.
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

var _ asyncPublisher = (jetstream.JetStream)(nil)

// clock is the publisher's time: time.Now and time.After in production,
// a fake in tests.
type clock struct {
	now   func() time.Time
	after func(d time.Duration) <-chan time.Time
}

var wallClock = clock{now: time.Now, after: time.After}

// inflight is one message published and not yet acknowledged in order.
type inflight struct {
	msg      *nats.Msg
	pos      event.Position           // of the chain item the message belongs to
	ok       <-chan *jetstream.PubAck // nil while a re-send is scheduled
	errc     <-chan error
	sent     time.Time
	attempts int
	retryAt  time.Time // when ok is nil: when to re-send
	mark     *mark
	event    bool
}

// publisher publishes messages asynchronously with a bounded window and
// tracks acknowledgements in publish order. It is used from one goroutine.
type publisher struct {
	js         asyncPublisher
	maxPayload func() int64 // the server's max_payload, 0 if unknown
	clock      clock
	window     int
	retries    int
	stall      time.Duration
	tickEach   time.Duration
	log        *slog.Logger
	// tick runs at least every tickEach while the publisher waits (the
	// replication loop sends standby status updates from it).
	tick func() error

	// batch, when set, is js: new messages go into fast-ingest batches.
	// direct then carries what the stream may already hold — re-sends,
	// and items at or below directUntil (the stream's last item when the
	// session started) — because a batch must not start with a duplicate.
	batch       *batchSender
	direct      asyncPublisher
	directUntil event.Position
	item        event.Position // of the messages being published

	queue   []*inflight
	head    int
	acked   event.Position
	ackedAt time.Time // source time of the acked item
	hasAck  bool
	stalled bool
}

// newPublisher returns a publisher sending through js; maxPayload reports
// the largest message the NATS server accepts (nats.Conn.MaxPayload).
func newPublisher(js asyncPublisher, maxPayload func() int64, cfg Config, tick func() error) *publisher {
	metricStalled.Set(0) // a new session starts unstalled; the old one's state is gone
	return &publisher{
		js: js, maxPayload: maxPayload, clock: wallClock,
		window: cfg.MaxPending, retries: cfg.PublishRetries, stall: cfg.StallTimeout,
		tickEach: cfg.StatusInterval, log: cfg.Logger, tick: tick,
	}
}

// useBatches makes the publisher send new messages through b, and
// re-sends and the items up to directUntil through direct.
func (p *publisher) useBatches(b *batchSender, direct asyncPublisher, directUntil event.Position) {
	p.batch, p.js, p.direct, p.directUntil = b, b, direct, directUntil
}

// beginItem says which chain item the next messages belong to.
func (p *publisher) beginItem(pos event.Position) { p.item = pos }

// Pending returns the number of unacknowledged messages.
func (p *publisher) Pending() int { return len(p.queue) - p.head }

// Acked returns the position of the last item acknowledged together with
// every earlier message, and whether there is one.
func (p *publisher) Acked() (event.Position, bool) { return p.acked, p.hasAck }

// Publish sends msg once the window has room; m marks the end of an item.
func (p *publisher) Publish(ctx context.Context, msg *nats.Msg, m *mark, isEvent bool) error {
	for p.Pending() >= p.window {
		if err := p.waitHead(ctx); err != nil {
			return err
		}
	}
	if limit := p.maxPayload(); limit > 0 && int64(msgSize(msg)) > limit {
		return fatal(fmt.Errorf("message %s (%s) is %d bytes, NATS accepts at most %d: %w",
			msg.Header.Get(nats.MsgIdHdr), msg.Subject, msgSize(msg), limit, nats.ErrMaxPayload),
			"lower --external-value-bytes, or raise max_payload in the NATS server configuration; capture cannot skip an event")
	}
	e := &inflight{msg: msg, mark: m, event: isEvent, pos: p.item}
	p.send(e)
	p.queue = append(p.queue, e)
	return nil
}

// msgSize approximates a message's size on the wire: body plus headers.
func msgSize(m *nats.Msg) int {
	n := len(m.Data) + len("NATS/1.0\r\n\r\n")
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// send publishes e.msg. A synchronous failure (NATS away and its
// reconnect buffer full, too many messages pending) is delivered on e.errc
// like an asynchronous one, so it is retried, counted towards
// PublishRetries and raises the stall gauge the same way.
func (p *publisher) send(e *inflight) {
	js := p.js
	if p.direct != nil && (e.attempts > 0 || e.pos <= p.directUntil) {
		js = p.direct
	}
	e.attempts++
	e.sent = p.clock.now()
	fut, err := js.PublishMsgAsync(e.msg)
	if err != nil {
		errc := make(chan error, 1)
		errc <- err
		e.ok, e.errc = make(chan *jetstream.PubAck), errc
		return
	}
	e.ok, e.errc = fut.Ok(), fut.Err()
}

func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt-1, 6)
	return min(d, 5*time.Second)
}

// batchSettleAfter is how long the source stays quiet before the open
// batch is ended to have its tail acknowledged.
const batchSettleAfter = 5 * time.Millisecond

// settleDue returns when the open batch should be ended (zero if there
// is none waiting).
func (p *publisher) settleDue() time.Time {
	if p.batch == nil {
		return time.Time{}
	}
	open, last := p.batch.Unsettled()
	if !open {
		return time.Time{}
	}
	return last.Add(batchSettleAfter)
}

// SettleIdle ends the open batch once the source has been quiet for
// batchSettleAfter, so that the batch's last messages are acknowledged
// (and the slot can be confirmed) without waiting for more traffic.
func (p *publisher) SettleIdle(ctx context.Context) {
	if due := p.settleDue(); !due.IsZero() && !p.clock.now().Before(due) {
		p.batch.Settle(ctx)
	}
}

// Poll resolves acknowledged messages at the head without blocking.
func (p *publisher) Poll() error {
	for p.Pending() > 0 {
		done, err := p.resolveHead()
		if err != nil {
			return err
		}
		if !done {
			return nil
		}
	}
	return nil
}

// waitHead blocks until the oldest message is resolved (acknowledged or
// scheduled for retry), running tick meanwhile.
func (p *publisher) waitHead(ctx context.Context) error {
	tick := p.clock.after(p.tickEach)
	for {
		done, err := p.resolveHead()
		if err != nil || done {
			return err
		}
		if p.batch != nil {
			// The head may be in the open batch, whose tail the server
			// acknowledges only when more arrives or the batch ends.
			if open, _ := p.batch.Unsettled(); open {
				p.batch.Settle(ctx)
				continue
			}
		}
		e := p.queue[p.head]
		var wait <-chan time.Time
		if e.ok == nil {
			wait = p.clock.after(e.retryAt.Sub(p.clock.now()))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.ok:
			p.ackHead(e)
			return nil
		case err := <-e.errc:
			return p.failHead(e, err)
		case <-wait:
		case <-tick:
			tick = p.clock.after(p.tickEach)
			p.checkStall()
			if err := p.tick(); err != nil {
				return err
			}
		}
	}
}

// resolveHead handles the oldest message if it has an outcome; it reports
// whether the head was acknowledged and removed.
func (p *publisher) resolveHead() (bool, error) {
	e := p.queue[p.head]
	if e.ok == nil {
		if p.clock.now().Before(e.retryAt) {
			p.checkStall()
			return false, nil
		}
		p.send(e)
		p.resendFailed()
		return false, nil
	}
	select {
	case <-e.ok:
		p.ackHead(e)
		return true, nil
	case err := <-e.errc:
		return false, p.failHead(e, err)
	default:
		p.checkStall()
		return false, nil
	}
}

// failHead records a failed publish of the head and schedules its re-send.
func (p *publisher) failHead(e *inflight, err error) error {
	metricPublishErrors.Inc()
	p.setStalled(true)
	if e.attempts >= p.retries {
		return fmt.Errorf("publish %s after %d attempts: %w (%w)", e.msg.Subject, e.attempts, errPublishExhausted, err)
	}
	args := []any{"subject", e.msg.Subject, "msg_id", e.msg.Header.Get(nats.MsgIdHdr), "attempt", e.attempts, "err", err}
	if hint := limitHint(err); hint != "" {
		args = append(args, "hint", hint)
	}
	p.log.Warn("publish not acknowledged, retrying with the same message id", args...)
	e.ok, e.errc = nil, nil
	e.retryAt = p.clock.now().Add(backoff(e.attempts))
	return nil
}

// resendFailed re-sends every later message whose publish already failed,
// so a burst of timeouts is retried together rather than one by one.
func (p *publisher) resendFailed() {
	for _, e := range p.queue[p.head+1:] {
		if e.ok == nil {
			p.send(e)
			continue
		}
		select {
		case <-e.errc:
			metricPublishErrors.Inc()
			p.send(e)
		default:
		}
	}
}

func (p *publisher) ackHead(e *inflight) {
	p.queue[p.head] = nil
	p.head++
	if p.head > 1024 && p.head*2 > len(p.queue) {
		n := copy(p.queue, p.queue[p.head:])
		clear(p.queue[n:])
		p.queue = p.queue[:n]
		p.head = 0
	}
	p.setStalled(false)
	if e.event {
		metricEventsPublished.Inc()
		metricBytesPublished.Add(float64(len(e.msg.Data)))
	}
	if m := e.mark; m != nil {
		p.acked, p.ackedAt, p.hasAck = m.pos, m.srcTime, true
		metricLag.Set(p.clock.now().Sub(m.srcTime).Seconds())
		if m.heartbeat {
			metricHeartbeats.Inc()
		} else {
			metricLastCommit.Set(float64(m.commitTime.UnixMicro()) / 1e6)
			metricPublishLatency.Observe(p.clock.now().Sub(m.commitTime).Seconds())
		}
	}
}

func (p *publisher) checkStall() {
	if p.Pending() == 0 {
		return
	}
	if e := p.queue[p.head]; p.clock.now().Sub(e.sent) > p.stall {
		p.setStalled(true)
	}
}

func (p *publisher) setStalled(v bool) {
	if v == p.stalled {
		return
	}
	p.stalled = v
	if v {
		metricStalled.Set(1)
		e := p.queue[p.head]
		p.log.Warn("publishing stalled", "pending", p.Pending(), "oldest_subject", e.msg.Subject,
			"oldest_age", p.clock.now().Sub(e.sent).Round(time.Millisecond).String())
		return
	}
	metricStalled.Set(0)
	p.log.Info("publishing resumed")
}

// Drain waits until every message is acknowledged or ctx ends.
func (p *publisher) Drain(ctx context.Context) error {
	for p.Pending() > 0 {
		if err := p.waitHead(ctx); err != nil {
			return err
		}
	}
	return nil
}
