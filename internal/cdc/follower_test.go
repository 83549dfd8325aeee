package cdc

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// follower plays the archiver's part in tests: it reads the feed, follows
// the chain (PrevLSN ≤ W < position extends W once an item is complete)
// and publishes W as the META watermark.
type follower struct {
	mu        sync.Mutex
	w         event.Position
	published event.Position // the highest watermark written to META
	items     map[event.Position]*chainItem
}

type chainItem struct {
	prev  event.Position
	count int
	seen  map[int]bool
}

func (it *chainItem) complete() bool { return len(it.seen) == it.count }

// startFollower consumes stream until the test ends.
func startFollower(t *testing.T, js jetstream.JetStream, stream string) *follower {
	t.Helper()
	f := &follower{items: map[event.Position]*chainItem{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	var s jetstream.Stream
	testkit.WaitFor(t, 30*time.Second, "stream "+stream, func() bool {
		var err error
		s, err = js.Stream(ctx, stream)
		return err == nil
	})
	var kv jetstream.KeyValue
	testkit.WaitFor(t, 30*time.Second, "META bucket", func() bool {
		var err error
		kv, err = js.KeyValue(ctx, feed.MetaBucket(stream))
		return err == nil
	})
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	it, err := cons.Messages()
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		it.Stop()
	}()
	go func() {
		defer wg.Done()
		for {
			m, err := it.Next()
			if err != nil {
				return
			}
			f.add(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			f.mu.Lock()
			w := f.w
			f.mu.Unlock()
			if w <= f.publishedLSN() {
				continue
			}
			// Counted as published before the Put: capture may see the
			// new value before the Put call returns here.
			f.mu.Lock()
			f.published = max(f.published, w)
			f.mu.Unlock()
			b, _ := json.Marshal(feed.Watermark{LSN: w, UpdatedAt: time.Now()})
			if _, err := kv.Put(ctx, feed.KeyWatermark, b); err != nil && ctx.Err() == nil {
				t.Errorf("put watermark: %v", err)
			}
		}
	}()
	return f
}

func (f *follower) publishedLSN() event.Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.published
}

func (f *follower) watermark() event.Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.w
}

func (f *follower) add(m *nats.Msg) {
	var pos, prev event.Position
	count, index := 1, 0
	switch {
	case feed.IsHeartbeat(m):
		hb, err := feed.DecodeHeartbeat(m)
		if err != nil {
			return
		}
		pos, prev = hb.LSN, hb.PrevLSN
	default:
		env, err := feed.DecodeEnvelope(m)
		if err != nil {
			return
		}
		pos, prev, count, index = env.EndLSN, env.PrevLSN, env.Count, env.Index
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if pos <= f.w {
		return
	}
	it := f.items[pos]
	if it == nil {
		it = &chainItem{prev: prev, count: count, seen: map[int]bool{}}
		f.items[pos] = it
	}
	it.seen[index] = true
	f.advance()
}

// advance extends W over complete items that chain onto it.
func (f *follower) advance() {
	for {
		var next event.Position
		for pos, it := range f.items {
			if pos <= f.w {
				delete(f.items, pos)
				continue
			}
			if it.complete() && it.prev <= f.w && (next == 0 || pos < next) {
				next = pos
			}
		}
		if next == 0 {
			return
		}
		f.w = next
		delete(f.items, next)
	}
}
