package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/archive/archivetest"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// archiverArgs are the flags of a test archiver: fast flushes and a short lease.
func archiverArgs(natsURL, store, holder string, extra ...string) []string {
	args := []string{"run", "--nats-url", natsURL, "--store", store, "--holder", holder, "--http", "",
		"--flush-interval", "100ms", "--lease-ttl", "2s", "--hole-grace", "500ms", "--log-level", "debug"}
	return append(args, extra...)
}

// startProc starts an archiver binary with args and env added to its
// environment; it is killed when the test ends.
func startProc(t *testing.T, bin string, env []string, args ...string) *testkit.Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return testkit.StartT(t, "archiver", cmd)
}

// publisher publishes transactions and heartbeats in the background.
type publisher struct {
	f      *archivetest.Feed
	mu     sync.Mutex
	items  []archivetest.Item
	stop   chan struct{}
	done   chan struct{}
	err    error
	seq    int
	period time.Duration
}

func startPublisher(f *archivetest.Feed, period time.Duration) *publisher {
	p := &publisher{f: f, stop: make(chan struct{}), done: make(chan struct{}), period: period}
	go p.run()
	return p
}

func (p *publisher) run() {
	defer close(p.done)
	ctx := context.Background()
	for {
		select {
		case <-p.stop:
			return
		case <-time.After(p.period):
		}
		p.seq++
		var it archivetest.Item
		if p.seq%8 == 0 {
			it = p.f.HeartbeatItem()
		} else {
			it = p.f.Txn(1+p.seq%5, 0)
		}
		for _, m := range p.f.Messages(it) {
			if _, err := p.f.JS.PublishMsg(ctx, m); err != nil {
				p.err = fmt.Errorf("publish: %w", err)
				return
			}
		}
		p.mu.Lock()
		p.items = append(p.items, it)
		p.mu.Unlock()
	}
}

// finish stops publishing, publishes a closing heartbeat and returns every item.
func (p *publisher) finish(t *testing.T) []archivetest.Item {
	t.Helper()
	close(p.stop)
	<-p.done
	if p.err != nil {
		t.Fatal(p.err)
	}
	hb := p.f.HeartbeatItem()
	p.f.Publish(t, false, hb)
	return append(p.items, hb)
}

func fileStore(t *testing.T) (string, objstore.Store) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "archive")
	s, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, s
}
