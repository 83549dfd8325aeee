package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/archive/archivetest"
	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func TestArchiver_PausedWriterIsFenced(t *testing.T) {
	bin := testrig.BuildBinary(t, "./cmd/archiver")
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, "TIDEMARK")
	dir, store := fileStore(t)
	ctx := context.Background()
	a := startProc(t, bin, nil, archiverArgs(nats.URL, dir, "writer-a", "--flush-interval", "1500ms")...)
	waitLease(t, store, "writer-a")
	b := startProc(t, bin, nil, archiverArgs(nats.URL, dir, "writer-b")...)

	first := batch(f, 20)
	f.Publish(t, false, first...)
	archivetest.WaitWatermark(t, store, first[len(first)-1].Pos(), 20*time.Second)

	// A holds the second batch when it is paused: delivered to it, and
	// acknowledged only once durable.
	second := batch(f, 20)
	f.Publish(t, false, second...)
	waitDelivered(t, f)
	if err := a.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if c, err := catalog.Load(ctx, store); err == nil {
		t.Logf("A paused at watermark %s; the second batch ends at %s", c.Watermark().LSN, second[len(second)-1].Pos())
	}
	waitLease(t, store, "writer-b")
	third := batch(f, 20)
	f.Publish(t, false, third...)
	archivetest.WaitWatermark(t, store, third[len(third)-1].Pos(), 30*time.Second)

	// A wakes up with a stale lease and an open segment: it must not write.
	if err := a.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testkit.WaitForLog(t, 15*time.Second, "the woken writer to step down", func() bool {
		return strings.Contains(a.Output(), "stepping down to standby")
	}, func() string { return a.LogTail(40) })
	fourth := batch(f, 20)
	f.Publish(t, false, fourth...)
	last := fourth[len(fourth)-1].Pos()
	archivetest.WaitWatermark(t, store, last, 30*time.Second)
	select {
	case <-a.Done():
		t.Fatalf("woken writer exited; log:\n%s", a.LogTail(40))
	default:
	}
	if lease, err := catalog.CurrentLease(ctx, store); err != nil || lease.Holder != "writer-b" {
		t.Fatalf("lease after the wake-up: %+v, %v", lease, err)
	}

	arch := archivetest.Load(t, store, nil)
	arch.Check(t, archivetest.EventIDs(append(append(append(first, second...), third...), fourth...)...))
	arch.CheckFenced(t, "writer-a", "writer-b")
	for _, line := range strings.Split(a.Output(), "\n") {
		if strings.Contains(line, "stepping down") || strings.Contains(line, "segment") && strings.Contains(line, "WARN") {
			t.Logf("woken writer: %s", line)
		}
	}
	if !strings.Contains(b.Output(), "msg=leading") {
		t.Fatalf("standby never led; log:\n%s", b.LogTail(40))
	}
	// The woken writer's lease had lapsed by its own clock, so it uploaded
	// nothing either: no unlisted object is left behind.
	rep, err := catalog.Verify(ctx, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range rep.Findings {
		if fd.Severity != catalog.OK && fd.Check != "stream" {
			t.Errorf("verify after the fenced wake-up: %s", fd)
		}
	}
}

// batch generates n transactions and a closing heartbeat.
func batch(f *archivetest.Feed, n int) []archivetest.Item {
	var items []archivetest.Item
	for i := range n {
		items = append(items, f.Txn(1+i%3, 0))
	}
	return append(items, f.HeartbeatItem())
}

// waitLease waits until holder holds the catalog lease.
func waitLease(t *testing.T, store objstore.Store, holder string) {
	t.Helper()
	var lease *catalog.LeaseInfo
	var err error
	testkit.WaitForLog(t, 20*time.Second, holder+" to hold the lease", func() bool {
		lease, err = catalog.CurrentLease(context.Background(), store)
		return err == nil && lease != nil && lease.Holder == holder && !lease.Expired(time.Now())
	}, func() string { return fmt.Sprintf("lease %+v, %v", lease, err) })
}

// waitDelivered waits until the archivers' consumer has delivered every
// message in the feed's stream (only the leader pulls).
func waitDelivered(t *testing.T, f *archivetest.Feed) {
	t.Helper()
	ctx := context.Background()
	var last, delivered uint64
	var err error
	testkit.WaitForLog(t, 20*time.Second, "the consumer to deliver the whole stream", func() bool {
		var s jetstream.Stream
		if s, err = f.JS.Stream(ctx, f.Stream); err != nil {
			return false
		}
		last = s.CachedInfo().State.LastSeq
		var c jetstream.Consumer
		if c, err = f.JS.Consumer(ctx, f.Stream, archive.DefaultConsumer); err != nil {
			return false
		}
		delivered = c.CachedInfo().Delivered.Stream
		return delivered >= last
	}, func() string {
		return fmt.Sprintf("delivered up to stream sequence %d of %d: %v", delivered, last, err)
	})
}
