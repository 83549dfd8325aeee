package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/feed"
)

// LatencyProbe follows the feed from its current end and records, for
// every event message, commit → stored in JetStream: the time the stream
// stored the message (its own timestamp, in the message's metadata)
// minus the Tidemark-Commit-Time header. It also records commit →
// delivered to this consumer (arrival time minus commit time), which adds
// the hop a feed consumer sees.
type LatencyProbe struct {
	nc        *nats.Conn
	cc        jetstream.ConsumeContext
	mu        sync.Mutex
	lat       []time.Duration // commit → stored
	delivered []time.Duration // commit → delivered
	commit    []time.Time     // commit time of each latency sample
	bad       int
	from      time.Time
}

// StartLatencyProbe subscribes to the stream's event subjects with an
// ordered consumer delivering only new messages. Only events committed at
// or after from are recorded.
func StartLatencyProbe(ctx context.Context, natsURL, stream string, subjects feed.Subjects, from time.Time) (*LatencyProbe, error) {
	nc, err := nats.Connect(natsURL, nats.Name("tidemark-bench-probe"))
	if err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjects.Events()},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("create probe consumer: %w", err)
	}
	p := &LatencyProbe{nc: nc, from: from}
	p.cc, err = cons.Consume(p.handle)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("consume %s: %w", stream, err)
	}
	return p, nil
}

func (p *LatencyProbe) handle(m jetstream.Msg) {
	now := time.Now()
	env, err := feed.DecodeEnvelope(&nats.Msg{Subject: m.Subject(), Header: m.Headers()})
	var md *jetstream.MsgMetadata
	if err == nil {
		md, err = m.Metadata()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.bad++
		return
	}
	t := env.CommitTime
	if t.Before(p.from) {
		return
	}
	p.lat = append(p.lat, md.Timestamp.Sub(t))
	p.delivered = append(p.delivered, now.Sub(t))
	p.commit = append(p.commit, t)
}

// Count returns how many events were recorded so far.
func (p *LatencyProbe) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lat)
}

// WaitCount waits until n events were recorded, or ctx ends.
func (p *LatencyProbe) WaitCount(ctx context.Context, n int) error {
	for p.Count() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("latency probe saw %d of %d events: %w", p.Count(), n, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
	return nil
}

// Stop ends the subscription and returns the recorded commit → stored
// and commit → delivered latencies and the number of messages whose
// commit time or metadata could not be read. Stopping twice is harmless.
func (p *LatencyProbe) Stop() (stored, delivered []time.Duration, bad int) {
	p.cc.Stop()
	p.nc.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lat), slices.Clone(p.delivered), p.bad
}

// Trend returns the median latency of the events committed in the first
// and in the last third of [from, to]: a last third well above the first
// means the pipeline fell behind the workload rather than adding a steady
// delay.
func (p *LatencyProbe) Trend(from, to time.Time) (first, last time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	third := to.Sub(from) / 3
	var a, b []time.Duration
	for i, c := range p.commit {
		switch {
		case c.Before(from.Add(third)):
			a = append(a, p.lat[i])
		case !c.Before(to.Add(-third)):
			b = append(b, p.lat[i])
		}
	}
	return Percentile(a, 0.5), Percentile(b, 0.5)
}
