package consumer

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// liveFeed follows the JetStream feed by the chain rule of docs/feed.md: an
// item (a whole transaction, or a heartbeat) is accepted when its previous
// position is at or before w and its own position after it; an item at or
// before w is a duplicate; an item whose previous position is after w
// waits in pending until the chain reaches it — from the feed, or from the
// archive when the feed no longer holds what lies between.
type liveFeed struct {
	c      *Cursor
	js     jetstream.JetStream
	meta   jetstream.KeyValue
	values jetstream.ObjectStore // external values, opened on first use
	tables map[string]*event.Table
	iter   jetstream.MessagesContext
	msgs   chan *nats.Msg
	errc   chan error
	done   chan struct{}

	assembling map[event.Position]*txnParts // transactions not yet complete
	pending    itemHeap                     // complete items after a hole
	held       int                          // messages held in assembling and pending
	holeSince  time.Time                    // when the current hole was first seen
	lastPoll   time.Time
}

// feedStartMargin is how long before the archive watermark's commit time
// the cursor starts reading the feed.
const feedStartMargin = 5 * time.Minute

// item is one complete chain item.
type item struct {
	pos, prev event.Position
	msgs      []*nats.Msg // a transaction's messages by index; nil for a heartbeat
}

type txnParts struct {
	prev  event.Position
	count int
	msgs  map[int]*nats.Msg // by index: a count read from the feed sizes nothing
	got   int
}

func startLive(ctx context.Context, c *Cursor) (*liveFeed, error) {
	js, err := jetstream.New(c.cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("consumer: jetstream: %w", err)
	}
	meta, err := js.KeyValue(ctx, feed.MetaBucket(c.cfg.Stream))
	if err != nil {
		return nil, fmt.Errorf("consumer: open the META bucket %s: %w; Try: check the stream name (capture's --stream)", feed.MetaBucket(c.cfg.Stream), err)
	}
	subj := feed.Subjects{Prefix: c.cfg.SubjectPrefix}
	// Every event and heartbeat: the chain runs through all of them.
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj.Events(), subj.Heartbeat()},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if c.arc != nil {
		// Messages stored well before the archive's watermark committed are
		// at or before it: start after them instead of reading the whole
		// stream. Starting too late (clocks skewed by more than the margin)
		// only opens a hole, which the archive closes.
		if wm := c.arc.Catalog.Watermark(); !wm.CommitTime.IsZero() {
			from := wm.CommitTime.Add(-feedStartMargin)
			occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &from
		}
	}
	cons, err := js.OrderedConsumer(ctx, c.cfg.Stream, occ)
	if err != nil {
		return nil, fmt.Errorf("consumer: read stream %s: %w; Try: check the stream name (capture's --stream) and the NATS URL", c.cfg.Stream, err)
	}
	iter, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("consumer: read stream %s: %w", c.cfg.Stream, err)
	}
	l := &liveFeed{c: c, js: js, meta: meta, tables: map[string]*event.Table{}, iter: iter,
		msgs: make(chan *nats.Msg, 256), errc: make(chan error, 1), done: make(chan struct{}),
		assembling: map[event.Position]*txnParts{}}
	go l.read()
	return l, nil
}

// read hands the feed's messages to next; the channel's bound is the
// backpressure that stops reading while a hole is open.
func (l *liveFeed) read() {
	for {
		m, err := l.iter.Next()
		if err != nil {
			select {
			case l.errc <- err:
			case <-l.done:
			}
			return
		}
		select {
		case l.msgs <- &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}:
		case <-l.done:
			return
		}
	}
}

func (l *liveFeed) stop() {
	close(l.done)
	l.iter.Stop()
}

// next returns the next transaction with selected events; nil, nil when
// the archive advanced over a hole and the cursor reads it first.
func (l *liveFeed) next(ctx context.Context) (*Transaction, error) {
	c := l.c
	poll := time.NewTicker(c.cfg.PollInterval)
	defer poll.Stop()
	for {
		t, err := l.ready(ctx)
		if err != nil || t != nil {
			return t, err
		}
		if len(l.pending) > 0 {
			if l.holeSince.IsZero() {
				l.holeSince = time.Now()
				c.cfg.Logger.Info("waiting for the chain to close", "after", c.w.String(), "next_in_feed", l.pending[0].prev.String())
			}
			if time.Since(l.holeSince) > c.cfg.SeamTimeout {
				return nil, l.seamError()
			}
			if c.arc != nil && time.Since(l.lastPoll) >= c.cfg.PollInterval {
				l.lastPoll = time.Now()
				ok, err := c.refreshArchive(ctx)
				if err != nil {
					return nil, err
				}
				if ok {
					return nil, nil
				}
			}
		}
		in := l.msgs
		if l.held >= c.cfg.MaxPending {
			in = nil // stop reading the feed until the hole closes
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-l.errc:
			return nil, fmt.Errorf("consumer: read stream %s: %w", c.cfg.Stream, err)
		case m := <-in:
			if err := l.add(m); err != nil {
				return nil, err
			}
		case <-poll.C:
		}
	}
}

func (l *liveFeed) seamError() error {
	c := l.c
	where := "the archive's watermark"
	if c.arc == nil {
		where = "the last item delivered"
	}
	return fmt.Errorf("%w: %s is at %s, the feed's next item follows %s, and nothing closed the hole for %s; "+
		"Try: check that the archiver is running and its watermark advancing (`restorer list --store URL`), then resume from the saved position",
		ErrSeam, where, c.w, l.pending[0].prev, c.cfg.SeamTimeout)
}

// add takes one feed message.
func (l *liveFeed) add(m *nats.Msg) error {
	if feed.IsHeartbeat(m) {
		hb, err := feed.DecodeHeartbeat(m)
		if err != nil {
			return fmt.Errorf("consumer: %w", err)
		}
		l.offer(&item{pos: hb.LSN, prev: hb.PrevLSN})
		return nil
	}
	env, err := feed.DecodeEnvelope(m)
	if errors.Is(err, feed.ErrNotEvent) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("consumer: message %s: %w", m.Subject, err)
	}
	if l.c.known && env.EndLSN <= l.c.w {
		return nil // a re-send of something delivered
	}
	p := l.assembling[env.EndLSN]
	if p == nil {
		p = &txnParts{prev: env.PrevLSN, count: env.Count, msgs: map[int]*nats.Msg{}}
		l.assembling[env.EndLSN] = p
	}
	if env.Count != p.count || p.msgs[env.Index] != nil {
		return nil // a re-send within the transaction
	}
	if env.PrevLSN < p.prev {
		p.prev = env.PrevLSN
	}
	p.msgs[env.Index] = m
	p.got++
	l.held++
	if p.got == p.count {
		delete(l.assembling, env.EndLSN)
		msgs := make([]*nats.Msg, p.count)
		for i, m := range p.msgs {
			msgs[i] = m
		}
		l.offer(&item{pos: env.EndLSN, prev: p.prev, msgs: msgs})
	}
	return nil
}

// offer queues a complete item; ready takes it in chain order.
func (l *liveFeed) offer(it *item) {
	if l.c.known && it.pos <= l.c.w {
		l.held -= len(it.msgs)
		return
	}
	heap.Push(&l.pending, it)
}

// ready returns the next accepted transaction with selected events, if
// the chain reaches one.
func (l *liveFeed) ready(ctx context.Context) (*Transaction, error) {
	c := l.c
	for len(l.pending) > 0 {
		it := l.pending[0]
		if c.known && it.pos <= c.w {
			heap.Pop(&l.pending)
			l.held -= len(it.msgs)
			continue
		}
		if c.known && it.prev > c.w {
			return nil, nil // a hole
		}
		heap.Pop(&l.pending)
		l.held -= len(it.msgs)
		c.known = true
		t, err := l.accept(ctx, it)
		c.advance(it.pos)
		for pos, p := range l.assembling { // parts of items now behind: re-sends, or cut by retention
			if pos <= c.w {
				l.held -= p.got
				delete(l.assembling, pos)
			}
		}
		l.holeSince = time.Time{}
		if err != nil || t != nil {
			return t, err
		}
	}
	return nil, nil
}

// accept decodes an accepted item's selected events.
func (l *liveFeed) accept(ctx context.Context, it *item) (*Transaction, error) {
	var t *Transaction
	for _, m := range it.msgs {
		env, err := feed.DecodeEnvelope(m)
		if err != nil {
			return nil, fmt.Errorf("consumer: %w", err)
		}
		def, err := l.table(ctx, env.TableDef)
		if err != nil {
			return nil, err
		}
		if l.c.table != "" && def.QualifiedName() != l.c.table {
			continue
		}
		e, err := feed.DecodeEvent(m, def)
		if err != nil {
			return nil, fmt.Errorf("consumer: event at %s#%d: %w", env.EndLSN, env.Index, err)
		}
		if err := l.fillExternal(ctx, m, def, e); err != nil {
			return nil, err
		}
		ev := newEvent(def, event.LayoutOf(*def), e, l.c.origin, true)
		if !l.c.selects(ev) {
			continue
		}
		if t == nil {
			t = &Transaction{End: LSN(e.EndLSN), CommitTime: ev.CommitTime, XID: e.XID}
		}
		t.Events = append(t.Events, ev)
	}
	return t, nil
}

// table returns a table definition from META.
func (l *liveFeed) table(ctx context.Context, id string) (*event.Table, error) {
	if t := l.tables[id]; t != nil {
		return t, nil
	}
	entry, err := l.meta.Get(ctx, feed.TableKey(id))
	if err != nil {
		return nil, fmt.Errorf("consumer: table definition %s from META: %w", id, err)
	}
	t := &event.Table{}
	if err := json.Unmarshal(entry.Value(), t); err != nil || len(t.Columns) == 0 || t.ID() != id {
		return nil, fmt.Errorf("consumer: table definition %s in META is not valid (%v)", id, err)
	}
	l.tables[id] = t
	return t, nil
}

// sweep drops what the archive delivered in the meantime.
func (l *liveFeed) sweep() {
	for pos, p := range l.assembling {
		if pos <= l.c.w {
			l.held -= p.got
			delete(l.assembling, pos)
		}
	}
	keep := l.pending[:0]
	for _, it := range l.pending {
		if it.pos > l.c.w {
			keep = append(keep, it)
		} else {
			l.held -= len(it.msgs)
		}
	}
	l.pending = keep
	heap.Init(&l.pending)
}

// itemHeap orders complete items by position, the lower previous position
// first among copies of one item.
type itemHeap []*item

func (h itemHeap) Len() int { return len(h) }
func (h itemHeap) Less(i, j int) bool {
	if h[i].pos != h[j].pos {
		return h[i].pos < h[j].pos
	}
	return h[i].prev < h[j].prev
}
func (h itemHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)   { *h = append(*h, x.(*item)) }
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
