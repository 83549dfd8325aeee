package archive

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// consumerConfig is the durable pull consumer every archiver of the stream shares.
func (a *Archiver) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:     a.cfg.Consumer,
		Description: "Tidemark archiver: feed to object storage",
		// One filter equal to the stream's subjects: with the two filters
		// (events, heartbeat) nats-server delivered ~4.6× slower on a stream
		// of ~200,000 distinct subjects (docs/benchmarks.md); tamper reports,
		// the only other messages, are skipped in handle.
		FilterSubject: a.cfg.Subjects.All(),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       a.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: a.cfg.MaxAckPending,
		MaxWaiting:    512,
	}
}

// consumer creates or updates the durable consumer, waiting for the stream
// to exist. A new consumer acknowledges cumulatively (AckAll, see
// cumulativeAcks); an existing one keeps its policy, since nats-server
// cannot change it: one an earlier version created acknowledges message
// by message until it is deleted while the archivers are stopped.
func (a *Archiver) consumer(ctx context.Context) (jetstream.Consumer, error) {
	warned := false
	for {
		cfg := a.consumerConfig()
		if c, err := a.deps.JetStream.Consumer(ctx, a.cfg.Stream, a.cfg.Consumer); err == nil {
			switch p := c.CachedInfo().Config.AckPolicy; p {
			case jetstream.AckAllPolicy, jetstream.AckExplicitPolicy:
				cfg.AckPolicy = p
			default:
				return nil, fmt.Errorf("consumer %s on %s has ack policy %s; the archiver needs acknowledgements: "+
					"delete the consumer while the archivers are stopped and the next start creates it", a.cfg.Consumer, a.cfg.Stream, p)
			}
		}
		c, err := a.deps.JetStream.CreateOrUpdateConsumer(ctx, a.cfg.Stream, cfg)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if !warned {
			a.log.Warn("waiting for the stream", "stream", a.cfg.Stream, "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("create consumer %s on %s: %w", a.cfg.Consumer, a.cfg.Stream, err)
		case <-time.After(time.Second):
		}
	}
}

// watchConsumer reads the consumer's info every InfoInterval into the
// pending gauges and the status until ctx ends.
func (a *Archiver) watchConsumer(ctx context.Context, c jetstream.Consumer) {
	t := time.NewTicker(a.cfg.InfoInterval)
	defer t.Stop()
	for {
		if info, err := c.Info(ctx); err == nil {
			consumerPending.Set(float64(info.NumPending))
			consumerAckPending.Set(float64(info.NumAckPending))
			a.setStatus(func(st *Status) {
				st.ConsumerPending, st.ConsumerAckPending = info.NumPending, uint64(info.NumAckPending)
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

var (
	consumerPending = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_archiver_consumer_pending",
		Help: "Messages in the stream not yet delivered to the archiver (consumer info).",
	})
	consumerAckPending = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "tidemark_archiver_consumer_ack_pending",
		Help: "Messages delivered to the archiver and not yet acknowledged (consumer info).",
	})
)
