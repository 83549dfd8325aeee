package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/archive/archivetest"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// proc is an archiver process started by a test.
type proc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
	err  error
}

// syncBuffer is a bytes.Buffer safe for a process's writes and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// archiverArgs are the flags of a test archiver: fast flushes and a short lease.
func archiverArgs(natsURL, store, holder string, extra ...string) []string {
	args := []string{"run", "--nats-url", natsURL, "--store", store, "--holder", holder, "--http", "",
		"--flush-interval", "100ms", "--lease-ttl", "2s", "--hole-grace", "500ms", "--log-level", "debug"}
	return append(args, extra...)
}

func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	bin := testrig.BuildBinary(t, "./cmd/archiver")
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, log: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start archiver: %v", err)
	}
	go func() {
		defer close(p.done)
		p.err = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("log of archiver %v:\n%s", args, tail(p.log.String()))
		}
	})
	return p
}

// exitCode waits for the process to end and returns its exit code (-1 when
// killed by a signal).
func (p *proc) exitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("archiver did not exit within %s; log:\n%s", timeout, tail(p.log.String()))
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
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
