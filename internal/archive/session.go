package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/semaphore"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// Delays for messages given back with NakWithDelay (the decode retry is a
// variable so that tests can shorten it).
const bufferFullDelay = 2 * time.Second

var decodeRetryDelay = 30 * time.Second

// undecodableDeliveries is how many times a cumulative consumer's message
// may fail to decode before it is terminated (see undecodable).
const undecodableDeliveries = 3

// ackGapGrace is how long the cumulative floor waits for a message, while
// later ones are settled, before the stream is asked whether it still
// holds it: a message normally waits no longer than a flush, or than a
// hole's grace period.
func (c Config) ackGapGrace() time.Duration { return max(2*c.FlushInterval, c.HoleGrace) }

// session is one term as the writer: from winning the lease to losing or
// releasing it. Everything in it is owned by the session's goroutine.
type session struct {
	a     *Archiver
	log   *slog.Logger
	lease *catalog.Lease
	cat   *catalog.Catalog
	cw    *catalog.Writer
	cons  jetstream.Consumer
	// cum settles messages cumulatively on an AckAll consumer; nil on a
	// consumer that acknowledges message by message.
	cum   *cumulativeAcks
	chain *chain
	acks  ackQueue
	// streamAcks are the messages of streamed events in the open segments
	// (or in durable ones, for redeliveries): the next flush settles them.
	streamAcks []Msg
	roll       *roller
	ext        *externals // events holding values fetched from the values object store
	puts       *putRate
	closed     bool

	// covered maps a table id to the highest LastEndLSN of its segments in
	// the catalog: events at or below it are archived even if the
	// watermark is lower (a crash between two entries of one flush).
	covered map[string]event.Position
	// durable is the watermark of the last catalog entry; seq its number.
	durable catalog.Watermark
	seq     uint64
	// head is the position of the last item fully taken in (its events in
	// the open segments); acceptedTime its commit time (kept
	// non-decreasing). A flush makes head durable. head trails chain.w
	// while an item is being taken in.
	head         event.Position
	acceptedTime time.Time
	// streaming is the position of the large transaction being streamed.
	streaming event.Position
	lastEntry time.Time

	// written is the highest end LSN of any event in a segment the catalog
	// lists; lastTxn the position of the last transaction taken. A flush
	// refuses a watermark while lastTxn is above what it writes (see
	// checkWatermark).
	written, lastTxn event.Position
	// failed is the error of a flush that did not complete: the events it
	// had closed are no longer held, so the session must not flush again
	// (a later watermark would cover them).
	failed error

	holeSince    time.Time
	holeReported bool
	lastRewind   time.Time
	// resetWanted asks run to reset the consumer to its ack floor.
	resetWanted bool

	// resync is the open resync from a new primary, if any (resync.go).
	resync *resyncState

	// backlog is the consumer's pending count at the last delivery: the
	// pull goroutine writes it, the merger reads it (see mergesWait).
	backlog atomic.Uint64
}

// start loads the catalog, publishes its watermark and attaches to the
// consumer. The caller holds lease.
func (a *Archiver) start(ctx context.Context, lease *catalog.Lease) (*session, error) {
	cat, err := catalog.Load(ctx, a.deps.Store)
	if err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	s := &session{a: a, log: a.log.With("epoch", lease.Epoch()), lease: lease, cat: cat,
		cw:      catalog.NewWriter(a.deps.Store, cat, a.cfg.Holder, lease.Epoch()),
		roll:    newRoller(a.writerOptions(), a.cfg.BucketWidth),
		ext:     newExternals(),
		covered: make(map[string]event.Position),
		puts:    a.puts,
	}
	s.roll.ext, s.roll.tempDir = s.ext, a.cfg.TempDir
	s.durable = cat.Watermark()
	if next := cat.NextSeq(); next > 0 {
		s.seq = next - 1
	}
	archived := make(map[event.Position]int)
	for _, ref := range cat.Segments() {
		s.written = max(s.written, ref.LastEndLSN)
		if ref.FirstEndLSN == ref.LastEndLSN && ref.LastEndLSN > s.durable.LSN {
			// Part (or all) of one transaction above the watermark: a
			// streamed transaction, or a crash between the entries of one
			// flush. Entries list such segments in index order, so their
			// events are the transaction's first ones.
			archived[ref.LastEndLSN] += ref.Events
			continue
		}
		s.covered[ref.TableID] = max(s.covered[ref.TableID], ref.LastEndLSN)
	}
	s.head, s.acceptedTime = s.durable.LSN, s.durable.CommitTime
	s.chain = newChain(s.durable.LSN, a.cfg.ReorderBuffer, archived)
	s.lastEntry = time.Now()
	if err := s.sweepDebris(ctx); err != nil {
		if errors.Is(err, ErrLeaseLost) || ctx.Err() != nil {
			return nil, err
		}
		s.log.Warn("sweep for debris of interrupted uploads; the next term tries again", "err", err)
	}
	if err := s.resumeResync(ctx); err != nil {
		return nil, err
	}
	if err := s.publishWatermark(ctx); err != nil {
		s.log.Warn("publish watermark", "err", err)
	}
	if s.cons, err = a.consumer(ctx); err != nil {
		return nil, err
	}
	// Messages the previous writer held unacknowledged are redelivered now
	// rather than after AckWait. Everything below the ack floor is in the
	// catalog, so nothing is skipped.
	var info *jetstream.ConsumerInfo
	if s.cons != nil {
		info = s.cons.CachedInfo()
	}
	if r, err := a.deps.JetStream.ResetConsumer(ctx, a.cfg.Stream, a.cfg.Consumer); err != nil {
		s.log.Warn("reset consumer to its ack floor; unacknowledged messages come back after ack wait", "err", err)
	} else if r.ConsumerInfo != nil {
		info = r.ConsumerInfo
	}
	acks := "per-message"
	if nc := a.deps.JetStream.Conn(); info != nil && info.Config.AckPolicy == jetstream.AckAllPolicy && nc != nil {
		acks = "cumulative"
		s.cum = newCumulativeAcks(nc, info.AckFloor.Stream, time.Now())
	}
	watermarkLSN.Set(float64(s.durable.LSN))
	a.setStatus(func(st *Status) { st.Watermark, st.CatalogSeq, st.Accepted = s.durable, s.seq, s.durable.LSN })
	s.log.Info("leading", "watermark", s.durable.LSN, "catalog_seq", s.seq, "segments", len(cat.Segments()), "acks", acks)
	return s, nil
}

// run consumes until stop is closed (it then returns nil, between two
// messages, never inside a flush), ctx ends (the lease is lost) or an
// error stops the session.
func (s *session) run(ctx context.Context, stop <-chan struct{}) error {
	p, err := s.pull(ctx)
	if err != nil {
		return err
	}
	defer func() { p.giveBack() }()
	go s.a.watchConsumer(ctx, s.cons)

	// A fine tick: a segment is flushed at most 50 ms after its age limit.
	tick := time.NewTicker(max(min(s.a.cfg.FlushInterval/20, 50*time.Millisecond), 5*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		case err := <-p.errs:
			return err
		case d := <-p.msgs:
			err := s.handleDelivery(ctx, d)
			p.handled(d)
			if err != nil {
				return err
			}
		case now := <-tick.C:
			if err := s.tick(ctx, now); err != nil {
				return err
			}
			if s.resetWanted {
				s.resetWanted = false
				if p, err = s.repull(ctx, p); err != nil {
					return err
				}
			}
		}
	}
}

// pulling is one pull subscription on the consumer and the goroutine
// that receives its messages, decodes them and moves them to msgs.
type pulling struct {
	iter   jetstream.MessagesContext
	msgs   chan *delivery
	errs   chan error
	pumped chan struct{}
	// stopDecoding ends a wait for a table definition, or for room in
	// decoded, when the subscription is given back.
	stopDecoding context.CancelFunc
	// decoded bounds the bytes of the deliveries waiting in msgs: each
	// holds its message and a decoded copy of its values, and messages
	// may be as large as the server's max_payload.
	decoded *semaphore.Weighted
}

// decodedBudget is how many message bytes may wait decoded between the
// pull goroutine and the session's loop.
const decodedBudget = 32 << 20

// weight is what a delivery counts against pulling.decoded.
func (d *delivery) weight() int64 { return min(int64(len(d.m.Data())), decodedBudget) }

// admit waits until d fits in the decoded budget and returns it; when ctx
// ends first (the subscription is being given back) it gives d's message
// back and returns nil.
func (p *pulling) admit(ctx context.Context, d *delivery) *delivery {
	if err := p.decoded.Acquire(ctx, d.weight()); err != nil {
		_ = d.m.Nak()
		return nil
	}
	return d
}

// handled returns a delivery's weight once the session is done with it.
func (p *pulling) handled(d *delivery) { p.decoded.Release(d.weight()) }

// pull starts a pull subscription. Pull requests expire well within a
// lease: when this archiver is paused and deposed, its requests lapse
// before the next writer resets the consumer, so new messages are not
// delivered to it.
func (s *session) pull(ctx context.Context) (*pulling, error) {
	expiry := min(max(s.a.cfg.LeaseTTL/2, time.Second), 30*time.Second)
	iter, err := s.cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(s.a.cfg.FetchBatch, s.pullBytes()),
		jetstream.PullExpiry(expiry))
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", s.a.cfg.Consumer, err)
	}
	dctx, cancel := context.WithCancel(ctx)
	p := &pulling{iter: iter, msgs: make(chan *delivery, s.a.cfg.FetchBatch), errs: make(chan error, 1),
		pumped: make(chan struct{}), stopDecoding: cancel, decoded: semaphore.NewWeighted(decodedBudget)}
	go func() {
		defer close(p.pumped)
		pump(iter, p.msgs, p.errs, func(m jetstream.Msg) *delivery { return p.admit(dctx, s.decode(dctx, m)) })
	}()
	return p, nil
}

// pullBytes bounds one pull request's bytes, so that a run of messages
// near the server's max_payload does not fill the client's buffer with
// FetchBatch of them. It must exceed the largest message or the consumer
// stalls.
func (s *session) pullBytes() int {
	n := 16 << 20
	if nc := s.a.deps.JetStream.Conn(); nc != nil {
		n = max(n, 2*int(nc.MaxPayload()))
	}
	return n
}

func (p *pulling) giveBack() {
	p.stopDecoding()
	giveBackPumped(p.iter, p.msgs, p.pumped, p.handled)
}

// repull resets the consumer to its ack floor between two pull
// subscriptions: every message above the floor comes again, and none
// delivered before the reset is handled after it. The reset restarts
// nats-server's delivery sequence, which a cumulative acknowledgement
// carries; replies of earlier deliveries are dropped (newGen) so that an
// acknowledgement never carries an old sequence the server would ignore.
func (s *session) repull(ctx context.Context, p *pulling) (*pulling, error) {
	p.giveBack()
	if _, err := s.a.deps.JetStream.ResetConsumer(ctx, s.a.cfg.Stream, s.a.cfg.Consumer); err != nil {
		s.log.Warn("reset consumer to its ack floor", "err", err)
	}
	if s.cum != nil {
		s.cum.newGen()
	}
	return s.pull(ctx)
}

// pump decodes messages from the iterator and moves them to msgs until
// the iterator is closed (or drained) or the consumer is gone. decode
// returns nil for a message it has given back itself.
func pump(iter jetstream.MessagesContext, msgs chan<- *delivery, errs chan<- error, decode func(jetstream.Msg) *delivery) {
	for {
		m, err := iter.Next()
		switch {
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			select {
			case errs <- fmt.Errorf("consume: %w", err):
			default:
			}
			iter.Drain()
			continue
		case err != nil:
			// Missed heartbeats and reconnects: the iterator recovers.
			continue
		}
		if d := decode(m); d != nil {
			msgs <- d
		}
	}
}

// giveBackPumped drains the iterator at the end of a term and Naks every
// message delivered but not handled — those in the iterator's buffer
// included — so the next writer gets them at once rather than after AckWait.
func giveBackPumped(iter jetstream.MessagesContext, msgs <-chan *delivery, pumped <-chan struct{}, handled func(*delivery)) {
	iter.Drain()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case d := <-msgs:
			_ = d.m.Nak()
			handled(d)
		case <-pumped:
			for {
				select {
				case d := <-msgs:
					_ = d.m.Nak()
					handled(d)
				default:
					return
				}
			}
		case <-timeout:
			iter.Stop()
			timeout = nil
		}
	}
}

// handleDelivery offers one decoded message to the chain.
func (s *session) handleDelivery(ctx context.Context, d *delivery) error {
	m := d.m
	var (
		res     addResult
		evicted []*item
		pos     event.Position
	)
	switch {
	case d.kind == deliveredTamper:
		// Capture's tamper reports share the stream but never the archive.
		_ = s.settler(d).Ack()
		return nil
	case d.err != nil:
		if ctx.Err() != nil {
			return context.Cause(ctx) // a wait for a table definition, cut short
		}
		return s.undecodable(m, d.err)
	case d.kind == deliveredNotEvent:
		s.log.Error("unexpected message on the feed; terminating it", "subject", d.nm.Subject, "kind", d.nm.Header.Get(feed.HeaderKind))
		s.term(m)
		return nil
	case d.kind == deliveredHeartbeat:
		pos = d.hb.LSN
		res, evicted = s.chain.addHeartbeat(d.hb, d.systemID, s.settler(d))
		if res == duplicate && d.hb.Resync != nil && d.hb.Resync.Phase == event.ResyncBegin {
			s.checkLateResync(d.hb)
		}
	default:
		vs, err := s.fetchExternal(ctx, d.nm, d.t, d.e)
		if err != nil {
			externalErrorsTotal.Inc()
			return s.undecodable(m, err)
		}
		if vs != nil {
			s.ext.put(d.e, vs)
		}
		pos = d.e.EndLSN
		res, evicted = s.chain.addEvent(d.e, d.t, d.systemID, s.settler(d))
	}
	for _, it := range evicted {
		for _, em := range it.allMsgs() {
			_ = em.NakWithDelay(bufferFullDelay)
		}
	}
	switch res {
	case duplicate:
		s.duplicate(pos, m)
	case rejected:
		bufferRejectedTotal.Inc()
		_ = m.NakWithDelay(bufferFullDelay)
	case archivedEvent:
		duplicatesTotal.Inc()
		_ = s.settler(d).Ack() // in a segment a durable catalog entry lists
	case streamedEvent:
		duplicatesTotal.Inc()
		s.streamAcks = append(s.streamAcks, s.settler(d))
	}
	return s.advance(ctx)
}

// settler returns what the session keeps of a message to settle it later:
// its reply subject and the connection, not its payload (see ackHandle).
func (s *session) settler(d *delivery) Msg {
	m := d.m
	nc := s.a.deps.JetStream.Conn()
	if nc == nil || m.Reply() == "" {
		return m
	}
	h := ackHandle{nc: nc, reply: m.Reply()}
	if s.cum != nil {
		md, err := d.md, d.mdErr
		if err != nil {
			// Not a consumer's delivery: nothing to settle, and a
			// cumulative acknowledgement must not come from it.
			return noSettle{}
		}
		h.seq, h.cum, h.gen = md.Sequence.Stream, s.cum, s.cum.generation()
	}
	return h
}

// term ends a message JetStream must not deliver again (it is settled).
func (s *session) term(m jetstream.Msg) {
	_ = m.Term()
	if s.cum != nil {
		if md, err := m.Metadata(); err == nil {
			s.cum.settle(md.Sequence.Stream, "", 0)
		}
	}
}

// sendAcks acknowledges, on a cumulative consumer, what the session has
// settled since the last call.
func (s *session) sendAcks() {
	if s.cum == nil {
		return
	}
	if err := s.cum.send(); err != nil {
		s.log.Warn("acknowledge messages", "err", err)
	}
}

// table returns the definition a message names, waiting for it to appear
// in META. It returns nil for a message that names none.
func (s *session) table(ctx context.Context, id string) (*event.Table, error) {
	if id == "" {
		return nil, nil
	}
	delay := 100 * time.Millisecond
	warned := false
	for {
		t, err := s.a.meta.table(ctx, id)
		if err == nil {
			return t, nil
		}
		if !warned {
			s.log.Warn("waiting for table definition", "table_def", id, "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// undecodable gives a message that cannot be decoded back for a later
// retry; the chain will report the hole it leaves.
func (s *session) undecodable(m jetstream.Msg, err error) error {
	decodeErrorsTotal.Inc()
	if s.cum != nil {
		// On a cumulative consumer a message that never decodes would hold
		// every later acknowledgement back. After a few deliveries it is
		// terminated: the hole it leaves makes the archiver ask capture to
		// re-send its item from the slot, the buffer of record.
		if md, mdErr := m.Metadata(); mdErr == nil && md.NumDelivered >= undecodableDeliveries {
			s.log.Error("undecodable message; terminating it, the chain's hole check asks capture to re-send its item",
				"subject", m.Subject(), "stream_seq", md.Sequence.Stream, "deliveries", md.NumDelivered, "err", err)
			undecodableTerminatedTotal.Inc()
			s.term(m)
			return nil
		}
	}
	s.log.Error("undecodable message; will retry", "subject", m.Subject(), "err", err)
	_ = m.NakWithDelay(decodeRetryDelay)
	return nil
}

// duplicate settles a message whose item is already archived or accepted.
func (s *session) duplicate(pos event.Position, msgs ...Msg) {
	duplicatesTotal.Add(float64(len(msgs)))
	if pos <= s.durable.LSN {
		for _, m := range msgs {
			_ = m.Ack()
		}
		return
	}
	s.acks.add(pos, msgs...)
}

// advance takes every item that now extends the chain.
func (s *session) advance(ctx context.Context) error {
	for {
		if err := s.stream(ctx); err != nil {
			return err
		}
		it, dup := s.chain.next()
		if it == nil {
			return nil
		}
		if dup {
			s.duplicate(it.pos, it.allMsgs()...)
			continue
		}
		if err := s.accept(ctx, it); err != nil {
			return err
		}
	}
}

// stream appends the arrived events of the large transaction at the
// chain's head to the open segments, in index order. The transaction
// starts segments of its own (a flush before its first event), so every
// segment holding part of it holds nothing else; size and age flushes in
// its middle write catalog entries whose watermark stays below it and
// settle the messages of the events they made durable.
func (s *session) stream(ctx context.Context) error {
	it := s.chain.streamHead()
	if it == nil {
		return nil
	}
	if _, ok := it.ooo[it.next]; !ok {
		return nil
	}
	if s.streaming != it.pos && !s.roll.empty() {
		if err := s.flush(ctx, "stream"); err != nil {
			return err
		}
	}
	s.streaming = it.pos
	for {
		h, ok := s.chain.takeNext(it)
		if !ok {
			return nil
		}
		if s.resync != nil && s.resync.inRange(it.pos) && s.resyncHolds(h.e, h.t) {
			s.streamAcks = append(s.streamAcks, h.msgs...)
			continue
		}
		it.streamedOut++
		// An event with external values gets a segment of its own here
		// too, so that merges leave it alone (see accept).
		external := s.ext.get(h.e) != nil
		if external && !s.roll.empty() {
			if err := s.flush(ctx, "external-value"); err != nil {
				for _, m := range h.msgs {
					_ = m.Nak()
				}
				return err
			}
		}
		if err := s.roll.stream(h.e, h.t, it, time.Now()); err != nil {
			for _, m := range h.msgs {
				_ = m.Nak()
			}
			return fmt.Errorf("%w: %w", ErrUnarchivable, err)
		}
		s.streamAcks = append(s.streamAcks, h.msgs...)
		if external || s.roll.maxRaw >= s.a.cfg.SegmentMaxBytes {
			reason := "size"
			if external {
				reason = "external-value"
			}
			if err := s.flush(ctx, reason); err != nil {
				return err
			}
		}
	}
}

// accept adds an item that extends the chain to the open segments.
func (s *session) accept(ctx context.Context, it *item) error {
	now := time.Now()
	if it.heartbeat && it.resync != nil {
		return s.acceptResync(ctx, it)
	}
	if s.resync != nil && s.resync.inRange(it.pos) {
		if it.large && it.streamedOut == 0 && it.next > 0 {
			it.heartbeat = true // every event was held: nothing of it went into a segment
		}
		if !it.large {
			s.filterResync(it)
		}
	}
	if it.large && !it.heartbeat {
		// Streamed: its events are in the open segments or durable ones.
		// A flush now makes the watermark pass it, and the next item
		// starts new segments (its last segment may not end it per table).
		s.taken(it)
		return s.flush(ctx, "streamed")
	}
	if !it.heartbeat {
		// A transaction spanning tables is split across their segments; the
		// segment format allows a split only for a segment's first and last
		// transaction, so it gets segments of its own.
		// So does the rest of a transaction whose first events an earlier
		// term archived (it starts mid-way, and may end early per table).
		// So does a transaction holding a value fetched from the values
		// object store: its segments, large and written from a temporary
		// file, are left unmerged (merge.Policy.MaxEventBytes).
		external := s.holdsExternal(it)
		multi := it.tableCount() > 1 || len(it.events) > 0 && it.events[0] == nil || external
		if b := s.roll.bucketOf(it.time); !s.roll.fits(b, it.systemID) || multi && !s.roll.empty() {
			if err := s.flush(ctx, "bucket"); err != nil {
				return err
			}
		}
		if _, err := s.roll.add(it, s.covered, now); err != nil {
			for _, m := range it.msgs {
				_ = m.Nak()
			}
			return fmt.Errorf("%w: %w", ErrUnarchivable, err)
		}
		if multi {
			s.taken(it)
			if external {
				return s.flush(ctx, "external-value")
			}
			return s.flush(ctx, "multi-table")
		}
	}
	s.taken(it)
	if s.roll.maxRaw >= s.a.cfg.SegmentMaxBytes {
		return s.flush(ctx, "size")
	}
	return nil
}

// holdsExternal reports whether any event of it has external values.
func (s *session) holdsExternal(it *item) bool {
	for _, e := range it.events {
		if e != nil && s.ext.get(e) != nil {
			return true
		}
	}
	return false
}

// taken records that it is wholly in the open segments (or a heartbeat):
// the next flush makes it durable and settles its messages.
func (s *session) taken(it *item) {
	s.head = it.pos
	if !it.heartbeat {
		s.lastTxn = it.pos
	}
	s.acceptedTime = maxTime(s.acceptedTime, it.time)
	s.acks.add(it.pos, it.msgs...)
	it.msgs = nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// tick flushes by age, writes watermark-only entries, watches for holes
// and refreshes the gauges.
func (s *session) tick(ctx context.Context, now time.Time) error {
	switch {
	case !s.roll.empty() && s.roll.age(now) >= s.a.cfg.FlushInterval:
		if err := s.flush(ctx, "age"); err != nil {
			return err
		}
	case s.roll.empty() && s.head > s.durable.LSN && now.Sub(s.lastEntry) >= s.a.cfg.IdleWatermarkInterval:
		if err := s.flush(ctx, "watermark"); err != nil {
			return err
		}
	}
	s.checkHole(ctx, now)
	if s.cum != nil {
		s.sendAcks()
		reset, err := s.cum.check(ctx, s.a.deps.JetStream, s.a.cfg.Stream, s.a.cfg.Consumer, s.a.cfg.ackGapGrace(), now)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("check the consumer's acknowledgement floor", "err", err)
		case reset:
			ackResetsTotal.Inc()
			s.log.Warn("the consumer's ack floor did not follow the acknowledgements; resetting it to its floor")
			s.resetWanted = true
		}
	}
	s.report(now)
	return nil
}

// checkHole reports a chain that stays stuck past the grace period and
// asks capture to rewind.
func (s *session) checkHole(ctx context.Context, now time.Time) {
	stuck, missing := s.chain.gap()
	if s.chain.streamProgressed() {
		stuck = false // a large transaction still arriving
	}
	if !stuck {
		if s.holeReported {
			s.log.Info("chain hole filled", "watermark", s.chain.w)
		}
		s.holeSince, s.holeReported = time.Time{}, false
		chainHole.Set(0)
		return
	}
	if s.holeSince.IsZero() {
		s.holeSince = now
		return
	}
	if now.Sub(s.holeSince) < s.a.cfg.HoleGrace {
		return
	}
	if !s.holeReported {
		s.holeReported = true
		holesTotal.Inc()
		chainHole.Set(1)
		s.log.Warn("chain hole: an item before the buffered ones is missing",
			"after", s.chain.w, "missing", missing, "buffered_events", s.chain.buffered(), "since", s.holeSince)
	}
	if now.Sub(s.lastRewind) < s.a.cfg.RewindInterval {
		return
	}
	s.lastRewind = now
	// The missing item may sit unacknowledged with a deposed writer (or
	// its delivery was lost): rewinding the consumer to its ack floor
	// (run does it after this tick) brings it back if the stream has it;
	// the rewind request makes capture re-publish it if the stream does
	// not.
	s.resetWanted = true
	if err := s.a.meta.putRewind(ctx, s.chain.w, missing, now); err != nil {
		s.log.Warn("request rewind", "err", err)
		return
	}
	rewindRequestsTotal.Inc()
	s.log.Warn("rewind requested", "after", s.chain.w, "missing", missing)
}

// giveBack returns everything the session holds to JetStream without
// acknowledging it, and drops the open segments.
func (s *session) giveBack() {
	if s.closed {
		return
	}
	s.closed = true
	s.sendAcks() // what is settled is durable
	n := s.acks.len()
	for _, it := range s.chain.drain() {
		for _, m := range it.allMsgs() {
			_ = m.Nak()
			n++
		}
	}
	for _, m := range s.streamAcks {
		_ = m.Nak()
		n++
	}
	s.streamAcks = nil
	s.acks.giveBack()
	s.log.Debug("gave back unacknowledged messages", "messages", n)
	s.roll.reset()
	chainHole.Set(0)
	openSegmentBytes.Set(0)
	openSegmentAge.Set(0)
	bufferedEvents.Set(0)
}

// report refreshes gauges and the status snapshot.
func (s *session) report(now time.Time) {
	openSegmentBytes.Set(float64(s.roll.rawSum))
	openSegmentAge.Set(s.roll.age(now).Seconds())
	bufferedEvents.Set(float64(s.chain.buffered()))
	if !s.durable.CommitTime.IsZero() {
		watermarkLag.Set(now.Sub(s.durable.CommitTime).Seconds())
	}
	putsPerHour.Set(s.puts.perHour(now))
	stuck, missing := s.chain.gap()
	s.a.setStatus(func(st *Status) {
		st.Accepted = s.chain.w
		st.OpenSegmentBytes = s.roll.rawSum
		st.OpenSegmentAge = s.roll.age(now)
		st.BufferedEvents = s.chain.buffered()
		st.Hole = stuck && s.holeReported
		st.HoleMissing = 0
		if st.Hole {
			st.HoleMissing = missing
		}
	})
}

var (
	duplicatesTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_duplicates_total",
		Help: "Messages skipped because their item was already archived or accepted (redeliveries, capture re-sends).",
	})
	holesTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_holes_total",
		Help: "Chain holes that persisted past the grace period.",
	})
	chainHole = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_archiver_chain_hole",
		Help: "1 while the chain has a hole older than the grace period, else 0.",
	})
	rewindRequestsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_rewind_requests_total",
		Help: "Rewind requests written to META for capture.",
	})
	decodeErrorsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_decode_errors_total",
		Help: "Messages that could not be decoded (given back for a later retry).",
	})
	ackResetsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_ack_resets_total",
		Help: "Consumer resets because nats-server did not apply the cumulative acknowledgements (a deposed writer's late acknowledgement, or a lost one).",
	})
	undecodableTerminatedTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_undecodable_terminated_total",
		Help: "Messages terminated after failing to decode on every delivery (cumulative consumer); their items are re-sent from the slot.",
	})
	bufferRejectedTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_buffer_rejected_total",
		Help: "Messages given back because the reorder buffer was full.",
	})
	bufferedEvents = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_archiver_buffered_events",
		Help: "Events held in the reorder buffer waiting for the chain to connect.",
	})
	openSegmentBytes = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_archiver_open_segment_bytes",
		Help: "Raw bytes in the open segments.",
	})
	openSegmentAge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_archiver_open_segment_age_seconds",
		Help: "Age of the open segments.",
	})
	watermarkLag = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_archiver_watermark_lag_seconds",
		Help: "Now minus the durable watermark's commit time.",
	})
)
