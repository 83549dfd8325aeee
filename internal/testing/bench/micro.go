package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// MicroResult is one machine limit measured with Go's benchmark harness.
type MicroResult struct {
	// N is the iterations testing.Benchmark settled on.
	N int
	// PerSecond is iterations (messages, or bytes) per second.
	PerSecond float64
	// Ratio is the compression ratio (input ÷ output), for compression.
	Ratio float64
}

// BenchJetStreamPublish measures asynchronous JetStream publishing of
// size-byte messages to a scratch file-storage stream on the server at
// natsURL (deleted afterwards): the ceiling of any publisher, capture
// included.
func BenchJetStreamPublish(ctx context.Context, natsURL string, size int) (MicroResult, error) {
	nc, err := nats.Connect(natsURL, nats.Name("tidemark-bench-publish"))
	if err != nil {
		return MicroResult{}, fmt.Errorf("connect nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		return MicroResult{}, fmt.Errorf("open jetstream: %w", err)
	}
	const name = "BENCH_PUBLISH"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"benchpub.>"}, Storage: jetstream.FileStorage}); err != nil {
		return MicroResult{}, fmt.Errorf("create scratch stream: %w", err)
	}
	defer js.DeleteStream(context.WithoutCancel(ctx), name)
	body := bytes.Repeat([]byte("x"), size)
	var runErr error
	r := testing.Benchmark(func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := js.PublishAsync(fmt.Sprintf("benchpub.s%d", i%1000), body); err != nil {
				runErr = err
				b.FailNow()
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			runErr = fmt.Errorf("publishes not acknowledged within a minute")
		}
	})
	if runErr != nil {
		return MicroResult{}, fmt.Errorf("publish: %w", runErr)
	}
	return MicroResult{N: r.N, PerSecond: rate(int64(r.N), r.T)}, nil
}

// BenchJetStreamFastPublish is BenchJetStreamPublish through a JetStream
// fast-ingest batch (orbit.go jetstreamext, as capture publishes): one
// flow acknowledgement per batch of messages instead of one PubAck each.
func BenchJetStreamFastPublish(ctx context.Context, natsURL string, size int) (MicroResult, error) {
	nc, err := nats.Connect(natsURL, nats.Name("tidemark-bench-fast-publish"))
	if err != nil {
		return MicroResult{}, fmt.Errorf("connect nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return MicroResult{}, fmt.Errorf("open jetstream: %w", err)
	}
	const name = "BENCH_FAST_PUBLISH"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"benchfast.>"},
		Storage: jetstream.FileStorage, AllowBatchPublish: true}); err != nil {
		return MicroResult{}, fmt.Errorf("create scratch stream: %w", err)
	}
	defer js.DeleteStream(context.WithoutCancel(ctx), name)
	body := bytes.Repeat([]byte("x"), size)
	var runErr error
	r := testing.Benchmark(func(b *testing.B) {
		fp, err := jetstreamext.NewFastPublisher(js)
		if err != nil {
			runErr = err
			b.FailNow()
		}
		for i := 0; i < b.N; i++ {
			if _, err := fp.Add(fmt.Sprintf("benchfast.s%d", i%1000), body); err != nil {
				runErr = err
				b.FailNow()
			}
		}
		if _, err := fp.Close(ctx); err != nil {
			runErr = err
		}
	})
	if runErr != nil {
		return MicroResult{}, fmt.Errorf("fast publish: %w", runErr)
	}
	return MicroResult{N: r.N, PerSecond: rate(int64(r.N), r.T)}, nil
}

// BenchZstd measures single-core zstd compression (klauspost, default
// level) of up to limit bytes of path, in 4 MiB blocks: bytes in per
// second, and the ratio.
func BenchZstd(path string, limit int64) (MicroResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return MicroResult{}, fmt.Errorf("open sample: %w", err)
	}
	defer f.Close()
	sample, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return MicroResult{}, fmt.Errorf("read sample: %w", err)
	}
	if len(sample) == 0 {
		return MicroResult{}, errNoEvents
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return MicroResult{}, fmt.Errorf("zstd: %w", err)
	}
	defer enc.Close()
	const block = 4 << 20
	var out []byte
	var in, compressed int64
	r := testing.Benchmark(func(b *testing.B) {
		in, compressed = 0, 0
		for i := 0; i < b.N; i++ {
			for off := 0; off < len(sample); off += block {
				chunk := sample[off:min(off+block, len(sample))]
				out = enc.EncodeAll(chunk, out[:0])
				in += int64(len(chunk))
				compressed += int64(len(out))
			}
		}
	})
	res := MicroResult{N: r.N, PerSecond: rate(in, r.T)}
	if compressed > 0 {
		res.Ratio = float64(in) / float64(compressed)
	}
	return res, nil
}
