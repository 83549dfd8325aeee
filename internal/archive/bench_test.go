package archive

import (
	"context"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/archive/archivetest"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// BenchmarkArchiver_Run measures archiving throughput from JetStream into
// the file store: each iteration publishes 20000 events (transactions of
// 1–4 events, heartbeats between) and waits for the catalog's watermark.
func BenchmarkArchiver_Run(b *testing.B) {
	nats := testrig.StartNATS(b)
	f := archivetest.NewFeed(b, nats.URL, testStream)
	store, err := file.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	a, err := New(testConfig("bench"), Deps{JetStream: f.JS, Store: store})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	b.ResetTimer()
	events := 0
	start := time.Now()
	for range b.N {
		var items []archivetest.Item
		n := 0
		for n < 20000 {
			it := f.Txn(1+len(items)%4, 0)
			n += len(it.Events)
			items = append(items, it)
			if len(items)%50 == 0 {
				items = append(items, f.HeartbeatItem())
			}
		}
		items = append(items, f.HeartbeatItem())
		f.Publish(b, false, items...)
		archivetest.WaitWatermark(b, store, last(items), 5*time.Minute)
		events += n
	}
	b.ReportMetric(float64(events)/time.Since(start).Seconds(), "events/s")
}
