package cdc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark/tidemark/internal/event"
)

// fakeJS is an asyncPublisher that does what its func field says.
type fakeJS struct {
	publishMsgAsync func(msg *nats.Msg) (jetstream.PubAckFuture, error)
}

func (f *fakeJS) PublishMsgAsync(msg *nats.Msg, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	return f.publishMsgAsync(msg)
}

// fakeFuture is a jetstream.PubAckFuture the test resolves. Like the real
// one, each channel delivers at most one value and is buffered.
type fakeFuture struct {
	msg *nats.Msg
	ok  chan *jetstream.PubAck
	err chan error
}

func newFakeFuture(msg *nats.Msg) *fakeFuture {
	return &fakeFuture{msg: msg, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
}

func (f *fakeFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *fakeFuture) Err() <-chan error            { return f.err }
func (f *fakeFuture) Msg() *nats.Msg               { return f.msg }

// fakeClock is a clock that moves only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []fakeTimer
	changed chan struct{} // closed and replaced whenever a timer is added
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), changed: make(chan struct{})}
}

func (c *fakeClock) clock() clock { return clock{now: c.Now, after: c.After} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives once the clock is advanced by d.
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), c: ch})
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

// Advance moves the clock forward by d and fires the timers now due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.timers = slices.DeleteFunc(c.timers, func(t fakeTimer) bool {
		if t.at.After(c.now) {
			return false
		}
		t.c <- c.now
		return true
	})
}

// timerIn reports whether a timer is due exactly d from now, and a
// channel closed when the next timer is added.
func (c *fakeClock) timerIn(d time.Duration) (bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at := c.now.Add(d)
	return slices.ContainsFunc(c.timers, func(t fakeTimer) bool { return t.at.Equal(at) }), c.changed
}

// hangGuard turns a test that would wait forever (a publisher bug) into a
// failure. Waits in a passing run end as soon as their event happens; no
// assertion depends on this duration.
const hangGuard = 30 * time.Second

// sentMsg is one PublishMsgAsync call as the fake saw it.
type sentMsg struct {
	n     int    // the test's message number
	id    string // Nats-Msg-Id at the time of the call
	data  []byte // a copy of the body at the time of the call
	fut   *fakeFuture
	error error // the synchronous error returned, if any
}

// pubHarness drives a publisher over a fake JetStream and a fake clock.
type pubHarness struct {
	t     *testing.T
	clock *fakeClock
	p     *publisher
	logs  *syncBuffer
	ctx   context.Context
	stop  context.CancelFunc
	ticks chan struct{} // one value per call of the publisher's tick

	events0 float64 // metricEventsPublished when the harness was made

	mu      sync.Mutex
	sends   []sentMsg
	refuse  []error       // errors for the next PublishMsgAsync calls
	sendSig chan struct{} // closed and replaced on every send

	blocked chan error // the result of the Publish or Drain started in the background
}

// pubConfig is the configuration the cases start from.
func pubConfig() Config {
	c := Defaults()
	c.MaxPending = 8
	c.PublishRetries = 3
	c.StallTimeout = 30 * time.Second
	c.StatusInterval = time.Second
	return c
}

func newPubHarness(t *testing.T, cfg Config, maxPayload int64) *pubHarness {
	h := &pubHarness{t: t, clock: newFakeClock(), logs: &syncBuffer{}, ticks: make(chan struct{}, 1000),
		sendSig: make(chan struct{}), events0: testutil.ToFloat64(metricEventsPublished)}
	h.ctx, h.stop = context.WithCancel(context.Background())
	t.Cleanup(h.stop)
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(h.logs, testWriter{t}), nil))
	js := &fakeJS{publishMsgAsync: h.publishMsgAsync}
	h.p = newPublisher(js, func() int64 { return maxPayload }, cfg, func() error {
		h.ticks <- struct{}{}
		return nil
	})
	h.p.clock = h.clock.clock()
	return h
}

// publishMsgAsync records the call and returns a future for the test to
// resolve, or the next error queued by refuse.
func (h *pubHarness) publishMsgAsync(msg *nats.Msg) (jetstream.PubAckFuture, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var n int
	if _, err := fmt.Sscanf(msg.Subject, "test.events.%d", &n); err != nil {
		panic(err)
	}
	s := sentMsg{n: n, id: msg.Header.Get(nats.MsgIdHdr), data: bytes.Clone(msg.Data)}
	if len(h.refuse) > 0 {
		s.error, h.refuse = h.refuse[0], h.refuse[1:]
	} else {
		s.fut = newFakeFuture(msg)
	}
	h.sends = append(h.sends, s)
	close(h.sendSig)
	h.sendSig = make(chan struct{})
	if s.error != nil {
		return nil, s.error
	}
	return s.fut, nil
}

// testMsg is message n: its own subject, msg id and body.
func testMsg(n, size int) *nats.Msg {
	m := nats.NewMsg(fmt.Sprintf("test.events.%d", n))
	m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("sysid-%d-0", n))
	m.Data = bytes.Repeat([]byte{byte('a' + n%26)}, size)
	return m
}

// testMark marks message n as the end of the chain item at position n.
func testMark(n int) *mark {
	t := time.Date(2026, 11, 25, 9, 0, n, 0, time.UTC)
	return &mark{pos: event.Position(n), srcTime: t, commitTime: t, events: 1}
}

// latest returns the last future of message n.
func (h *pubHarness) latest(n int) *fakeFuture {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.sends) - 1; i >= 0; i-- {
		if s := h.sends[i]; s.n == n {
			if s.fut == nil {
				h.t.Fatalf("the last send of message %d was refused; it has no future", n)
			}
			return s.fut
		}
	}
	h.t.Fatalf("message %d was never sent", n)
	return nil
}

func (h *pubHarness) sent() []sentMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sends)
}

// await receives from ch, failing the test if that never happens.
func await[T any](h *pubHarness, what string, ch <-chan T) T {
	h.t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hangGuard):
		h.t.Fatalf("still waiting for %s after %s; log:\n%s", what, hangGuard, h.logs.String())
		var zero T
		return zero
	}
}

// step is one action or check of a case.
type step func(h *pubHarness)

// publish publishes messages, each the end of its own chain item; it must
// not block (the window has room).
func publish(ns ...int) step {
	return func(h *pubHarness) {
		h.t.Helper()
		for _, n := range ns {
			if err := h.p.Publish(h.ctx, testMsg(n, 64), testMark(n), true); err != nil {
				h.t.Fatalf("publish %d: %v", n, err)
			}
		}
	}
}

// publishErr publishes message n (of size bytes) and wants an error that
// is each of want.
func publishErr(n, size int, want ...error) step {
	return func(h *pubHarness) {
		h.t.Helper()
		wantErrIs(h, fmt.Sprintf("publish %d", n), h.p.Publish(h.ctx, testMsg(n, size), testMark(n), true), want...)
	}
}

// startPublish publishes message n in the background (the window is full);
// finish collects the result.
func startPublish(n int) step {
	return func(h *pubHarness) {
		h.blocked = make(chan error, 1)
		go func() { h.blocked <- h.p.Publish(h.ctx, testMsg(n, 64), testMark(n), true) }()
	}
}

// startDrain drains in the background; finish collects the result.
func startDrain() step {
	return func(h *pubHarness) {
		h.blocked = make(chan error, 1)
		go func() { h.blocked <- h.p.Drain(h.ctx) }()
	}
}

// finish waits for the background Publish or Drain and wants an error
// that is each of want (none: success).
func finish(want ...error) step {
	return func(h *pubHarness) {
		h.t.Helper()
		wantErrIs(h, "the background call", await(h, "the background call to return", h.blocked), want...)
	}
}

func ack(n int) step { return resolveAck(n, false) }

// ackDuplicate acknowledges message n as JetStream does a msg id it
// already stored.
func ackDuplicate(n int) step { return resolveAck(n, true) }

func resolveAck(n int, dup bool) step {
	return func(h *pubHarness) {
		h.t.Helper()
		h.latest(n).ok <- &jetstream.PubAck{Stream: "TIDEMARK", Sequence: uint64(n), Duplicate: dup}
	}
}

// fail fails the latest send of message n asynchronously.
func fail(n int, err error) step {
	return func(h *pubHarness) {
		h.t.Helper()
		h.latest(n).err <- err
	}
}

// refuse makes the next PublishMsgAsync call return err.
func refuse(err error) step {
	return func(h *pubHarness) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.refuse = append(h.refuse, err)
	}
}

func advance(d time.Duration) step { return func(h *pubHarness) { h.clock.Advance(d) } }

// waitTimer waits until the publisher, running in the background, has a
// timer due d from now, so that advancing the clock by d fires it.
func waitTimer(d time.Duration) step {
	return func(h *pubHarness) {
		h.t.Helper()
		for {
			ok, changed := h.clock.timerIn(d)
			if ok {
				return
			}
			await(h, fmt.Sprintf("a timer due in %s", d), changed)
		}
	}
}

// waitSends waits until PublishMsgAsync was called n times in all.
func waitSends(n int) step {
	return func(h *pubHarness) {
		h.t.Helper()
		for {
			h.mu.Lock()
			got, sig := len(h.sends), h.sendSig
			h.mu.Unlock()
			if got >= n {
				return
			}
			await(h, fmt.Sprintf("%d sends", n), sig)
		}
	}
}

// waitTick waits for the publisher's next call of tick.
func waitTick() step {
	return func(h *pubHarness) {
		h.t.Helper()
		await(h, "a tick", h.ticks)
	}
}

func cancel() step { return func(h *pubHarness) { h.stop() } }

func poll() step { return pollErr() }

// pollErr polls and wants an error that is each of want (none: success).
func pollErr(want ...error) step {
	return func(h *pubHarness) {
		h.t.Helper()
		wantErrIs(h, "poll", h.p.Poll(), want...)
	}
}

// wantAcked wants position n acknowledged together with everything
// before it (0: nothing yet).
func wantAcked(n int) step {
	return func(h *pubHarness) {
		h.t.Helper()
		pos, ok := h.p.Acked()
		if want := event.Position(n); pos != want || ok != (n > 0) {
			h.t.Fatalf("acked %d (%v), want %d (%v)", pos, ok, want, n > 0)
		}
	}
}

func wantPending(n int) step {
	return func(h *pubHarness) {
		h.t.Helper()
		if got := h.p.Pending(); got != n {
			h.t.Fatalf("pending %d, want %d", got, n)
		}
	}
}

// wantSends wants PublishMsgAsync called for these messages, in order.
func wantSends(ns ...int) step {
	return func(h *pubHarness) {
		h.t.Helper()
		var got []int
		for _, s := range h.sent() {
			got = append(got, s.n)
		}
		if !slices.Equal(got, ns) {
			h.t.Fatalf("sends %v, want %v", got, ns)
		}
	}
}

// wantResentAsSent wants every send of message n to carry the msg id and
// the bytes of its first, and at least two sends.
func wantResentAsSent(n int) step {
	return func(h *pubHarness) {
		h.t.Helper()
		var first *sentMsg
		sends := 0
		for _, s := range h.sent() {
			if s.n != n {
				continue
			}
			sends++
			if first == nil {
				first = &s
				if want := testMsg(n, 64); s.id != want.Header.Get(nats.MsgIdHdr) || !bytes.Equal(s.data, want.Data) {
					h.t.Fatalf("message %d first sent as id %q, %q", n, s.id, s.data)
				}
				continue
			}
			if s.id != first.id || !bytes.Equal(s.data, first.data) {
				h.t.Fatalf("message %d re-sent as id %q, %d bytes; first sent as id %q, %d bytes", n, s.id, len(s.data), first.id, len(first.data))
			}
		}
		if sends < 2 {
			h.t.Fatalf("message %d sent %d times, want a re-send", n, sends)
		}
	}
}

// wantStalled checks tidemark_capture_publish_stalled.
func wantStalled(v bool) step {
	return func(h *pubHarness) {
		h.t.Helper()
		want := 0.0
		if v {
			want = 1
		}
		if got := testutil.ToFloat64(metricStalled); got != want {
			h.t.Fatalf("publish_stalled = %v, want %v; log:\n%s", got, want, h.logs.String())
		}
	}
}

// wantLog wants the log to say msg exactly n times.
func wantLog(msg string, n int) step {
	return func(h *pubHarness) {
		h.t.Helper()
		if got := strings.Count(h.logs.String(), "msg=\""+msg+"\""); got != n {
			h.t.Fatalf("%q logged %d times, want %d; log:\n%s", msg, got, n, h.logs.String())
		}
	}
}

// wantEventsCounted checks how far tidemark_capture_events_published_total
// grew.
func wantEventsCounted(n int) step {
	return func(h *pubHarness) {
		h.t.Helper()
		if got := testutil.ToFloat64(metricEventsPublished) - h.events0; got != float64(n) {
			h.t.Fatalf("events_published_total grew by %v, want %d", got, n)
		}
	}
}

func wantErrIs(h *pubHarness, what string, err error, want ...error) {
	h.t.Helper()
	if len(want) == 0 {
		if err != nil {
			h.t.Fatalf("%s: %v", what, err)
		}
		return
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			h.t.Fatalf("%s: err = %v, want one that is %v", what, err, w)
		}
	}
}

func TestPublisher(t *testing.T) {
	timeout := jetstream.ErrAsyncPublishTimeout
	tests := []struct {
		name       string
		cfg        func(*Config)
		maxPayload int64
		steps      []step
	}{
		{name: "acks in publish order release each item", steps: []step{
			publish(1, 2, 3), wantAcked(0), wantPending(3),
			ack(1), poll(), wantAcked(1), wantPending(2),
			ack(2), ack(3), poll(), wantAcked(3), wantPending(0), wantEventsCounted(3),
		}},
		{name: "out-of-order acks are released in publish order", steps: []step{
			publish(1, 2, 3, 4),
			ack(4), ack(2), poll(), wantAcked(0), wantPending(4), wantEventsCounted(0),
			ack(1), poll(), wantAcked(2), wantPending(2),
			ack(3), poll(), wantAcked(4), wantPending(0), wantEventsCounted(4),
		}},
		{name: "a timed-out publish is re-sent with the same msg id and bytes", steps: []step{
			publish(1, 2), ack(2),
			fail(1, timeout), poll(), wantStalled(true), wantLog("publish not acknowledged, retrying with the same message id", 1),
			advance(backoff(1) - time.Nanosecond), poll(), wantSends(1, 2),
			advance(time.Nanosecond), poll(), wantSends(1, 2, 1), wantResentAsSent(1), wantAcked(0),
			ack(1), poll(), wantAcked(2), wantPending(0), wantStalled(false), wantLog("publishing resumed", 1),
		}},
		{name: "a failed publish is re-sent with the same msg id and bytes", steps: []step{
			publish(1),
			fail(1, &jetstream.APIError{Code: 503, Description: "JetStream system temporarily unavailable"}), poll(),
			advance(backoff(1)), poll(), wantSends(1, 1), wantResentAsSent(1),
			ack(1), poll(), wantAcked(1),
		}},
		{name: "a refused publish is re-sent with the same msg id and bytes", steps: []step{
			refuse(nats.ErrReconnectBufExceeded), publish(1), poll(), wantSends(1),
			advance(backoff(1)), poll(), wantSends(1, 1), wantResentAsSent(1),
			ack(1), poll(), wantAcked(1),
		}},
		{name: "refused publishes count towards retries and raise the stall gauge", steps: []step{
			refuse(nats.ErrReconnectBufExceeded), refuse(nats.ErrReconnectBufExceeded), refuse(nats.ErrReconnectBufExceeded),
			publish(1), poll(), wantStalled(true), wantLog("publish not acknowledged, retrying with the same message id", 1),
			advance(backoff(1)), poll(), poll(), advance(backoff(2)), poll(),
			pollErr(errPublishExhausted, nats.ErrReconnectBufExceeded), wantSends(1, 1, 1),
		}},
		{name: "later failures are re-sent together with the head", steps: []step{
			publish(1, 2, 3), fail(1, timeout), fail(3, timeout), poll(),
			advance(backoff(1)), poll(), wantSends(1, 2, 3, 1, 3), wantResentAsSent(3),
			ack(3), ack(2), ack(1), poll(), wantAcked(3),
		}},
		{name: "backoff doubles between re-sends", steps: []step{
			publish(1), fail(1, timeout), poll(), advance(backoff(1)), poll(), wantSends(1, 1),
			fail(1, timeout), poll(), advance(backoff(2) - time.Nanosecond), poll(), wantSends(1, 1),
			advance(time.Nanosecond), poll(), wantSends(1, 1, 1), wantResentAsSent(1),
		}},
		{name: "a duplicate ack counts as acknowledged", steps: []step{
			publish(1, 2), fail(1, timeout), poll(), advance(backoff(1)), poll(), wantSends(1, 2, 1),
			ackDuplicate(1), poll(), wantAcked(1), ackDuplicate(2), poll(), wantAcked(2), wantPending(0),
			wantEventsCounted(2), wantSends(1, 2, 1), wantStalled(false),
		}},
		{name: "a duplicate ack out of order waits for the head", steps: []step{
			publish(1, 2), ackDuplicate(2), poll(), wantAcked(0),
			ack(1), poll(), wantAcked(2), wantPending(0),
		}},
		{name: "no ack within the stall window is reported as a stall", steps: []step{
			publish(1), poll(), wantStalled(false),
			advance(30 * time.Second), poll(), wantStalled(false), wantLog("publishing stalled", 0),
			advance(time.Nanosecond), poll(), wantStalled(true), wantLog("publishing stalled", 1),
			advance(time.Minute), poll(), wantLog("publishing stalled", 1),
			ack(1), poll(), wantStalled(false), wantLog("publishing resumed", 1), wantAcked(1),
		}},
		{name: "a stall while waiting for room is reported at the next tick", cfg: func(c *Config) { c.MaxPending = 1 }, steps: []step{
			publish(1), startPublish(2),
			waitTimer(time.Second), advance(30*time.Second + time.Nanosecond), waitTick(),
			wantStalled(true), wantLog("publishing stalled", 1),
			ack(1), finish(), wantSends(1, 2), wantStalled(false), wantAcked(1),
		}},
		{name: "a publish waiting for room goes out when the head is acked", cfg: func(c *Config) { c.MaxPending = 2 }, steps: []step{
			publish(1, 2), startPublish(3), ack(2), ack(1), finish(),
			wantSends(1, 2, 3), wantAcked(1), poll(), wantAcked(2), wantPending(1),
		}},
		{name: "a head timing out while waiting for room is re-sent", cfg: func(c *Config) { c.MaxPending = 1 }, steps: []step{
			publish(1), startPublish(2), fail(1, timeout),
			waitTimer(backoff(1)), advance(backoff(1)), waitSends(2), ack(1), finish(),
			wantSends(1, 1, 2), wantResentAsSent(1), wantAcked(1),
		}},
		{name: "retries exhausted", steps: []step{
			publish(1), ack(1), publish(2), poll(), wantAcked(1),
			fail(2, timeout), poll(), advance(backoff(1)), poll(),
			fail(2, timeout), poll(), advance(backoff(2)), poll(),
			fail(2, timeout), pollErr(errPublishExhausted, timeout),
			wantSends(1, 2, 2, 2), wantAcked(1), wantStalled(true),
		}},
		{name: "retries exhausted while waiting for room", cfg: func(c *Config) { c.MaxPending = 1; c.PublishRetries = 1 }, steps: []step{
			publish(1), startPublish(2), fail(1, timeout), finish(errPublishExhausted, timeout), wantSends(1),
		}},
		{name: "a cancelled context ends a publish waiting for room", cfg: func(c *Config) { c.MaxPending = 1 }, steps: []step{
			publish(1), startPublish(2), cancel(), finish(context.Canceled), wantSends(1), wantPending(1),
		}},
		{name: "a cancelled context ends a publish before it is sent", cfg: func(c *Config) { c.MaxPending = 1 }, steps: []step{
			publish(1), cancel(), publishErr(2, 64, context.Canceled), wantSends(1), wantPending(1),
		}},
		{name: "a cancelled context ends a drain", steps: []step{
			publish(1, 2), ack(1), startDrain(), cancel(), finish(context.Canceled), wantAcked(1), wantPending(1),
		}},
		{name: "drain returns once every message is acked", steps: []step{
			publish(1, 2, 3), startDrain(), ack(3), ack(1), ack(2), finish(), wantAcked(3), wantPending(0),
		}},
		{name: "a message larger than max_payload is fatal, not skipped", maxPayload: 150, steps: []step{
			publish(1), publishErr(2, 200, nats.ErrMaxPayload), wantSends(1), wantPending(1),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := pubConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			h := newPubHarness(t, cfg, tt.maxPayload)
			for _, s := range tt.steps {
				s(h)
			}
		})
	}
}
